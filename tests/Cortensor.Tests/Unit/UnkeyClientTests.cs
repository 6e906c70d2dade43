using System.Net;
using Cortensor.Api.Keys.Unkey;
using Cortensor.Tests.Fixtures;
using Refit;

namespace Cortensor.Tests.Unit;

/// <summary>The Api's Refit client for Unkey's API v2, against the Unkey stand-in over HTTP: shapes, codes and errors.</summary>
public class UnkeyClientTests(UnkeyStandIn unkey) : IClassFixture<UnkeyStandIn>
{
    private readonly IUnkeyApi _client = unkey.CreateClient();

    private Task<UnkeyResponse<UnkeyCreatedKey>> CreateAsync(long? expires = null, UnkeyRatelimit[]? ratelimits = null) =>
        _client.CreateKeyAsync(new UnkeyCreateKey(UnkeyStandIn.ApiId, Prefix: "ctr_live", Name: "laptop", ByteLength: 32,
            ExternalId: "org_1", Meta: new() { ["portalKeyId"] = "k1" }, Expires: expires,
            Ratelimits: ratelimits ?? UnkeyKeyProvider.Ratelimits(5, null)));

    [Fact]
    public async Task ACreatedKeyHasThePrefixAndVerifiesAsValidWithItsIdNameAndMeta()
    {
        var created = await CreateAsync();
        Assert.StartsWith("req_", created.Meta.RequestId);
        Assert.StartsWith("key_", created.Data.KeyId);
        Assert.StartsWith("ctr_live_", created.Data.Key);
        // 32 bytes in base58: the Portal's key format accepts it.
        Assert.True(Cortensor.Api.Keys.ApiKeyFormat.LooksValid(created.Data.Key), created.Data.Key);

        var verified = (await _client.VerifyKeyAsync(new UnkeyVerifyKey(created.Data.Key))).Data;
        Assert.True(verified.Valid);
        Assert.Equal(UnkeyVerification.ValidCode, verified.Code);
        Assert.Equal(created.Data.KeyId, verified.KeyId);
        Assert.Equal("laptop", verified.Name);
        Assert.Equal("k1", verified.Meta!.Value.GetProperty("portalKeyId").GetString());
        Assert.Null(verified.Ratelimits);
    }

    [Fact]
    public async Task VerifyingWithCostZeroReadsTheKeysLimitsWithoutSpendingThem()
    {
        var key = (await CreateAsync()).Data.Key;
        for (var i = 0; i < 10; i++)
        {
            var read = (await _client.VerifyKeyAsync(new UnkeyVerifyKey(key, [new("requests", Cost: 0), new("tokens", Cost: 0)]))).Data;
            Assert.Equal(UnkeyVerification.ValidCode, read.Code);
            var requests = Assert.Single(read.Ratelimits!, r => r.Name == "requests");
            Assert.Equal(5, requests.Limit);
            Assert.Equal(60_000, requests.Duration);
            Assert.Equal(5, requests.Remaining);
            Assert.Equal(UnkeyKeyProvider.NoKeyLimit, Assert.Single(read.Ratelimits!, r => r.Name == "tokens").Limit);
        }
        // Spending does move it: five pass, the sixth is rate limited.
        var codes = new List<string>();
        for (var i = 0; i < 6; i++) codes.Add((await _client.VerifyKeyAsync(new UnkeyVerifyKey(key, [new("requests")]))).Data.Code);
        Assert.Equal([.. Enumerable.Repeat("VALID", 5), "RATE_LIMITED"], codes);
    }

    [Fact]
    public async Task ADisabledKeyIsDisabledUntilEnabledAndADeletedOneIsNotFound()
    {
        var created = (await CreateAsync()).Data;
        await _client.UpdateKeyAsync(new UnkeyUpdateKey(created.KeyId, Enabled: false));
        var disabled = (await _client.VerifyKeyAsync(new UnkeyVerifyKey(created.Key))).Data;
        Assert.False(disabled.Valid);
        Assert.Equal(UnkeyVerification.Disabled, disabled.Code);
        Assert.Equal(created.KeyId, disabled.KeyId);

        await _client.UpdateKeyAsync(new UnkeyUpdateKey(created.KeyId, Enabled: true, Name: "renamed"));
        var enabled = (await _client.VerifyKeyAsync(new UnkeyVerifyKey(created.Key))).Data;
        Assert.Equal(UnkeyVerification.ValidCode, enabled.Code);
        Assert.Equal("renamed", enabled.Name);

        await _client.DeleteKeyAsync(new UnkeyDeleteKey(created.KeyId));
        var deleted = (await _client.VerifyKeyAsync(new UnkeyVerifyKey(created.Key))).Data;
        Assert.False(deleted.Valid);
        Assert.Equal(UnkeyVerification.NotFound, deleted.Code);
        Assert.Null(deleted.KeyId);

        var again = await Assert.ThrowsAnyAsync<ApiException>(() => _client.DeleteKeyAsync(new UnkeyDeleteKey(created.KeyId)));
        Assert.Equal(HttpStatusCode.NotFound, again.StatusCode);
        Assert.Equal("https://unkey.com/docs/errors/unkey/data/key_not_found", UnkeyJson.ErrorOf(again)!.Type);
    }

    [Fact]
    public async Task AKeyPastItsExpiryIsExpired()
    {
        var created = (await CreateAsync(expires: DateTimeOffset.UtcNow.AddSeconds(-1).ToUnixTimeMilliseconds())).Data;
        var expired = (await _client.VerifyKeyAsync(new UnkeyVerifyKey(created.Key))).Data;
        Assert.False(expired.Valid);
        Assert.Equal(UnkeyVerification.Expired, expired.Code);
        Assert.NotNull(expired.Expires);
    }

    [Fact]
    public async Task AnUnknownKeyIsNotFoundNotAnError()
    {
        var unknown = (await _client.VerifyKeyAsync(new UnkeyVerifyKey("ctr_live_" + new string('z', 44)))).Data;
        Assert.False(unknown.Valid);
        Assert.Equal(UnkeyVerification.NotFound, unknown.Code);
    }

    [Fact]
    public async Task RateLimitAllowsTheLimitInAWindowThenRefusesWithTheResetTime()
    {
        var identifier = "id_" + Guid.NewGuid().ToString("N");
        var outcomes = new List<UnkeyLimitOutcome>();
        // Unkey's windows are calendar minutes, weighted by the one before: four calls across a minute's end would see two.
        await Eventually.EarlyInAMinuteAsync();
        for (var i = 0; i < 4; i++) outcomes.Add((await _client.LimitAsync(new UnkeyLimit("portal", identifier, 3, 60_000))).Data);
        Assert.Equal([true, true, true, false], outcomes.Select(o => o.Success));
        Assert.Equal([2L, 1, 0, 0], outcomes.Select(o => o.Remaining));
        Assert.All(outcomes, o => Assert.Equal(3, o.Limit));
        Assert.All(outcomes, o => Assert.InRange(o.Reset, DateTimeOffset.UtcNow.ToUnixTimeMilliseconds(), DateTimeOffset.UtcNow.AddMinutes(1).ToUnixTimeMilliseconds() + 1000));
        // Another identifier has its own window; a cost of two takes two.
        var other = (await _client.LimitAsync(new UnkeyLimit("portal", identifier + "x", 3, 60_000, Cost: 2))).Data;
        Assert.True(other.Success);
        Assert.Equal(1, other.Remaining);
    }

    [Fact]
    public async Task WithoutTheRootKeyEveryCallIs401InUnkeysErrorShape()
    {
        foreach (var rootKey in new[] { null, "not-the-root-key-at-all" })
        {
            var refused = await Assert.ThrowsAnyAsync<ApiException>(() => unkey.CreateClient(rootKey).VerifyKeyAsync(new UnkeyVerifyKey("anything")));
            Assert.Equal(HttpStatusCode.Unauthorized, refused.StatusCode);
            var error = UnkeyJson.ErrorOf(refused)!;
            Assert.Equal(401, error.Status);
            Assert.StartsWith("https://unkey.com/docs/errors/unkey/authentication/", error.Type);
        }
    }

    [Fact]
    public async Task InvalidInputIs400NamingTheFieldInUnkeysErrorShape()
    {
        var bad = await Assert.ThrowsAnyAsync<ApiException>(() => _client.CreateKeyAsync(new UnkeyCreateKey(UnkeyStandIn.ApiId, Prefix: "bad prefix!",
            Ratelimits: [new("requests", 0, 60_000)])));
        Assert.Equal(HttpStatusCode.BadRequest, bad.StatusCode);
        var error = UnkeyJson.ErrorOf(bad)!;
        Assert.Equal("https://unkey.com/docs/errors/unkey/application/invalid_input", error.Type);
        Assert.Contains(error.Errors!, e => e.Location == "body.prefix");
        Assert.Contains(error.Errors!, e => e.Location == "body.ratelimits[0].limit");

        var wrongApi = await Assert.ThrowsAnyAsync<ApiException>(() => _client.CreateKeyAsync(new UnkeyCreateKey("api_someone_else")));
        Assert.Equal(HttpStatusCode.NotFound, wrongApi.StatusCode);

        // A key limit the key does not have cannot be read: Unkey answers 412.
        var key = (await CreateAsync(ratelimits: [])).Data.Key;
        var missing = await Assert.ThrowsAnyAsync<ApiException>(() => _client.VerifyKeyAsync(new UnkeyVerifyKey(key, [new("requests", Cost: 0)])));
        Assert.Equal(HttpStatusCode.PreconditionFailed, missing.StatusCode);
    }
}
