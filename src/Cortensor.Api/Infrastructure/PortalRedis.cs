using StackExchange.Redis;

namespace Cortensor.Api.Infrastructure;

public static class PortalRedis
{
    /// <summary>Redis for counters, snapshots and the usage buffer.</summary>
    public static WebApplicationBuilder AddPortalRedis(this WebApplicationBuilder builder)
    {
        builder.AddRedisClient(LaunchTopology.Redis, configureOptions: o =>
        {
            // While Redis is away, fail at once and take the degraded path instead of queueing requests.
            o.BacklogPolicy = BacklogPolicy.FailFast;
            o.AbortOnConnectFail = false;
            o.AsyncTimeout = 2000;
        });
        return builder;
    }
}
