using Cortensor.Api.Catalog;
using Microsoft.Extensions.Diagnostics.HealthChecks;

namespace Cortensor.Api.Routing;

/// <summary>
/// Each pool's routers as this replica sees them. A pool without an available router is Degraded, not
/// Unhealthy: the Api still serves every other pool (and answers 503 for that one), so the platform
/// must not take the replica out of rotation for it.
/// </summary>
public sealed class RouterPoolsHealthCheck(CatalogStore catalog, RouterBalancer balancer) : IHealthCheck
{
    public Task<HealthCheckResult> CheckHealthAsync(HealthCheckContext context, CancellationToken cancellationToken = default)
    {
        var data = new Dictionary<string, object>();
        var starved = new List<string>();
        foreach (var pool in catalog.Current.Pools.Values.OrderBy(p => p.Id))
        {
            var available = pool.Routers.Count(r => balancer.StateOf(r.Id).Available);
            data[pool.Id] = $"{available} of {pool.Routers.Count} routers available{(pool.Draining ? ", draining" : "")}";
            if (available == 0) starved.Add(pool.Id);
        }
        return Task.FromResult(starved.Count == 0
            ? HealthCheckResult.Healthy("every pool has an available router", data)
            : HealthCheckResult.Degraded($"no available router in {string.Join(", ", starved)}", data: data));
    }
}
