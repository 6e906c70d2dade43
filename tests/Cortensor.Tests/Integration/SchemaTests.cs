using Cortensor.Api.Data;
using Cortensor.Tests.Fixtures;
using Microsoft.EntityFrameworkCore;

namespace Cortensor.Tests.Integration;

[Collection(InfrastructureCollection.Name)]
public class SchemaTests(InfrastructureFixture infrastructure)
{
    [Fact]
    public async Task MigrationsCreateTheSeedEntitiesAndSeedTheLaunchCatalog()
    {
        var connectionString = await infrastructure.CreateDatabaseAsync();
        var options = new DbContextOptionsBuilder<PortalDbContext>().UseNpgsql(connectionString);
        PortalDbContext.Configure(options);
        await using var db = new PortalDbContext(options.Options);

        Assert.Empty(await db.Database.GetPendingMigrationsAsync());
        Assert.Equal(["free", "pro", "scale"], await db.Plans.Select(p => p.Id).OrderBy(p => p).ToListAsync());
        Assert.Equal(LaunchTopology.Models.Count, await db.Models.CountAsync());
        Assert.Equal(LaunchTopology.Pools.Count, await db.RouterPools.CountAsync());
        Assert.Equal(3, await db.Routers.CountAsync(r => r.PoolId == "oss-20b"));
        Assert.Equal(LaunchTopology.Pools.SelectMany(p => p.Routers).Sum(r => r.Sessions.Count), await db.RouterSessions.CountAsync());

        // The seed's table names, as operators will query them.
        var tables = await db.Database.SqlQueryRaw<string>(
            "SELECT table_name AS \"Value\" FROM information_schema.tables WHERE table_schema = 'public'").ToListAsync();
        foreach (var table in new[] { "users", "organizations", "organization_members", "api_keys", "model_access_policies",
                     "usage_events", "request_logs", "billing_ledger", "plan_subscriptions", "router_pools", "router_pool_models" })
            Assert.Contains(table, tables);
    }

    [Fact]
    public async Task ApplyingTheMigrationsTwiceChangesNothing()
    {
        var connectionString = await infrastructure.CreateDatabaseAsync();
        var options = new DbContextOptionsBuilder<PortalDbContext>().UseNpgsql(connectionString);
        PortalDbContext.Configure(options);
        await using var db = new PortalDbContext(options.Options);
        await db.Database.MigrateAsync();
        Assert.Equal(LaunchTopology.Models.Count, await db.Models.CountAsync());
    }
}
