using System.Net;
using System.Net.Http.Json;
using System.Text.Json;
using Cortensor.Tests.Fixtures;

namespace Cortensor.Tests.EndToEnd;

[Collection(PortalAppCollection.Name)]
public class FoundationTests(PortalAppFixture portal)
{
    [Fact]
    public async Task HealthNamesEachDependencyAndEveryPoolWithItsState()
    {
        using var api = portal.CreateClient(LaunchTopology.Api);
        var health = await api.GetFromJsonAsync<JsonElement>("/health");
        Assert.Equal("Healthy", health.GetProperty("status").GetString());
        var checks = health.GetProperty("checks");
        var names = checks.EnumerateObject().Select(c => c.Name).ToList();
        Assert.Contains(names, n => n.Contains("Redis", StringComparison.OrdinalIgnoreCase));
        Assert.Contains(names, n => n.Contains("PortalDbContext", StringComparison.Ordinal) || n.Contains("postgres", StringComparison.OrdinalIgnoreCase));
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

        var models = await api.GetFromJsonAsync<JsonElement>("/portal/models");
        var ids = models.EnumerateArray().Select(m => m.GetProperty("id").GetString()).ToList();
        Assert.Equal(LaunchTopology.Models.Select(m => m.Alias).Order(), ids.Order());
        var oss20b = models.EnumerateArray().Single(m => m.GetProperty("id").GetString() == "gpt-oss-20b");
        Assert.Equal(0.0001m, oss20b.GetProperty("input_price_per_1k").GetDecimal());
        Assert.True(oss20b.GetProperty("available").GetBoolean());
    }

    [Fact]
    public async Task TheWebDashboardRendersTheCatalogFetchedFromTheApi()
    {
        using var web = portal.CreateClient(LaunchTopology.Web);
        var response = await web.GetAsync("/");
        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        var html = await response.Content.ReadAsStringAsync();
        Assert.Contains("Cortensor Portal", html);
        foreach (var model in LaunchTopology.Models)
            Assert.Contains(model.Alias, html);
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
        Assert.Equal(8, Cortensor.RouterSim.TextGenerator.CountTokens(choice.GetProperty("text").GetString()!));
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
    public async Task ARouterRejectsAWrongTokenAndAnUnknownSession()
    {
        using var router = portal.CreateRouterClient("router-qwen-1");
        var unknown = await router.PostAsJsonAsync("/api/v1/completions/999", new { prompt = "hi" });
        Assert.Equal(HttpStatusCode.NotFound, unknown.StatusCode);
        Assert.Equal("session_not_found", (await unknown.Content.ReadFromJsonAsync<JsonElement>()).GetProperty("error").GetString());

        router.DefaultRequestHeaders.Authorization = new("Bearer", "not-the-token");
        var unauthorised = await router.PostAsJsonAsync("/api/v1/completions/5001", new { prompt = "hi" });
        Assert.Equal(HttpStatusCode.Unauthorized, unauthorised.StatusCode);
    }
}
