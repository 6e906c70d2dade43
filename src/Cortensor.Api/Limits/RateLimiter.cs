using System.Collections.Concurrent;
using Cortensor.Api.Keys;
using StackExchange.Redis;

namespace Cortensor.Api.Limits;

public sealed record RateLimitDecision(
    bool Allowed, string? LimitedOn, int RequestLimit, int RequestsRemaining, int TokenLimit, int TokensRemaining,
    TimeSpan Reset, long Window, int ReservedTokens);

/// <summary>
/// Step 4: requests and tokens per minute per key, in one atomic Redis script so every replica
/// shares one count (fixed one-minute windows: exact, and cheap to explain in headers). Tokens are
/// reserved from the prompt estimate plus max_tokens and settled with what was actually used.
/// When Redis is unreachable each replica enforces the same limits on its own until it returns.
/// </summary>
public sealed class RateLimiter(IConnectionMultiplexer redis, TimeProvider clock, ILogger<RateLimiter> log)
{
    private const int WindowSeconds = 60;

    // KEYS: request counter, token counter. ARGV: request limit, token limit, token cost, ttl.
    private static readonly LuaScript Admit = LuaScript.Prepare("""
        local r = tonumber(redis.call('GET', @requests) or '0')
        local t = tonumber(redis.call('GET', @tokens) or '0')
        if r + 1 > tonumber(@requestLimit) then return {0, r, t} end
        if t + tonumber(@cost) > tonumber(@tokenLimit) then return {-1, r, t} end
        r = redis.call('INCR', @requests)
        redis.call('EXPIRE', @requests, @ttl)
        t = redis.call('INCRBY', @tokens, @cost)
        redis.call('EXPIRE', @tokens, @ttl)
        return {1, r, t}
        """);

    private readonly ConcurrentDictionary<string, LocalWindow> _local = new();

    public async ValueTask<RateLimitDecision> AdmitAsync(KeySnapshot key, int tokens)
    {
        var now = clock.GetUtcNow().ToUnixTimeSeconds();
        var window = now / WindowSeconds;
        var reset = TimeSpan.FromSeconds((window + 1) * WindowSeconds - now);
        long verdict, requests, used;
        try
        {
            if (!redis.IsConnected) throw new RedisConnectionException(ConnectionFailureType.UnableToConnect, "Redis is disconnected");
            var result = (RedisResult[])(await redis.GetDatabase().ScriptEvaluateAsync(Admit, new
            {
                requests = (RedisKey)RequestKey(key.KeyId, window),
                tokens = (RedisKey)TokenKey(key.KeyId, window),
                requestLimit = key.RequestsPerMinute,
                tokenLimit = key.TokensPerMinute,
                cost = tokens,
                ttl = WindowSeconds * 2,
            }))!;
            (verdict, requests, used) = ((long)result[0], (long)result[1], (long)result[2]);
        }
        catch (Exception ex) when (ex is RedisException or TimeoutException)
        {
            log.LogWarning("Shared rate limits unavailable ({Error}); enforcing per replica", ex.Message);
            (verdict, requests, used) = _local.GetOrAdd(key.KeyId.ToString(), _ => new LocalWindow()).Admit(window, key, tokens);
        }
        return new RateLimitDecision(
            verdict == 1, verdict switch { 0 => "requests", -1 => "tokens", _ => null },
            key.RequestsPerMinute, (int)Math.Max(0, key.RequestsPerMinute - requests),
            key.TokensPerMinute, (int)Math.Max(0, key.TokensPerMinute - used), reset, window, verdict == 1 ? tokens : 0);
    }

    /// <summary>Gives back (or takes more of) the token reservation once the real usage is known.</summary>
    public async Task SettleAsync(KeySnapshot key, RateLimitDecision decision, int actualTokens)
    {
        var delta = actualTokens - decision.ReservedTokens;
        if (delta == 0 || !decision.Allowed) return;
        try
        {
            await redis.GetDatabase().StringIncrementAsync(TokenKey(key.KeyId, decision.Window), delta, CommandFlags.FireAndForget);
        }
        catch (Exception ex) when (ex is RedisException or TimeoutException)
        {
            _local.GetOrAdd(key.KeyId.ToString(), _ => new LocalWindow()).Adjust(decision.Window, delta);
        }
    }

    private static string RequestKey(Guid key, long window) => $"rl:{{{key:N}}}:r:{window}";
    private static string TokenKey(Guid key, long window) => $"rl:{{{key:N}}}:t:{window}";

    /// <summary>The per-replica fallback: the same fixed-window rule, in memory.</summary>
    private sealed class LocalWindow
    {
        private long _window = -1, _requests, _tokens;

        public (long, long, long) Admit(long window, KeySnapshot key, int tokens)
        {
            lock (this)
            {
                if (_window != window) (_window, _requests, _tokens) = (window, 0, 0);
                if (_requests + 1 > key.RequestsPerMinute) return (0, _requests, _tokens);
                if (_tokens + tokens > key.TokensPerMinute) return (-1, _requests, _tokens);
                _requests++;
                _tokens += tokens;
                return (1, _requests, _tokens);
            }
        }

        public void Adjust(long window, int delta)
        {
            lock (this) if (_window == window) _tokens += delta;
        }
    }
}
