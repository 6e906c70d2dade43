using Microsoft.AspNetCore.DataProtection;
using Microsoft.AspNetCore.DataProtection.KeyManagement;
using Microsoft.AspNetCore.DataProtection.StackExchangeRedis;
using Microsoft.Extensions.Options;
using StackExchange.Redis;

namespace Cortensor.Web.Services;

public static class SessionStoreExtensions
{
    /// <summary>
    /// Sessions and the Data Protection key ring in Redis: the cookie one replica issues, the antiforgery
    /// token and the prerendered component state it protects must all be readable by every other replica.
    /// </summary>
    public static WebApplicationBuilder AddPortalSessionStore(this WebApplicationBuilder builder)
    {
        builder.AddRedisClient(LaunchTopology.Redis, configureOptions: o => o.AbortOnConnectFail = false);
        // Without Redis a replica can read no session or key ring: one that has never reached it serves no signed-in page.
        builder.Services.AddHealthChecks().AddReachedOnceCheck("redis-reached", services => services.GetRequiredService<IConnectionMultiplexer>().IsConnected,
            "Redis not reached since this replica started: no session can be read yet");
        builder.Services.AddSingleton<SessionStore>();
        builder.Services.AddDataProtection().SetApplicationName("cortensor-web");
        builder.Services.AddOptions<KeyManagementOptions>()
            .Configure<IConnectionMultiplexer>((o, redis) =>
                o.XmlRepository = new RedisXmlRepository(() => redis.GetDatabase(), "web:data-protection-keys"));
        return builder;
    }
}
