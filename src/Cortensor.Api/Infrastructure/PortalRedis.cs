using StackExchange.Redis;

namespace Cortensor.Api.Infrastructure;

public static class PortalRedis
{
    /// <summary>
    /// Redis for counters, snapshots and the usage buffer. Per-command tracing is off by default
    /// (Redis:Tracing=true turns it on): it profiles every command and cost a fifth of the Api's
    /// throughput; the hot path's own spans still show admission and metering.
    /// </summary>
    public static WebApplicationBuilder AddPortalRedis(this WebApplicationBuilder builder)
    {
        builder.AddRedisClient(LaunchTopology.Redis, configureOptions: o =>
        {
            // While Redis is away, fail at once and take the degraded path instead of queueing requests.
            o.BacklogPolicy = BacklogPolicy.FailFast;
            o.AbortOnConnectFail = false;
            o.AsyncTimeout = 2000;
            // The .NET thread pool, not the library's dedicated threads: on a few cores those spin and
            // contend (a quarter of the Api's CPU under load in a profile of bench/run.sh).
            o.SocketManager = SocketManager.ThreadPool;
        }, configureSettings: s => s.DisableTracing = !builder.Configuration.GetValue("Redis:Tracing", false));
        // Without Redis a replica serves only keys it already knows: one that has never reached it knows none.
        builder.Services.AddHealthChecks().AddReachedOnceCheck("redis-reached", services => services.GetRequiredService<IConnectionMultiplexer>().IsConnected,
            "Redis not reached since this replica started: it knows no key yet");
        return builder;
    }
}
