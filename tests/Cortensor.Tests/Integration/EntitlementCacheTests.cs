using Cortensor.Api.Data;
using Cortensor.Api.Keys;
using Cortensor.Api.Limits;
using Microsoft.AspNetCore.Http;
using Cortensor.Tests.Fixtures;
using Microsoft.EntityFrameworkCore;
using Microsoft.Extensions.DependencyInjection;
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
    [InlineData("ctr_live_012345678901234567890123456789012345678901!")]
    public async Task MalformedKeysAreRejectedBeforeAnyLookup(string key)
    {
        var (cache, _) = await CreateAsync();
        using var throttle = new FailedKeyThrottle(Microsoft.Extensions.Options.Options.Create(new KeyCheckOptions()), TimeProvider.System);
        var filter = new ApiKeyFilter(cache, throttle, TimeProvider.System, Microsoft.Extensions.Logging.Abstractions.NullLogger<ApiKeyFilter>.Instance);

        var (status, reachedHandler) = await AuthenticateAsync(filter, key);
        Assert.Equal(StatusCodes.Status401Unauthorized, status);
        Assert.False(reachedHandler);
        Assert.Equal(0, cache.DatabaseLookups);

        // The contrast that shows the count would move: a well-formed unknown key is looked up.
        var (unknownStatus, _) = await AuthenticateAsync(filter, ApiKeyFormat.Generate("live"));
        Assert.Equal(StatusCodes.Status401Unauthorized, unknownStatus);
        Assert.Equal(1, cache.DatabaseLookups);
    }

    [Fact]
    public async Task GeneratedKeysCarry256RandomBitsAndAreStoredOnlyAsAHash()
    {
        var (_, services) = await CreateAsync();
        using var scope = services.CreateScope();
        var db = scope.ServiceProvider.GetRequiredService<PortalDbContext>();
        var org = new Organization { Name = "hash only", PlanId = "free" };
        db.Organizations.Add(org);
        await db.SaveChangesAsync();

        var created = await scope.ServiceProvider.GetRequiredService<KeyService>().CreateKeyAsync(
            org.Id, "stored", "live", null, [], null, null, null, AuditActor.System, CancellationToken.None);
        var key = created.Plaintext;
        Assert.Matches("^ctr_live_[0-9A-Za-z]{43}$", key); // 62^43 > 2^256
        Assert.NotEqual(key, (await scope.ServiceProvider.GetRequiredService<KeyService>().CreateKeyAsync(
            org.Id, "other", "live", null, [], null, null, null, AuditActor.System, CancellationToken.None)).Plaintext);

        // The stored row, read back as Postgres holds it: the SHA-256 of the key and its first 13 characters, nothing more.
        var connection = (Npgsql.NpgsqlConnection)db.Database.GetDbConnection();
        await connection.OpenAsync();
        await using (var read = new Npgsql.NpgsqlCommand("SELECT hash, start, row_to_json(k)::text FROM api_keys k WHERE id = @id", connection))
        {
            read.Parameters.AddWithValue("id", created.Key.Id);
            await using var row = await read.ExecuteReaderAsync();
            Assert.True(await row.ReadAsync());
            Assert.Equal(System.Security.Cryptography.SHA256.HashData(System.Text.Encoding.ASCII.GetBytes(key)), (byte[])row[0]);
            Assert.Equal(key[..13], row.GetString(1));
            Assert.DoesNotContain(key[13..], row.GetString(2), StringComparison.Ordinal);
        }
        // Nor anywhere else in the database (the audit trail of the creation included).
        var tables = await db.Database.SqlQueryRaw<string>(
            "SELECT table_name AS \"Value\" FROM information_schema.tables WHERE table_schema = 'public' AND table_type = 'BASE TABLE'").ToListAsync();
        var dump = new System.Text.StringBuilder();
        foreach (var table in tables)
        {
            await using var rows = new Npgsql.NpgsqlCommand($"SELECT coalesce(string_agg(t::text, '|'), '') FROM \"{table}\" t", connection);
            dump.Append(await rows.ExecuteScalarAsync()).Append('|');
        }
        Assert.Contains(created.Key.Id.ToString(), dump.ToString()); // the dump does see the key's row and its audit entry
        Assert.DoesNotContain(key[13..], dump.ToString(), StringComparison.Ordinal);
    }

    private static async Task<(int Status, bool ReachedHandler)> AuthenticateAsync(ApiKeyFilter filter, string key)
    {
        var http = new DefaultHttpContext();
        http.Request.Headers.Authorization = "Bearer " + key;
        var reached = false;
        var result = await filter.InvokeAsync(new DefaultEndpointFilterInvocationContext(http), _ =>
        {
            reached = true;
            return ValueTask.FromResult<object?>(Results.Ok());
        });
        return (result is IStatusCodeHttpResult { StatusCode: { } status } ? status : 200, reached);
    }

    private async Task<(EntitlementCache, ServiceProvider)> CreateAsync(string? redis = null)
    {
        var connectionString = await infrastructure.CreateDatabaseAsync();
        var mux = await ConnectionMultiplexer.ConnectAsync(redis ?? infrastructure.RedisConnectionString);
        // Registered as the Api registers them, so KeyService and the gate get what they ask for.
        var services = new ServiceCollection()
            .AddLogging()
            .AddDbContext<PortalDbContext>(o => { o.UseNpgsql(connectionString); PortalDbContext.Configure(o); })
            .AddSingleton<IConnectionMultiplexer>(mux)
            .AddSingleton(TimeProvider.System)
            .AddSingleton<IFusionCache>(new FusionCache(new FusionCacheOptions()))
            .AddSingleton<EntitlementCache>()
            .AddSingleton(Npgsql.NpgsqlDataSource.Create(connectionString))
            .AddSingleton<HotCounters>()
            .AddSingleton<IKeyProvider, BuiltinKeyProvider>()
            .AddScoped<KeyService>()
            .BuildServiceProvider();
        return (services.GetRequiredService<EntitlementCache>(), services);
    }
}
