using System.Net;
using Cortensor.Api.Catalog;
using Cortensor.Api.Inference;
using Cortensor.Api.Keys;
using Cortensor.Api.Limits;
using Cortensor.Api.Metering;
using Cortensor.Api.Routing;
using ZiggyCreatures.Caching.Fusion;
using ZiggyCreatures.Caching.Fusion.Backplane.StackExchangeRedis;
using ZiggyCreatures.Caching.Fusion.Serialization.SystemTextJson;

namespace Cortensor.Api.Infrastructure;

public static class HotPathExtensions
{
    /// <summary>Keys and entitlement snapshots, shared rate limits, quotas and credits (SPEC §3 steps 2-5).</summary>
    public static WebApplicationBuilder AddEnforcement(this WebApplicationBuilder builder)
    {
        builder.Services.AddSingleton(TimeProvider.System);
        var redis = builder.Configuration.GetConnectionString(LaunchTopology.Redis);
        builder.Services.AddStackExchangeRedisCache(o => o.Configuration = redis);
        builder.Services.AddFusionCache()
            .WithOptions(o =>
            {
                o.CacheKeyPrefix = "cortensor:";
                o.DistributedCacheCircuitBreakerDuration = TimeSpan.FromSeconds(2);
                o.BackplaneCircuitBreakerDuration = TimeSpan.FromSeconds(2);
            })
            .WithDefaultEntryOptions(o =>
            {
                o.Duration = EntitlementCache.SnapshotDuration;
                o.IsFailSafeEnabled = true;
                o.FailSafeMaxDuration = EntitlementCache.FailSafeMaxDuration;
                o.FailSafeThrottleDuration = TimeSpan.FromSeconds(5);
                o.DistributedCacheSoftTimeout = TimeSpan.FromMilliseconds(100);
                o.DistributedCacheHardTimeout = TimeSpan.FromSeconds(1);
                o.AllowBackgroundDistributedCacheOperations = true;
                // One entry per key: memory stays bounded whatever a key-spraying client sends.
                o.Size = 1;
            })
            .WithMemoryCache(new Microsoft.Extensions.Caching.Memory.MemoryCache(
                new Microsoft.Extensions.Caching.Memory.MemoryCacheOptions { SizeLimit = 200_000 }))
            .WithSerializer(new FusionCacheSystemTextJsonSerializer())
            .WithRegisteredDistributedCache()
            .WithBackplane(new RedisBackplane(new RedisBackplaneOptions { Configuration = redis }));
        builder.Services.AddSingleton<EntitlementCache>();
        builder.Services.AddSingleton<ApiKeyFilter>();
        builder.Services.AddSingleton<RateLimiter>();
        builder.Services.AddSingleton<QuotaGate>();
        builder.Services.AddScoped<KeyService>();
        builder.Services.AddScoped<CatalogAdmin>();
        return builder;
    }

    /// <summary>Routing to router pools and the OpenAI-compatible normalisation (SPEC §3 steps 6-7).</summary>
    public static WebApplicationBuilder AddInference(this WebApplicationBuilder builder)
    {
        builder.Services.Configure<InferenceOptions>(builder.Configuration.GetSection("Inference"));
        builder.Services.Configure<RoutingOptions>(builder.Configuration.GetSection("Routing"));
        builder.Services.PostConfigure<RoutingOptions>(o => o.RouterToken = builder.Configuration["Routers:Token"] ?? o.RouterToken);
#pragma warning disable EXTEXP0001 // RemoveAllResilienceHandlers is marked for evaluation; it is the documented way out of the defaults
        builder.Services.AddHttpClient(RouterForwarder.ClientName)
            .ConfigurePrimaryHttpMessageHandler(() => new SocketsHttpHandler
            {
                PooledConnectionLifetime = TimeSpan.FromMinutes(2),
                MaxConnectionsPerServer = int.MaxValue,
                AutomaticDecompression = DecompressionMethods.None,
                UseCookies = false,
            })
            // Retries, failover and breaking are per router in RouterForwarder: a generic retry
            // would repeat a request on the same router and buffer streams.
            .RemoveAllResilienceHandlers();
#pragma warning restore EXTEXP0001
        builder.Services.AddSingleton<RouterBalancer>();
        builder.Services.AddSingleton<RouterForwarder>();
        builder.Services.AddHostedService<RouterHealthProbe>();
        builder.Services.AddSingleton<InferenceHandler>();
        return builder;
    }

    /// <summary>The durable usage pipeline: Redis Stream buffer, disk spool, batched ledger writer (SPEC §3 step 8).</summary>
    public static WebApplicationBuilder AddMetering(this WebApplicationBuilder builder)
    {
        builder.AddNpgsqlDataSource(LaunchTopology.Database);
        builder.Services.AddSingleton<UsageSpool>();
        builder.Services.AddHostedService(sp => sp.GetRequiredService<UsageSpool>());
        builder.Services.AddSingleton<UsageMeter>();
        if (builder.Configuration.GetValue("Metering:Writer", true))
            builder.Services.AddHostedService(sp => ActivatorUtilities.CreateInstance<UsageWriter>(sp).Observe());
        return builder;
    }
}
