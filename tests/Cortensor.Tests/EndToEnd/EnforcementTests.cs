using System.Net;
using System.Net.Http.Json;
using System.Text.Json;
using Aspire.Hosting;
using Aspire.Hosting.Testing;
using Aspire.Hosting.ApplicationModel;
using Microsoft.Extensions.DependencyInjection;
using Cortensor.Tests.Fixtures;

namespace Cortensor.Tests.EndToEnd;

/// <summary>Keys, shared limits and credits on the running graph, across the Api's two replicas.</summary>
[Collection(PortalAppCollection.Name)]
public class EnforcementTests(PortalAppFixture portal)
{
    private static object Chat(string model = "gpt-oss-20b", int maxTokens = 4, string content = "hi") =>
        new { model, messages = new[] { new { role = "user", content } }, max_tokens = maxTokens };

    [Fact]
    public async Task ARevokedKeyIsRejectedOnEveryReplicaWithinASecond()
    {
        var customer = await portal.CreateCustomerAsync();
        using var client = customer.CreateClient();
        // Warm both replicas' snapshot caches (the proxy spreads requests over them).
        for (var i = 0; i < 8; i++) Assert.Equal(HttpStatusCode.OK, (await client.GetAsync("/v1/models")).StatusCode);

        using var admin = portal.CreateAdminClient();
        (await admin.PostAsync($"/admin/api-keys/{customer.KeyId}/revoke", null)).EnsureSuccessStatusCode();
        await Task.Delay(TimeSpan.FromSeconds(1));

        for (var i = 0; i < 8; i++)
        {
            var response = await client.GetAsync("/v1/models");
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
        await Task.Delay(1000);
        var paused = await client.PostAsJsonAsync("/v1/chat/completions", Chat());
        Assert.Equal(HttpStatusCode.Forbidden, paused.StatusCode);
        Assert.Equal("api_key_paused", await Code(paused));

        (await admin.PostAsync($"/admin/api-keys/{customer.KeyId}/resume", null)).EnsureSuccessStatusCode();
        (await admin.PostAsync($"/admin/organizations/{customer.OrganizationId}/pause", null)).EnsureSuccessStatusCode();
        await Task.Delay(1000);
        for (var i = 0; i < 4; i++)
        {
            var orgPaused = await client.PostAsJsonAsync("/v1/chat/completions", Chat());
            Assert.Equal(HttpStatusCode.Forbidden, orgPaused.StatusCode);
            Assert.Equal("organization_paused", await Code(orgPaused));
        }

        (await admin.PostAsync($"/admin/organizations/{customer.OrganizationId}/resume", null)).EnsureSuccessStatusCode();
        await Task.Delay(1000);
        Assert.Equal(HttpStatusCode.OK, (await client.PostAsJsonAsync("/v1/chat/completions", Chat())).StatusCode);
    }

    [Fact]
    public async Task AnExpiredKeyIsRejected()
    {
        var customer = await portal.CreateCustomerAsync(keyOptions: new { name = "short-lived", expires_at = DateTimeOffset.UtcNow.AddSeconds(3) });
        using var client = customer.CreateClient();
        Assert.Equal(HttpStatusCode.OK, (await client.GetAsync("/v1/models")).StatusCode);
        await Task.Delay(TimeSpan.FromSeconds(4));
        var expired = await client.GetAsync("/v1/models");
        Assert.Equal(HttpStatusCode.Unauthorized, expired.StatusCode);
        Assert.Equal("api_key_expired", await Code(expired));
    }

    [Fact]
    public async Task UnknownMalformedAndMissingKeysAre401()
    {
        using var client = new HttpClient { BaseAddress = portal.App.GetEndpoint(LaunchTopology.Api, "http") };
        Assert.Equal("missing_api_key", await Code(await client.GetAsync("/v1/models")));
        client.DefaultRequestHeaders.Authorization = new("Bearer", "sk-not-ours");
        Assert.Equal("invalid_api_key", await Code(await client.GetAsync("/v1/models")));
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
        Assert.Equal("model_not_entitled", await Code(await restrictedClient.PostAsJsonAsync("/v1/chat/completions", Chat("gpt-oss-20b"))));
        Assert.Equal(HttpStatusCode.OK, (await restrictedClient.PostAsJsonAsync("/v1/chat/completions", Chat("gemma-4-26b"))).StatusCode);
    }

    [Fact]
    public async Task ARequestLimitIsSharedExactlyAcrossReplicas()
    {
        await AvoidMinuteBoundaryAsync();
        var customer = await portal.CreateCustomerAsync(keyOptions: new { name = "5 rpm", requests_per_minute = 5 });
        using var client = customer.CreateClient();
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
    }

    [Fact]
    public async Task ATokenLimitIsSharedExactlyAcrossReplicas()
    {
        await AvoidMinuteBoundaryAsync();
        // Each request reserves 7 (the harmony prompt "<|start|>user<|message|>hi<|end|><|start|>assistant" in
        // gpt-oss's tokenizer) + 30 (max_tokens) = 37 tokens; 120 admits three.
        var customer = await portal.CreateCustomerAsync(keyOptions: new { name = "120 tpm", tokens_per_minute = 120 });
        using var client = customer.CreateClient();
        await portal.SetRouterBehaviourAsync("router-oss120b-1", new { time_to_first_token_ms = 1500 });
        try
        {
            var responses = await Task.WhenAll(Enumerable.Range(0, 8).Select(_ => client.PostAsJsonAsync("/v1/chat/completions", Chat("gpt-oss-120b", 30))));
            Assert.Equal(3, responses.Count(r => r.StatusCode == HttpStatusCode.OK));
            Assert.Equal(5, responses.Count(r => r.StatusCode == HttpStatusCode.TooManyRequests));
        }
        finally
        {
            await portal.SetRouterBehaviourAsync("router-oss120b-1", new { outage = "None" });
        }
    }

    [Fact]
    public async Task TwoHundredConcurrentRequestsAgainstCreditForTenAdmitAtMostTenAndNeverOverspend()
    {
        // Worst case per request on gpt-oss-120b: (3 * 0.0005 + 100 * 0.002) / 1000 = $0.0002015.
        var customer = await portal.CreateCustomerAsync(credits: 0.002015m);
        using var client = customer.CreateClient();
        await portal.SetRouterBehaviourAsync("router-oss120b-1", new { time_to_first_token_ms = 1500 });
        HttpResponseMessage[] responses;
        try
        {
            responses = await Task.WhenAll(Enumerable.Range(0, 200).Select(_ => client.PostAsJsonAsync("/v1/chat/completions", Chat("gpt-oss-120b", 100))));
        }
        finally
        {
            await portal.SetRouterBehaviourAsync("router-oss120b-1", new { outage = "None" });
        }
        var admitted = responses.Count(r => r.StatusCode == HttpStatusCode.OK);
        Assert.InRange(admitted, 1, 10);
        Assert.All(responses.Where(r => r.StatusCode != HttpStatusCode.OK), r => Assert.Equal(HttpStatusCode.PaymentRequired, r.StatusCode));
        Assert.Equal("insufficient_quota", await Code(responses.First(r => r.StatusCode == HttpStatusCode.PaymentRequired)));

        var balance = await WaitForLedgerAsync(customer, admitted);
        Assert.True(balance.GetProperty("ledger_balance").GetDecimal() >= 0m);
        Assert.True(balance.GetProperty("hot_balance").GetDecimal() >= 0m);
        Assert.Equal(balance.GetProperty("ledger_balance").GetDecimal(), balance.GetProperty("hot_balance").GetDecimal());
    }

    [Fact]
    public async Task WithRedisStoppedKnownKeysKeepWorkingUnknownKeysGet503AndAllRecovers()
    {
        var known = await portal.CreateCustomerAsync();
        var unknownYet = await portal.CreateCustomerAsync();
        using var knownClient = known.CreateClient();
        using var otherClient = unknownYet.CreateClient();
        for (var i = 0; i < 6; i++) Assert.Equal(HttpStatusCode.OK, (await knownClient.PostAsJsonAsync("/v1/chat/completions", Chat())).StatusCode);

        await portal.App.ResourceCommands.ExecuteCommandAsync(LaunchTopology.Redis, KnownResourceCommands.StopCommand);
        try
        {
            await Task.Delay(TimeSpan.FromSeconds(2));
            for (var i = 0; i < 6; i++)
                Assert.Equal(HttpStatusCode.OK, (await knownClient.PostAsJsonAsync("/v1/chat/completions", Chat())).StatusCode);
            var unknown = await otherClient.PostAsJsonAsync("/v1/chat/completions", Chat());
            Assert.Equal(HttpStatusCode.ServiceUnavailable, unknown.StatusCode);
            Assert.Equal("dependency_unavailable", await Code(unknown));
        }
        finally
        {
            await portal.App.ResourceCommands.ExecuteCommandAsync(LaunchTopology.Redis, KnownResourceCommands.StartCommand);
            await portal.App.ResourceNotifications.WaitForResourceHealthyAsync(LaunchTopology.Redis);
        }

        // Recovery without a restart: the new key is verified, and the outage's usage reaches the ledger.
        HttpStatusCode status = 0;
        for (var i = 0; i < 30 && status != HttpStatusCode.OK; i++)
        {
            status = (await otherClient.PostAsJsonAsync("/v1/chat/completions", Chat())).StatusCode;
            if (status != HttpStatusCode.OK) await Task.Delay(500);
        }
        Assert.Equal(HttpStatusCode.OK, status);
        await WaitForLedgerAsync(known, 12);
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
        using var client = customer.CreateClient();
        for (var i = 0; i < 3; i++) await client.PostAsJsonAsync("/v1/chat/completions", Chat());
        await client.GetAsync("/v1/models");

        var secret = customer.Key["ctr_live_".Length..];
        var lines = new List<string>();
        var logs = portal.App.Services.GetRequiredService<ResourceLoggerService>();
        foreach (var resource in new[] { LaunchTopology.Api, "migrations", "router-oss20b-1", "router-oss20b-2", "router-oss20b-3" })
        {
            using var cts = new CancellationTokenSource(TimeSpan.FromSeconds(3));
            try
            {
                await foreach (var batch in logs.WatchAsync(resource).WithCancellation(cts.Token))
                    lines.AddRange(batch.Select(l => l.Content));
            }
            catch (OperationCanceledException) { }
        }
        Assert.DoesNotContain(lines, l => l.Contains(secret, StringComparison.Ordinal));
        Assert.DoesNotContain(lines, l => l.Contains(PortalAppFixture.RouterToken, StringComparison.Ordinal));
    }

    private async Task<JsonElement> WaitForLedgerAsync(TestCustomer customer, int usageEvents)
    {
        using var admin = portal.CreateAdminClient();
        JsonElement balance = default;
        for (var i = 0; i < 60; i++)
        {
            balance = await admin.GetFromJsonAsync<JsonElement>($"/admin/organizations/{customer.OrganizationId}/balance");
            if (balance.GetProperty("usage_entries").GetInt32() >= usageEvents) return balance;
            await Task.Delay(500);
        }
        Assert.Fail($"expected {usageEvents} usage events in the ledger, got {balance}");
        return balance;
    }

    private static async Task AvoidMinuteBoundaryAsync()
    {
        var second = DateTimeOffset.UtcNow.Second;
        if (second > 45) await Task.Delay(TimeSpan.FromSeconds(61 - second));
    }

    internal static async Task<string?> Code(HttpResponseMessage response) =>
        (await response.Content.ReadFromJsonAsync<JsonElement>()).GetProperty("error").GetProperty("code").GetString();
}
