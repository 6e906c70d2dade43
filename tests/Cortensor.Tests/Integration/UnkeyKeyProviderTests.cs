using Cortensor.Api.Data;
using Cortensor.Api.Keys;
using Cortensor.Api.Keys.Unkey;
using Cortensor.Api.Limits;
using Cortensor.Tests.Fixtures;
using Microsoft.EntityFrameworkCore;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging.Abstractions;
using StackExchange.Redis;
using ZiggyCreatures.Caching.Fusion;

namespace Cortensor.Tests.Integration;

/// <summary>
/// The Unkey key provider behind the key service and the entitlement snapshot, on real Postgres and Redis and the Unkey
/// stand-in over HTTP: Unkey is asked once per snapshot, its limits and verdicts shape the snapshot, and when it
/// cannot be reached nothing is refused as unknown and nothing is half made.
/// </summary>
[Collection(InfrastructureCollection.Name)]
public class UnkeyKeyProviderTests(InfrastructureFixture infrastructure, UnkeyStandIn unkey) : IClassFixture<UnkeyStandIn>
{
    [Fact]
    public async Task AKeyIssuedByUnkeyTakesItsLimitFromUnkeyAndIsThenServedWithoutAskingUnkey()
    {
        var (cache, services) = await CreateAsync(unkey.CreateClient());
        var (org, created) = await CreateKeyAsync(services, requestsPerMinute: 10);
        using (var scope = services.CreateScope())
        {
            var mapping = await scope.ServiceProvider.GetRequiredService<PortalDbContext>().Set<UnkeyKey>().SingleAsync(m => m.ApiKeyId == created.Key.Id);
            Assert.StartsWith("key_", mapping.UnkeyKeyId);
        }

        var before = unkey.Traffic.Verifications;
        var (outcome, snapshot) = await cache.LookupAsync(created.Key.Hash, CancellationToken.None, presentedKey: created.Plaintext);
        Assert.Equal(KeyLookupOutcome.Found, outcome);
        Assert.Equal(10, snapshot!.RequestsPerMinute);             // the key's own limit, held in Unkey
        Assert.Equal(100_000, snapshot.TokensPerMinute);            // "no key limit" in Unkey: the free plan's
        Assert.Equal(org, snapshot.OrganizationId);
        for (var i = 0; i < 20; i++) await cache.LookupAsync(created.Key.Hash, CancellationToken.None, presentedKey: created.Plaintext);
        Assert.Equal(before + 1, unkey.Traffic.Verifications);
    }

    [Fact]
    public async Task PausingAndRevokingGoThroughUnkeyAndTheRebuiltSnapshotSaysSo()
    {
        var (cache, services) = await CreateAsync(unkey.CreateClient());
        var (_, created) = await CreateKeyAsync(services);
        var client = unkey.CreateClient();

        using (var scope = services.CreateScope())
            await scope.ServiceProvider.GetRequiredService<KeyService>().SetKeyStatusAsync(created.Key.Id, ApiKeyStatus.Paused, null, AuditActor.System, CancellationToken.None);
        Assert.Equal(UnkeyVerification.Disabled, (await client.VerifyKeyAsync(new UnkeyVerifyKey(created.Plaintext))).Data.Code);
        Assert.Equal(ApiKeyStatus.Paused, (await cache.LookupAsync(created.Key.Hash, CancellationToken.None, presentedKey: created.Plaintext)).Snapshot!.KeyStatus);

        using (var scope = services.CreateScope())
            await scope.ServiceProvider.GetRequiredService<KeyService>().SetKeyStatusAsync(created.Key.Id, ApiKeyStatus.Revoked, null, AuditActor.System, CancellationToken.None);
        Assert.Equal(UnkeyVerification.NotFound, (await client.VerifyKeyAsync(new UnkeyVerifyKey(created.Plaintext))).Data.Code);
        Assert.Equal(ApiKeyStatus.Revoked, (await cache.LookupAsync(created.Key.Hash, CancellationToken.None, presentedKey: created.Plaintext)).Snapshot!.KeyStatus);
    }

    [Fact]
    public async Task AChangeOfAKeysSettingsReplacesThemInUnkeyExpiryClearedIncluded()
    {
        var (_, services) = await CreateAsync(unkey.CreateClient());
        using var scope = services.CreateScope();
        var db = scope.ServiceProvider.GetRequiredService<PortalDbContext>();
        var org = new Organization { Name = "unkey settings", PlanId = "free" };
        db.Organizations.Add(org);
        await db.SaveChangesAsync();
        var created = await scope.ServiceProvider.GetRequiredService<KeyService>().CreateKeyAsync(
            org.Id, "before", "live", DateTimeOffset.UtcNow.AddDays(1), [], 10, null, null, AuditActor.System, CancellationToken.None);
        var client = unkey.CreateClient();
        Assert.NotNull((await client.VerifyKeyAsync(new UnkeyVerifyKey(created.Plaintext))).Data.Expires);

        await scope.ServiceProvider.GetRequiredService<IKeyProvider>().UpdateAsync(created.Key.Id, new KeySettings("after", null, null, 500), db, CancellationToken.None);
        var after = (await client.VerifyKeyAsync(new UnkeyVerifyKey(created.Plaintext, [new("requests", Cost: 0), new("tokens", Cost: 0)]))).Data;
        Assert.Equal("after", after.Name);
        Assert.Null(after.Expires);
        Assert.Equal(UnkeyKeyProvider.NoKeyLimit, after.Ratelimits!.Single(r => r.Name == "requests").Limit);
        Assert.Equal(500, after.Ratelimits!.Single(r => r.Name == "tokens").Limit);
    }

    [Fact]
    public async Task AKeyDeletedInUnkeyBehindThePortalsBackIsNotAKey()
    {
        var (cache, services) = await CreateAsync(unkey.CreateClient());
        var (_, created) = await CreateKeyAsync(services);
        var keyId = (await unkey.CreateClient().VerifyKeyAsync(new UnkeyVerifyKey(created.Plaintext))).Data.KeyId!;
        await unkey.CreateClient().DeleteKeyAsync(new UnkeyDeleteKey(keyId));
        Assert.Equal(KeyLookupOutcome.Unknown, (await cache.LookupAsync(created.Key.Hash, CancellationToken.None, presentedKey: created.Plaintext)).Outcome);
    }

    [Fact]
    public async Task WithUnkeyUnreachableANewSnapshotIsUnavailableNotUnknownAndNoKeyIsCreated()
    {
        var (_, services) = await CreateAsync(unkey.CreateClient());
        var (org, created) = await CreateKeyAsync(services);

        // The same database and key, with Unkey gone.
        var (cut, cutServices) = await CreateAsync(unkey.CreateClient(baseAddress: new Uri("http://127.0.0.1:1")), services);
        Assert.Equal(KeyLookupOutcome.Unavailable, (await cut.LookupAsync(created.Key.Hash, CancellationToken.None, presentedKey: created.Plaintext)).Outcome);

        using var scope = cutServices.CreateScope();
        var db = scope.ServiceProvider.GetRequiredService<PortalDbContext>();
        var keys = await db.ApiKeys.CountAsync(k => k.OrganizationId == org);
        await Assert.ThrowsAsync<KeyProviderUnavailableException>(() => scope.ServiceProvider.GetRequiredService<KeyService>().CreateKeyAsync(
            org, "while down", "live", null, [], null, null, null, AuditActor.System, CancellationToken.None));
        await Assert.ThrowsAsync<KeyProviderUnavailableException>(() => scope.ServiceProvider.GetRequiredService<KeyService>().SetKeyStatusAsync(
            created.Key.Id, ApiKeyStatus.Revoked, null, AuditActor.System, CancellationToken.None));
        Assert.Equal(keys, await db.ApiKeys.CountAsync(k => k.OrganizationId == org));
        Assert.Equal(ApiKeyStatus.Active, (await db.ApiKeys.AsNoTracking().SingleAsync(k => k.Id == created.Key.Id)).Status);
    }

    private static async Task<(Guid Organization, CreatedKey Key)> CreateKeyAsync(ServiceProvider services, int? requestsPerMinute = null)
    {
        using var scope = services.CreateScope();
        var db = scope.ServiceProvider.GetRequiredService<PortalDbContext>();
        var org = new Organization { Name = "unkey", PlanId = "free" };
        db.Organizations.Add(org);
        await db.SaveChangesAsync();
        var created = await scope.ServiceProvider.GetRequiredService<KeyService>().CreateKeyAsync(
            org.Id, "unkey key", "live", null, [], requestsPerMinute, null, null, AuditActor.System, CancellationToken.None);
        return (org.Id, created);
    }

    /// <summary>The key service and snapshot cache as the Api registers them with Keys:Provider=unkey (a new database, or <paramref name="sameDatabaseAs"/>'s).</summary>
    private async Task<(EntitlementCache, ServiceProvider)> CreateAsync(IUnkeyApi client, ServiceProvider? sameDatabaseAs = null)
    {
        string connectionString;
        if (sameDatabaseAs is null) connectionString = await infrastructure.CreateDatabaseAsync();
        else
        {
            using var scope = sameDatabaseAs.CreateScope();
            connectionString = scope.ServiceProvider.GetRequiredService<PortalDbContext>().Database.GetConnectionString()!;
        }
        var mux = await ConnectionMultiplexer.ConnectAsync(infrastructure.RedisConnectionString);
        var services = new ServiceCollection()
            .AddLogging()
            .AddDbContext<PortalDbContext>(o => { o.UseNpgsql(connectionString); PortalDbContext.Configure(o); })
            .AddSingleton<IConnectionMultiplexer>(mux)
            .AddSingleton(TimeProvider.System)
            .AddSingleton<IFusionCache>(new FusionCache(new FusionCacheOptions()))
            .AddSingleton(client)
            .AddSingleton(Microsoft.Extensions.Options.Options.Create(new UnkeyOptions { ApiId = UnkeyStandIn.ApiId, RootKey = UnkeyStandIn.RootKey }))
            .AddSingleton<IKeyProvider, UnkeyKeyProvider>()
            .AddSingleton<EntitlementCache>()
            .AddSingleton(Npgsql.NpgsqlDataSource.Create(connectionString))
            .AddSingleton<HotCounters>()
            .AddScoped<KeyService>()
            .BuildServiceProvider();
        return (services.GetRequiredService<EntitlementCache>(), services);
    }
}
