using System.Diagnostics.Metrics;
using Cortensor.Api.Data;
using Cortensor.Api.Limits;
using Microsoft.EntityFrameworkCore;
using StackExchange.Redis;

namespace Cortensor.Api.Metering;

/// <summary>
/// Keeps the hot-path counters (credit balances, monthly token use) equal to the ledger. An
/// organisation is compared only when it is quiet — no request in flight and no usage waiting in
/// the stream — because only then must the two agree exactly. A difference is reported as drift
/// and corrected atomically, unless the counter moved meanwhile (then the next pass looks again).
/// Counters Redis lost (a restart without persistence) are rebuilt from the ledger the same way.
/// </summary>
public sealed class LedgerReconciler(IConnectionMultiplexer redis, IServiceScopeFactory scopes, TimeProvider clock,
    IConfiguration configuration, ILogger<LedgerReconciler> log) : BackgroundService
{
    private static readonly Meter Meter = new(CortensorTelemetry.MeterName);
    private static readonly Counter<long> Corrections = Meter.CreateCounter<long>("cortensor.ledger.corrections", description: "Hot-path counters corrected from the ledger");
    private static readonly Histogram<double> DriftUsd = Meter.CreateHistogram<double>("cortensor.ledger.drift", "USD", "Absolute credit drift found between Redis and the ledger");
    private static readonly Histogram<long> DriftTokens = Meter.CreateHistogram<long>("cortensor.ledger.drift_tokens", "{token}", "Absolute monthly-token drift found between Redis and the ledger");

    // Sets the counter to the ledger's value only if nothing moved since it was read and nothing is in flight.
    private static readonly LuaScript CompareAndSet = LuaScript.Prepare("""
        if tonumber(redis.call('GET', @inflight) or '0') > 0 then return -1 end
        local current = redis.call('GET', @counter)
        if (current or '') ~= @seen then return -2 end
        redis.call('SET', @counter, @value)
        if tonumber(@ttl) > 0 then redis.call('EXPIRE', @counter, @ttl) end
        return 1
        """);

    public TimeSpan Period => TimeSpan.FromSeconds(configuration.GetValue("Metering:ReconcileSeconds", 60));

    protected override async Task ExecuteAsync(CancellationToken stoppingToken)
    {
        await Task.Delay(TimeSpan.FromSeconds(5), stoppingToken).ContinueWith(_ => { }, TaskScheduler.Default);
        while (!stoppingToken.IsCancellationRequested)
        {
            try
            {
                await ReconcileAsync(stoppingToken);
            }
            catch (Exception ex) when (ex is RedisException or TimeoutException or Npgsql.NpgsqlException or InvalidOperationException)
            {
                log.LogWarning("Reconciliation skipped: {Error}", ex.Message);
            }
            await Task.Delay(Period, stoppingToken).ContinueWith(_ => { }, TaskScheduler.Default);
        }
    }

    /// <summary>One pass over every organisation; returns how many counters were corrected.</summary>
    public async Task<int> ReconcileAsync(CancellationToken ct)
    {
        var db = redis.GetDatabase();
        // Usage still in the stream is not in the ledger yet: nothing can be compared meanwhile.
        if (await db.KeyExistsAsync(UsageMeter.Stream) && await db.StreamLengthAsync(UsageMeter.Stream) > 0) return 0;

        using var scope = scopes.CreateScope();
        var portal = scope.ServiceProvider.GetRequiredService<PortalDbContext>();
        var now = clock.GetUtcNow();
        var monthStart = new DateTimeOffset(now.Year, now.Month, 1, 0, 0, 0, TimeSpan.Zero);
        var orgs = await portal.Organizations.AsNoTracking()
            .Join(portal.Plans.AsNoTracking(), o => o.PlanId, p => p.Id, (o, p) => new { o.Id, p.BillingMode })
            .ToListAsync(ct);
        var balances = await portal.BillingLedger.AsNoTracking().GroupBy(e => e.OrganizationId)
            .Select(g => new { g.Key, Amount = g.Sum(e => e.Amount) }).ToDictionaryAsync(x => x.Key, x => x.Amount, ct);
        var tokens = await portal.BillingLedger.AsNoTracking().Where(e => e.Kind == LedgerEntryKind.Usage && e.CreatedAt >= monthStart)
            .GroupBy(e => e.OrganizationId).Select(g => new { g.Key, Tokens = g.Sum(e => e.Tokens) })
            .ToDictionaryAsync(x => x.Key, x => x.Tokens, ct);

        var corrected = 0;
        foreach (var org in orgs)
        {
            var credits = org.BillingMode == BillingMode.PrepaidCredits;
            var counter = credits ? AdmissionGate.CreditKey(org.Id) : AdmissionGate.QuotaKey(org.Id, now);
            var seen = await db.StringGetAsync(counter);
            long expected = credits ? Pricing.ToUnits(balances.GetValueOrDefault(org.Id)) : tokens.GetValueOrDefault(org.Id);
            // A credit balance Redis has never loaded is loaded on first use; nothing to correct.
            if (credits && seen.IsNull) continue;
            var current = seen.IsNull ? 0 : (long)seen;
            if (current == expected) continue;

            var result = (long)await db.ScriptEvaluateAsync(CompareAndSet, new
            {
                inflight = (RedisKey)AdmissionGate.InFlightKey(org.Id),
                counter = (RedisKey)counter,
                seen = seen.IsNull ? "" : seen.ToString(),
                value = expected,
                ttl = credits ? 0 : AdmissionGate.QuotaTtlSeconds,
            });
            if (result != 1) continue;
            corrected++;
            Corrections.Add(1);
            if (credits) DriftUsd.Record((double)Math.Abs(Pricing.FromUnits(current - expected)));
            else DriftTokens.Record(Math.Abs(current - expected));
            log.LogWarning("Corrected {Counter} from {Current} to the ledger's {Expected}", counter, current, expected);
        }
        return corrected;
    }
}
