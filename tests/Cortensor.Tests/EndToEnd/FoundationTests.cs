using System.Net;
using System.Net.Http.Json;
using System.Text.Json;
using Cortensor.Tests.Fixtures;

namespace Cortensor.Tests.EndToEnd;

[Collection(PortalAppCollection.Name), Trait("Category", PortalAppCollection.Category)]
public class FoundationTests(PortalAppFixture portal)
{
    [Fact]
    public async Task HealthNamesEachDependencyAndEveryPoolWithItsState()
    {
        using var api = portal.CreateClient(LaunchTopology.Api);
        // Each dependency's check answers within 2 s or says Degraded: a cold replica on a loaded machine may take longer once.
        var health = await Eventually.WaitForAsync(() => api.GetFromJsonAsync<JsonElement>("/health"),
            h => h.GetProperty("status").GetString() == "Healthy", TimeSpan.FromSeconds(30), "the Api did not report Healthy");
        var checks = health.GetProperty("checks");
        var names = checks.EnumerateObject().Select(c => c.Name).ToList();
        Assert.Contains(names, n => n.Contains("Redis", StringComparison.OrdinalIgnoreCase));
        Assert.Contains(names, n => n.Contains("PortalDbContext", StringComparison.Ordinal) || n.Contains("postgres", StringComparison.OrdinalIgnoreCase));
        var usage = checks.GetProperty("usage-pipeline");
        Assert.Equal("Healthy", usage.GetProperty("status").GetString());
        Assert.True(long.Parse(usage.GetProperty("data").GetProperty("backlog").GetString()!, System.Globalization.CultureInfo.InvariantCulture) >= 0);
        var routers = checks.GetProperty("routers");
        Assert.Equal("Healthy", routers.GetProperty("status").GetString());
        foreach (var pool in LaunchTopology.Pools)
            Assert.StartsWith($"{pool.Routers.Count} of {pool.Routers.Count} routers available", routers.GetProperty("data").GetProperty(pool.Name).GetString());
    }

    [Fact]
    public async Task TheApiReportsHealthyAndServesTheLaunchCatalog()
    {
        using var api = portal.CreateClient(LaunchTopology.Api);
        Assert.Equal(HttpStatusCode.OK, (await api.GetAsync("/health")).StatusCode);

        // Available is the answering replica's view of its routers now: a test before may have had a pool's router down.
        var models = await Eventually.WaitForAsync(() => api.GetFromJsonAsync<JsonElement>("/portal/models"),
            m => m.EnumerateArray().All(e => e.GetProperty("available").GetBoolean()), TimeSpan.FromSeconds(30), "a model of the launch catalog stayed unavailable");
        var ids = models.EnumerateArray().Select(m => m.GetProperty("id").GetString()).ToList();
        Assert.Equal(Requirements.ModelIds.Order(), ids.Order());
        foreach (var expected in Requirements.LaunchCatalog)
        {
            var model = models.EnumerateArray().Single(m => m.GetProperty("id").GetString() == expected.Id);
            Assert.Equal(expected.InputPricePer1K, model.GetProperty("input_price_per_1k").GetDecimal());
            Assert.Equal(expected.OutputPricePer1K, model.GetProperty("output_price_per_1k").GetDecimal());
            Assert.True(model.GetProperty("available").GetBoolean(), expected.Id);
        }
    }

    [Fact]
    public async Task TheWebDashboardRendersTheCatalogFetchedFromTheApi()
    {
        using var web = portal.CreateClient(LaunchTopology.Web);
        var response = await web.GetAsync("/");
        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        var html = await response.Content.ReadAsStringAsync();
        Assert.Contains("Cortensor Portal", html);
        foreach (var model in Requirements.ModelIds)
            Assert.Contains(model, html);
    }

    [Fact]
    public async Task ARouterAnswersACompletionOnItsDedicatedSessionInItsOwnApiShape()
    {
        using var router = portal.CreateRouterClient("router-oss20b-2");
        var response = await router.PostAsJsonAsync("/api/v1/completions/2003", new { prompt = "Say hello to the pool", max_tokens = 8 });
        response.EnsureSuccessStatusCode();
        var body = await response.Content.ReadFromJsonAsync<JsonElement>();
        Assert.Equal("text_completion", body.GetProperty("object").GetString());
        Assert.Equal("gpt-oss-20b", body.GetProperty("model").GetString());
        var choice = body.GetProperty("choices")[0];
        Assert.Equal("length", choice.GetProperty("finish_reason").GetString());
        Assert.Equal(8, body.GetProperty("usage").GetProperty("completion_tokens").GetInt32());
        Assert.Equal(8, Cortensor.Contracts.ModelTokenizer.GptOss.Count(choice.GetProperty("text").GetString()!));
        Assert.True(body.GetProperty("task_id").GetInt64() > 0);
    }

    [Fact]
    public async Task ARouterStreamsTokensAsServerSentEventsEndingWithUsageAndDone()
    {
        using var router = portal.CreateRouterClient("router-gemma4-1");
        using var request = new HttpRequestMessage(HttpMethod.Post, "/api/v1/completions")
        {
            Content = JsonContent.Create(new { session_id = 4001, prompt = "Stream please", max_tokens = 5, stream = true }),
        };
        using var response = await router.SendAsync(request, HttpCompletionOption.ResponseHeadersRead);
        response.EnsureSuccessStatusCode();
        Assert.Equal("text/event-stream", response.Content.Headers.ContentType?.MediaType);

        var lines = (await response.Content.ReadAsStringAsync()).Split('\n', StringSplitOptions.RemoveEmptyEntries);
        Assert.All(lines, l => Assert.StartsWith("data: ", l));
        Assert.Equal("data: [DONE]", lines[^1]);
        var chunks = lines[..^1].Select(l => JsonDocument.Parse(l["data: ".Length..]).RootElement).ToList();
        Assert.Equal(6, chunks.Count);
        Assert.Equal(5, chunks[^1].GetProperty("usage").GetProperty("completion_tokens").GetInt32());
        Assert.Equal("length", chunks[^1].GetProperty("choices")[0].GetProperty("finish_reason").GetString());
    }

    [Fact]
    public async Task ARouterListsItsSessionsMinersAndTheTasksItRan()
    {
        using var router = portal.CreateRouterClient("router-oss120b-1");
        var sessions = await router.GetFromJsonAsync<JsonElement>("/api/v1/sessions");
        Assert.Equal(2, sessions.GetProperty("count").GetInt32());
        Assert.Equal([3001L, 3002L], sessions.GetProperty("sessions").EnumerateArray().Select(s => s.GetProperty("id").GetInt64()));
        Assert.Equal(3001, (await router.GetFromJsonAsync<JsonElement>("/api/v1/sessions/3001")).GetProperty("id").GetInt64());
        Assert.True((await router.GetFromJsonAsync<JsonElement>("/api/v1/miners")).GetProperty("count").GetInt32() > 0);
        var status = await router.GetFromJsonAsync<JsonElement>("/api/v1/status");
        Assert.False(status.TryGetProperty("healthy", out _));

        var answer = await (await router.PostAsJsonAsync("/api/v3/completions", new { session_id = 3002, prompt = "Which task is this?", max_tokens = 16 }))
            .Content.ReadFromJsonAsync<JsonElement>();
        var taskId = answer.GetProperty("task_id").GetInt64();
        var task = await router.GetFromJsonAsync<JsonElement>($"/api/v1/tasks/3002/{taskId}");
        Assert.Equal(4, task.GetProperty("status").GetInt32());
        Assert.Equal(answer.GetProperty("choices")[0].GetProperty("text").GetString(), task.GetProperty("results").GetProperty("data")[0].GetString());
        var tasks = await router.GetFromJsonAsync<JsonElement>("/api/v1/tasks/3002");
        Assert.Contains(tasks.GetProperty("tasks").EnumerateArray(), t => t.GetProperty("task_id").GetInt64() == taskId);
    }

    [Fact]
    public async Task ARouterRejectsAWrongTokenAndAnUnknownSession()
    {
        using var router = portal.CreateRouterClient("router-qwen-1");
        var unknown = await router.PostAsJsonAsync("/api/v1/completions/999", new { prompt = "hi" });
        Assert.Equal(HttpStatusCode.NotFound, unknown.StatusCode);
        Assert.Contains("999", (await unknown.Content.ReadFromJsonAsync<JsonElement>()).GetProperty("error").GetProperty("message").GetString());

        router.DefaultRequestHeaders.Authorization = new("Bearer", "not-the-token");
        var unauthorised = await router.PostAsJsonAsync("/api/v1/completions/5001", new { prompt = "hi" });
        Assert.Equal(HttpStatusCode.Unauthorized, unauthorised.StatusCode);
    }
}
