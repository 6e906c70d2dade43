using System.Security.Cryptography;
using Microsoft.Extensions.Options;
using StackExchange.Redis;

namespace Cortensor.Api.Accounts.Siwe;

/// <summary>
/// Nonces for Sign-In with Ethereum, kept in Redis so any Api replica can take back one another replica handed
/// out. Each is used at most once: consuming is a single DEL, which only one caller can win (the same guarantee as
/// GETDEL, which Azure Cache for Redis 6.0 lacks), and an unused nonce expires with its key.
/// </summary>
public sealed class SiweNonces(IConnectionMultiplexer redis, IOptions<SiweOptions> options, TimeProvider clock)
{
    // EIP-4361 nonces are letters and digits; 22 of 62 symbols is over 128 bits.
    private const string Alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";
    private static RedisKey Key(string nonce) => "cortensor:siwe-nonce:" + nonce;

    public TimeSpan Lifetime => TimeSpan.FromSeconds(options.Value.NonceLifetimeSeconds);

    public async Task<(string Nonce, DateTimeOffset ExpiresAt)> IssueAsync()
    {
        var nonce = RandomNumberGenerator.GetString(Alphabet, 22);
        await redis.GetDatabase().StringSetAsync(Key(nonce), "1", Lifetime, When.NotExists);
        return (nonce, clock.GetUtcNow() + Lifetime);
    }

    /// <summary>True once for a nonce this Portal handed out within its lifetime; false when unknown, expired or used.</summary>
    public async Task<bool> ConsumeAsync(string nonce) => await redis.GetDatabase().KeyDeleteAsync(Key(nonce));
}
