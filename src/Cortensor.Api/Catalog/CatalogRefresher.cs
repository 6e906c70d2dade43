using Cortensor.Api.Infrastructure;
using Microsoft.Extensions.Diagnostics.HealthChecks;

namespace Cortensor.Api.Catalog;

/// <summary>
/// Loads the catalog before the Api reports ready, reloads it when another replica announces a
/// change, and every <see cref="Period"/> as a safety net. A failed reload keeps the last snapshot:
/// a Postgres outage must not take routing down.
/// </summary>
public sealed class CatalogRefresher(CatalogStore store, InvalidationBus bus, ILogger<CatalogRefresher> log) : BackgroundService, IHealthCheck
{
    public const string Topic = "catalog";
    private static readonly TimeSpan Period = TimeSpan.FromSeconds(30);
    private readonly SemaphoreSlim _changed = new(0);

    protected override async Task ExecuteAsync(CancellationToken stoppingToken)
    {
        try
        {
            await bus.SubscribeAsync(topic => { if (topic == Topic) _changed.Release(); });
        }
        catch (Exception ex) when (Outage.IsRedis(ex))
        {
            log.LogWarning(ex, "Catalog invalidations unavailable; relying on the periodic refresh");
        }

        var retry = TimeSpan.FromMilliseconds(250);
        while (!stoppingToken.IsCancellationRequested)
        {
            try
            {
                await store.ReloadAsync(stoppingToken);
                retry = TimeSpan.FromMilliseconds(250);
                await _changed.WaitAsync(Period, stoppingToken);
                while (_changed.CurrentCount > 0) await _changed.WaitAsync(stoppingToken);
            }
            catch (OperationCanceledException) when (stoppingToken.IsCancellationRequested)
            {
                return;
            }
            catch (Exception ex)
            {
                log.LogWarning(ex, "Catalog reload failed; serving the previous snapshot and retrying in {Delay}", retry);
                await Task.Delay(retry, stoppingToken).ContinueWith(_ => { }, TaskScheduler.Default);
                retry = TimeSpan.FromTicks(Math.Min(retry.Ticks * 2, TimeSpan.FromSeconds(10).Ticks));
            }
        }
    }

    public Task<HealthCheckResult> CheckHealthAsync(HealthCheckContext context, CancellationToken ct = default) =>
        Task.FromResult(store.Current.IsLoaded
            ? HealthCheckResult.Healthy($"catalog loaded at {store.Current.LoadedAt:O}")
            : HealthCheckResult.Unhealthy("catalog not loaded yet"));
}
