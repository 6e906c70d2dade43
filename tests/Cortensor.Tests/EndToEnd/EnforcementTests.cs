using System.Net;
using System.Net.Http.Json;
using System.Text.Json;
using Aspire.Hosting;
using Aspire.Hosting.Testing;
using Aspire.Hosting.ApplicationModel;
using Microsoft.Extensions.DependencyInjection;
using Cortensor.Api.Inference;
using Cortensor.Tests.Fixtures;

namespace Cortensor.Tests.EndToEnd;

/// <summary>Keys, shared limits and credits on the running graph, across the Api's two replicas.</summary>
[Collection(PortalAppCollection.Name), Trait("Category", PortalAppCollection.Category)]
public class EnforcementTests(PortalAppFixture portal)
{
    private static object Chat(string model = "gpt-oss-20b", int maxTokens = 4, string content = "hi") =>
        new { model, messages = new[] { new { role = "user", content } }, max_tokens = maxTokens };

    [Fact]
    public async Task ARevokedKeyIsRejectedOnEveryReplicaLongBeforeItsSnapshotExpires()
    {
        var customer = await portal.CreateCustomerAsync();
        // Both replicas know the key: each has answered with its snapshot in memory.
        var warm = await customer.OnEveryReplicaAsync(c => c.GetAsync("/v1/models"));
        Assert.All(warm, r => Assert.Equal(HttpStatusCode.OK, r.StatusCode));

        using var admin = portal.CreateAdminClient();
        (await admin.PostAsync($"/admin/api-keys/{customer.KeyId}/revoke", null)).EnsureSuccessStatusCode();

        // Every replica says 401 api_key_revoked, pushed to it: the snapshot it holds would live for minutes ...
        await customer.WaitUntilEveryReplicaAnswersAsync(c => c.GetAsync("/v1/models"), HttpStatusCode.Unauthorized,
            "not every replica rejected the revoked key", Eventually.Propagation);

        // ... and keeps saying it.
        var after = await customer.OnEveryReplicaAsync(c => c.GetAsync("/v1/models"), perReplica: 3);
        foreach (var response in after)
        {
            Assert.Equal(HttpStatusCode.Unauthorized, response.StatusCode);
            Assert.Equal("api_key_revoked", await Code(response));
        }
    }

    [Fact]
    public async Task PausedKeysAndOrganisationsAre403UntilResumed()
    {
        var customer = await portal.CreateCustomerAsync();
        using var client = customer.CreateClient();
        using var admin = portal.CreateAdminClient();
        for (var i = 0; i < 4; i++) await client.GetAsync("/v1/models");

        (await admin.PostAsync($"/admin/api-keys/{customer.KeyId}/pause", null)).EnsureSuccessStatusCode();
        var paused = await UntilChatAnswersAsync(client, HttpStatusCode.Forbidden, "the paused key was still served");
        Assert.Equal("api_key_paused", await Code(paused));

        (await admin.PostAsync($"/admin/api-keys/{customer.KeyId}/resume", null)).EnsureSuccessStatusCode();
        (await admin.PostAsync($"/admin/organizations/{customer.OrganizationId}/pause", null)).EnsureSuccessStatusCode();
        await Eventually.WaitUntilAsync(async () =>
        {
            var response = await client.PostAsJsonAsync("/v1/chat/completions", Chat());
            return response.StatusCode == HttpStatusCode.Forbidden && await Code(response) == "organization_paused";
        }, Eventually.Propagation, "the paused organisation was still served");
        for (var i = 0; i < 4; i++)
        {
            var orgPaused = await client.PostAsJsonAsync("/v1/chat/completions", Chat());
            Assert.Equal(HttpStatusCode.Forbidden, orgPaused.StatusCode);
            Assert.Equal("organization_paused", await Code(orgPaused));
        }

        (await admin.PostAsync($"/admin/organizations/{customer.OrganizationId}/resume", null)).EnsureSuccessStatusCode();
        await UntilChatAnswersAsync(client, HttpStatusCode.OK, "the resumed organisation was not served again");

        // Resumed again, nothing changes, and the audit log does not say it did.
        var resumes = $"/admin/audit?target_id={customer.OrganizationId}&action=organization.resume";
        var audited = (await admin.GetFromJsonAsync<JsonElement>(resumes)).GetArrayLength();
        (await admin.PostAsync($"/admin/organizations/{customer.OrganizationId}/resume", null)).EnsureSuccessStatusCode();
        Assert.Equal(audited, (await admin.GetFromJsonAsync<JsonElement>(resumes)).GetArrayLength());
        // A revoked key stays revoked: pausing or resuming it is refused, not answered as if done.
        (await admin.PostAsync($"/admin/api-keys/{customer.KeyId}/revoke", null)).EnsureSuccessStatusCode();
        foreach (var action in new[] { "resume", "pause" })
        {
            var refused = await admin.PostAsync($"/admin/api-keys/{customer.KeyId}/{action}", null);
            Assert.Equal(HttpStatusCode.Conflict, refused.StatusCode);
            Assert.Equal("api_key_revoked", await Code(refused));
        }
    }

    [Fact]
    public async Task AnExpiredKeyIsRejected()
    {
        // Made with an expiry an hour away, then shortened to two seconds once it has been seen to work: a key made to
        // expire in three seconds had to be made and used within them, which a loaded CI machine need not manage.
        var customer = await portal.CreateCustomerAsync(keyOptions: new { name = "short-lived", expires_at = DateTimeOffset.UtcNow.AddHours(1) });
        using var client = customer.CreateClient();
        Assert.Equal(HttpStatusCode.OK, (await client.GetAsync("/v1/models")).StatusCode);
        using var admin = portal.CreateAdminClient();
        // Made again should the change take longer than the two seconds and be refused as an expiry in the past.
        var shortened = await Eventually.WaitForAsync(
            () => admin.PatchAsJsonAsync($"/admin/api-keys/{customer.KeyId}", new { expires_at = DateTimeOffset.UtcNow.AddSeconds(2) }),
            r => r.StatusCode != HttpStatusCode.BadRequest, TimeSpan.FromSeconds(30), "the key's expiry was refused as in the past every time");
        Assert.Equal(HttpStatusCode.OK, shortened.StatusCode);
        var expired = await Eventually.WaitForAsync(() => client.GetAsync("/v1/models"), r => r.StatusCode != HttpStatusCode.OK,
            Eventually.Propagation + TimeSpan.FromSeconds(5), "the key was still accepted after its expiry", TimeSpan.FromMilliseconds(250));
        Assert.Equal(HttpStatusCode.Unauthorized, expired.StatusCode);
        Assert.Equal("api_key_expired", await Code(expired));
    }

    [Fact]
    public async Task UnknownMalformedAndMissingKeysAre401()
    {
        using var client = new HttpClient { BaseAddress = portal.App.GetEndpoint(LaunchTopology.Api, "http") };
        var missing = await client.GetAsync("/v1/models");
        Assert.Equal(HttpStatusCode.Unauthorized, missing.StatusCode);
        var missingError = (await missing.Content.ReadFromJsonAsync<JsonElement>()).GetProperty("error");
        Assert.Equal("missing_api_key", missingError.GetProperty("code").GetString());
        // OpenAI's shape: "param" is there, null, when no field is at fault.
        Assert.Equal(JsonValueKind.Null, missingError.GetProperty("param").ValueKind);
        client.DefaultRequestHeaders.Authorization = new("Bearer", "sk-not-ours");
        var malformed = await client.GetAsync("/v1/models");
        Assert.Equal(HttpStatusCode.Unauthorized, malformed.StatusCode);
        Assert.Equal("invalid_api_key", await Code(malformed));
        client.DefaultRequestHeaders.Authorization = new("Bearer", "ctr_live_" + new string('A', 43));
        var unknown = await client.GetAsync("/v1/models");
        Assert.Equal(HttpStatusCode.Unauthorized, unknown.StatusCode);
        Assert.Equal("invalid_api_key", await Code(unknown));
    }

    [Fact]
    public async Task AModelOutsideThePlanOrTheKeysRestrictionIs403()
    {
        var free = await portal.CreateCustomerAsync(plan: "free", credits: 0);
        using var freeClient = free.CreateClient();
        var outsidePlan = await freeClient.PostAsJsonAsync("/v1/chat/completions", Chat("gpt-oss-120b"));
        Assert.Equal(HttpStatusCode.Forbidden, outsidePlan.StatusCode);
        Assert.Equal("model_not_entitled", await Code(outsidePlan));
        Assert.Equal(HttpStatusCode.OK, (await freeClient.PostAsJsonAsync("/v1/chat/completions", Chat("gpt-oss-20b"))).StatusCode);

        var restricted = await portal.CreateCustomerAsync(keyOptions: new { name = "only gemma", models = new[] { "gemma-4-26b" } });
        using var restrictedClient = restricted.CreateClient();
        var outsideKey = await restrictedClient.PostAsJsonAsync("/v1/chat/completions", Chat("gpt-oss-20b"));
        Assert.Equal(HttpStatusCode.Forbidden, outsideKey.StatusCode);
        Assert.Equal("model_not_entitled", await Code(outsideKey));
        Assert.Equal(HttpStatusCode.OK, (await restrictedClient.PostAsJsonAsync("/v1/chat/completions", Chat("gemma-4-26b"))).StatusCode);
    }

    [Fact]
    public async Task ARequestLimitIsSharedExactlyAcrossReplicas()
    {
        var customer = await portal.CreateCustomerAsync(keyOptions: new { name = "5 rpm", requests_per_minute = 5 });
        using var client = customer.CreateClient();
        await Eventually.EarlyInAMinuteAsync();
        var responses = await Task.WhenAll(Enumerable.Range(0, 14).Select(_ => client.PostAsJsonAsync("/v1/chat/completions", Chat())));

        Assert.Equal(5, responses.Count(r => r.StatusCode == HttpStatusCode.OK));
        var limited = responses.Where(r => r.StatusCode == HttpStatusCode.TooManyRequests).ToList();
        Assert.Equal(9, limited.Count);
        Assert.All(limited, r => Assert.True(r.Headers.RetryAfter?.Delta > TimeSpan.Zero));
        Assert.All(responses, r =>
        {
            Assert.Equal("5", r.Headers.GetValues("x-ratelimit-limit-requests").Single());
            Assert.True(r.Headers.Contains("x-ratelimit-remaining-tokens"));
            Assert.True(r.Headers.Contains("x-ratelimit-reset-requests"));
        });
        Assert.Equal("rate_limit_exceeded", await Code(limited[0]));

        // Once a replica has been told the minute is spent, it refuses the key's next requests before reading them:
        // a body that is not even JSON gets the 429, not a 400 that would have cost a parse.
        foreach (var replica in await portal.ReplicaUrlsAsync(LaunchTopology.Api, PortalAppFixture.ApiReplicas))
        {
            using var pinned = new HttpClient { BaseAddress = replica };
            pinned.DefaultRequestHeaders.Authorization = new("Bearer", customer.Key);
            Assert.Equal(HttpStatusCode.TooManyRequests, (await pinned.PostAsJsonAsync("/v1/chat/completions", Chat())).StatusCode);
            var unread = await pinned.PostAsync("/v1/chat/completions", new StringContent("{not json", System.Text.Encoding.UTF8, "application/json"));
            Assert.Equal(HttpStatusCode.TooManyRequests, unread.StatusCode);
            Assert.Equal("rate_limit_exceeded", await Code(unread));
            Assert.True(unread.Headers.RetryAfter?.Delta > TimeSpan.Zero);
            Assert.Equal("0", unread.Headers.GetValues("x-ratelimit-remaining-requests").Single());
        }
    }

    /// <summary>The prompt tokens of a chat of one user message "hi" on gpt-oss, as the Portal renders and counts it.</summary>
    private static int HiPromptTokens =>
        Cortensor.Contracts.ModelTokenizer.GptOss.Count(PromptTemplates.Render("gpt-oss", [new PromptMessage("user", "hi")]));

    [Fact]
    public async Task ATokenLimitIsSharedExactlyAcrossReplicas()
    {
        // Each request reserves its prompt (the harmony template around "hi", counted as the Portal counts it) and its
        // 30 max_tokens: a limit of three and a half requests admits three.
        var perRequest = HiPromptTokens + 30;
        var customer = await portal.CreateCustomerAsync(keyOptions: new { name = "3.5 requests' tpm", tokens_per_minute = perRequest * 7 / 2 });
        using var client = customer.CreateClientAcrossReplicas();
        await Eventually.EarlyInAMinuteAsync();
        var (admitted, refused) = await AllInFlightAsync(client, 8, maxTokens: 30);
        try
        {
            Assert.Equal(customer.Replicas, admitted.Concat(refused).Select(PortalAppFixture.ReplicaOf).ToHashSet());
            Assert.Equal(3, admitted.Length);
            Assert.All(refused, r => Assert.Equal(HttpStatusCode.TooManyRequests, r.StatusCode));
            Assert.Equal(5, refused.Length);
        }
        finally
        {
            foreach (var response in admitted.Concat(refused)) response.Dispose();
        }
    }

    [Fact]
    public async Task TwoHundredConcurrentRequestsAgainstCreditForNineAdmitAtMostNineAndNeverOverspend()
    {
        // Worst case per request on gpt-oss-120b: (the prompt's tokens * 0.0005 + 100 * 0.002) / 1000; credit for nine and a half.
        var worstCase = (HiPromptTokens * 0.0005m + 100 * 0.002m) / 1000;
        var customer = await portal.CreateCustomerAsync(credits: Math.Round(worstCase * 9.5m, 6));
        using var client = customer.CreateClientAcrossReplicas();
        var (admitted, refused) = await AllInFlightAsync(client, 200, maxTokens: 100);
        try
        {
            Assert.Equal(customer.Replicas, admitted.Concat(refused).Select(PortalAppFixture.ReplicaOf).ToHashSet());
            Assert.InRange(admitted.Length, 1, 9);
            Assert.All(refused, r => Assert.Equal(HttpStatusCode.PaymentRequired, r.StatusCode));
            Assert.Equal("insufficient_quota", await Code(refused[0]));
        }
        finally
        {
            // The customers leave mid-answer: each stream is billed for what it carried, within what it reserved.
            foreach (var response in admitted.Concat(refused)) response.Dispose();
        }
        var balance = await WaitForLedgerAsync(customer, admitted.Length);
        Assert.True(balance.GetProperty("ledger_balance").GetDecimal() >= 0m);
        Assert.True(balance.GetProperty("hot_balance").GetDecimal() >= 0m);
        Assert.Equal(balance.GetProperty("ledger_balance").GetDecimal(), balance.GetProperty("hot_balance").GetDecimal());
    }

    /// <summary>
    /// Sends <paramref name="count"/> streamed chat requests to gpt-oss-120b at once (each on its own connection, which
    /// the orchestrator's proxy deals to the replicas in turn) and returns their answers once all
    /// have a status, with every admitted stream still open: each still holds its whole reservation, so the admissions
    /// can be compared with the limit exactly. The router gives one token every two seconds, and the test fails if an
    /// admitted stream ended before the last status came. An answer held for a fixed time would not do: on a loaded
    /// machine the last requests arrived after the first answers had settled and given back the unused part of their
    /// reservation, and admitting more then is right. The caller disposes the answers (ending the streams). The client opens
    /// a connection per request, so the requests cross replicas: a pooled one reused the connections its quick refusals
    /// freed, and a run put every request on one replica.
    /// </summary>
    private async Task<(HttpResponseMessage[] Admitted, HttpResponseMessage[] Refused)> AllInFlightAsync(HttpClient client, int count, int maxTokens)
    {
        await portal.SetRouterBehaviourAsync("router-oss120b-1", new { tokens_per_second = 0.5 });
        try
        {
            var answers = await Task.WhenAll(Enumerable.Range(0, count).Select(async _ =>
            {
                var request = new HttpRequestMessage(HttpMethod.Post, "/v1/chat/completions")
                {
                    Content = JsonContent.Create(new { model = "gpt-oss-120b", messages = new[] { new { role = "user", content = "hi" } }, max_tokens = maxTokens, stream = true }),
                };
                var response = await client.SendAsync(request, HttpCompletionOption.ResponseHeadersRead);
                var ended = response.StatusCode == HttpStatusCode.OK ? (await response.Content.ReadAsStreamAsync()).CopyToAsync(Stream.Null) : null;
                return (Response: response, Ended: ended);
            }));
            var admitted = answers.Where(a => a.Ended is not null).ToArray();
            Assert.False(admitted.Any(a => a.Ended!.IsCompleted), "an admitted stream ended before every request had its answer, so its reservation could have been reused");
            return ([.. admitted.Select(a => a.Response)], [.. answers.Where(a => a.Ended is null).Select(a => a.Response)]);
        }
        finally
        {
            await portal.SetRouterBehaviourAsync("router-oss120b-1", new { outage = "None" });
        }
    }

    [Fact]
    public async Task WithRedisStoppedKnownKeysKeepWorkingUnknownKeysGet503AndAllRecovers()
    {
        var known = await portal.CreateCustomerAsync();
        var unknownYet = await portal.CreateCustomerAsync();
        // Every replica learns the known key before the outage.
        var before = await known.OnEveryReplicaAsync(c => c.PostAsJsonAsync("/v1/chat/completions", Chat()));
        Assert.All(before, r => Assert.Equal(HttpStatusCode.OK, r.StatusCode));
        var served = before.Count;

        await portal.App.ResourceCommands.ExecuteCommandAsync(LaunchTopology.Redis, KnownResourceCommands.StopCommand);
        try
        {
            // The outage has reached the Api once every replica answers a never-seen key with 503, not 401
            // (probed with throwaway keys, so the customer's new key is not looked up before that).
            using var probe = new HttpClient { BaseAddress = known.ApiBase };
            probe.DefaultRequestHeaders.ConnectionClose = true;
            var unavailableOn = new HashSet<string>();
            await Eventually.WaitUntilAsync(async () =>
            {
                using var request = new HttpRequestMessage(HttpMethod.Get, "/v1/models");
                request.Headers.Authorization = new("Bearer", "ctr_live_" + Guid.NewGuid().ToString("N") + Guid.NewGuid().ToString("N")[..11]);
                var response = await probe.SendAsync(request);
                if (response.StatusCode == HttpStatusCode.ServiceUnavailable) unavailableOn.Add(PortalAppFixture.ReplicaOf(response));
                return unavailableOn.SetEquals(known.Replicas);
            }, TimeSpan.FromSeconds(30), "the replicas did not notice Redis stopping");

            var unknown = await unknownYet.OnEveryReplicaAsync(c => c.PostAsJsonAsync("/v1/chat/completions", Chat()));
            foreach (var response in unknown)
            {
                Assert.Equal(HttpStatusCode.ServiceUnavailable, response.StatusCode);
                Assert.Equal("dependency_unavailable", await Code(response));
            }

            var during = await known.OnEveryReplicaAsync(c => c.PostAsJsonAsync("/v1/chat/completions", Chat()), perReplica: 3);
            Assert.All(during, r => Assert.Equal(HttpStatusCode.OK, r.StatusCode));
            served += during.Count;

            // Still ready for the platform: every replica's /health (its readiness probe) is 200 and Degraded, naming Redis.
            foreach (var health in await known.OnEveryReplicaAsync(c => c.GetAsync("/health"), perReplica: 1))
            {
                var text = await health.Content.ReadAsStringAsync();
                Assert.True(health.StatusCode == HttpStatusCode.OK, $"/health answered {(int)health.StatusCode}: {text}");
                var report = JsonDocument.Parse(text).RootElement;
                Assert.Equal("Degraded", report.GetProperty("status").GetString());
                Assert.Equal("Degraded", report.GetProperty("checks").GetProperty("StackExchange.Redis").GetProperty("status").GetString());
            }
        }
        finally
        {
            await portal.App.ResourceCommands.ExecuteCommandAsync(LaunchTopology.Redis, KnownResourceCommands.StartCommand);
            await portal.WaitHealthyAsync(LaunchTopology.Redis);
        }

        // Recovery without a restart: the new key is verified on every replica, and the outage's usage reaches the ledger.
        using (var recovered = unknownYet.CreateClientAcrossReplicas())
        {
            var servedBy = new HashSet<string>();
            await Eventually.WaitUntilAsync(async () =>
            {
                var response = await recovered.PostAsJsonAsync("/v1/chat/completions", Chat());
                if (response.StatusCode == HttpStatusCode.OK) servedBy.Add(PortalAppFixture.ReplicaOf(response));
                return servedBy.SetEquals(unknownYet.Replicas);
            }, TimeSpan.FromSeconds(30), "the new key was not served again after Redis came back", TimeSpan.FromMilliseconds(250));
        }
        await WaitForLedgerAsync(known, served);
    }

    [Theory]
    [InlineData("/admin/organizations", "{not json")]
    [InlineData("/admin/organizations", "{\"name\": 42}")]
    [InlineData("/admin/organizations", "{\"name\": \"x\", \"plan\": \"platinum\"}")]
    public async Task BadAdminInputIsA400InTheErrorShapeAndCreatesNothing(string path, string body)
    {
        using var admin = portal.CreateAdminClient();
        var before = (await admin.GetFromJsonAsync<JsonElement>("/admin/audit?limit=1000")).GetArrayLength();
        var response = await admin.PostAsync(path, new StringContent(body, System.Text.Encoding.UTF8, "application/json"));
        Assert.Equal(HttpStatusCode.BadRequest, response.StatusCode);
        var error = (await response.Content.ReadFromJsonAsync<JsonElement>()).GetProperty("error");
        Assert.Equal("invalid_request_error", error.GetProperty("type").GetString());
        Assert.Equal(before, (await admin.GetFromJsonAsync<JsonElement>("/admin/audit?limit=1000")).GetArrayLength());
    }

    [Fact]
    public async Task LogsContainNoKeyMaterial()
    {
        var customer = await portal.CreateCustomerAsync();
        var logs = portal.App.Services.GetRequiredService<ResourceLoggerService>();
        var lines = new System.Collections.Concurrent.ConcurrentQueue<string>();
        // Every instance of the services that see keys or router tokens, by the names Aspire gave them.
        var instances = new List<string>();
        foreach (var (resource, count) in new[] { (LaunchTopology.Api, PortalAppFixture.ApiReplicas), (LaunchTopology.Migrations, 1),
                     ("router-oss20b-1", 1), ("router-oss20b-2", 1), ("router-oss20b-3", 1), ("router-qwen-1", 1) })
            instances.AddRange(await portal.InstancesAsync(resource, count));
        using var stop = new CancellationTokenSource();
        var watchers = instances.Select(name => Task.Run(async () =>
        {
            try
            {
                await foreach (var batch in logs.WatchAsync(name).WithCancellation(stop.Token))
                    foreach (var line in batch) lines.Enqueue(line.Content);
            }
            catch (OperationCanceledException) { }
        })).ToList();

        // Normal traffic on both replicas, and a request that makes the Api log on its own path:
        // qwen's only router fails completions while its status says healthy, so the Api logs the failure.
        var requestId = "logcheck-" + Guid.NewGuid().ToString("N");
        var traffic = await customer.OnEveryReplicaAsync(c => c.PostAsJsonAsync("/v1/chat/completions", Chat()));
        Assert.All(traffic, r => Assert.Equal(HttpStatusCode.OK, r.StatusCode));
        await portal.SetRouterBehaviourAsync("router-qwen-1", new { outage = "Error500", completions_only = true });
        try
        {
            using var client = customer.CreateClient();
            using var failing = new HttpRequestMessage(HttpMethod.Post, "/v1/chat/completions") { Content = JsonContent.Create(Chat("qwen-3-32b")) };
            failing.Headers.Add("X-Request-Id", requestId);
            Assert.Equal(HttpStatusCode.ServiceUnavailable, (await client.SendAsync(failing)).StatusCode);
        }
        finally
        {
            await portal.SetRouterBehaviourAsync("router-qwen-1", new { outage = "None" });
        }

        try
        {
            // The collection is real: the request's own lines are in it.
            try
            {
                await Eventually.WaitUntilAsync(() => lines.Any(l => l.Contains(requestId, StringComparison.Ordinal)),
                    TimeSpan.FromSeconds(15), $"the request {requestId} is not in the {lines.Count} log lines collected from {string.Join(", ", instances)}");
            }
            catch (TimeoutException ex)
            {
                throw new TimeoutException(ex.Message + "; lines naming qwen:\n" + string.Join("\n", lines.Where(l => l.Contains("qwen", StringComparison.Ordinal)).TakeLast(12)));
            }
        }
        finally
        {
            await stop.CancelAsync();
            await Task.WhenAll(watchers);
        }

        var secret = customer.Key["ctr_live_".Length..];
        Assert.DoesNotContain(lines, l => l.Contains(secret, StringComparison.Ordinal));
        Assert.DoesNotContain(lines, l => l.Contains(PortalAppFixture.RouterToken, StringComparison.Ordinal));
    }

    /// <summary>Polls a chat request until it gets <paramref name="status"/> (admin changes are pushed to the replicas).</summary>
    private static Task<HttpResponseMessage> UntilChatAnswersAsync(HttpClient client, HttpStatusCode status, string message) =>
        Eventually.WaitForAsync(() => client.PostAsJsonAsync("/v1/chat/completions", Chat()), r => r.StatusCode == status,
            Eventually.Propagation, message);

    private async Task<JsonElement> WaitForLedgerAsync(TestCustomer customer, int usageEvents)
    {
        using var admin = portal.CreateAdminClient();
        return await Eventually.WaitForAsync<JsonElement, HttpRequestException>(
            () => admin.GetFromJsonAsync<JsonElement>($"/admin/organizations/{customer.OrganizationId}/balance"),
            balance => balance.GetProperty("usage_entries").GetInt32() >= usageEvents,
            TimeSpan.FromSeconds(30), $"expected {usageEvents} usage events in the ledger", TimeSpan.FromMilliseconds(500));
    }

    internal static async Task<string?> Code(HttpResponseMessage response) =>
        (await response.Content.ReadFromJsonAsync<JsonElement>()).GetProperty("error").GetProperty("code").GetString();
}
