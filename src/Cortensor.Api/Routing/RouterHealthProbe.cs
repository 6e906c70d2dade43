using System.Diagnostics;
using System.Net.Http.Json;
using Cortensor.Api.Catalog;
using Cortensor.Api.Infrastructure;
using Cortensor.Api.Inference;
using Microsoft.Extensions.Options;

namespace Cortensor.Api.Routing;

/// <summary>Active health checking: every router of the catalog answers /api/v1/status or is taken out of rotation.</summary>
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
        bool healthy;
        try
        {
            using var timeout = CancellationTokenSource.CreateLinkedTokenSource(ct);
            timeout.CancelAfter(o.ProbeTimeoutMs);
            using var request = new HttpRequestMessage(HttpMethod.Get, $"{router.BaseUrl}/api/v1/status");
            request.Headers.Authorization = client.Authorization;
            var started = Stopwatch.GetTimestamp();
            using var response = await client.Http.SendAsync(request, timeout.Token);
            var roundTrip = Stopwatch.GetElapsedTime(started).TotalMilliseconds;
            var status = response.IsSuccessStatusCode
                ? await response.Content.ReadFromJsonAsync(PortalJsonContext.Default.RouterStatus, timeout.Token)
                : null;
            healthy = status?.Healthy == true;
            state.ReportedLoad = status?.Load ?? state.ReportedLoad;
            // Keeps the latency estimate current for a router that gets no traffic (see RouterState).
            if (healthy) state.ObserveProbe(roundTrip);
        }
        catch (Exception ex) when (ex is HttpRequestException or OperationCanceledException or System.Text.Json.JsonException)
        {
            if (ct.IsCancellationRequested) return;
            healthy = false;
        }
        if (healthy != state.ProbeHealthy)
            log.LogWarning("Router {Router} of pool {Pool} is now {State}", router.Id, router.PoolId, healthy ? "healthy" : "unhealthy");
        state.ProbeHealthy = healthy;
        state.LastProbeAt = DateTimeOffset.UtcNow;
    }
}
