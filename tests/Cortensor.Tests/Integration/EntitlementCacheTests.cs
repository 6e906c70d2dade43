using Cortensor.Api.Data;
using Cortensor.Api.Keys;
using Cortensor.Tests.Fixtures;
using Microsoft.EntityFrameworkCore;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging.Abstractions;
using StackExchange.Redis;
using ZiggyCreatures.Caching.Fusion;

namespace Cortensor.Tests.Integration;

/// <summary>Key snapshots on real Postgres and Redis: Postgres is asked once, then memory answers.</summary>
[Collection(InfrastructureCollection.Name)]
public class EntitlementCacheTests(InfrastructureFixture infrastructure)
{
    [Fact]
    public async Task AnUnknownKeyReachesPostgresOncePerNegativeCachePeriod()
    {
        var (cache, _) = await CreateAsync();
        var hash = ApiKeyFormat.Hash(ApiKeyFormat.Generate("live"));
        for (var i = 0; i < 50; i++)
            Assert.Equal(KeyLookupOutcome.Unknown, (await cache.LookupAsync(hash, CancellationToken.None)).Outcome);
        Assert.Equal(1, cache.DatabaseLookups);
    }

    [Fact]
    public async Task AKnownKeyResolvesToItsPlanLimitsAndModelsAndIsThenServedFromMemory()
    {
        var (cache, services) = await CreateAsync();
        var plaintext = ApiKeyFormat.Generate("test");
        using (var scope = services.CreateScope())
        {
            var db = scope.ServiceProvider.GetRequiredService<PortalDbContext>();
            var org = new Organization { Name = "cache", PlanId = "free" };
            db.Organizations.Add(org);
            db.ApiKeys.Add(new ApiKey
            {
                OrganizationId = org.Id, Name = "k", Environment = "test", Start = ApiKeyFormat.Start(plaintext), Hash = ApiKeyFormat.Hash(plaintext),
                RequestsPerMinute = 10, AllowedModels = ["gpt-oss-20b", "gpt-oss-120b"],
            });
            await db.SaveChangesAsync();
        }

        var (outcome, snapshot) = await cache.LookupAsync(ApiKeyFormat.Hash(plaintext), CancellationToken.None);
        Assert.Equal(KeyLookupOutcome.Found, outcome);
        Assert.Equal(10, snapshot!.RequestsPerMinute);          // the key's own, lower limit
        Assert.Equal(100_000, snapshot.TokensPerMinute);          // the plan's
        Assert.Equal(["gpt-oss-20b"], snapshot.Models);           // free plan ∩ key restriction
        for (var i = 0; i < 20; i++) await cache.LookupAsync(ApiKeyFormat.Hash(plaintext), CancellationToken.None);
        Assert.Equal(1, cache.DatabaseLookups);
    }

    [Fact]
    public async Task WithoutRedisAnUnknownKeyIsUnavailableNotUnknown()
    {
        var (cache, _) = await CreateAsync(redis: "127.0.0.1:1,abortConnect=false,connectTimeout=100");
        var (outcome, _) = await cache.LookupAsync(ApiKeyFormat.Hash(ApiKeyFormat.Generate("live")), CancellationToken.None);
        Assert.Equal(KeyLookupOutcome.Unavailable, outcome);
        Assert.Equal(0, cache.DatabaseLookups);
    }

    [Theory]
    [InlineData("ctr_live_short")]
    [InlineData("sk-proj-abcdefghijklmnopqrstuvwxyz0123456789ABCDEFG")]
    [InlineData("ctr_prod_0123456789012345678901234567890123456789012")]
    public void MalformedKeysAreRejectedBeforeAnyLookup(string key) => Assert.False(ApiKeyFormat.LooksValid(key));

    [Fact]
    public void GeneratedKeysCarry256RandomBitsAndAreStoredOnlyAsAHash()
    {
        var key = ApiKeyFormat.Generate("live");
        Assert.True(ApiKeyFormat.LooksValid(key));
        Assert.Equal(9 + 43, key.Length);
        Assert.Equal(32, ApiKeyFormat.Hash(key).Length);
        Assert.Equal(key[..13], ApiKeyFormat.Start(key));
        Assert.NotEqual(key, ApiKeyFormat.Generate("live"));
    }

    private async Task<(EntitlementCache, ServiceProvider)> CreateAsync(string? redis = null)
    {
        var connectionString = await infrastructure.CreateDatabaseAsync();
        var services = new ServiceCollection()
            .AddDbContext<PortalDbContext>(o => { o.UseNpgsql(connectionString); PortalDbContext.Configure(o); })
            .BuildServiceProvider();
        var mux = await ConnectionMultiplexer.ConnectAsync(redis ?? infrastructure.RedisConnectionString);
        var fusion = new FusionCache(new FusionCacheOptions());
        return (new EntitlementCache(fusion, services.GetRequiredService<IServiceScopeFactory>(), mux, NullLogger<EntitlementCache>.Instance), services);
    }
}
