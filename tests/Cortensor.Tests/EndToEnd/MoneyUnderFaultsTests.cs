using System.Net;
using System.Net.Http.Json;
using System.Text.Json;
using System.Text.RegularExpressions;
using Aspire.Hosting.Testing;
using Cortensor.Tests.Fixtures;
using StackExchange.Redis;

namespace Cortensor.Tests.EndToEnd;

/// <summary>
/// Money under faults, end to end: whatever the fault, afterwards every request a client was told
/// about is recorded once, nothing is held or waiting, the ledger is grants less costs, and the hot
/// balance equals the ledger (<see cref="MoneyInvariants"/>).
/// </summary>
[Collection(PortalAppCollection.Name)]
[Trait("Category", PortalAppCollection.Category)]
public class MoneyUnderFaultsTests(PortalAppFixture portal)
{
    private static object Chat(string model, string content, int maxTokens, bool stream = false) =>
        new { model, messages = new[] { new { role = "user", content } }, max_tokens = maxTokens, stream };

    [Fact]
    public async Task AHundredClientsThatDisconnectMidStreamLeaveEveryRouterWithNothingInFlightAndAreBilledOnce()
    {
        var customer = await portal.CreateCustomerAsync(credits: 10m);
        await portal.SetRouterBehaviourAsync("router-oss120b-1", new { tokens_per_second = 20 });
        var ids = new System.Collections.Concurrent.ConcurrentBag<string>();
        try
        {
            await Parallel.ForEachAsync(Enumerable.Range(0, 100), new ParallelOptions { MaxDegreeOfParallelism = 25 }, async (i, _) =>
            {
                using var client = customer.CreateClient();
                using var request = new HttpRequestMessage(HttpMethod.Post, "/v1/chat/completions")
                {
                    Content = JsonContent.Create(Chat("gpt-oss-120b", $"tell me a long story {i}", 200, stream: true)),
                };
                using var response = await client.SendAsync(request, HttpCompletionOption.ResponseHeadersRead);
                Assert.Equal(HttpStatusCode.OK, response.StatusCode);
                ids.Add(response.Headers.GetValues("X-Request-Id").Single());
                using var reader = new StreamReader(await response.Content.ReadAsStreamAsync());
                while (await reader.ReadLineAsync() is { } line)
                    if (line.Contains("\"content\":\"") && !line.Contains("\"content\":\"\"")) break;
                // The client goes away with the answer still streaming.
            });

            var deadline = DateTime.UtcNow.AddSeconds(30);
            IReadOnlyDictionary<string, int> inFlight;
            while ((inFlight = await MoneyInvariants.RoutersInFlightAsync(portal)).Values.Any(n => n != 0))
            {
                if (DateTime.UtcNow > deadline) Assert.Fail("routers still in flight: " + string.Join(", ", inFlight));
                await Task.Delay(250);
            }
        }
        finally
        {
            await portal.SetRouterBehaviourAsync("router-oss120b-1", new { outage = "None" });
        }
        await MoneyInvariants.AssertSettledAsync(portal, customer, 10m, ids.ToArray());
    }

    [Fact]
    public async Task AnEmojiAndPunctuationHeavyPromptAtAnExactBalanceIsServedAndNeverOverdraws()
    {
        var prompt = string.Concat(Enumerable.Repeat("!?…🚀🔥 你好，世界！¿¡ ", 300));
        var customer = await portal.CreateCustomerAsync(credits: 0.000001m);
        using var client = customer.CreateClient();
        var granted = 0.000001m;

        // The refusal names the most the request may cost: its prompt counted by the model's tokenizer, plus max_tokens.
        var refused = await client.PostAsJsonAsync("/v1/chat/completions", Chat("gpt-oss-20b", prompt, 50));
        Assert.Equal(HttpStatusCode.PaymentRequired, refused.StatusCode);
        var message = (await refused.Content.ReadFromJsonAsync<JsonElement>()).GetProperty("error").GetProperty("message").GetString()!;
        var upTo = decimal.Parse(Regex.Match(message, @"may cost up to \$([0-9]+(?:\.[0-9]+)?)").Groups[1].Value, System.Globalization.CultureInfo.InvariantCulture);
        // 4 characters a token, the old estimate, would have reserved far less than this prompt is billed.
        Assert.True(upTo > (prompt.Length / 4 * 0.0001m + 50 * 0.0004m) / 1000m, $"reserved only ${upTo}");

        using var admin = portal.CreateAdminClient();
        (await admin.PostAsJsonAsync($"/admin/organizations/{customer.OrganizationId}/credits", new { amount = upTo - granted, reason = "exact" })).EnsureSuccessStatusCode();
        granted = upTo;
        var served = await client.PostAsJsonAsync("/v1/chat/completions", Chat("gpt-oss-20b", prompt, 50));
        Assert.Equal(HttpStatusCode.OK, served.StatusCode);
        var again = await client.PostAsJsonAsync("/v1/chat/completions", Chat("gpt-oss-20b", prompt, 50));
        Assert.Equal(HttpStatusCode.PaymentRequired, again.StatusCode);

        var ids = new[] { refused, served, again }.Select(r => r.Headers.GetValues("X-Request-Id").Single()).ToArray();
        await MoneyInvariants.AssertSettledAsync(portal, customer, granted, ids);
    }

    [Fact]
    public Task RedisPausedWhileRequestsSettleLosesNothingAndGivesEachHoldBackOnce() =>
        SettledThroughAsync(12, "settle during a pause", async (redis, answersFrom) =>
        {
            // Paused a second before the answers come, so their settlements meet the pause early enough to wait out the
            // Api's 2 s Redis timeout inside it and be spooled. (Paused as soon as all had arrived, most of the 7 s could
            // pass before the first settled, and a settlement then simply went through late.) A fault's timing, not a
            // wait for a condition: nothing outside tells when the router will answer.
            var untilAnswers = answersFrom - TimeSpan.FromSeconds(1) - DateTimeOffset.UtcNow;
            if (untilAnswers > TimeSpan.Zero) await Task.Delay(untilAnswers);
            await redis.ExecuteAsync("CLIENT", "PAUSE", "7000", "WRITE");
        });

    /// <summary>
    /// Redis silent for longer than the client library waits (it then takes the socket for dead and fails every pending
    /// command with a TaskCanceledException): that exception stopped the Api's background loops and with them the process,
    /// and the settlements in flight were dropped rather than spooled.
    /// </summary>
    [Fact]
    public async Task RedisSilentForTwelveSecondsStopsNoReplicaAndLosesNoSettlement()
    {
        // Every command of every client waits, pings included, as when Redis's process is stopped. Every request is billed
        // once, which needs Redis back: by then the library has given the socket up for dead.
        var customer = await SettledThroughAsync(8, "settle while Redis is silent",
            (redis, _) => redis.ExecuteAsync("CLIENT", "PAUSE", "12000", "ALL"));
        // And both replicas are still up and serving.
        var after = await customer.OnEveryReplicaAsync(c => c.PostAsJsonAsync("/v1/chat/completions", Chat("gpt-oss-20b", "after the silence", 4)));
        Assert.All(after, r => Assert.Equal(HttpStatusCode.OK, r.StatusCode));
    }

    /// <summary>
    /// <paramref name="count"/> requests of a warmed-up customer held at the slow router while <paramref name="fault"/> is
    /// done to Redis (on the test's own connection, told when the answers come at the earliest): every one is answered,
    /// billed once, and its hold given back once. The customer, for what the test checks next.
    /// </summary>
    private async Task<TestCustomer> SettledThroughAsync(int count, string content, Func<IDatabase, DateTimeOffset, Task> fault)
    {
        var (customer, warm) = await WarmCustomerAsync();
        await using var redis = await ConnectionMultiplexer.ConnectAsync((await portal.App.GetConnectionStringAsync(LaunchTopology.Redis))!);
        try
        {
            var (requests, answersFrom) = await AtASlowRouterAsync(customer, count, content);
            await fault(redis.GetDatabase(), answersFrom);
            var results = await Task.WhenAll(requests);
            Assert.All(results, r => Assert.Equal(HttpStatusCode.OK, r.StatusCode));
            await MoneyInvariants.AssertSettledAsync(portal, customer, 10m, [.. warm, .. results.Select(r => r.Id)]);
            return customer;
        }
        finally
        {
            // Whatever the fault left (a pause ends by itself; this ends it at once should the test fail first).
            await redis.GetDatabase().ExecuteAsync("CLIENT", "UNPAUSE");
            await portal.SetRouterBehaviourAsync("router-qwen-1", new { outage = "None" });
        }
    }

    /// <summary>A customer with $10 whose key and balance both replicas have learnt (fresh connections reach both), and the warm-up's request ids.</summary>
    private async Task<(TestCustomer Customer, List<string> Warm)> WarmCustomerAsync()
    {
        var customer = await portal.CreateCustomerAsync(credits: 10m);
        var warm = new List<string>();
        for (var i = 0; i < 6; i++)
        {
            using var client = customer.CreateClient();
            client.DefaultRequestHeaders.ConnectionClose = true;
            var response = await client.PostAsJsonAsync("/v1/chat/completions", Chat("qwen-3-32b", $"warm up {i}", 4));
            Assert.Equal(HttpStatusCode.OK, response.StatusCode);
            warm.Add(response.Headers.GetValues("X-Request-Id").Single());
        }
        return (customer, warm);
    }

    /// <summary>
    /// <paramref name="count"/> requests (half streamed) admitted and waiting on the qwen router, slowed to 5 s before its
    /// first token, once all have reached it: a fault injected now meets their settlements, not their admission. (At 3 s,
    /// with 2.5 s for all to arrive, a loaded CI machine had half a second to spare.) Also when their answers come at the
    /// earliest.
    /// </summary>
    private async Task<(List<Task<(HttpStatusCode StatusCode, string Id)>> Requests, DateTimeOffset AnswersFrom)> AtASlowRouterAsync(
        TestCustomer customer, int count, string content)
    {
        await portal.SetRouterBehaviourAsync("router-qwen-1", new { time_to_first_token_ms = 5000 });
        var answersFrom = DateTimeOffset.UtcNow.AddSeconds(5);
        var requests = Enumerable.Range(0, count).Select(async i =>
        {
            using var client = customer.CreateClient();
            var response = await client.PostAsJsonAsync("/v1/chat/completions", Chat("qwen-3-32b", $"{content} {i}", 8, stream: i % 2 == 0));
            await response.Content.ReadAsStringAsync();
            return (response.StatusCode, Id: response.Headers.GetValues("X-Request-Id").Single());
        }).ToList();
        await Eventually.WaitUntilAsync(async () => await portal.RouterLoadAsync("router-qwen-1") >= count,
            TimeSpan.FromSeconds(4.5), $"the {count} requests did not all reach the router", TimeSpan.FromMilliseconds(20));
        return (requests, answersFrom);
    }

    [Fact]
    public async Task ACreditGrantMadeWhileRedisHoldsItsWritesIsAnsweredAsMadeSoNobodyMakesItAgain()
    {
        var customer = await portal.CreateCustomerAsync(credits: 10m);
        using var admin = portal.CreateAdminClient();
        // The grant reaches the ledger; moving the hot balance then waits on Redis until the Api has given up.
        HttpResponseMessage granted;
        await using (await RedisPause.WritesAsync((await portal.App.GetConnectionStringAsync(LaunchTopology.Redis))!))
            granted = await admin.PostAsJsonAsync($"/admin/organizations/{customer.OrganizationId}/credits", new { amount = 2.5m, reason = "during a pause" });
        Assert.Equal(HttpStatusCode.OK, granted.StatusCode);
        Assert.Equal(12.5m, (await granted.Content.ReadFromJsonAsync<JsonElement>()).GetProperty("balance").GetDecimal());
        var balances = await admin.GetFromJsonAsync<JsonElement>($"/admin/organizations/{customer.OrganizationId}/balance");
        Assert.Equal(12.5m, balances.GetProperty("ledger_balance").GetDecimal());
    }

    [Fact]
    public async Task AnAnswerWhoseBodyStallsAfterItsHeadersIs504WithinTheDeadlineBillsNothingAndFreesTheRouter()
    {
        var customer = await portal.CreateCustomerAsync(credits: 10m);
        using var client = customer.CreateClient();
        await portal.SetRouterBehaviourAsync("router-gemma4-1", new { quirk = "StallAfterHeaders" });
        HttpResponseMessage response;
        TimeSpan elapsed;
        try
        {
            var started = System.Diagnostics.Stopwatch.GetTimestamp();
            response = await client.PostAsJsonAsync("/v1/chat/completions", Chat("gemma-4-26b", "a body that never ends", 16));
            elapsed = System.Diagnostics.Stopwatch.GetElapsedTime(started);
        }
        finally
        {
            await portal.SetRouterBehaviourAsync("router-gemma4-1", new { outage = "None" });
        }
        // One deadline covers the headers and the body: it passes, and the client hears so, not silence.
        Assert.Equal(HttpStatusCode.GatewayTimeout, response.StatusCode);
        Assert.Equal("upstream_timeout", (await response.Content.ReadFromJsonAsync<JsonElement>()).GetProperty("error").GetProperty("code").GetString());
        Assert.InRange(elapsed, PortalAppFixture.UpstreamTimeout * 0.9, PortalAppFixture.UpstreamTimeout * 3);
        var deadline = DateTime.UtcNow.AddSeconds(30);
        while ((await MoneyInvariants.RoutersInFlightAsync(portal)).Values.Any(n => n != 0))
        {
            if (DateTime.UtcNow > deadline) Assert.Fail("a router is still held after the timeout");
            await Task.Delay(250);
        }
        await MoneyInvariants.AssertSettledAsync(portal, customer, 10m, [response.Headers.GetValues("X-Request-Id").Single()]);
    }

    [Fact]
    public async Task ThreeKeysOfOneFreeOrganisationBurstingTogetherGetThePlansSixtyRequestsAMinuteNotThreeTimesThat()
    {
        // The free plan allows 60 requests a minute (docs/api.md) to the organisation, whatever its keys.
        var customer = await portal.CreateCustomerAsync(plan: "free", credits: 0m);
        using var admin = portal.CreateAdminClient();
        var keys = new List<string> { customer.Key };
        for (var i = 0; i < 2; i++)
        {
            var created = await admin.PostAsJsonAsync($"/admin/organizations/{customer.OrganizationId}/api-keys", new { name = $"burst {i}" });
            created.EnsureSuccessStatusCode();
            keys.Add((await created.Content.ReadFromJsonAsync<JsonElement>()).GetProperty("key").GetString()!);
        }
        await Eventually.EarlyInAMinuteAsync();
        // Four at a time, under the plan's 8 concurrent requests, so only the per-minute limit can refuse.
        var statuses = new System.Collections.Concurrent.ConcurrentBag<HttpStatusCode>();
        await Parallel.ForEachAsync(Enumerable.Range(0, 75), new ParallelOptions { MaxDegreeOfParallelism = 4 }, async (i, _) =>
        {
            using var client = (customer with { Key = keys[i % 3] }).CreateClient();
            var response = await client.PostAsJsonAsync("/v1/chat/completions", Chat("gpt-oss-20b", $"burst {i}", 2));
            statuses.Add(response.StatusCode);
        });
        Assert.Equal(60, statuses.Count(s => s == HttpStatusCode.OK));
        Assert.Equal(15, statuses.Count(s => s == HttpStatusCode.TooManyRequests));
    }
}
