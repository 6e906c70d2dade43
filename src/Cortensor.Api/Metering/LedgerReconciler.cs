using Cortensor.Api.Infrastructure;
using Microsoft.Extensions.Options;
using System.Diagnostics.Metrics;
using Cortensor.Api.Data;
using Cortensor.Api.Limits;
using Microsoft.EntityFrameworkCore;
using StackExchange.Redis;

namespace Cortensor.Api.Metering;

/// <summary>
/// Keeps the hot-path counters (credit balances, monthly token use) equal to the ledger, one
/// organisation at a time (<see cref="HotCounters.ReconcileAsync"/>): it never waits for the usage
/// stream to drain or for an organisation to be idle. A difference is reported as drift and corrected.
/// Counters Redis lost (a restart without persistence) are rebuilt from the ledger the same way.
/// </summary>
public sealed partial class LedgerReconciler(HotCounters counters, IServiceScopeFactory scopes,
    IOptions<MeteringOptions> options, ILogger<LedgerReconciler> log) : BackgroundService
{
    private static readonly Meter Meter = new(CortensorTelemetry.MeterName);
    private static readonly Counter<long> Corrections = Meter.CreateCounter<long>("cortensor.ledger.corrections", description: "Hot-path counters corrected from the ledger");
    private static readonly Histogram<double> DriftUsd = Meter.CreateHistogram<double>("cortensor.ledger.drift", "USD", "Absolute credit drift found between Redis and the ledger");
    private static readonly Histogram<long> DriftTokens = Meter.CreateHistogram<long>("cortensor.ledger.drift_tokens", "{token}", "Absolute monthly-token drift found between Redis and the ledger");

    public TimeSpan Period => TimeSpan.FromSeconds(options.Value.ReconcileSeconds);

    protected override async Task ExecuteAsync(CancellationToken stoppingToken)
    {
        await Task.Delay(TimeSpan.FromSeconds(5), stoppingToken).ContinueWith(_ => { }, TaskScheduler.Default);
        while (!stoppingToken.IsCancellationRequested)
        {
            try
            {
                await ReconcileAsync(stoppingToken);
            }
            catch (Exception ex) when (Outage.IsRedis(ex, stoppingToken) || Outage.IsPostgres(ex, stoppingToken) || ex is InvalidOperationException)
            {
                Log.Skipped(log, ex);
            }
            catch (Exception ex) when (!stoppingToken.IsCancellationRequested)
            {
                BackgroundLoop.Failed(log, "ledger reconciler", ex);
            }
            await Task.Delay(Period, stoppingToken).ContinueWith(_ => { }, TaskScheduler.Default);
        }
    }

    /// <summary>One pass over every organisation; returns how many counters were corrected.</summary>
    public async Task<int> ReconcileAsync(CancellationToken ct)
    {
        using var work = BackgroundWork.Start("ledger.reconcile");
        List<(Guid Id, BillingMode Mode)> orgs;
        using (var scope = scopes.CreateScope())
        {
            var portal = scope.ServiceProvider.GetRequiredService<PortalDbContext>();
            orgs = (await portal.Organizations.AsNoTracking()
                .Join(portal.Plans.AsNoTracking(), o => o.PlanId, p => p.Id, (o, p) => new { o.Id, p.BillingMode })
                .ToListAsync(ct)).Select(o => (o.Id, o.BillingMode)).ToList();
        }

        var corrected = 0;
        foreach (var (id, mode) in orgs)
        {
            // A busy organisation's counters may move while it is compared: a few tries, then the next pass.
            for (var attempt = 0; attempt < 3; attempt++)
            {
                var outcome = await counters.ReconcileAsync(id, mode, onlyIfMissing: false, ct, options.Value.ReconcileMaxPendingCharges);
                if (outcome?.PostponedWith is { } pending)
                {
                    // Too many to read at once: forget, a page at a time, those the ledger has, and compare again.
                    var forgotten = await counters.ForgetWrittenAsync(id, mode, options.Value.ReconcileMaxPendingCharges * 10, ct);
                    Log.Postponed(log, id, mode, pending, forgotten);
                    if (forgotten == 0) break;
                    continue;
                }
                if (outcome is null || outcome.Before == outcome.Expected) break;
                if (!outcome.Changed) continue;
                corrected++;
                Corrections.Add(1);
                var drift = Math.Abs((outcome.Before ?? 0) - outcome.Expected);
                if (mode == BillingMode.PrepaidCredits) DriftUsd.Record((double)Pricing.FromUnits(drift));
                else DriftTokens.Record(drift);
                Log.Corrected(log, id, mode, outcome.Before, outcome.Expected);
                break;
            }
        }
        work?.SetTag("cortensor.corrected", corrected);
        return corrected;
    }

    private static partial class Log
    {
        [LoggerMessage(LogLevel.Warning, "Reconciliation skipped")]
        public static partial void Skipped(ILogger logger, Exception exception);

        [LoggerMessage(LogLevel.Information, "Reconciliation of the {Mode} counter of organization {Organization} postponed: {Pending} charges pending for the ledger, {Forgotten} of them found in it and forgotten")]
        public static partial void Postponed(ILogger logger, Guid organization, BillingMode mode, long pending, long forgotten);

        [LoggerMessage(LogLevel.Warning, "Corrected the {Mode} counter of organization {Organization} from {Current} to the ledger's {Expected}")]
        public static partial void Corrected(ILogger logger, Guid organization, BillingMode mode, long? current, long expected);
    }
}
