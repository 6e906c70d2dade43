using Cortensor.Api.Accounts.Siwe;
using Cortensor.Tests.Fixtures;
using Microsoft.Extensions.Logging.Abstractions;
using Microsoft.Extensions.Options;
using Microsoft.Extensions.Time.Testing;
using Nethereum.Signer;
using StackExchange.Redis;

namespace Cortensor.Tests.Integration;

/// <summary>The Sign-In with Ethereum checks on a real Redis with a clock the test moves: skew bounds and single use under contention.</summary>
[Collection(InfrastructureCollection.Name)]
public class SiweVerifierTests(InfrastructureFixture infrastructure)
{
    private static readonly DateTimeOffset Now = new(2026, 3, 4, 5, 6, 7, TimeSpan.Zero);

    private async Task<(SiweVerifier Verifier, SiweNonces Nonces, IConnectionMultiplexer Redis)> CreateAsync()
    {
        var redis = await ConnectionMultiplexer.ConnectAsync(infrastructure.RedisConnectionString);
        var options = Options.Create(new SiweOptions { Origins = ["https://portal.example"], ChainIds = [1, 42161], NonceLifetimeSeconds = 300, ClockSkewSeconds = 60 });
        var clock = new FakeTimeProvider(Now);
        var nonces = new SiweNonces(redis, options, clock);
        return (new SiweVerifier(nonces, options, clock, NullLogger<SiweVerifier>.Instance), nonces, redis);
    }

    private static (string Text, SiweMessage Message, string Signature) Sign(EthECKey key, string nonce, DateTimeOffset issuedAt, DateTimeOffset? expires = null, DateTimeOffset? notBefore = null)
    {
        var message = new SiweMessage(null, "portal.example", key.GetPublicAddress(), "Sign in.", "https://portal.example/signin", "1", 42161, nonce,
            issuedAt, expires, notBefore, null, []);
        var text = message.ToString();
        return (text, SiweMessage.Parse(text), new EthereumMessageSigner().EncodeUTF8AndSign(text, key));
    }

    [Theory]
    [InlineData(-30, null, null, null)]
    [InlineData(30, null, null, null)]
    [InlineData(90, null, null, "siwe_not_yet_valid")]
    [InlineData(-350, null, null, null)]
    [InlineData(-370, null, null, "siwe_expired")]
    [InlineData(0, -30, null, null)]
    [InlineData(0, -90, null, "siwe_expired")]
    [InlineData(0, null, 30, null)]
    [InlineData(0, null, 90, "siwe_not_yet_valid")]
    public async Task TimesAreJudgedWithAMinuteOfClockSkew(int issuedAtSeconds, int? expiresSeconds, int? notBeforeSeconds, string? code)
    {
        var (verifier, nonces, redis) = await CreateAsync();
        using var connection = redis;
        var key = EthECKey.GenerateKey();
        var (nonce, _) = await nonces.IssueAsync();
        var (text, message, signature) = Sign(key, nonce, Now.AddSeconds(issuedAtSeconds),
            expiresSeconds is { } e ? Now.AddSeconds(e) : null, notBeforeSeconds is { } n ? Now.AddSeconds(n) : null);
        var (wallet, error) = await verifier.VerifyAsync(text, message, signature);
        Assert.Equal(code, error?.Code);
        Assert.Equal(code is null ? key.GetPublicAddress() : null, wallet?.Address);
    }

    [Fact]
    public async Task OneSignedMessageSentManyTimesAtOnceSignsInExactlyOnce()
    {
        var (verifier, nonces, redis) = await CreateAsync();
        using var connection = redis;
        var key = EthECKey.GenerateKey();
        var (nonce, expires) = await nonces.IssueAsync();
        Assert.Equal(Now.AddMinutes(5), expires);
        // The nonce lives in Redis no longer than its lifetime.
        Assert.InRange((await redis.GetDatabase().KeyTimeToLiveAsync("cortensor:siwe-nonce:" + nonce))!.Value, TimeSpan.FromSeconds(1), TimeSpan.FromSeconds(300));
        var (text, message, signature) = Sign(key, nonce, Now);

        var results = await Task.WhenAll(Enumerable.Range(0, 32).Select(_ => Task.Run(() => verifier.VerifyAsync(text, message, signature))));
        Assert.Single(results, r => r.Wallet is not null);
        Assert.All(results.Where(r => r.Wallet is null), r => Assert.Equal("siwe_invalid_nonce", r.Error!.Code));
    }

    [Fact]
    public async Task ARefusedSignatureDoesNotSpendTheNonce()
    {
        var (verifier, nonces, redis) = await CreateAsync();
        using var connection = redis;
        var key = EthECKey.GenerateKey();
        var (nonce, _) = await nonces.IssueAsync();
        var (text, message, signature) = Sign(key, nonce, Now);
        var (_, _, forged) = Sign(EthECKey.GenerateKey(), nonce, Now);

        Assert.Equal("siwe_wrong_signer", (await verifier.VerifyAsync(text, message, forged)).Error?.Code);
        Assert.Equal(key.GetPublicAddress(), (await verifier.VerifyAsync(text, message, signature)).Wallet?.Address);
    }
}
