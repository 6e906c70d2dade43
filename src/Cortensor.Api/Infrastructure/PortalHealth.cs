using Microsoft.Extensions.Diagnostics.HealthChecks;

namespace Cortensor.Api.Infrastructure;

/// <summary>
/// What /health (the platform's readiness probe) makes of a dependency that fails. A replica keeps serving while
/// Postgres or Redis is away (known keys from memory, usage spooled to disk, the ledger caught up afterwards:
/// docs/reliability.md), so their checks report Degraded, which /health answers with 200. Reported Unhealthy (503),
/// they took every replica out of the platform's rotation at once during an outage the replicas were built to ride
/// out. Only the checks tagged <see cref="Readiness"/> (the catalog: without it nothing can be routed) and the
/// process's own liveness may make a replica Unhealthy.
/// </summary>
public static class PortalHealth
{
    /// <summary>The tag of a check without which the replica cannot serve at all.</summary>
    public const string Readiness = "ready";

    public static WebApplicationBuilder AddPortalHealth(this WebApplicationBuilder builder)
    {
        // After every feature and client library has registered its checks (Aspire's Npgsql, EF and Redis clients add theirs).
        builder.Services.PostConfigure<HealthCheckServiceOptions>(options =>
        {
            foreach (var check in options.Registrations)
                if (!check.Tags.Contains(Readiness) && !check.Tags.Contains("live")) check.FailureStatus = HealthStatus.Degraded;
        });
        return builder;
    }
}
