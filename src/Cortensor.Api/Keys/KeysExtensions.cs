using Microsoft.Extensions.DependencyInjection.Extensions;
using StackExchange.Redis;
using ZiggyCreatures.Caching.Fusion;
using ZiggyCreatures.Caching.Fusion.Backplane.StackExchangeRedis;
using ZiggyCreatures.Caching.Fusion.Serialization.SystemTextJson;

namespace Cortensor.Api.Keys;

public static class KeysExtensions
{
    /// <summary>Step 2 of the hot path: keys, their entitlement snapshots (memory, Redis, Postgres) and the failed-key throttle.</summary>
    public static WebApplicationBuilder AddKeys(this WebApplicationBuilder builder)
    {
        builder.Services.TryAddSingleton(TimeProvider.System);
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
                // A snapshot due for a refresh while Postgres is away is served as it was after a second, the refresh
                // going on behind: without this, every request of the key waited out EF Core's retries (about a minute).
                o.FactorySoftTimeout = TimeSpan.FromSeconds(1);
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
        builder.AddKeyProvider();
        builder.Services.AddSingleton<EntitlementCache>();
        builder.Services.AddOptions<KeyCheckOptions>().BindConfiguration(KeyCheckOptions.Section)
            .Validate(o => o.FailedAuthenticationsPerMinute > 0, "Keys:FailedAuthenticationsPerMinute must be positive.").ValidateOnStart();
        builder.Services.AddSingleton<FailedKeyThrottle>();
        builder.Services.AddSingleton<ApiKeyFilter>();
        builder.Services.AddScoped<KeyService>();
        return builder;
    }
}
