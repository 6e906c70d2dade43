using System.Diagnostics;
using System.Net;
using System.Net.Http.Json;
using System.Text.Json;
using Cortensor.Contracts;
using Cortensor.Tests.Fixtures;

namespace Cortensor.Tests.EndToEnd;

/// <summary>
/// Routers that answer as real ones do in the wild (docs/router-contract.md): for each quirk, what the customer
/// sees and what is billed. A 2xx that is not an answer is never billed, and moves to another router while
/// nothing has reached the client.
/// </summary>
[Collection(PortalAppCollection.Name)]
[Trait("Category", PortalAppCollection.Category)]
public class RouterQuirkTests(PortalAppFixture portal)
{
    private static readonly object Normal = new { outage = "None" };

    private static object Chat(string model, string content, int maxTokens, bool stream = false) => stream
        ? new { model, messages = new[] { new { role = "user", content } }, max_tokens = maxTokens, stream, stream_options = new { include_usage = true } }
        : new { model, messages = new[] { new { role = "user", content } }, max_tokens = maxTokens };

    [Theory]
    [InlineData("ErrorIn200", false)]
    [InlineData("ErrorIn200", true)]
    [InlineData("Pending", false)]
    [InlineData("Pending", true)]
    [InlineData("StorageReference", false)]
    [InlineData("StorageReference", true)]
    public async Task ATwoHundredWithoutAnAnswerFromThePoolsOnlyRouterIsA502AndBillsNothing(string quirk, bool stream)
    {
        var customer = await portal.CreateCustomerAsync();
        using var client = customer.CreateClient();
        await portal.SetRouterBehaviourAsync("router-oss120b-1", new { quirk });
        HttpResponseMessage response;
        try
        {
            response = await client.PostAsJsonAsync("/v1/chat/completions", Chat("gpt-oss-120b", $"answer me ({quirk})", 16, stream));
        }
        finally
        {
            await portal.SetRouterBehaviourAsync("router-oss120b-1", Normal);
        }

        // Nothing had reached the client: it gets one error in the one shape, never an empty or pending "answer".
        Assert.Equal(HttpStatusCode.BadGateway, response.StatusCode);
        Assert.Equal("application/json", response.Content.Headers.ContentType?.MediaType);
        var error = (await response.Content.ReadFromJsonAsync<JsonElement>()).GetProperty("error");
        Assert.Equal("upstream_error", error.GetProperty("code").GetString());

        var usage = (await LookupAsync(response))!.Value.GetProperty("usage");
        Assert.Equal(502, usage.GetProperty("status").GetInt32());
        Assert.Equal(0, usage.GetProperty("prompt_tokens").GetInt32());
        Assert.Equal(0, usage.GetProperty("completion_tokens").GetInt32());
        Assert.Equal(0m, usage.GetProperty("cost").GetDecimal());
    }

    [Theory]
    [InlineData("ErrorIn200", false)]
    [InlineData("Pending", true)]
    [InlineData("StorageReference", false)]
    public async Task ANonAnswerFromOneRouterOfThreeIsRetriedOnAnotherAndOnlyTheRealAnswerIsBilled(string quirk, bool stream)
    {
        var customer = await portal.CreateCustomerAsync();
        using var client = customer.CreateClient();
        using var quirky = portal.CreateRouterClient("router-oss20b-1");
        var failedBefore = (await quirky.GetFromJsonAsync<JsonElement>("/api/v1/status")).GetProperty("failed").GetInt64();
        await portal.SetRouterBehaviourAsync("router-oss20b-1", new { quirk });
        var responses = new List<HttpResponseMessage>();
        var quirkyAsked = false;
        try
        {
            // The balancer picks two routers at random: the quirky one is asked within a few dozen requests
            // once it is in rotation (an earlier test may have left its circuit open for a few seconds).
            var until = Stopwatch.StartNew();
            for (var i = 0; until.Elapsed < TimeSpan.FromSeconds(45) && !(quirkyAsked && responses.Count >= 6); i++)
            {
                responses.Add(await client.PostAsJsonAsync("/v1/chat/completions", Chat("gpt-oss-20b", $"retry me {i}", 6, stream)));
                quirkyAsked = (await quirky.GetFromJsonAsync<JsonElement>("/api/v1/status")).GetProperty("failed").GetInt64() > failedBefore;
            }
        }
        finally
        {
            await portal.SetRouterBehaviourAsync("router-oss20b-1", Normal);
        }

        // The quirky router was asked and failed the task at least once, and no customer saw it.
        Assert.True(quirkyAsked, "the quirky router was never asked");
        Assert.All(responses, r => Assert.Equal(HttpStatusCode.OK, r.StatusCode));
        foreach (var response in responses)
        {
            var usage = (await LookupAsync(response))!.Value.GetProperty("usage");
            Assert.Equal(200, usage.GetProperty("status").GetInt32());
            Assert.NotEqual("router-oss20b-1", usage.GetProperty("router_id").GetString());
            Assert.Equal(6, usage.GetProperty("completion_tokens").GetInt32());
            Assert.False(string.IsNullOrEmpty(usage.GetProperty("task_id").GetString()));
        }
    }

    [Theory]
    [InlineData(false)]
    [InlineData(true)]
    public async Task WithoutUsageFromTheRouterCompletionTokensAreTheModelTokenizersCountOfTheText(bool stream)
    {
        var customer = await portal.CreateCustomerAsync();
        using var client = customer.CreateClient();
        await portal.SetRouterBehaviourAsync("router-gemma4-1", new { quirk = "NoUsage" });
        HttpResponseMessage response;
        string text;
        try
        {
            response = await client.PostAsJsonAsync("/v1/chat/completions", Chat("gemma-4-26b", "count my tokens yourself", 200, stream));
            Assert.Equal(HttpStatusCode.OK, response.StatusCode);
            text = stream ? StreamedText(await InferenceTests.SseEvents(response))
                : (await response.Content.ReadFromJsonAsync<JsonElement>()).GetProperty("choices")[0].GetProperty("message").GetProperty("content").GetString()!;
        }
        finally
        {
            await portal.SetRouterBehaviourAsync("router-gemma4-1", Normal);
        }

        Assert.Contains("simulated Cortensor router", text);
        Assert.Contains("count my tokens yourself", text);
        var usage = (await LookupAsync(response))!.Value.GetProperty("usage");
        Assert.Equal(ModelTokenizer.ForFamily("gemma").Count(text), usage.GetProperty("completion_tokens").GetInt32());
        Assert.True(usage.GetProperty("cost").GetDecimal() > 0m);
    }

    [Fact(Timeout = 120_000)]
    public async Task AStreamThatGoesOnPastMaxTokensIsCutThereAndBilledAtMostMaxTokens()
    {
        var (response, events) = await QwenStreamAsync("RunsPastMaxTokens", "never stop", 20);

        Assert.Equal("[DONE]", events[^1]);
        var text = StreamedText(events);
        Assert.InRange(text.Length, 20, 20 * 256 + 1024 + 64);
        Assert.Contains(events, e => e.Contains("\"finish_reason\":\"length\"", StringComparison.Ordinal));
        var usage = (await LookupAsync(response))!.Value.GetProperty("usage");
        Assert.InRange(usage.GetProperty("completion_tokens").GetInt32(), 1, 20);
    }

    /// <summary>
    /// A real gpt-oss router (the engine renders harmony's control tokens) answers with its reasoning first: the customer
    /// sees only the final answer, streamed or not, as text, a tool call or JSON; stop sequences apply to what is shown;
    /// the reasoning's tokens are billed, as generated.
    /// </summary>
    [Fact]
    public async Task AGptOssAnswerWithItsReasoningChannelShowsOnlyTheFinalAnswerAndBillsAllItGenerated()
    {
        var customer = await portal.CreateCustomerAsync();
        using var client = customer.CreateClient();
        await portal.SetRouterBehaviourAsync("router-oss120b-1", new { quirk = "HarmonyChannels" });
        try
        {
            // "asks" is in the reasoning ("The user asks: …") and not in the answer ("You asked: …"): applied to the
            // generated text, it would have cut the answer to nothing.
            var plain = await client.PostAsJsonAsync("/v1/chat/completions", new
            {
                model = "gpt-oss-120b", messages = new[] { new { role = "user", content = "reason about routers" } }, max_tokens = 200, stop = new[] { "asks" },
            });
            Assert.Equal(HttpStatusCode.OK, plain.StatusCode);
            var body = await plain.Content.ReadFromJsonAsync<JsonElement>();
            var content = body.GetProperty("choices")[0].GetProperty("message").GetProperty("content").GetString()!;
            Assert.Contains("You asked: \"reason about routers\"", content);
            Assert.DoesNotContain("<|", content);
            Assert.DoesNotContain("I should answer briefly", content);
            Assert.Equal("stop", body.GetProperty("choices")[0].GetProperty("finish_reason").GetString());
            var billed = body.GetProperty("usage").GetProperty("completion_tokens").GetInt32();
            Assert.True(billed > ModelTokenizer.GptOss.Count(content) + 10, $"billed {billed} for a shown answer of {ModelTokenizer.GptOss.Count(content)} tokens");
            // What was billed but not shown is reported as reasoning, as OpenAI reports a reasoning model's.
            var reasoning = body.GetProperty("usage").GetProperty("completion_tokens_details").GetProperty("reasoning_tokens").GetInt32();
            Assert.InRange(billed - reasoning - ModelTokenizer.GptOss.Count(content), -3, 3);

            var streamed = await client.PostAsJsonAsync("/v1/chat/completions", Chat("gpt-oss-120b", "reason about routers", 200, stream: true));
            var events = await InferenceTests.SseEvents(streamed);
            var text = StreamedText(events);
            Assert.Contains("You asked: \"reason about routers\"", text);
            Assert.DoesNotContain("<|", text);
            Assert.DoesNotContain("analysis", text);
            var usage = JsonDocument.Parse(events[^2]).RootElement.GetProperty("usage");
            Assert.True(usage.GetProperty("completion_tokens").GetInt32() > ModelTokenizer.GptOss.Count(text) + 10);
            Assert.InRange(usage.GetProperty("completion_tokens").GetInt32() - usage.GetProperty("completion_tokens_details").GetProperty("reasoning_tokens").GetInt32()
                - ModelTokenizer.GptOss.Count(text), -3, 3);

            // A stop sequence in the answer cuts what is shown; streamed or not, the same tokens are billed.
            int[] cutBilled = new int[2], cutReasoning = new int[2];
            for (var i = 0; i < 2; i++)
            {
                var cut = await client.PostAsJsonAsync("/v1/chat/completions", new
                {
                    model = "gpt-oss-120b", messages = new[] { new { role = "user", content = "cut me short" } }, max_tokens = 200, stop = new[] { "You ask" },
                    stream = i == 1, stream_options = i == 1 ? new { include_usage = true } : null,
                });
                string shown;
                if (i == 0)
                {
                    var whole = await cut.Content.ReadFromJsonAsync<JsonElement>();
                    shown = whole.GetProperty("choices")[0].GetProperty("message").GetProperty("content").GetString()!;
                    cutReasoning[i] = whole.GetProperty("usage").GetProperty("completion_tokens_details").GetProperty("reasoning_tokens").GetInt32();
                }
                else
                {
                    var cutEvents = await InferenceTests.SseEvents(cut);
                    shown = StreamedText(cutEvents);
                    cutReasoning[i] = JsonDocument.Parse(cutEvents[^2]).RootElement.GetProperty("usage").GetProperty("completion_tokens_details").GetProperty("reasoning_tokens").GetInt32();
                }
                Assert.DoesNotContain("You ask", shown);
                Assert.DoesNotContain("<|", shown);
                Assert.NotEmpty(shown);
                cutBilled[i] = (await LookupAsync(cut))!.Value.GetProperty("usage").GetProperty("completion_tokens").GetInt32();
            }
            Assert.Equal(cutBilled[0], cutBilled[1]);
            Assert.Equal(cutReasoning[0], cutReasoning[1]);
            Assert.InRange(cutReasoning[0], 10, cutBilled[0] - 1);

            // A call after the reasoning is read as the call; JSON after it, as the document.
            var call = await client.PostAsJsonAsync("/v1/chat/completions", new
            {
                model = "gpt-oss-120b", messages = new[] { new { role = "user", content = "What's the weather in Paris?" } }, max_tokens = 300,
                tools = new[] { new { type = "function", function = new { name = "get_weather", parameters = new { type = "object", properties = new { city = new { type = "string" } }, required = new[] { "city" } } } } },
                tool_choice = "required",
            });
            Assert.Equal(HttpStatusCode.OK, call.StatusCode);
            var choice = (await call.Content.ReadFromJsonAsync<JsonElement>()).GetProperty("choices")[0];
            Assert.Equal("tool_calls", choice.GetProperty("finish_reason").GetString());
            var function = choice.GetProperty("message").GetProperty("tool_calls")[0].GetProperty("function");
            Assert.Equal("get_weather", function.GetProperty("name").GetString());
            Assert.Equal(JsonValueKind.Object, JsonDocument.Parse(function.GetProperty("arguments").GetString()!).RootElement.ValueKind);

            var json = await client.PostAsJsonAsync("/v1/chat/completions", new
            {
                model = "gpt-oss-120b", messages = new[] { new { role = "user", content = "Answer in JSON" } }, max_tokens = 300, stream = true,
                response_format = new { type = "json_object" },
            });
            var document = StreamedText(await InferenceTests.SseEvents(json));
            Assert.Equal(JsonValueKind.Object, JsonDocument.Parse(document).RootElement.ValueKind);
        }
        finally
        {
            await portal.SetRouterBehaviourAsync("router-oss120b-1", Normal);
        }
    }

    /// <summary>A new customer's streamed chat on the qwen pool, whose only router answers with <paramref name="quirk"/>.</summary>
    private async Task<(HttpResponseMessage Response, List<string> Events)> QwenStreamAsync(string quirk, string content, int maxTokens)
    {
        var customer = await portal.CreateCustomerAsync();
        using var client = customer.CreateClient();
        await portal.SetRouterBehaviourAsync("router-qwen-1", new { quirk });
        try
        {
            var response = await client.PostAsJsonAsync("/v1/chat/completions", Chat("qwen-3-32b", content, maxTokens, stream: true));
            Assert.Equal(HttpStatusCode.OK, response.StatusCode);
            return (response, await InferenceTests.SseEvents(response));
        }
        finally
        {
            await portal.SetRouterBehaviourAsync("router-qwen-1", Normal);
        }
    }

    [Fact]
    public async Task NonJsonStreamLinesReachTheCustomerAsTextAndAreBilledAsTheRouterCounts()
    {
        var (response, events) = await QwenStreamAsync("NonJsonStreamLines", "plain lines please", 200);

        Assert.Equal("[DONE]", events[^1]);
        var text = StreamedText(events);
        Assert.Contains("simulated Cortensor router", text);
        Assert.Contains("You asked: \"plain lines please\"", text);
        var reported = JsonDocument.Parse(events[^2]).RootElement.GetProperty("usage").GetProperty("completion_tokens").GetInt32();
        Assert.Equal(ModelTokenizer.ForFamily("qwen").Count(text), reported);
        Assert.Equal(reported, (await LookupAsync(response))!.Value.GetProperty("usage").GetProperty("completion_tokens").GetInt32());
    }

    [Fact]
    public async Task ARouterWhoseStatusErrorsButWhoseInfoAnswersStaysInRotation()
    {
        var customer = await portal.CreateCustomerAsync();
        using var client = customer.CreateClient();
        using var admin = portal.CreateAdminClient();
        await portal.SetRouterBehaviourAsync("router-gemma4-1", new { quirk = "StatusErrors" });
        try
        {
            using var router = portal.CreateRouterClient("router-gemma4-1");
            Assert.Equal(HttpStatusCode.InternalServerError, (await router.GetAsync("/api/v1/status")).StatusCode);
            var since = DateTimeOffset.UtcNow;
            // Wait until both replicas have probed since /status began failing, then they must still route to it. (45 s:
            // the loop ends at the fourth fresh probe seen, and once saw three in 15 s on a loaded CI machine.)
            var deadline = Stopwatch.StartNew();
            var probedSince = 0;
            while (probedSince < 4 && deadline.Elapsed < TimeSpan.FromSeconds(45))
            {
                var pools = await admin.GetFromJsonAsync<JsonElement>("/admin/pools");
                var gemma = pools.EnumerateArray().Single(p => p.GetProperty("id").GetString() == "gemma4").GetProperty("routers")[0];
                if (gemma.GetProperty("last_probe_at").GetDateTimeOffset() > since.AddSeconds(0.6))
                {
                    Assert.True(gemma.GetProperty("healthy").GetBoolean());
                    probedSince++;
                }
                await Task.Delay(200);
            }
            Assert.Equal(4, probedSince);
            for (var i = 0; i < 4; i++)
                Assert.Equal(HttpStatusCode.OK, (await client.PostAsJsonAsync("/v1/chat/completions", Chat("gemma-4-26b", $"still there {i}", 4))).StatusCode);
        }
        finally
        {
            await portal.SetRouterBehaviourAsync("router-gemma4-1", Normal);
        }
    }

    [Fact]
    public async Task AssignmentAndPrecommitDelaysOfSecondsComeBeforeTheFirstTokenAndTheAnswerStillArrives()
    {
        var customer = await portal.CreateCustomerAsync();
        using var client = customer.CreateClient();
        await portal.SetRouterBehaviourAsync("router-gemma4-1", new { assignment_delay_ms = 1200, precommit_delay_ms = 1300 });
        HttpResponseMessage response;
        var clock = Stopwatch.StartNew();
        try
        {
            response = await client.PostAsJsonAsync("/v1/chat/completions", Chat("gemma-4-26b", "take your time", 8, stream: true));
        }
        finally
        {
            await portal.SetRouterBehaviourAsync("router-gemma4-1", Normal);
        }
        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        Assert.True(clock.Elapsed >= TimeSpan.FromSeconds(2.5), $"answered after {clock.Elapsed}");
        Assert.Equal("[DONE]", (await InferenceTests.SseEvents(response))[^1]);
        var usage = (await LookupAsync(response))!.Value.GetProperty("usage");
        Assert.InRange(usage.GetProperty("time_to_first_token_ms").GetInt32(), 2500, (int)PortalAppFixture.UpstreamTimeout.TotalMilliseconds);
    }

    [Fact]
    public async Task TheRoutersTaskIdIsKeptInTheUsageRecordAndTheRequestLogAndNamesTheTaskOnTheRouter()
    {
        var customer = await portal.CreateCustomerAsync();
        using var client = customer.CreateClient();
        var response = await client.PostAsJsonAsync("/v1/chat/completions", Chat("gpt-oss-120b", "which task am I?", 12));
        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        var content = (await response.Content.ReadFromJsonAsync<JsonElement>()).GetProperty("choices")[0].GetProperty("message").GetProperty("content").GetString();

        var found = (await LookupAsync(response))!.Value;
        var taskId = found.GetProperty("usage").GetProperty("task_id").GetString()!;
        Assert.Equal(taskId, found.GetProperty("log").GetProperty("task_id").GetString());
        var session = found.GetProperty("usage").GetProperty("session_id").GetInt64();
        using var router = portal.CreateRouterClient("router-oss120b-1");
        var task = await router.GetFromJsonAsync<JsonElement>($"/api/v1/tasks/{session}/{taskId}");
        Assert.Equal(content, task.GetProperty("results").GetProperty("data")[0].GetString());
    }

    private static string StreamedText(List<string> events) => string.Concat(events.Where(e => e != "[DONE]")
        .Select(e => JsonDocument.Parse(e).RootElement.GetProperty("choices"))
        .Where(c => c.GetArrayLength() > 0 && c[0].GetProperty("delta").TryGetProperty("content", out var t) && t.ValueKind == JsonValueKind.String)
        .Select(c => c[0].GetProperty("delta").GetProperty("content").GetString()));

    /// <summary>The admin's view of a request ({log, usage}), once the usage pipeline has written it.</summary>
    private async Task<JsonElement?> LookupAsync(HttpResponseMessage response)
    {
        var requestId = response.Headers.GetValues("X-Request-Id").Single();
        using var admin = portal.CreateAdminClient();
        var deadline = Stopwatch.StartNew();
        while (deadline.Elapsed < TimeSpan.FromSeconds(30))
        {
            var r = await admin.GetAsync($"/admin/requests/{requestId}");
            if (r.StatusCode == HttpStatusCode.OK)
            {
                var found = (await r.Content.ReadFromJsonAsync<JsonElement>())[0];
                if (found.GetProperty("usage").ValueKind == JsonValueKind.Object) return found;
            }
            await Task.Delay(200);
        }
        Assert.Fail($"request {requestId} was not recorded");
        return null;
    }
}
