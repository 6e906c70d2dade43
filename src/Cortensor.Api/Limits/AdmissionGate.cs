using System.Globalization;
using Cortensor.Api.Catalog;
using Cortensor.Api.Data;
using Cortensor.Api.Errors;
using Cortensor.Api.Keys;
using Microsoft.EntityFrameworkCore;
using StackExchange.Redis;

namespace Cortensor.Api.Limits;

/// <summary>What a request was allowed to use: its rate-limit window and its quota or credit reservation.</summary>
public sealed record Admission(
    int RequestLimit, int RequestsRemaining, int TokenLimit, int TokensRemaining, TimeSpan Reset,
    long Window, int ReservedTokens, BillingMode Mode, long Reserved, bool Local);

/// <summary>
/// Steps 4 and 5 of the hot path in one atomic Redis script, one round trip: requests and tokens per
/// minute per key (fixed one-minute windows shared by every replica), then the monthly token quota
/// or the prepaid credit balance, reserved for the worst case (prompt estimate plus max_tokens).
/// Nothing is counted unless everything passes. After the request, one more round trip gives back
/// what was not used. When Redis is unreachable, each replica enforces the same rate limits alone
/// and spends from a small per-organisation outage allowance, so known keys keep working.
/// </summary>
public sealed class AdmissionGate(IConnectionMultiplexer redis, IServiceScopeFactory scopes, TimeProvider clock, ILogger<AdmissionGate> log)
{
    private const int WindowSeconds = 60;
    public const int QuotaTtlSeconds = 40 * 24 * 3600;

    private static readonly LuaScript Admit = LuaScript.Prepare("""
        local r = tonumber(redis.call('GET', @requests) or '0')
        local t = tonumber(redis.call('GET', @tokens) or '0')
        if r + 1 > tonumber(@requestLimit) then return {0, r, t, 0} end
        if t + tonumber(@cost) > tonumber(@tokenLimit) then return {-1, r, t, 0} end
        local q
        if @credits == '1' then
            local balance = redis.call('GET', @counter)
            if not balance then return {-3, r, t, 0} end
            if tonumber(balance) < tonumber(@amount) then return {-2, r, t, tonumber(balance)} end
            q = redis.call('DECRBY', @counter, @amount)
        else
            local used = tonumber(redis.call('GET', @counter) or '0')
            if used + tonumber(@amount) > tonumber(@quota) then return {-2, r, t, used} end
            q = redis.call('INCRBY', @counter, @amount)
            redis.call('EXPIRE', @counter, @quotaTtl)
        end
        redis.call('INCR', @inflight)
        redis.call('EXPIRE', @inflight, 600)
        r = redis.call('INCR', @requests)
        redis.call('EXPIRE', @requests, @ttl)
        t = redis.call('INCRBY', @tokens, @cost)
        redis.call('EXPIRE', @tokens, @ttl)
        return {1, r, t, q}
        """);

    // Gives back unused tokens (same window) and the unused reservation; one round trip with the usage record.
    private static readonly LuaScript Settle = LuaScript.Prepare("""
        if tonumber(redis.call('GET', @inflight) or '0') > 0 then redis.call('DECR', @inflight) end
        if tonumber(@tokenDelta) ~= 0 and redis.call('EXISTS', @tokens) == 1 then redis.call('INCRBY', @tokens, @tokenDelta) end
        if tonumber(@refund) ~= 0 then
            if @credits == '1' then
                if redis.call('EXISTS', @counter) == 1 then redis.call('INCRBY', @counter, @refund) end
            else
                redis.call('DECRBY', @counter, @refund)
            end
        end
        return 1
        """);

    private static readonly LuaScript AddIfKnown = LuaScript.Prepare("""
        if redis.call('EXISTS', @counter) == 1 then return redis.call('INCRBY', @counter, @amount) end
        return nil
        """);

    private readonly LocalFallback _local = new();

    public static string CreditKey(Guid org) => $"credit:{{{org:N}}}";
    private string QuotaKey(Guid org) => QuotaKey(org, clock.GetUtcNow());
    public static string QuotaKey(Guid org, DateTimeOffset now) => $"quota:{{{org:N}}}:{now:yyyyMM}";
    /// <summary>Admitted requests of the organisation not settled yet; reconciliation waits for zero.</summary>
    public static string InFlightKey(Guid org) => $"inflight:{{{org:N}}}";
    private static string RequestKey(Guid key, long window) => $"rl:{{{key:N}}}:r:{window}";
    private static string TokenKey(Guid key, long window) => $"rl:{{{key:N}}}:t:{window}";

    public async Task<(Admission Admission, ApiError? Refusal)> AdmitAsync(
        KeySnapshot key, CatalogModel model, int promptTokens, int maxTokens, CancellationToken ct)
    {
        var now = clock.GetUtcNow().ToUnixTimeSeconds();
        var window = now / WindowSeconds;
        var reset = TimeSpan.FromSeconds((window + 1) * WindowSeconds - now);
        var tokens = promptTokens + maxTokens;
        var credits = key.BillingMode == BillingMode.PrepaidCredits;
        long amount = credits ? Pricing.ToUnits(Pricing.Cost(model, promptTokens, maxTokens)) : tokens;
        var counter = credits ? CreditKey(key.OrganizationId) : QuotaKey(key.OrganizationId);

        try
        {
            if (!redis.IsConnected) throw new RedisConnectionException(ConnectionFailureType.UnableToConnect, "Redis is disconnected");
            for (var attempt = 0; ; attempt++)
            {
                var r = (RedisResult[])(await redis.GetDatabase().ScriptEvaluateAsync(Admit, new
                {
                    requests = (RedisKey)RequestKey(key.KeyId, window),
                    tokens = (RedisKey)TokenKey(key.KeyId, window),
                    counter = (RedisKey)counter,
                    inflight = (RedisKey)InFlightKey(key.OrganizationId),
                    requestLimit = key.RequestsPerMinute,
                    tokenLimit = key.TokensPerMinute,
                    cost = tokens,
                    credits = credits ? "1" : "0",
                    amount,
                    quota = key.MonthlyTokenQuota ?? 0,
                    quotaTtl = QuotaTtlSeconds,
                    ttl = WindowSeconds * 2,
                }))!;
                var (verdict, requests, used, balance) = ((long)r[0], (long)r[1], (long)r[2], (long)r[3]);
                if (verdict == -3 && attempt == 0)
                {
                    await LoadBalanceAsync(key.OrganizationId, ct);
                    continue;
                }
                var admission = new Admission(key.RequestsPerMinute, (int)Math.Max(0, key.RequestsPerMinute - requests),
                    key.TokensPerMinute, (int)Math.Max(0, key.TokensPerMinute - used), reset, window,
                    verdict == 1 ? tokens : 0, key.BillingMode, verdict == 1 ? amount : 0, Local: false);
                return (admission, Refusal(verdict, key, admission, tokens, amount, balance));
            }
        }
        catch (Exception ex) when (ex is RedisException or TimeoutException)
        {
            log.LogWarning("Shared limits unavailable ({Error}); enforcing per replica", ex.Message);
            var (admission, verdict) = _local.Admit(key, window, reset, tokens, amount, credits, clock);
            return (admission, Refusal(verdict, key, admission, tokens, amount, 0));
        }
        catch (Exception ex) when (ex is Npgsql.NpgsqlException or InvalidOperationException)
        {
            log.LogWarning("Credit balance could not be loaded: {Error}", ex.Message);
            return (new Admission(key.RequestsPerMinute, 0, key.TokensPerMinute, 0, reset, window, 0, key.BillingMode, 0, false),
                ApiError.DependencyUnavailable("Billing"));
        }
    }

    private static ApiError? Refusal(long verdict, KeySnapshot key, Admission a, int tokens, long amount, long balance)
    {
        var retry = Math.Max(1, (int)Math.Ceiling(a.Reset.TotalSeconds));
        return verdict switch
        {
            1 => null,
            0 => ApiError.RateLimited($"requests per minute (limit {a.RequestLimit})", retry),
            -1 => ApiError.RateLimited($"tokens per minute (limit {a.TokenLimit}, this request reserves {tokens})", retry),
            -2 when key.BillingMode == BillingMode.PrepaidCredits => ApiError.InsufficientQuota(
                $"Your credit balance is ${Usd(balance)} and this request may cost up to ${Usd(amount)}. Add credits, or lower max_tokens."),
            -2 => ApiError.InsufficientQuota(
                $"Your monthly quota has {Math.Max(0, (key.MonthlyTokenQuota ?? 0) - balance)} tokens left and this request may use up to {amount} (prompt plus max_tokens). Lower max_tokens, wait for next month, or upgrade your plan."),
            _ => ApiError.DependencyUnavailable("Billing"),
        };
    }

    private static string Usd(long units) => Pricing.FromUnits(units).ToString("0.########", CultureInfo.InvariantCulture);

    /// <summary>Gives back what the request did not use, together with handing over its usage record (one round trip).</summary>
    public async Task SettleAsync(KeySnapshot key, Admission admission, int actualTokens, decimal actualCost, Func<IDatabaseAsync, Task>? alongside = null)
    {
        var tokenDelta = actualTokens - admission.ReservedTokens;
        var actual = admission.Mode == BillingMode.PrepaidCredits ? Pricing.ToUnits(actualCost) : actualTokens;
        var refund = admission.Reserved - actual;
        if (admission.Local)
        {
            _local.Adjust(key, admission.Window, tokenDelta);
            if (alongside is not null) await alongside(redis.GetDatabase());
            return;
        }
        var batch = redis.GetDatabase().CreateBatch();
        var settled = admission.ReservedTokens == 0 && admission.Reserved == 0
            ? Task.CompletedTask
            : batch.ScriptEvaluateAsync(Settle, new
            {
                tokens = (RedisKey)TokenKey(key.KeyId, admission.Window),
                counter = (RedisKey)(admission.Mode == BillingMode.PrepaidCredits ? CreditKey(key.OrganizationId) : QuotaKey(key.OrganizationId)),
                inflight = (RedisKey)InFlightKey(key.OrganizationId),
                tokenDelta,
                refund,
                credits = admission.Mode == BillingMode.PrepaidCredits ? "1" : "0",
            });
        var other = alongside is null ? Task.CompletedTask : alongside(batch);
        batch.Execute();
        try
        {
            await settled;
        }
        catch (Exception ex) when (ex is RedisException or TimeoutException)
        {
            // The usage record still reaches the ledger; reconciliation corrects the counter.
            log.LogWarning("Could not settle the reservation of key {Key}: {Error}", key.KeyId, ex.Message);
        }
        await other;
    }

    /// <summary>Adds credit to the hot-path balance if Redis holds it; otherwise the next admission loads it from the ledger.</summary>
    public async Task AddCreditAsync(Guid org, decimal usd) =>
        await redis.GetDatabase().ScriptEvaluateAsync(AddIfKnown, new { counter = (RedisKey)CreditKey(org), amount = Pricing.ToUnits(usd) });

    /// <summary>The hot-path balance in USD, or null when Redis has not loaded it.</summary>
    public async Task<decimal?> HotBalanceAsync(Guid org)
    {
        var value = await redis.GetDatabase().StringGetAsync(CreditKey(org));
        return value.IsNull ? null : Pricing.FromUnits((long)value);
    }

    /// <summary>The balance is the sum of the ledger (grants +, usage −); set only if still absent.</summary>
    private async Task LoadBalanceAsync(Guid org, CancellationToken ct)
    {
        using var scope = scopes.CreateScope();
        var db = scope.ServiceProvider.GetRequiredService<PortalDbContext>();
        var balance = await db.BillingLedger.Where(e => e.OrganizationId == org).SumAsync(e => (decimal?)e.Amount, ct) ?? 0m;
        await redis.GetDatabase().StringSetAsync(CreditKey(org), Pricing.ToUnits(balance), when: When.NotExists);
    }

    /// <summary>Per replica, while Redis is away: the same window rule, and a bounded per-organisation spend per hour.</summary>
    private sealed class LocalFallback
    {
        public const long OutageTokens = 50_000;
        public const decimal OutageUsd = 0.50m;
        private readonly Dictionary<Guid, (long Window, long Requests, long Tokens)> _windows = [];
        private readonly Dictionary<Guid, (long Hour, long Used)> _spend = [];

        /// <returns>The admission and its verdict: 1 admitted, 0 requests or -1 tokens exhausted, -4 outage allowance spent.</returns>
        public (Admission, long) Admit(KeySnapshot key, long window, TimeSpan reset, int tokens, long amount, bool credits, TimeProvider clock)
        {
            var hour = clock.GetUtcNow().ToUnixTimeSeconds() / 3600;
            lock (_windows)
            {
                var (w, requests, used) = _windows.GetValueOrDefault(key.KeyId);
                if (w != window) (requests, used) = (0, 0);
                Admission Result(long reservedTokens, long reserved) => new(key.RequestsPerMinute, (int)Math.Max(0, key.RequestsPerMinute - requests),
                    key.TokensPerMinute, (int)Math.Max(0, key.TokensPerMinute - used), reset, window, (int)reservedTokens, key.BillingMode, reserved, Local: true);
                if (requests + 1 > key.RequestsPerMinute) return (Result(0, 0), 0);
                if (used + tokens > key.TokensPerMinute) return (Result(0, 0), -1);
                var (h, spent) = _spend.GetValueOrDefault(key.OrganizationId);
                if (h != hour) spent = 0;
                var cap = credits ? Pricing.ToUnits(OutageUsd) : OutageTokens;
                if (spent + amount > cap) return (Result(0, 0), -4);
                _spend[key.OrganizationId] = (hour, spent + amount);
                (requests, used) = (requests + 1, used + tokens);
                _windows[key.KeyId] = (window, requests, used);
                return (Result(tokens, amount), 1);
            }
        }

        public void Adjust(KeySnapshot key, long window, int tokenDelta)
        {
            lock (_windows)
                if (_windows.TryGetValue(key.KeyId, out var w) && w.Window == window)
                    _windows[key.KeyId] = w with { Tokens = w.Tokens + tokenDelta };
        }
    }
}
