using System.Net;
using System.Net.Http.Json;
using Aspire.Hosting.Testing;
using Cortensor.Tests.Fixtures;
using Npgsql;

namespace Cortensor.Tests.EndToEnd;

/// <summary>An SDK that retries with the same Idempotency-Key is answered, and billed, once — whichever replica it reaches.</summary>
[Collection(PortalAppCollection.Name), Trait("Category", PortalAppCollection.Category)]
public class IdempotencyTests(PortalAppFixture portal)
{
    private const string SlowRouter = "router-qwen-1"; // the qwen pool's only router

    [Fact]
    public async Task ConcurrentDuplicatesOnTwoReplicasRunOnceAndTheReplayIsTheSameAnswer()
    {
        var customer = await portal.CreateCustomerAsync(credits: 10m);
        var replicas = await portal.ReplicaUrlsAsync(LaunchTopology.Api, PortalAppFixture.ApiReplicas);
        using var first = Pinned(customer, replicas[0]);
        using var second = Pinned(customer, replicas[1]);
        var key = "retry-" + Guid.NewGuid().ToString("N");
        var body = new { model = "qwen-3-32b", messages = new[] { new { role = "user", content = "pay me once" } }, max_tokens = 12 };
        var (completedBefore, _) = await portal.RouterCountersAsync(SlowRouter);

        // Slow enough (about 3 s) that the duplicate arrives while the first is still running.
        await portal.SetRouterBehaviourAsync(SlowRouter, new { tokens_per_second = 4 });
        List<HttpResponseMessage> answers;
        try
        {
            answers = [.. await Task.WhenAll(Send(first, "/v1/chat/completions", body, key), Send(second, "/v1/chat/completions", body, key))];
            // A duplicate that came while the first ran is told so, then replayed once it is done.
            for (var i = 0; i < answers.Count; i++)
            {
                var deadline = DateTime.UtcNow.AddSeconds(30);
                while (answers[i].StatusCode == HttpStatusCode.Conflict && DateTime.UtcNow < deadline)
                {
                    Assert.Equal("idempotency_in_progress", await ErrorCode(answers[i]));
                    Assert.NotNull(answers[i].Headers.RetryAfter);
                    await Task.Delay(250);
                    answers[i] = await Send(i == 0 ? first : second, "/v1/chat/completions", body, key);
                }
            }
        }
        finally
        {
            await portal.SetRouterBehaviourAsync(SlowRouter, new { });
        }

        Assert.All(answers, a => Assert.Equal(HttpStatusCode.OK, a.StatusCode));
        Assert.Equal(replicas.Count, answers.Select(PortalAppFixture.ReplicaOf).Distinct().Count());
        var bodies = await Task.WhenAll(answers.Select(a => a.Content.ReadAsStringAsync()));
        Assert.Equal(bodies[0], bodies[1]);
        var original = Assert.Single(answers, a => !a.Headers.Contains("Idempotent-Replayed"));
        var replay = Assert.Single(answers, a => a.Headers.Contains("Idempotent-Replayed"));
        Assert.Equal(original.Headers.GetValues("X-Request-Id").Single(), replay.Headers.GetValues("Idempotency-Original-Request-Id").Single());

        // A later retry is the same answer too, and nothing ran again.
        var later = await Send(first, "/v1/chat/completions", body, key);
        Assert.Equal(bodies[0], await later.Content.ReadAsStringAsync());
        var requestId = original.Headers.GetValues("X-Request-Id").Single();
        await MoneyInvariants.AssertSettledAsync(portal, customer, 10m, [requestId]);
        Assert.Equal((1, 1), await UsageAndDebitsAsync(customer));
        Assert.Equal(completedBefore + 1, (await portal.RouterCountersAsync(SlowRouter)).Completed);
    }

    [Fact]
    public async Task ARetrySentTheMomentTheAnswerArrivesIsAReplayNotInProgress()
    {
        // A whole answer goes out with its length, so the client has all of it as soon as it is written: the record
        // must be stored before that, or a retry sent at once finds the key still in progress.
        var customer = await portal.CreateCustomerAsync();
        using var client = customer.CreateClientAcrossReplicas();
        var ran = new List<string>();
        for (var i = 0; i < 50; i++)
        {
            var key = "at-once-" + Guid.NewGuid().ToString("N");
            var body = new { model = "gpt-oss-20b", prompt = "answer " + i, max_tokens = 3 };
            var first = await Send(client, "/v1/completions", body, key);
            Assert.Equal(HttpStatusCode.OK, first.StatusCode);
            ran.Add(first.Headers.GetValues("X-Request-Id").Single());
            var retry = await Send(client, "/v1/completions", body, key);
            Assert.Equal(HttpStatusCode.OK, retry.StatusCode);
            Assert.True(retry.Headers.Contains("Idempotent-Replayed"), $"retry {i} ran again");
            Assert.Equal(await first.Content.ReadAsStringAsync(), await retry.Content.ReadAsStringAsync());
        }
        await MoneyInvariants.AssertSettledAsync(portal, customer, 10m, [.. ran]);
        Assert.Equal((50, 50), await UsageAndDebitsAsync(customer));
    }

    [Fact]
    public async Task TheSameKeyWithAnotherBodyIsRefusedAndRunsNothing()
    {
        var customer = await portal.CreateCustomerAsync();
        using var client = customer.CreateClientAcrossReplicas();
        var key = "retry-" + Guid.NewGuid().ToString("N");
        var ran = await Send(client, "/v1/completions", new { model = "gpt-oss-20b", prompt = "once", max_tokens = 5 }, key);
        Assert.Equal(HttpStatusCode.OK, ran.StatusCode);

        // The same request re-serialised (other member order, other spacing) is the same request.
        using var reordered = new HttpRequestMessage(HttpMethod.Post, "/v1/completions")
        {
            Content = new StringContent("""{ "max_tokens": 5,  "prompt": "once", "model": "gpt-oss-20b" }""", System.Text.Encoding.UTF8, "application/json"),
        };
        reordered.Headers.Add("Idempotency-Key", key);
        var replayed = await client.SendAsync(reordered);
        Assert.Equal(HttpStatusCode.OK, replayed.StatusCode);
        Assert.True(replayed.Headers.Contains("Idempotent-Replayed"));

        var other = await Send(client, "/v1/completions", new { model = "gpt-oss-20b", prompt = "twice", max_tokens = 5 }, key);
        Assert.Equal((HttpStatusCode)422, other.StatusCode);
        Assert.Equal("idempotency_key_reused", await ErrorCode(other));

        // Another body whose model is not even text is refused the same way (its line in the log reads the model from it).
        using var notText = new HttpRequestMessage(HttpMethod.Post, "/v1/completions")
        {
            Content = new StringContent("""{"model":"\ud800","prompt":"once","max_tokens":5}""", System.Text.Encoding.UTF8, "application/json"),
        };
        notText.Headers.Add("Idempotency-Key", key);
        var notTextAnswer = await client.SendAsync(notText);
        Assert.Equal((HttpStatusCode)422, notTextAnswer.StatusCode);

        // The same key and body on other endpoints (the path in any case) is another request: a text completion was
        // replayed as the answer of /v1/chat/completions and /v1/responses.
        foreach (var endpoint in new[] { "/v1/chat/completions", "/v1/responses", "/V1/Chat/Completions" })
        {
            var elsewhere = await Send(client, endpoint, new { model = "gpt-oss-20b", prompt = "once", max_tokens = 5 }, key);
            Assert.Equal((HttpStatusCode)422, elsewhere.StatusCode);
            Assert.Equal("idempotency_key_reused", await ErrorCode(elsewhere));
        }

        // Each request answered by the idempotency layer (the replay, the refusals) is in the request log once, billed nothing.
        using var portalClient = portal.CreateAdminClient();
        foreach (var (answered, status) in new[] { (replayed, 200), (other, 422) })
        {
            var id = answered.Headers.GetValues("X-Request-Id").Single();
            var found = await Eventually.WaitForAsync(() => portalClient.GetAsync($"/admin/requests/{id}"), r => r.StatusCode == HttpStatusCode.OK,
                TimeSpan.FromSeconds(15), $"request {id} was not recorded", TimeSpan.FromMilliseconds(250));
            var usage = (await found.Content.ReadFromJsonAsync<System.Text.Json.JsonElement>())[0].GetProperty("usage");
            Assert.Equal(status, usage.GetProperty("status").GetInt32());
            Assert.Equal("gpt-oss-20b", usage.GetProperty("model_id").GetString());
            Assert.Equal(0, usage.GetProperty("prompt_tokens").GetInt32() + usage.GetProperty("completion_tokens").GetInt32());
        }
        await MoneyInvariants.AssertSettledAsync(portal, customer, 10m, [ran.Headers.GetValues("X-Request-Id").Single()]);
        Assert.Equal((1, 1), await UsageAndDebitsAsync(customer));
    }

    [Fact]
    public async Task AStreamIsReplayedAsTheSameEventsAndIsInProgressWhileItRuns()
    {
        var customer = await portal.CreateCustomerAsync();
        using var client = customer.CreateClientAcrossReplicas();
        var key = "retry-" + Guid.NewGuid().ToString("N");
        var body = new { model = "qwen-3-32b", messages = new[] { new { role = "user", content = "stream once" } }, max_tokens = 10, stream = true,
            stream_options = new { include_usage = true } };

        // Ten tokens at two a second: the duplicate, sent once the first's headers are back, has about four seconds to arrive.
        await portal.SetRouterBehaviourAsync(SlowRouter, new { tokens_per_second = 2 });
        string streamed;
        string requestId;
        try
        {
            using var request = Request("/v1/chat/completions", body, key);
            using var running = await client.SendAsync(request, HttpCompletionOption.ResponseHeadersRead);
            requestId = running.Headers.GetValues("X-Request-Id").Single();
            var duplicate = await Send(client, "/v1/chat/completions", body, key);
            Assert.Equal(HttpStatusCode.Conflict, duplicate.StatusCode);
            Assert.Equal("idempotency_in_progress", await ErrorCode(duplicate));
            streamed = await running.Content.ReadAsStringAsync();
        }
        finally
        {
            await portal.SetRouterBehaviourAsync(SlowRouter, new { });
        }

        var replay = await Send(client, "/v1/chat/completions", body, key);
        Assert.Equal(HttpStatusCode.OK, replay.StatusCode);
        Assert.Equal("text/event-stream", replay.Content.Headers.ContentType?.MediaType);
        Assert.Equal("true", replay.Headers.GetValues("Idempotent-Replayed").Single());
        Assert.Equal(streamed, await replay.Content.ReadAsStringAsync());
        Assert.EndsWith("data: [DONE]\n\n", streamed);

        await MoneyInvariants.AssertSettledAsync(portal, customer, 10m, [requestId]);
        Assert.Equal((1, 1), await UsageAndDebitsAsync(customer));
    }

    [Fact]
    public async Task ReplaysAreHeldToTheKeysRequestsPerMinuteOnEachServer()
    {
        // Replays are not billed, but each sends the whole stored answer again: without a limit, a key could pull it
        // as fast as it asked.
        var customer = await portal.CreateCustomerAsync(keyOptions: new { name = "5 rpm", requests_per_minute = 5 });
        using var client = customer.CreateClientAcrossReplicas();
        var key = "retry-" + Guid.NewGuid().ToString("N");
        var body = new { model = "gpt-oss-20b", prompt = "replay me", max_tokens = 5 };
        Assert.Equal(HttpStatusCode.OK, (await Send(client, "/v1/completions", body, key)).StatusCode);

        var replays = new List<HttpResponseMessage>();
        for (var i = 0; i < 15; i++) replays.Add(await Send(client, "/v1/completions", body, key));
        var served = replays.Count(r => r.StatusCode == HttpStatusCode.OK);
        Assert.InRange(served, 1, PortalAppFixture.ApiReplicas * 5);
        var refused = replays.Where(r => r.StatusCode != HttpStatusCode.OK).ToList();
        Assert.All(refused, r => Assert.Equal(HttpStatusCode.TooManyRequests, r.StatusCode));
        Assert.Equal("rate_limit_exceeded", await ErrorCode(refused[0]));
        Assert.NotNull(refused[0].Headers.RetryAfter);
    }

    [Fact]
    public async Task ARefusalIsNotStoredSoTheRetryRunsAgain()
    {
        var customer = await portal.CreateCustomerAsync();
        using var client = customer.CreateClient();
        var key = "retry-" + Guid.NewGuid().ToString("N");
        var body = new { model = "gpt-oss-20b", messages = new[] { new { role = "user", content = "too hot" } }, max_tokens = 5, temperature = 7 };

        var refused = await Send(client, "/v1/chat/completions", body, key);
        var again = await Send(client, "/v1/chat/completions", body, key);

        Assert.Equal(HttpStatusCode.BadRequest, refused.StatusCode);
        Assert.Equal(HttpStatusCode.BadRequest, again.StatusCode);
        Assert.False(again.Headers.Contains("Idempotent-Replayed"));
        Assert.NotEqual(refused.Headers.GetValues("X-Request-Id").Single(), again.Headers.GetValues("X-Request-Id").Single());
    }

    [Fact]
    public async Task AnIdempotencyKeyThatIsNotPrintableAsciiIsRefused()
    {
        var customer = await portal.CreateCustomerAsync();
        using var client = customer.CreateClient();
        var response = await Send(client, "/v1/chat/completions", new { model = "gpt-oss-20b", messages = new[] { new { role = "user", content = "x" } } },
            new string('k', 256));
        Assert.Equal(HttpStatusCode.BadRequest, response.StatusCode);
        Assert.Equal("invalid_idempotency_key", await ErrorCode(response));
    }

    private static HttpClient Pinned(TestCustomer customer, Uri replica)
    {
        var client = new HttpClient { BaseAddress = replica, Timeout = TimeSpan.FromSeconds(60) };
        client.DefaultRequestHeaders.Authorization = new("Bearer", customer.Key);
        return client;
    }

    private static HttpRequestMessage Request(string path, object body, string key)
    {
        var request = new HttpRequestMessage(HttpMethod.Post, path) { Content = JsonContent.Create(body) };
        request.Headers.Add("Idempotency-Key", key);
        return request;
    }

    private static async Task<HttpResponseMessage> Send(HttpClient client, string path, object body, string key)
    {
        using var request = Request(path, body, key);
        var response = await client.SendAsync(request);
        await response.Content.LoadIntoBufferAsync();
        return response;
    }

    private static async Task<string?> ErrorCode(HttpResponseMessage response) =>
        (await response.Content.ReadFromJsonAsync<System.Text.Json.JsonElement>()).GetProperty("error").GetProperty("code").GetString();

    /// <summary>
    /// The organisation's requests that ran (went to a router) and its ledger debits (after the money invariants hold,
    /// both are final). Replays and refusals have usage events too, with no router, tokens or charge.
    /// </summary>
    private async Task<(long Ran, long Debits)> UsageAndDebitsAsync(TestCustomer customer)
    {
        await using var postgres = NpgsqlDataSource.Create((await portal.App.GetConnectionStringAsync("postgres"))!);
        await using var command = postgres.CreateCommand("""
            SELECT (SELECT count(*) FROM usage_events WHERE organization_id = $1 AND router_id IS NOT NULL),
                   (SELECT count(*) FROM billing_ledger WHERE organization_id = $1 AND amount < 0)
            """);
        command.Parameters.Add(new NpgsqlParameter { Value = customer.OrganizationId });
        await using var reader = await command.ExecuteReaderAsync();
        await reader.ReadAsync();
        return (reader.GetInt64(0), reader.GetInt64(1));
    }
}
