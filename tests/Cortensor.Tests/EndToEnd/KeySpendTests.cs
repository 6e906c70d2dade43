using System.ClientModel;
using System.Globalization;
using System.Net;
using System.Net.Http.Json;
using System.Text.Json;
using Aspire.Hosting;
using Aspire.Hosting.Testing;
using Cortensor.Tests.Fixtures;
using Npgsql;
using OpenAI;
using OpenAI.Chat;
using Xunit.Abstractions;

namespace Cortensor.Tests.EndToEnd;

/// <summary>
/// What a customer is told a request cost is what the ledger says, to the last unit; a key's budget
/// holds under concurrency across replicas; a key is edited and rotated on every replica at once.
/// </summary>
[Collection(PortalAppCollection.Name), Trait("Category", PortalAppCollection.Category)]
public class KeySpendTests(PortalAppFixture portal, ITestOutputHelper output)
{
    private static readonly object Normal = new { outage = "None" };

    /// <summary>The key was accepted: the answer, or a failure of the model behind it (a loaded router may time out), never 401/403.</summary>
    private static void AssertServed(HttpResponseMessage r) =>
        Assert.True(r.StatusCode == HttpStatusCode.OK || (int)r.StatusCode >= 500, $"answered {(int)r.StatusCode}");

    [Fact]
    public async Task TheCostsClientsAreToldSumToTheirLedgerDebitsExactlyAcrossStreamedUnstreamedAndCutRequests()
    {
        var customer = await portal.CreateCustomerAsync(credits: 10m);
        using var client = customer.CreateClientAcrossReplicas();
        var told = new Dictionary<string, decimal>(); // request id -> the cost the client read
        var sent = new List<string>();

        // The official SDK: the cost is in the body's usage and in the header, the same figure.
        var chat = new ChatClient("gpt-oss-20b", new ApiKeyCredential(customer.Key),
            new OpenAIClientOptions { Endpoint = new Uri(customer.ApiBase, "/v1"), NetworkTimeout = TimeSpan.FromSeconds(60) });
        for (var i = 0; i < 3; i++)
        {
            ClientResult<ChatCompletion> result = await chat.CompleteChatAsync([new UserChatMessage($"cost {i}")], new ChatCompletionOptions { MaxOutputTokenCount = 5 + i * 7 });
            var raw = result.GetRawResponse();
            var id = raw.Headers.TryGetValue("X-Request-Id", out var rid) ? rid! : throw new InvalidOperationException("no request id");
            var cost = JsonDocument.Parse(raw.Content.ToString()).RootElement.GetProperty("usage").GetProperty("cost").GetDecimal();
            Assert.True(raw.Headers.TryGetValue("x-cortensor-cost", out var header));
            Assert.Equal(cost, decimal.Parse(header!, CultureInfo.InvariantCulture));
            Assert.True(cost > 0);
            sent.Add(id);
            told[id] = cost;
        }

        // Plain HTTP: both dialects, unstreamed and streamed with the final usage chunk.
        foreach (var (path, model, body) in new (string, string, object)[]
        {
            ("/v1/completions", "qwen-3-32b", new { model = "qwen-3-32b", prompt = "a text to cost", max_tokens = 11 }),
            ("/v1/chat/completions", "gemma-4-26b", new { model = "gemma-4-26b", messages = new[] { new { role = "user", content = "stream the cost" } }, max_tokens = 9, stream = true, stream_options = new { include_usage = true } }),
            ("/v1/completions", "qwen-3-32b", new { model = "qwen-3-32b", prompt = "stream a text", max_tokens = 7, stream = true, stream_options = new { include_usage = true } }),
            ("/v1/chat/completions", "gpt-oss-20b", new { model = "gpt-oss-20b", messages = new[] { new { role = "user", content = "stream, no usage" } }, max_tokens = 6, stream = true }),
        })
        {
            var response = await client.PostAsJsonAsync(path, body);
            Assert.Equal(HttpStatusCode.OK, response.StatusCode);
            var id = response.Headers.GetValues("X-Request-Id").Single();
            sent.Add(id);
            if (response.Content.Headers.ContentType?.MediaType == "text/event-stream")
            {
                var events = await InferenceTests.SseEvents(response);
                Assert.Equal("[DONE]", events[^1]);
                var usage = events.Where(e => e != "[DONE]").Select(e => JsonDocument.Parse(e).RootElement)
                    .Where(e => e.TryGetProperty("usage", out var u) && u.ValueKind == JsonValueKind.Object).Select(e => e.GetProperty("usage")).ToList();
                Assert.False(response.Headers.Contains("x-cortensor-cost"));
                if (usage.Count == 0) continue; // no include_usage: this client was not told a cost
                told[id] = Assert.Single(usage).GetProperty("cost").GetDecimal();
            }
            else
            {
                var bytes = await response.Content.ReadAsByteArrayAsync();
                // A whole answer goes out with its length, in one write: not chunked.
                Assert.Equal(bytes.Length, response.Content.Headers.ContentLength);
                Assert.NotEqual(true, response.Headers.TransferEncodingChunked);
                var cost = JsonDocument.Parse(bytes).RootElement.GetProperty("usage").GetProperty("cost").GetDecimal();
                Assert.Equal(cost, decimal.Parse(response.Headers.GetValues("x-cortensor-cost").Single(), CultureInfo.InvariantCulture));
                told[id] = cost;
            }
        }

        // A stream the router cuts, and one the client walks away from: billed, never told.
        await portal.SetRouterBehaviourAsync("router-gemma4-1", new { cut_stream_after_tokens = 3 });
        try
        {
            var cut = await client.PostAsJsonAsync("/v1/chat/completions", new { model = "gemma-4-26b", messages = new[] { new { role = "user", content = "cut me" } }, max_tokens = 20, stream = true, stream_options = new { include_usage = true } });
            sent.Add(cut.Headers.GetValues("X-Request-Id").Single());
            Assert.DoesNotContain("[DONE]", await InferenceTests.SseEvents(cut));
            await portal.SetRouterBehaviourAsync("router-gemma4-1", new { tokens_per_second = 5 });
            using var request = new HttpRequestMessage(HttpMethod.Post, "/v1/chat/completions")
            {
                Content = JsonContent.Create(new { model = "gemma-4-26b", messages = new[] { new { role = "user", content = "leave me" } }, max_tokens = 40, stream = true, stream_options = new { include_usage = true } }),
            };
            using (var response = await client.SendAsync(request, HttpCompletionOption.ResponseHeadersRead))
            {
                sent.Add(response.Headers.GetValues("X-Request-Id").Single());
                using var reader = new StreamReader(await response.Content.ReadAsStreamAsync());
                var content = 0;
                while (content < 2 && await reader.ReadLineAsync() is { } line)
                    if (line.Contains("\"content\":\"") && !line.Contains("\"content\":\"\"")) content++;
            }
        }
        finally
        {
            await portal.SetRouterBehaviourAsync("router-gemma4-1", Normal);
        }

        await MoneyInvariants.AssertSettledAsync(portal, customer, 10m, sent);
        await using var postgres = NpgsqlDataSource.Create((await portal.App.GetConnectionStringAsync("postgres"))!);
        await using var command = postgres.CreateCommand("""
            SELECT u.request_id, u.cost, l.amount FROM usage_events u
            LEFT JOIN billing_ledger l ON l.kind = 'Usage' AND l.reference = u.event_id
            WHERE u.organization_id = $1
            """);
        command.Parameters.Add(new NpgsqlParameter { Value = customer.OrganizationId });
        var rows = new Dictionary<string, (decimal Cost, decimal? Debit)>();
        await using (var reader = await command.ExecuteReaderAsync())
            while (await reader.ReadAsync())
                rows[reader.GetString(0)] = (reader.GetDecimal(1), reader.IsDBNull(2) ? null : reader.GetDecimal(2));

        // Each told cost is its own ledger debit, and the sums agree to the unit.
        foreach (var (id, cost) in told) Assert.Equal((cost, (decimal?)-cost), rows[id]);
        Assert.Equal(told.Values.Sum(), -told.Keys.Sum(id => rows[id].Debit!.Value));
        // Every ledger debit belongs to a request this client sent; the untold ones (cut, abandoned, no usage chunk) were billed too.
        Assert.Equal(sent.Order(), rows.Keys.Order());
        Assert.All(sent.Except(told.Keys), id => Assert.True(rows[id].Debit < 0, $"{id} was not billed"));

        output.WriteLine($"{sent.Count} requests, {told.Count} told a cost: told {told.Values.Sum()} USD, their ledger debits {-told.Keys.Sum(id => rows[id].Debit!.Value)} USD; all debits {-rows.Values.Sum(r => r.Debit ?? 0)} USD");

        // The request log shows the same figure.
        using var admin = portal.CreateAdminClient();
        var first = told.First();
        var logged = (await admin.GetFromJsonAsync<JsonElement>($"/admin/requests/{first.Key}"))[0];
        Assert.Equal(first.Value, logged.GetProperty("usage").GetProperty("cost").GetDecimal());
    }

    [Fact]
    public async Task FiftyConcurrentRequestsAgainstACentKeyBudgetSpendAtMostACentAndTheRestAre402NamingTheKey()
    {
        var (user, customer) = await CustomerWithPortalKeyAsync();
        using var owner = user.CreateClient();
        // Before the key's first use: no replica has its snapshot yet.
        var patched = await owner.PatchAsJsonAsync($"/portal/api-keys/{customer.KeyId}", new { budget = new { usd = 0.01m, period = "day" } });
        Assert.True(patched.IsSuccessStatusCode, await patched.Content.ReadAsStringAsync());

        // Each costs about what it reserves, ~$0.0022 (a 22,000-token prompt, counted exactly for gpt-oss, and 20 tokens
        // of answer, which the router always fills): four fit in a cent, a fifth would pass it.
        var prompt = string.Join(' ', Enumerable.Repeat("budget", 22_000));
        var responses = await Task.WhenAll(Enumerable.Range(0, 50).Select(async i =>
        {
            using var client = customer.CreateClientAcrossReplicas();
            return await client.PostAsJsonAsync("/v1/chat/completions",
                new { model = "gpt-oss-20b", messages = new[] { new { role = "user", content = $"{i} {prompt}" } }, max_tokens = 20 });
        }));
        var statuses = responses.GroupBy(r => (int)r.StatusCode).ToDictionary(g => g.Key, g => g.Count());
        Assert.True(statuses.GetValueOrDefault(200) > 0 && statuses.GetValueOrDefault(402) > 0, string.Join(", ", statuses));
        var refused = await responses.First(r => r.StatusCode == HttpStatusCode.PaymentRequired).Content.ReadFromJsonAsync<JsonElement>();
        var error = refused.GetProperty("error");
        Assert.Equal(("key_budget_exceeded", "insufficient_quota"), (error.GetProperty("code").GetString(), error.GetProperty("type").GetString()));
        Assert.Contains(customer.KeyId.ToString(), error.GetProperty("message").GetString());
        Assert.Contains("'spend key'", error.GetProperty("message").GetString());

        await MoneyInvariants.AssertSettledAsync(portal, customer, 10m, responses.Select(r => r.Headers.GetValues("X-Request-Id").Single()).ToList());
        await using var postgres = NpgsqlDataSource.Create((await portal.App.GetConnectionStringAsync("postgres"))!);
        await using var command = postgres.CreateCommand("SELECT coalesce(-sum(amount), 0) FROM billing_ledger WHERE organization_id = $1 AND kind = 'Usage'");
        command.Parameters.Add(new NpgsqlParameter { Value = customer.OrganizationId });
        var spent = (decimal)(await command.ExecuteScalarAsync())!;
        output.WriteLine($"50 concurrent requests against a $0.01 budget: {string.Join(", ", statuses.Select(s => $"{s.Value}x{s.Key}"))}; ledger spent {spent} USD");
        // At most the cent, and what the served requests were told; one more would not have fit: the budget stopped the rest.
        Assert.InRange(spent, 0m, 0.01m);
        var costs = new List<decimal>();
        foreach (var r in responses.Where(r => r.StatusCode == HttpStatusCode.OK))
            costs.Add((await r.Content.ReadFromJsonAsync<JsonElement>()).GetProperty("usage").GetProperty("cost").GetDecimal());
        Assert.Equal(spent, costs.Sum());
        Assert.True(spent + costs.Min() > 0.01m, $"spent {spent}, cheapest answer {costs.Min()}");

        var key = await owner.GetFromJsonAsync<JsonElement>($"/portal/api-keys/{customer.KeyId}");
        var budget = key.GetProperty("budget");
        Assert.Equal(("day", 0.01m, spent, 0.01m - spent), (budget.GetProperty("period").GetString(), budget.GetProperty("limit_usd").GetDecimal(),
            budget.GetProperty("spent_usd").GetDecimal(), budget.GetProperty("remaining_usd").GetDecimal()));
        Assert.Equal(DateTimeOffset.UtcNow.UtcDateTime.Date.AddDays(1), budget.GetProperty("resets_at").GetDateTimeOffset().UtcDateTime);
    }

    [Fact]
    public async Task AKeyEditedThroughThePortalChangesOnEveryReplicaAndBadEditsChangeNothing()
    {
        var (user, customer) = await CustomerWithPortalKeyAsync();
        using var owner = user.CreateClient();
        static Task<HttpResponseMessage> Ask(HttpClient c, string model) =>
            c.PostAsJsonAsync("/v1/chat/completions", new { model, messages = new[] { new { role = "user", content = "edit" } }, max_tokens = 3 });
        Assert.All(await customer.OnEveryReplicaAsync(c => Ask(c, "gpt-oss-20b")), AssertServed);

        // Bad edits: a clear 400 naming the field, and nothing changed.
        foreach (var (body, param) in new (object, string)[]
        {
            (new { budget = new { usd = -1, period = "day" } }, "budget.usd"),
            (new { budget = new { usd = 1, period = "fortnight" } }, "budget.period"),
            (new { budget = new { period = "day" } }, "budget"),
            (new { expires_at = "2001-01-01T00:00:00Z" }, "expires_at"),
            (new { models = new[] { "no-such-model" } }, "models"),
            (new { requests_per_minute = 0 }, "requests_per_minute"),
            (new { name = "" }, "name"),
            (new { environment = "test" }, "environment"),
        })
        {
            var bad = await owner.PatchAsJsonAsync($"/portal/api-keys/{customer.KeyId}", body);
            Assert.Equal(HttpStatusCode.BadRequest, bad.StatusCode);
            Assert.Equal(param, (await bad.Content.ReadFromJsonAsync<JsonElement>()).GetProperty("error").GetProperty("param").GetString());
        }
        Assert.Equal(HttpStatusCode.NotFound, (await owner.PatchAsJsonAsync($"/portal/api-keys/{Guid.NewGuid()}", new { name = "x" })).StatusCode);
        var unchanged = await owner.GetFromJsonAsync<JsonElement>($"/portal/api-keys/{customer.KeyId}");
        Assert.Equal(("spend key", 0, false), (unchanged.GetProperty("name").GetString(), unchanged.GetProperty("models").GetArrayLength(), unchanged.TryGetProperty("budget", out _)));

        var edited = await owner.PatchAsJsonAsync($"/portal/api-keys/{customer.KeyId}",
            new { name = "edited key", models = new[] { "gemma-4-26b" }, requests_per_minute = 500, budget = new { usd = 2.5m, tokens = 1_000_000, period = "week" } });
        Assert.True(edited.IsSuccessStatusCode, await edited.Content.ReadAsStringAsync());
        var dto = await edited.Content.ReadFromJsonAsync<JsonElement>();
        Assert.Equal(("edited key", "gemma-4-26b", 500), (dto.GetProperty("name").GetString(), dto.GetProperty("models")[0].GetString(), dto.GetProperty("requests_per_minute").GetInt32()));
        Assert.Equal(("week", 2.5m, 1_000_000L), (dto.GetProperty("budget").GetProperty("period").GetString(), dto.GetProperty("budget").GetProperty("limit_usd").GetDecimal(),
            dto.GetProperty("budget").GetProperty("limit_tokens").GetInt64()));

        // Both replicas refuse the model the key no longer has: the edit is pushed, not waited out.
        await Eventually.WaitUntilAsync(async () =>
        {
            var answers = await customer.OnEveryReplicaAsync(c => Ask(c, "gpt-oss-20b"), perReplica: 1);
            return customer.Replicas.All(replica => answers.Last(a => PortalAppFixture.ReplicaOf(a) == replica).StatusCode == HttpStatusCode.Forbidden);
        }, Eventually.Propagation, "the edit did not reach every replica");
        Assert.All(await customer.OnEveryReplicaAsync(c => Ask(c, "gemma-4-26b")), AssertServed);

        // null clears: every model again, no budget.
        var cleared = await owner.PatchAsJsonAsync($"/portal/api-keys/{customer.KeyId}", JsonDocument.Parse("""{"models": null, "budget": null}""").RootElement);
        Assert.True(cleared.IsSuccessStatusCode);
        Assert.False((await cleared.Content.ReadFromJsonAsync<JsonElement>()).TryGetProperty("budget", out _));
        await Eventually.WaitUntilAsync(async () =>
        {
            var answers = await customer.OnEveryReplicaAsync(c => Ask(c, "gpt-oss-20b"), perReplica: 1);
            return customer.Replicas.All(replica => answers.Last(a => PortalAppFixture.ReplicaOf(a) == replica).StatusCode != HttpStatusCode.Forbidden);
        }, Eventually.Propagation, "clearing the models did not take");
    }

    [Fact]
    public async Task ARotatedKeyServesItsNewSecretAtOnceAndItsOldOneUntilTheGraceEndsThen401Rotated()
    {
        var (user, customer) = await CustomerWithPortalKeyAsync();
        using var owner = user.CreateClient();
        static Task<HttpResponseMessage> Ask(HttpClient c) =>
            c.PostAsJsonAsync("/v1/chat/completions", new { model = "gpt-oss-20b", messages = new[] { new { role = "user", content = "rotate" } }, max_tokens = 3 });
        Assert.All(await customer.OnEveryReplicaAsync(Ask), AssertServed);

        Assert.Equal("grace_period_seconds", (await (await owner.PostAsJsonAsync($"/portal/api-keys/{customer.KeyId}/rotate", new { grace_period_seconds = -1 }))
            .Content.ReadFromJsonAsync<JsonElement>()).GetProperty("error").GetProperty("param").GetString());
        var rotation = await owner.PostAsJsonAsync($"/portal/api-keys/{customer.KeyId}/rotate", new { grace_period_seconds = 15 });
        Assert.True(rotation.IsSuccessStatusCode, await rotation.Content.ReadAsStringAsync());
        var rotated = await rotation.Content.ReadFromJsonAsync<JsonElement>();
        var secret = rotated.GetProperty("key").GetString()!;
        var graceEnds = rotated.GetProperty("previous_secret_expires_at").GetDateTimeOffset();
        Assert.Equal(customer.KeyId, rotated.GetProperty("id").GetGuid());
        Assert.NotEqual(customer.Key, secret);
        Assert.DoesNotContain(secret, await owner.GetStringAsync($"/portal/api-keys/{customer.KeyId}"));

        // The old secret on every replica for now (checked first, while the grace is young: 15 s for eight requests,
        // as 8 s was a narrow margin for a loaded CI machine); the new one on every replica at once.
        Assert.All(await customer.OnEveryReplicaAsync(Ask, perReplica: 1), AssertServed);
        var renewed = customer with { Key = secret };
        Assert.All(await renewed.OnEveryReplicaAsync(Ask), AssertServed);
        Assert.True(DateTimeOffset.UtcNow < graceEnds, "the checks above outlasted the grace period; the test proves nothing");

        // After the grace: 401 api_key_rotated on every replica, never before it ended.
        await Eventually.WaitUntilAsync(async () =>
        {
            var r = await Ask(customer.CreateClientAcrossReplicas());
            if (r.StatusCode != HttpStatusCode.Unauthorized) return false;
            Assert.True(DateTimeOffset.UtcNow >= graceEnds.AddMilliseconds(-200), "the old secret stopped before its grace ended");
            return true;
        }, TimeSpan.FromSeconds(30), "the old secret kept working after its grace");
        foreach (var r in await customer.OnEveryReplicaAsync(Ask, perReplica: 1))
        {
            Assert.Equal(HttpStatusCode.Unauthorized, r.StatusCode);
            Assert.Equal("api_key_rotated", (await r.Content.ReadFromJsonAsync<JsonElement>()).GetProperty("error").GetProperty("code").GetString());
        }
        Assert.All(await renewed.OnEveryReplicaAsync(Ask, perReplica: 1), AssertServed);

        // Rotating again without grace: the second secret stops on every replica.
        var again = await (await owner.PostAsync($"/portal/api-keys/{customer.KeyId}/rotate", null)).Content.ReadFromJsonAsync<JsonElement>();
        var third = customer with { Key = again.GetProperty("key").GetString()! };
        await Eventually.WaitUntilAsync(async () =>
        {
            var answers = await renewed.OnEveryReplicaAsync(Ask, perReplica: 1);
            return customer.Replicas.All(replica => answers.Last(a => PortalAppFixture.ReplicaOf(a) == replica).StatusCode == HttpStatusCode.Unauthorized);
        }, Eventually.Propagation, "the replaced secret kept working");
        Assert.All(await third.OnEveryReplicaAsync(Ask, perReplica: 1), AssertServed);
    }

    /// <summary>A signed-up owner on the pro plan with credits, and a key made through the portal.</summary>
    [Fact]
    public async Task ABudgetSetDuringThePeriodCountsWhatTheKeyAlreadySpentInIt()
    {
        var (user, customer) = await CustomerWithPortalKeyAsync();
        using var owner = user.CreateClient();
        using var client = customer.CreateClient();
        decimal told = 0;
        for (var i = 0; i < 3; i++)
        {
            var served = await client.PostAsJsonAsync("/v1/chat/completions", new { model = "gpt-oss-20b", messages = new[] { new { role = "user", content = $"spend {i}" } }, max_tokens = 5 });
            Assert.Equal(HttpStatusCode.OK, served.StatusCode);
            told += (await served.Content.ReadFromJsonAsync<JsonElement>()).GetProperty("usage").GetProperty("cost").GetDecimal();
        }
        // Once the ledger has the spend, a budget set now starts from it, not from nothing.
        await Eventually.WaitUntilAsync(async () =>
        {
            var summary = await owner.GetFromJsonAsync<JsonElement>("/portal/usage-summary?group_by=key");
            return summary.GetProperty("totals").GetProperty("cost").GetDecimal() == told;
        }, TimeSpan.FromSeconds(20), "the spend did not reach the ledger");
        var patched = await owner.PatchAsJsonAsync($"/portal/api-keys/{customer.KeyId}", new { budget = new { usd = 1m, period = "month" } });
        Assert.True(patched.IsSuccessStatusCode, await patched.Content.ReadAsStringAsync());
        var budget = (await patched.Content.ReadFromJsonAsync<JsonElement>()).GetProperty("budget");
        Assert.Equal(told, budget.GetProperty("spent_usd").GetDecimal());
        Assert.Equal(1m - told, budget.GetProperty("remaining_usd").GetDecimal());
    }

    private async Task<(TestUser User, TestCustomer Customer)> CustomerWithPortalKeyAsync()
    {
        var user = await portal.SignUpAsync();
        using (var admin = portal.CreateAdminClient())
        {
            (await admin.PutAsJsonAsync($"/admin/organizations/{user.OrganizationId}/plan", new { plan = "pro" })).EnsureSuccessStatusCode();
            (await admin.PostAsJsonAsync($"/admin/organizations/{user.OrganizationId}/credits", new { amount = 10m, reason = "test" })).EnsureSuccessStatusCode();
        }
        using var owner = user.CreateClient();
        var created = await owner.PostAsJsonAsync("/portal/api-keys", new { name = "spend key" });
        Assert.True(created.StatusCode == HttpStatusCode.Created, await created.Content.ReadAsStringAsync());
        var key = await created.Content.ReadFromJsonAsync<JsonElement>();
        return (user, new TestCustomer(user.OrganizationId, key.GetProperty("id").GetGuid(), key.GetProperty("key").GetString()!,
            portal.App.GetEndpoint(LaunchTopology.Api, "http"), await portal.ApiReplicasAsync()));
    }
}
