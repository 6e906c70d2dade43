using System.Net;
using System.Net.Http.Json;
using System.Text.Json;
using Cortensor.Tests.Fixtures;

namespace Cortensor.Tests.EndToEnd;

/// <summary>Routers failing, hanging, cut mid-stream, or drained: what the client sees.</summary>
[Collection(PortalAppCollection.Name)]
public class FailoverTests(PortalAppFixture portal)
{
    private static readonly object Normal = new { outage = "None" };

    [Theory]
    [InlineData("Error500")]
    [InlineData("Refuse")]
    public async Task OneFailingRouterOfThreeDoesNotFailAnyRequest(string outage)
    {
        var customer = await portal.CreateCustomerAsync();
        using var client = customer.CreateClient();
        await portal.SetRouterBehaviourAsync("router-oss20b-1", new { outage });
        try
        {
            var statuses = new List<HttpStatusCode>();
            for (var i = 0; i < 15; i++)
            {
                var response = await client.PostAsJsonAsync("/v1/chat/completions",
                    new { model = "gpt-oss-20b", messages = new[] { new { role = "user", content = $"failover {i}" } }, max_tokens = 4 });
                statuses.Add(response.StatusCode);
            }
            Assert.All(statuses, s => Assert.Equal(HttpStatusCode.OK, s));
        }
        finally
        {
            await portal.SetRouterBehaviourAsync("router-oss20b-1", Normal);
        }
    }

    [Fact]
    public async Task AWholePoolDownIs503WithRetryAfter()
    {
        var customer = await portal.CreateCustomerAsync();
        using var client = customer.CreateClient();
        await portal.SetRouterBehaviourAsync("router-oss120b-1", new { outage = "Error500" });
        try
        {
            var response = await client.PostAsJsonAsync("/v1/chat/completions",
                new { model = "gpt-oss-120b", messages = new[] { new { role = "user", content = "anyone there?" } }, max_tokens = 4 });
            Assert.Equal(HttpStatusCode.ServiceUnavailable, response.StatusCode);
            Assert.True(response.Headers.RetryAfter?.Delta > TimeSpan.Zero);
            var error = (await response.Content.ReadFromJsonAsync<JsonElement>()).GetProperty("error");
            Assert.Equal("no_capacity", error.GetProperty("code").GetString());
            Assert.DoesNotContain("router", error.GetProperty("message").GetString()!, StringComparison.OrdinalIgnoreCase);
        }
        finally
        {
            await portal.SetRouterBehaviourAsync("router-oss120b-1", Normal);
        }
        await WaitUntilServedAsync(client, "gpt-oss-120b");
    }

    [Fact]
    public async Task AHangingRouterIs504AfterTheUpstreamTimeout()
    {
        var customer = await portal.CreateCustomerAsync();
        using var client = customer.CreateClient();
        await portal.SetRouterBehaviourAsync("router-qwen-1", new { outage = "Hang" });
        try
        {
            var response = await client.PostAsJsonAsync("/v1/chat/completions",
                new { model = "qwen-3-32b", messages = new[] { new { role = "user", content = "hello?" } }, max_tokens = 4 });
            // 504 when the request was routed before the probe noticed; 503 once it has.
            Assert.Contains(response.StatusCode, new[] { HttpStatusCode.GatewayTimeout, HttpStatusCode.ServiceUnavailable });
            if (response.StatusCode == HttpStatusCode.GatewayTimeout)
                Assert.Equal("upstream_timeout", (await response.Content.ReadFromJsonAsync<JsonElement>()).GetProperty("error").GetProperty("code").GetString());
        }
        finally
        {
            await portal.SetRouterBehaviourAsync("router-qwen-1", Normal);
        }
        await WaitUntilServedAsync(client, "qwen-3-32b");
    }

    [Fact]
    public async Task AStreamCutByTheRouterEndsWithAnErrorEventNotASilentCut()
    {
        var customer = await portal.CreateCustomerAsync();
        using var client = customer.CreateClient();
        await portal.SetRouterBehaviourAsync("router-gemma4-1", new { cut_stream_after_tokens = 3 });
        try
        {
            var response = await client.PostAsJsonAsync("/v1/chat/completions",
                new { model = "gemma-4-26b", messages = new[] { new { role = "user", content = "a long answer please" } }, max_tokens = 20, stream = true });
            Assert.Equal(HttpStatusCode.OK, response.StatusCode);
            var events = await InferenceTests.SseEvents(response);
            Assert.DoesNotContain("[DONE]", events);
            var last = JsonDocument.Parse(events[^1]).RootElement;
            Assert.Equal("upstream_error", last.GetProperty("error").GetProperty("code").GetString());
            var content = events.Take(events.Count - 1).Select(e => JsonDocument.Parse(e).RootElement.GetProperty("choices")[0].GetProperty("delta"))
                .Count(d => d.TryGetProperty("content", out var c) && c.GetString()!.Length > 0);
            Assert.Equal(3, content);
        }
        finally
        {
            await portal.SetRouterBehaviourAsync("router-gemma4-1", Normal);
        }
    }

    [Fact]
    public async Task StreamedChunksAreForwardedAsTheyArriveNotBuffered()
    {
        var customer = await portal.CreateCustomerAsync();
        using var client = customer.CreateClient();
        await portal.SetRouterBehaviourAsync("router-gemma4-1", new { tokens_per_second = 4 });
        try
        {
            using var request = new HttpRequestMessage(HttpMethod.Post, "/v1/chat/completions")
            {
                Content = JsonContent.Create(new { model = "gemma-4-26b", messages = new[] { new { role = "user", content = "slowly" } }, max_tokens = 12, stream = true }),
            };
            var clock = System.Diagnostics.Stopwatch.StartNew();
            using var response = await client.SendAsync(request, HttpCompletionOption.ResponseHeadersRead);
            using var reader = new StreamReader(await response.Content.ReadAsStreamAsync());
            TimeSpan? firstContent = null;
            while (await reader.ReadLineAsync() is { } line)
                if (firstContent is null && line.Contains("\"content\":\"") && !line.Contains("\"content\":\"\"")) firstContent = clock.Elapsed;
            var total = clock.Elapsed;
            // 12 tokens at 4/s take about 2.75 s; the first must arrive long before the last.
            Assert.NotNull(firstContent);
            Assert.True(total - firstContent.Value > TimeSpan.FromSeconds(1.5), $"first content at {firstContent}, stream ended at {total}");
        }
        finally
        {
            await portal.SetRouterBehaviourAsync("router-gemma4-1", Normal);
        }
    }

    [Fact]
    public async Task ADrainedPoolTakesNoNewRequestsUntilUndrained()
    {
        var customer = await portal.CreateCustomerAsync();
        using var client = customer.CreateClient();
        using var admin = portal.CreateAdminClient();
        (await admin.PostAsync("/admin/pools/qwen/drain", null)).EnsureSuccessStatusCode();
        try
        {
            await Task.Delay(1000);
            var drained = await client.PostAsJsonAsync("/v1/completions", new { model = "qwen-3-32b", prompt = "hi", max_tokens = 2 });
            Assert.Equal(HttpStatusCode.ServiceUnavailable, drained.StatusCode);
            Assert.NotNull(drained.Headers.RetryAfter);
        }
        finally
        {
            (await admin.PostAsync("/admin/pools/qwen/undrain", null)).EnsureSuccessStatusCode();
        }
        await Task.Delay(1000);
        var served = await client.PostAsJsonAsync("/v1/completions", new { model = "qwen-3-32b", prompt = "hi", max_tokens = 2 });
        Assert.Equal(HttpStatusCode.OK, served.StatusCode);
    }

    /// <summary>After a fault is lifted, the probe and the breaker bring the router back within seconds.</summary>
    internal static async Task WaitUntilServedAsync(HttpClient client, string model)
    {
        for (var i = 0; i < 40; i++)
        {
            var response = await client.PostAsJsonAsync("/v1/completions", new { model, prompt = "back?", max_tokens = 1 });
            if (response.StatusCode == HttpStatusCode.OK) return;
            await Task.Delay(500);
        }
        Assert.Fail($"{model} did not recover");
    }
}
