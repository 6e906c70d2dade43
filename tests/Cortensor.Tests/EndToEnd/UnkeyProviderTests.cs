using System.Net;
using System.Net.Http.Json;
using System.Text.Json;
using Cortensor.Tests.Fixtures;

namespace Cortensor.Tests.EndToEnd;

/// <summary>
/// The graph with Unkey as the key provider (Keys:Provider=unkey, the Unkey stand-in in place of api.unkey.com): the key
/// lifecycle, enforcement and revocation tests of the builtin provider run again, then what is Unkey's own: keys issued
/// there, pauses and revocations carried there, its key limits enforced, and no call to it while a snapshot is warm.
/// </summary>
[Collection(UnkeyPortalAppCollection.Name), Trait("Category", PortalAppCollection.Category)]
public class UnkeyProviderTests(UnkeyPortalAppFixture portal, Xunit.Abstractions.ITestOutputHelper output)
{
    private EnforcementTests Enforcement => new(portal);

    [Fact]
    public Task ACustomerSignsUpCreatesAKeyCallsTheApiSeesTheRequestAndUsageAndRevokesIt() =>
        new ControlPlaneTests(portal).ACustomerSignsUpCreatesAKeyCallsTheApiSeesTheRequestAndUsageAndRevokesIt();

    [Fact]
    public Task ARevokedKeyIsRejectedOnEveryReplicaLongBeforeItsSnapshotExpires() => Enforcement.ARevokedKeyIsRejectedOnEveryReplicaLongBeforeItsSnapshotExpires();

    [Fact]
    public Task PausedKeysAndOrganisationsAre403UntilResumed() => Enforcement.PausedKeysAndOrganisationsAre403UntilResumed();

    /// <summary>As the builtin test, with a wider margin: creating the customer and the first call may take more than three seconds here.</summary>
    [Fact]
    public async Task AnExpiredKeyIsRejected()
    {
        var customer = await portal.CreateCustomerAsync(keyOptions: new { name = "short-lived", expires_at = DateTimeOffset.UtcNow.AddSeconds(10) });
        using var client = customer.CreateClient();
        var first = await client.GetAsync("/v1/models");
        Assert.True(first.StatusCode == HttpStatusCode.OK, await first.Content.ReadAsStringAsync());
        var expired = await Eventually.WaitForAsync(() => client.GetAsync("/v1/models"), r => r.StatusCode != HttpStatusCode.OK,
            TimeSpan.FromSeconds(25), "the key was still accepted after its expiry", TimeSpan.FromMilliseconds(250));
        Assert.Equal(HttpStatusCode.Unauthorized, expired.StatusCode);
        Assert.Equal("api_key_expired", await EnforcementTests.Code(expired));
        // Unkey says so too.
        using var unkey = portal.CreateUnkeyClient();
        Assert.Equal("EXPIRED", (await VerifyAsync(unkey, customer.Key)).GetProperty("code").GetString());
    }

    [Fact]
    public Task AKeyEditedThroughThePortalChangesOnEveryReplicaAndBadEditsChangeNothing() =>
        new KeySpendTests(portal, output).AKeyEditedThroughThePortalChangesOnEveryReplicaAndBadEditsChangeNothing();

    [Fact]
    public Task ARotatedKeyServesItsNewSecretAtOnceAndItsOldOneUntilTheGraceEndsThen401Rotated() =>
        new KeySpendTests(portal, output).ARotatedKeyServesItsNewSecretAtOnceAndItsOldOneUntilTheGraceEndsThen401Rotated();

    [Fact]
    public Task UnknownMalformedAndMissingKeysAre401() => Enforcement.UnknownMalformedAndMissingKeysAre401();

    [Fact]
    public Task AModelOutsideThePlanOrTheKeysRestrictionIs403() => Enforcement.AModelOutsideThePlanOrTheKeysRestrictionIs403();

    [Fact]
    public Task ARequestLimitIsSharedExactlyAcrossReplicas() => Enforcement.ARequestLimitIsSharedExactlyAcrossReplicas();

    [Fact]
    public Task ATokenLimitIsSharedExactlyAcrossReplicas() => Enforcement.ATokenLimitIsSharedExactlyAcrossReplicas();

    [Fact]
    public async Task KeysAreIssuedByUnkeyAndThePortalsPausesAndRevocationsReachIt()
    {
        var customer = await portal.CreateCustomerAsync(keyOptions: new { name = "unkey key", requests_per_minute = 7 });
        using var unkey = portal.CreateUnkeyClient();

        var issued = await VerifyAsync(unkey, customer.Key);
        Assert.True(issued.GetProperty("valid").GetBoolean());
        Assert.Equal("VALID", issued.GetProperty("code").GetString());
        Assert.Equal("unkey key", issued.GetProperty("name").GetString());
        Assert.Equal(customer.KeyId.ToString(), issued.GetProperty("meta").GetProperty("portalKeyId").GetString());
        var limits = await VerifyAsync(unkey, customer.Key, new { name = "requests", cost = 0 });
        Assert.Equal(7, limits.GetProperty("ratelimits")[0].GetProperty("limit").GetInt64());

        using var admin = portal.CreateAdminClient();
        (await admin.PostAsync($"/admin/api-keys/{customer.KeyId}/pause", null)).EnsureSuccessStatusCode();
        Assert.Equal("DISABLED", (await VerifyAsync(unkey, customer.Key)).GetProperty("code").GetString());
        (await admin.PostAsync($"/admin/api-keys/{customer.KeyId}/resume", null)).EnsureSuccessStatusCode();
        Assert.Equal("VALID", (await VerifyAsync(unkey, customer.Key)).GetProperty("code").GetString());
        (await admin.PostAsync($"/admin/api-keys/{customer.KeyId}/revoke", null)).EnsureSuccessStatusCode();
        var revoked = await VerifyAsync(unkey, customer.Key);
        Assert.Equal("NOT_FOUND", revoked.GetProperty("code").GetString());
        Assert.False(revoked.GetProperty("valid").GetBoolean());
    }

    [Fact]
    public async Task AWarmSnapshotServesEveryReplicaWithoutCallingUnkey()
    {
        var customer = await portal.CreateCustomerAsync();
        var beforeWarmUp = await portal.UnkeyTrafficAsync();
        var warm = await customer.OnEveryReplicaAsync(c => c.GetAsync("/v1/models"));
        Assert.All(warm, r => Assert.Equal(HttpStatusCode.OK, r.StatusCode));
        var warmedUp = await portal.UnkeyTrafficAsync();
        // The first lookup asked Unkey; the other replica found the snapshot in Redis.
        Assert.InRange(warmedUp.Verifications - beforeWarmUp.Verifications, 1, customer.Replicas.Count);

        var served = await customer.OnEveryReplicaAsync(c => c.GetAsync("/v1/models"), perReplica: 10);
        Assert.All(served, r => Assert.Equal(HttpStatusCode.OK, r.StatusCode));
        Assert.Equal(warmedUp.Verifications, (await portal.UnkeyTrafficAsync()).Verifications);
    }

    [Fact]
    public async Task TheKeyLimitHeldInUnkeyIsTheOneTheReplicasEnforce()
    {
        // No limit of its own in the Portal; an operator sets one in Unkey before the key is first used.
        var customer = await portal.CreateCustomerAsync();
        using var unkey = portal.CreateUnkeyClient();
        var keyId = (await VerifyAsync(unkey, customer.Key)).GetProperty("keyId").GetString();
        var update = await unkey.PostAsJsonAsync("/v2/keys.updateKey", new
        {
            keyId,
            ratelimits = new[] { new { name = "requests", limit = 3, duration = 60_000 }, new { name = "tokens", limit = 1_000_000, duration = 60_000 } },
        });
        Assert.True(update.IsSuccessStatusCode, await update.Content.ReadAsStringAsync());

        using var client = customer.CreateClientAcrossReplicas();
        await Eventually.EarlyInAMinuteAsync();
        var responses = new List<HttpResponseMessage>();
        for (var i = 0; i < 6; i++) responses.Add(await client.PostAsJsonAsync("/v1/chat/completions", Chat()));
        Assert.Equal(3, responses.Count(r => r.StatusCode == HttpStatusCode.OK));
        Assert.Equal(3, responses.Count(r => r.StatusCode == HttpStatusCode.TooManyRequests));
        Assert.All(responses, r => Assert.Equal("3", r.Headers.GetValues("x-ratelimit-limit-requests").Single()));
    }

    private static object Chat() => new { model = "gpt-oss-20b", messages = new[] { new { role = "user", content = "hi" } }, max_tokens = 4 };

    private static async Task<JsonElement> VerifyAsync(HttpClient unkey, string key, object? ratelimit = null)
    {
        var response = await unkey.PostAsJsonAsync("/v2/keys.verifyKey", ratelimit is null ? new { key } : (object)new { key, ratelimits = new[] { ratelimit } });
        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        var body = await response.Content.ReadFromJsonAsync<JsonElement>();
        Assert.StartsWith("req_", body.GetProperty("meta").GetProperty("requestId").GetString());
        return body.GetProperty("data");
    }
}
