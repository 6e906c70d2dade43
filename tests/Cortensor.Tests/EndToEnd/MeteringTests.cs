using System.Net;
using System.Net.Http.Json;
using System.Text.Json;
using Aspire.Hosting;
using Aspire.Hosting.ApplicationModel;
using Aspire.Hosting.Testing;
using Cortensor.Tests.Fixtures;

namespace Cortensor.Tests.EndToEnd;

/// <summary>Every authenticated request counted once, at the price its usage says, whatever happens.</summary>
[Collection(PortalAppCollection.Name), Trait("Category", PortalAppCollection.Category)]
public class MeteringTests(PortalAppFixture portal)
{
    [Fact]
    public async Task MixedRequestsAreBilledExactlyWhatTheirUsageSays()
    {
        var customer = await portal.CreateCustomerAsync(credits: 10m);
        using var client = customer.CreateClient();
        var expected = 0m;
        var requests = 0;

        async Task Bill(string model, JsonElement usage)
        {
            var price = Requirements.Model(model); // the README's price list
            var cost = (usage.GetProperty("prompt_tokens").GetInt32() * price.InputPricePer1K + usage.GetProperty("completion_tokens").GetInt32() * price.OutputPricePer1K) / 1000m;
            expected += decimal.Ceiling(cost * 10_000_000_000m) / 10_000_000_000m;
        }

        foreach (var max in new[] { 5, 9, 13 })
        {
            requests++;
            var r = await client.PostAsJsonAsync("/v1/chat/completions", new { model = "gpt-oss-20b", messages = new[] { new { role = "user", content = $"bill me {max}" } }, max_tokens = max });
            await Bill("gpt-oss-20b", (await r.Content.ReadFromJsonAsync<JsonElement>()).GetProperty("usage"));
        }
        {
            requests++;
            var r = await client.PostAsJsonAsync("/v1/chat/completions", new { model = "gemma-4-26b", messages = new[] { new { role = "user", content = "stream the bill" } }, max_tokens = 7, stream = true, stream_options = new { include_usage = true } });
            var events = await InferenceTests.SseEvents(r);
            await Bill("gemma-4-26b", JsonDocument.Parse(events[^2]).RootElement.GetProperty("usage"));
        }
        {
            requests++;
            var r = await client.PostAsJsonAsync("/v1/completions", new { model = "qwen-3-32b", prompt = "text bill", max_tokens = 6 });
            await Bill("qwen-3-32b", (await r.Content.ReadFromJsonAsync<JsonElement>()).GetProperty("usage"));
        }
        requests++;
        Assert.Equal(HttpStatusCode.NotFound, (await client.PostAsJsonAsync("/v1/chat/completions", new { model = "nope", messages = new[] { new { role = "user", content = "x" } } })).StatusCode);
        requests++;
        Assert.Equal(HttpStatusCode.BadRequest, (await client.PostAsJsonAsync("/v1/chat/completions", new { model = "gpt-oss-20b", messages = Array.Empty<object>() })).StatusCode);

        var balance = await WaitForEventsAsync(customer, requests);
        Assert.Equal(requests, balance.GetProperty("usage_events").GetInt32());
        Assert.Equal(5, balance.GetProperty("usage_entries").GetInt32()); // errors cost nothing and debit nothing
        Assert.Equal(10m - expected, balance.GetProperty("ledger_balance").GetDecimal());
        Assert.Equal(10m - expected, balance.GetProperty("hot_balance").GetDecimal());
    }

    [Fact]
    public async Task AClientThatDisconnectsMidStreamIsBilledForWhatWasGenerated()
    {
        var customer = await portal.CreateCustomerAsync();
        using var client = customer.CreateClient();
        await portal.SetRouterBehaviourAsync("router-gemma4-1", new { tokens_per_second = 5 });
        string requestId;
        try
        {
            using var request = new HttpRequestMessage(HttpMethod.Post, "/v1/chat/completions")
            {
                Content = JsonContent.Create(new { model = "gemma-4-26b", messages = new[] { new { role = "user", content = "a long story" } }, max_tokens = 40, stream = true }),
            };
            using (var response = await client.SendAsync(request, HttpCompletionOption.ResponseHeadersRead))
            {
                requestId = response.Headers.GetValues("X-Request-Id").Single();
                using var reader = new StreamReader(await response.Content.ReadAsStreamAsync());
                var content = 0;
                while (content < 3 && await reader.ReadLineAsync() is { } line)
                    if (line.Contains("\"content\":\"") && !line.Contains("\"content\":\"\"")) content++;
            } // the client goes away here, long before 40 tokens
        }
        finally
        {
            await portal.SetRouterBehaviourAsync("router-gemma4-1", new { outage = "None" });
        }

        using var admin = portal.CreateAdminClient();
        var lookup = await Eventually.WaitForAsync(() => admin.GetAsync($"/admin/requests/{requestId}"), r => r.StatusCode == HttpStatusCode.OK,
            TimeSpan.FromSeconds(15), $"request {requestId} was not recorded", TimeSpan.FromMilliseconds(250));
        var found = (await lookup.Content.ReadFromJsonAsync<JsonElement>())[0];
        var usage = found.GetProperty("usage");
        Assert.Equal(499, usage.GetProperty("status").GetInt32());
        Assert.InRange(usage.GetProperty("completion_tokens").GetInt32(), 3, 39);
        Assert.True(usage.GetProperty("cost").GetDecimal() > 0m);
    }

    [Fact]
    public async Task UsageDuringAPostgresOutageLandsOnceWhenItReturns()
    {
        var customer = await portal.CreateCustomerAsync();
        using var client = customer.CreateClient();
        object Chat(int i) => new { model = "gpt-oss-20b", messages = new[] { new { role = "user", content = $"outage {i}" } }, max_tokens = 3 };
        // Both replicas learn the key and the credit balance before the outage.
        for (var i = 0; i < 6; i++) Assert.Equal(HttpStatusCode.OK, (await client.PostAsJsonAsync("/v1/chat/completions", Chat(i))).StatusCode);

        await portal.App.ResourceCommands.ExecuteCommandAsync("postgres", KnownResourceCommands.StopCommand);
        try
        {
            // The server process has really ended (the orchestrator's proxy would still accept connections).
            using (var stopped = new CancellationTokenSource(TimeSpan.FromSeconds(30)))
                await portal.App.ResourceNotifications.WaitForResourceAsync("postgres",
                    e => KnownResourceStates.TerminalStates.Contains(e.Snapshot.State?.Text), stopped.Token);
            using var acrossReplicas = customer.CreateClientAcrossReplicas();
            var replicas = new HashSet<string>();
            for (var i = 0; i < 20; i++)
            {
                var response = await acrossReplicas.PostAsJsonAsync("/v1/chat/completions", Chat(100 + i));
                Assert.Equal(HttpStatusCode.OK, response.StatusCode);
                replicas.Add(PortalAppFixture.ReplicaOf(response));
            }
            Assert.Equal(customer.Replicas, replicas);

            // Still ready for the platform: every replica's /health (its readiness probe) is 200, the database Degraded,
            // the catalog (kept from before) Healthy.
            foreach (var health in await customer.OnEveryReplicaAsync(c => c.GetAsync("/health"), perReplica: 1))
            {
                var report = await health.Content.ReadAsStringAsync();
                Assert.True(health.StatusCode == HttpStatusCode.OK, $"/health answered {(int)health.StatusCode}: {report}");
                var checks = JsonDocument.Parse(report).RootElement.GetProperty("checks");
                Assert.Equal("Degraded", checks.GetProperty("PortalDbContext").GetProperty("status").GetString());
                Assert.Equal("Healthy", checks.GetProperty("catalog").GetProperty("status").GetString());
            }
        }
        finally
        {
            await portal.App.ResourceCommands.ExecuteCommandAsync("postgres", KnownResourceCommands.StartCommand);
            await portal.WaitHealthyAsync("postgres");
        }

        var balance = await WaitForEventsAsync(customer, 26);
        Assert.Equal(26, balance.GetProperty("usage_events").GetInt32());
        Assert.Equal(26, balance.GetProperty("usage_entries").GetInt32());
    }

    [Fact]
    public async Task RequestsWithANulInTheModelAreBilledAndARefusedRecordIsSetAsideWithoutStoppingTheWriters()
    {
        var customer = await portal.CreateCustomerAsync();
        using var client = customer.CreateClient();
        var poisoned = new List<string>();
        for (var i = 0; i < 2; i++)
        {
            var r = await client.PostAsJsonAsync("/v1/chat/completions", new { model = "gpt-oss\0-20b", messages = new[] { new { role = "user", content = "poison" } } });
            Assert.Equal(HttpStatusCode.NotFound, r.StatusCode);
            poisoned.Add(r.Headers.GetValues("X-Request-Id").Single());
        }
        // A record the ledger refuses (its organisation does not exist), as a faulty producer could buffer it.
        await using var redis = await StackExchange.Redis.ConnectionMultiplexer.ConnectAsync((await portal.App.GetConnectionStringAsync(LaunchTopology.Redis))!);
        var refused = new Cortensor.Api.Metering.UsageRecord($"evt_{Guid.NewGuid():N}", "req_refused", Guid.NewGuid(), Guid.NewGuid(),
            Cortensor.Api.Data.BillingMode.PrepaidCredits, "gpt-oss-20b", null, null, null, "POST", "/v1/chat/completions", 200, null,
            10, 10, 0.0001m, 5, null, false, DateTimeOffset.UtcNow);
        await redis.GetDatabase().StreamAddAsync(Cortensor.Api.Metering.UsageMeter.Stream, Cortensor.Api.Metering.UsageMeter.Field,
            Cortensor.Api.Metering.UsageMeter.Payload(refused));
        for (var i = 0; i < 3; i++)
            Assert.Equal(HttpStatusCode.OK, (await client.PostAsJsonAsync("/v1/chat/completions",
                new { model = "gpt-oss-20b", messages = new[] { new { role = "user", content = $"after poison {i}" } }, max_tokens = 3 })).StatusCode);

        // The writers are not stuck: the requests after the poison land, and so do the poisoned ones (normalised).
        var balance = await WaitForEventsAsync(customer, 5);
        Assert.Equal(5, balance.GetProperty("usage_events").GetInt32());
        using var admin = portal.CreateAdminClient();
        foreach (var requestId in poisoned)
        {
            var logged = await admin.GetFromJsonAsync<JsonElement>($"/admin/requests/{requestId}");
            Assert.Equal("gpt-oss_-20b", logged[0].GetProperty("usage").GetProperty("model_id").GetString());
        }

        var letter = await Eventually.WaitForAsync(
            async () => (await admin.GetFromJsonAsync<JsonElement>("/admin/usage/dead-letters?limit=500")).GetProperty("items").EnumerateArray()
                .FirstOrDefault(l => l.GetProperty("record").GetString()!.Contains(refused.EventId)),
            l => l.ValueKind != JsonValueKind.Undefined, TimeSpan.FromSeconds(30), "the refused record was not set aside", TimeSpan.FromMilliseconds(250));
        Assert.StartsWith("23503", letter.GetProperty("error").GetString());
        var db = redis.GetDatabase();
        await Eventually.WaitUntilAsync(async () => (await db.StreamPendingAsync(Cortensor.Api.Metering.UsageMeter.Stream, Cortensor.Api.Metering.UsageWriter.Group)).PendingMessageCount == 0,
            TimeSpan.FromSeconds(30), "the writers left entries pending", TimeSpan.FromMilliseconds(250));

        var bad = await admin.GetAsync("/admin/usage/dead-letters?before=yesterday");
        Assert.Equal(HttpStatusCode.BadRequest, bad.StatusCode);
        Assert.Equal("before", (await bad.Content.ReadFromJsonAsync<JsonElement>()).GetProperty("error").GetProperty("param").GetString());
        using var anonymous = portal.CreateClient(LaunchTopology.Api);
        Assert.Equal(HttpStatusCode.Unauthorized, (await anonymous.GetAsync("/admin/usage/dead-letters")).StatusCode);
    }

    private async Task<JsonElement> WaitForEventsAsync(TestCustomer customer, int events)
    {
        using var admin = portal.CreateAdminClient();
        return (await Eventually.WaitForAsync<JsonElement?, HttpRequestException>(async () =>
            {
                var response = await admin.GetAsync($"/admin/organizations/{customer.OrganizationId}/balance");
                return response.IsSuccessStatusCode ? await response.Content.ReadFromJsonAsync<JsonElement>() : null;
            },
            balance => balance?.GetProperty("usage_events").GetInt32() >= events,
            TimeSpan.FromSeconds(60), $"expected {events} usage events", TimeSpan.FromMilliseconds(500)))!.Value;
    }

    [Fact]
    public async Task ALongConversationIsBilledItsExactPromptCountOnEveryTurn()
    {
        // Each replica counts a body it has seen before from its cache (PromptCounts): the bill must not move by a token.
        var customer = await portal.CreateCustomerAsync(credits: 10m);
        using var client = customer.CreateClient();
        var system = string.Concat(Enumerable.Range(0, 60).Select(i => $"Rule {i}: answer in plain words, cite the ledger, never guess. "));
        var messages = new List<Cortensor.Api.Inference.PromptMessage>
        {
            new("system", system),
            // No run long enough to be cut (ModelTokenizer.LongestRun): the bill is then the Portal's own count, not the
            // router's report within the bounds cuts leave.
            new("user", "A question with digits 1234567890 and symbols <b>=</b> " + string.Concat(Enumerable.Repeat("== ", 100))),
        };
        for (var turn = 0; turn < 3; turn++)
        {
            var expected = Cortensor.Contracts.ModelTokenizer.GptOss.Count(Cortensor.Api.Inference.PromptTemplates.Render("gpt-oss", messages));
            string? answer = null;
            // Twice a turn, so that the replica answering has counted the conversation's bodies before.
            for (var attempt = 0; attempt < 2; attempt++)
            {
                var r = await client.PostAsJsonAsync("/v1/chat/completions", new
                {
                    model = "gpt-oss-20b", max_tokens = 12,
                    messages = messages.Select(m => new { role = m.Role, content = m.Content }),
                });
                Assert.Equal(HttpStatusCode.OK, r.StatusCode);
                var body = await r.Content.ReadFromJsonAsync<JsonElement>();
                Assert.Equal(expected, body.GetProperty("usage").GetProperty("prompt_tokens").GetInt32());
                answer = body.GetProperty("choices")[0].GetProperty("message").GetProperty("content").GetString();
            }
            messages.Add(new("assistant", answer!));
            messages.Add(new("user", $"Turn {turn}: " + string.Concat(Enumerable.Repeat("and one more thing to weigh, ", 40))));
        }
    }
}
