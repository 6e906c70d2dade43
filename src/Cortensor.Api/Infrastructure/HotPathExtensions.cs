using Cortensor.Api.Catalog;
using Cortensor.Api.Inference;
using Cortensor.Api.Keys;
using Cortensor.Api.Limits;
using Cortensor.Api.Metering;
using Cortensor.Api.Routing;
using StackExchange.Redis;
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
        // The cache's second level and backplane share the Api's one Redis connection.
        builder.Services.AddStackExchangeRedisCache(_ => { });
        builder.Services.AddOptions<Microsoft.Extensions.Caching.StackExchangeRedis.RedisCacheOptions>()
            .Configure<IConnectionMultiplexer>((o, mux) => o.ConnectionMultiplexerFactory = () => Task.FromResult(mux));
        builder.Services.AddOptions<RedisBackplaneOptions>()
            .Configure<IConnectionMultiplexer>((o, mux) => o.ConnectionMultiplexerFactory = () => Task.FromResult(mux));
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
            .WithBackplane(sp => new RedisBackplane(sp.GetRequiredService<Microsoft.Extensions.Options.IOptions<RedisBackplaneOptions>>()));
        builder.Services.AddSingleton<EntitlementCache>();
        builder.Services.AddSingleton<ApiKeyFilter>();
        builder.Services.AddSingleton<AdmissionGate>();
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
        builder.Services.AddSingleton<RouterHttpClient>();
        builder.Services.AddSingleton<RouterBalancer>();
        builder.Services.AddSingleton<RouterForwarder>();
        builder.Services.AddHostedService<RouterHealthProbe>();
        builder.Services.AddHealthChecks().AddCheck<RouterPoolsHealthCheck>("routers");
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
        builder.Services.AddSingleton<LedgerReconciler>();
        builder.Services.AddHostedService(sp => sp.GetRequiredService<LedgerReconciler>());
        // Writers per replica; every replica's writers share one consumer group.
        var writers = builder.Configuration.GetValue("Metering:Writers", 2);
        for (var i = 0; i < writers; i++)
        {
            var index = i;
            builder.Services.AddSingleton<IHostedService>(sp => ActivatorUtilities.CreateInstance<UsageWriter>(sp, index).Observe());
        }
        return builder;
    }
}
