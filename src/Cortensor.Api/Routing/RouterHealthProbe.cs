using System.Diagnostics;
using Cortensor.Api.Catalog;
using Microsoft.Extensions.Options;

namespace Cortensor.Api.Routing;

/// <summary>Active health checking: every router of the catalog answers /api/v1/status or /api/v1/info with a 2xx, or is taken out of rotation.</summary>
public sealed class RouterHealthProbe(
    CatalogStore catalog, RouterBalancer balancer, RouterHttpClient client, IOptions<RoutingOptions> options,
    ILogger<RouterHealthProbe> log) : BackgroundService
{
    protected override async Task ExecuteAsync(CancellationToken stoppingToken)
    {
        var o = options.Value;
        using var timer = new PeriodicTimer(TimeSpan.FromMilliseconds(o.ProbeIntervalMs));
        do
        {
            var routers = catalog.Current.Pools.Values.SelectMany(p => p.Routers).ToList();
            await Task.WhenAll(routers.Select(r => ProbeAsync(r, o, stoppingToken)));
        }
        while (await timer.WaitForNextTickAsync(stoppingToken).ConfigureAwait(false));
    }

    private async Task ProbeAsync(CatalogRouter router, RoutingOptions o, CancellationToken ct)
    {
        var state = balancer.StateOf(router.Id);
        // /status first (it may carry load); a router whose /status errors but whose /info answers is still up.
        var liveness = await AskAsync(router, state, "/api/v1/status", o, ct) ?? await AskAsync(router, state, "/api/v1/info", o, ct);
        if (ct.IsCancellationRequested) return;
        var healthy = liveness is { CanServe: true };
        if (liveness?.Load is { } load) state.ReportedLoad = load;
        if (liveness?.Miners is { } miners) state.ReportedMiners = miners;
        if (healthy != state.ProbeHealthy)
            RoutingLog.HealthChanged(log, router.Id, router.PoolId, healthy ? "healthy" : "unhealthy");
        state.ProbeHealthy = healthy;
        state.LastProbeAt = DateTimeOffset.UtcNow;
    }

    private async Task<RouterLiveness?> AskAsync(CatalogRouter router, RouterState state, string path, RoutingOptions o, CancellationToken ct)
    {
        try
        {
            using var timeout = CancellationTokenSource.CreateLinkedTokenSource(ct);
            timeout.CancelAfter(o.ProbeTimeoutMs);
            using var request = new HttpRequestMessage(HttpMethod.Get, router.BaseUrl + path);
            request.Headers.Authorization = client.Authorization;
            var started = Stopwatch.GetTimestamp();
            using var response = await client.Http.SendAsync(request, timeout.Token);
            if (!response.IsSuccessStatusCode) return null;
            var liveness = RouterLiveness.Read(await response.Content.ReadAsByteArrayAsync(timeout.Token));
            // Keeps the latency estimate current for a router that gets no traffic (see RouterState).
            if (liveness.CanServe) state.ObserveProbe(Stopwatch.GetElapsedTime(started).TotalMilliseconds);
            return liveness;
        }
        catch (Exception ex) when (ex is HttpRequestException or OperationCanceledException or IOException)
        {
            return null;
        }
    }
}
