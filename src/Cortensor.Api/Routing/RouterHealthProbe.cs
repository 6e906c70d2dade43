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
            try
            {
                var routers = catalog.Current.Pools.Values.SelectMany(p => p.Routers).ToList();
                await Task.WhenAll(routers.Select(r => ProbeAsync(r, o, stoppingToken)));
            }
            catch (Exception ex) when (!stoppingToken.IsCancellationRequested)
            {
                Infrastructure.BackgroundLoop.Failed(log, "router probes", ex);
            }
        }
        while (await timer.WaitForNextTickAsync(stoppingToken).ConfigureAwait(false));
    }

    private async Task ProbeAsync(CatalogRouter router, RoutingOptions o, CancellationToken ct)
    {
        var state = balancer.StateOf(router.Id);
        // /status first (it may carry load); a router whose /status errors but whose /info answers is still up.
        var status = await AskAsync(router, state, "/api/v1/status", o, ct);
        var probe = status.Liveness is not null ? status : await AskAsync(router, state, "/api/v1/info", o, ct);
        if (ct.IsCancellationRequested) return;
        var liveness = probe.Liveness;
        bool healthy;
        if (liveness is { } live)
        {
            state.ProbeTimeoutsInARow = 0;
            healthy = live.CanServe;
        }
        else if (status.Answered || probe.Answered)
        {
            // The router answered "not serving": out at once.
            state.ProbeTimeoutsInARow = 0;
            healthy = false;
        }
        else
        {
            // No answer at all within the probe timeout (a busy host, a lost packet) is not a verdict on
            // its own: a second one in a row takes the router out; the circuit breaker covers the gap.
            healthy = ++state.ProbeTimeoutsInARow < 2 && state.ProbeHealthy;
        }
        if (liveness?.Load is { } load) state.ReportedLoad = load;
        if (liveness?.Miners is { } miners) state.ReportedMiners = miners;
        if (healthy != state.ProbeHealthy)
            RoutingLog.HealthChanged(log, router.Id, router.PoolId, healthy ? "healthy" : "unhealthy");
        state.ProbeHealthy = healthy;
        state.LastProbeAt = DateTimeOffset.UtcNow;
    }

    /// <returns>What a 2xx said; <c>Answered</c> is true when the router answered at all (a non-2xx is an answer).</returns>
    private async Task<(RouterLiveness? Liveness, bool Answered)> AskAsync(CatalogRouter router, RouterState state, string path, RoutingOptions o, CancellationToken ct)
    {
        try
        {
            using var timeout = CancellationTokenSource.CreateLinkedTokenSource(ct);
            timeout.CancelAfter(o.ProbeTimeoutMs);
            using var request = new HttpRequestMessage(HttpMethod.Get, router.BaseUrl + path);
            request.Headers.Authorization = client.Authorization;
            var started = Stopwatch.GetTimestamp();
            using var response = await client.Http.SendAsync(request, timeout.Token);
            if (!response.IsSuccessStatusCode) return (null, true);
            var liveness = RouterLiveness.Read(await response.Content.ReadAsByteArrayAsync(timeout.Token));
            // Keeps the latency estimate current for a router that gets no traffic (see RouterState).
            if (liveness.CanServe) state.ObserveProbe(Stopwatch.GetElapsedTime(started).TotalMilliseconds);
            return (liveness, true);
        }
        catch (HttpRequestException ex) when (ex.HttpRequestError == HttpRequestError.ConnectionError)
        {
            return (null, true); // refused: nothing listens there, which is an answer too
        }
        catch (Exception ex) when (ex is HttpRequestException or OperationCanceledException or IOException)
        {
            return (null, false);
        }
    }
}
