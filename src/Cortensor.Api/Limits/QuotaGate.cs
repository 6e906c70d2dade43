using System.Globalization;
using Cortensor.Api.Catalog;
using Cortensor.Api.Data;
using Cortensor.Api.Errors;
using Cortensor.Api.Keys;
using Microsoft.EntityFrameworkCore;
using StackExchange.Redis;

namespace Cortensor.Api.Limits;

public sealed record QuotaReservation(BillingMode Mode, Guid OrganizationId, string CounterKey, long Reserved, bool Local = false);

/// <summary>
/// Step 5: monthly token quota or prepaid credits. The worst case of a request (prompt estimate plus
/// max_tokens) is reserved atomically in Redis before forwarding, so concurrent requests can never
/// spend more than there is; the unused part is given back when the real usage is known.
/// </summary>
public sealed class QuotaGate(IConnectionMultiplexer redis, IServiceScopeFactory scopes, TimeProvider clock, ILogger<QuotaGate> log)
{
    // Monthly tokens: used + reserve must stay within the quota.
    private static readonly LuaScript ReserveQuota = LuaScript.Prepare("""
        local used = tonumber(redis.call('GET', @counter) or '0')
        if used + tonumber(@amount) > tonumber(@limit) then return {0, used} end
        used = redis.call('INCRBY', @counter, @amount)
        redis.call('EXPIRE', @counter, @ttl)
        return {1, used}
        """);

    // Credits: the balance must cover the reserve; -2 when this Redis has not seen the balance yet.
    private static readonly LuaScript ReserveCredit = LuaScript.Prepare("""
        local balance = redis.call('GET', @counter)
        if not balance then return {-2, 0} end
        balance = tonumber(balance)
        if balance < tonumber(@amount) then return {0, balance} end
        return {1, redis.call('DECRBY', @counter, @amount)}
        """);

    private static readonly LuaScript AddIfKnown = LuaScript.Prepare("""
        if redis.call('EXISTS', @counter) == 1 then return redis.call('INCRBY', @counter, @amount) end
        return nil
        """);

    public static string CreditKey(Guid org) => $"credit:{{{org:N}}}";
    public string QuotaKey(Guid org) => $"quota:{{{org:N}}}:{clock.GetUtcNow():yyyyMM}";

    public async Task<(QuotaReservation? Reservation, ApiError? Error)> ReserveAsync(
        KeySnapshot key, CatalogModel model, int promptTokens, int maxTokens, CancellationToken ct)
    {
        try
        {
            if (!redis.IsConnected) throw new RedisConnectionException(ConnectionFailureType.UnableToConnect, "Redis is disconnected");
            if (key.BillingMode == BillingMode.MonthlyQuota)
            {
                var limit = key.MonthlyTokenQuota ?? 0;
                var amount = (long)promptTokens + maxTokens;
                var counter = QuotaKey(key.OrganizationId);
                var r = (RedisResult[])(await redis.GetDatabase().ScriptEvaluateAsync(ReserveQuota,
                    new { counter = (RedisKey)counter, amount, limit, ttl = (int)TimeSpan.FromDays(40).TotalSeconds }))!;
                if ((long)r[0] == 1) return (new QuotaReservation(BillingMode.MonthlyQuota, key.OrganizationId, counter, amount), null);
                var left = Math.Max(0, limit - (long)r[1]);
                return (null, ApiError.InsufficientQuota(
                    $"Your monthly quota has {left} tokens left and this request may use up to {amount} (prompt plus max_tokens). Lower max_tokens, wait for next month, or upgrade your plan."));
            }

            var units = Pricing.ToUnits(Pricing.Cost(model, promptTokens, maxTokens));
            var creditKey = CreditKey(key.OrganizationId);
            for (var attempt = 0; attempt < 2; attempt++)
            {
                var r = (RedisResult[])(await redis.GetDatabase().ScriptEvaluateAsync(ReserveCredit,
                    new { counter = (RedisKey)creditKey, amount = units }))!;
                switch ((long)r[0])
                {
                    case 1:
                        return (new QuotaReservation(BillingMode.PrepaidCredits, key.OrganizationId, creditKey, units), null);
                    case 0:
                        return (null, ApiError.InsufficientQuota(
                            $"Your credit balance is ${Pricing.FromUnits((long)r[1]).ToString("0.########", CultureInfo.InvariantCulture)} and this request may cost up to ${Pricing.FromUnits(units).ToString("0.########", CultureInfo.InvariantCulture)}. Add credits, or lower max_tokens."));
                    default:
                        await LoadBalanceAsync(key.OrganizationId, creditKey, ct);
                        break;
                }
            }
            return (null, ApiError.DependencyUnavailable("Billing"));
        }
        catch (Exception ex) when (ex is RedisException or TimeoutException)
        {
            // Redis is down: known keys keep working against a small per-replica allowance, so the
            // exposure is bounded; their usage still reaches the ledger through the spool.
            log.LogWarning("Shared quota unavailable ({Error}); using this replica's outage allowance", ex.Message);
            return _outage.Reserve(key, model, promptTokens, maxTokens);
        }
        catch (Exception ex) when (ex is Npgsql.NpgsqlException or InvalidOperationException)
        {
            log.LogWarning("Balance could not be loaded: {Error}", ex.Message);
            return (null, ApiError.DependencyUnavailable("Billing"));
        }
    }

    private readonly OutageAllowance _outage = new(clock);

    /// <summary>Per replica and organisation, what may be spent while Redis is unreachable (per hour).</summary>
    private sealed class OutageAllowance(TimeProvider clock)
    {
        public const long Tokens = 50_000;
        public const decimal Usd = 0.50m;
        private readonly Dictionary<Guid, (long Hour, long Used)> _used = [];

        public (QuotaReservation?, ApiError?) Reserve(KeySnapshot key, CatalogModel model, int promptTokens, int maxTokens)
        {
            var credits = key.BillingMode == BillingMode.PrepaidCredits;
            var amount = credits ? Pricing.ToUnits(Pricing.Cost(model, promptTokens, maxTokens)) : (long)promptTokens + maxTokens;
            var cap = credits ? Pricing.ToUnits(Usd) : Tokens;
            var hour = clock.GetUtcNow().ToUnixTimeSeconds() / 3600;
            lock (_used)
            {
                var (h, used) = _used.GetValueOrDefault(key.OrganizationId);
                if (h != hour) used = 0;
                if (used + amount > cap) return (null, ApiError.DependencyUnavailable("Billing"));
                _used[key.OrganizationId] = (hour, used + amount);
            }
            return (new QuotaReservation(key.BillingMode, key.OrganizationId, "", amount, Local: true), null);
        }
    }

    /// <summary>Returns the unused part of the reservation; <paramref name="actual"/> is tokens or credit units.</summary>
    public async Task SettleAsync(QuotaReservation reservation, long actual)
    {
        var unused = reservation.Reserved - actual;
        if (unused == 0 || reservation.Local) return;
        var db = redis.GetDatabase();
        try
        {
            if (reservation.Mode == BillingMode.MonthlyQuota)
                await db.StringDecrementAsync(reservation.CounterKey, unused);
            else
                await db.StringIncrementAsync(reservation.CounterKey, unused);
        }
        catch (Exception ex) when (ex is RedisException or TimeoutException)
        {
            // The usage event still reaches the ledger; the periodic reconciliation corrects the counter.
            log.LogWarning("Could not settle reservation on {Counter}: {Error}", reservation.CounterKey, ex.Message);
        }
    }

    /// <summary>Adds credit to the hot-path balance if Redis already holds it; otherwise the next reservation loads it from the ledger.</summary>
    public async Task AddCreditAsync(Guid org, decimal usd) =>
        await redis.GetDatabase().ScriptEvaluateAsync(AddIfKnown, new { counter = (RedisKey)CreditKey(org), amount = Pricing.ToUnits(usd) });

    /// <summary>The hot-path balance in USD, or null when Redis has not loaded it.</summary>
    public async Task<decimal?> HotBalanceAsync(Guid org)
    {
        var value = await redis.GetDatabase().StringGetAsync(CreditKey(org));
        return value.IsNull ? null : Pricing.FromUnits((long)value);
    }

    /// <summary>The balance is the sum of the ledger (grants +, usage −); set only if still absent.</summary>
    private async Task LoadBalanceAsync(Guid org, string creditKey, CancellationToken ct)
    {
        using var scope = scopes.CreateScope();
        var db = scope.ServiceProvider.GetRequiredService<PortalDbContext>();
        var balance = await db.BillingLedger.Where(e => e.OrganizationId == org).SumAsync(e => (decimal?)e.Amount, ct) ?? 0m;
        await redis.GetDatabase().StringSetAsync(creditKey, Pricing.ToUnits(balance), when: When.NotExists);
    }
}
