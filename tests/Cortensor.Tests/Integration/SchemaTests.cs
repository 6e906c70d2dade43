using System.Diagnostics;
using Cortensor.Api.Data;
using Cortensor.Tests.Fixtures;
using Microsoft.EntityFrameworkCore;
using Npgsql;

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

        // The launch catalog as the README states it: models, prices, pools, routers, sessions.
        var models = await db.Models.AsNoTracking().ToListAsync();
        Assert.Equal(Requirements.ModelIds.Order(), models.Select(m => m.Id).Order());
        var poolOf = await db.RouterPoolModels.AsNoTracking().ToDictionaryAsync(p => p.ModelId, p => p.PoolId);
        foreach (var expected in Requirements.LaunchCatalog)
        {
            var model = models.Single(m => m.Id == expected.Id);
            Assert.Equal(expected.InputPricePer1K, model.InputPricePer1K);
            Assert.Equal(expected.OutputPricePer1K, model.OutputPricePer1K);
            Assert.True(model.Enabled, expected.Id);
            Assert.Equal(expected.Pool, poolOf[expected.Id]);
            var routers = await db.Routers.AsNoTracking().Where(r => r.PoolId == expected.Pool).Select(r => r.Id).ToListAsync();
            Assert.Equal(expected.Routers, routers.Count);
            var sessions = await db.RouterSessions.AsNoTracking().Where(s => routers.Contains(s.RouterId)).Select(s => s.Id).ToListAsync();
            Assert.Equal(expected.Sessions, sessions.Order());
        }

        // The plan table of docs/api.md.
        var plans = await db.Plans.AsNoTracking().ToListAsync();
        Assert.Equal(Requirements.Plans.Select(p => p.Id).Order(), plans.Select(p => p.Id).Order());
        foreach (var expected in Requirements.Plans)
        {
            var plan = plans.Single(p => p.Id == expected.Id);
            Assert.Equal(expected.RequestsPerMinute, plan.RequestsPerMinute);
            Assert.Equal(expected.TokensPerMinute, plan.TokensPerMinute);
            Assert.Equal(expected.MonthlyTokenQuota, plan.MonthlyTokenQuota);
            Assert.Equal(expected.BillingMode, plan.BillingMode == BillingMode.MonthlyQuota ? "monthly_quota" : "prepaid_credits");
            var allowed = await db.ModelAccessPolicies.AsNoTracking().Where(p => p.PlanId == expected.Id && p.Allowed).Select(p => p.ModelId).ToListAsync();
            Assert.Equal(expected.Models, allowed.Order());
        }

        // The seed's table names, as operators will query them.
        var tables = await db.Database.SqlQueryRaw<string>(
            "SELECT table_name AS \"Value\" FROM information_schema.tables WHERE table_schema = 'public'").ToListAsync();
        foreach (var table in new[] { "users", "organizations", "organization_members", "api_keys", "model_access_policies",
                     "usage_events", "request_logs", "billing_ledger", "plan_subscriptions", "router_pools", "router_pool_models" })
            Assert.Contains(table, tables);
    }

    /// <summary>
    /// Every start of the stack runs `Cortensor.Api migrate` against the existing database (the AppHost's
    /// migrations resource): the schema, the seed, the first administrator and anything else that step
    /// does must come out identical the second time.
    /// </summary>
    [Fact]
    public async Task ApplyingTheMigrationsTwiceChangesNothing()
    {
        var database = "portal_" + Guid.NewGuid().ToString("N")[..12];
        var connectionString = infrastructure.ConnectionString(database);

        await RunMigrateCommandAsync(connectionString);
        var first = await FingerprintAsync(connectionString);
        Assert.Contains(first, t => t.Table == "users" && t.Rows == 1); // the first administrator: something to duplicate
        Assert.Contains(first, t => t.Table == "models" && t.Rows == Requirements.LaunchCatalog.Length);

        await RunMigrateCommandAsync(connectionString);
        var second = await FingerprintAsync(connectionString);

        Assert.Equal(first, second);
    }

    private async Task RunMigrateCommandAsync(string connectionString)
    {
        var info = new ProcessStartInfo("dotnet")
        {
            ArgumentList = { ApiAssembly(), "migrate" },
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            UseShellExecute = false,
        };
        info.Environment[$"ConnectionStrings__{LaunchTopology.Database}"] = connectionString;
        info.Environment[$"ConnectionStrings__{LaunchTopology.Redis}"] = infrastructure.RedisConnectionString;
        info.Environment["Admin__Email"] = "admin@migrations.test";
        info.Environment["Admin__Password"] = "Migrations-test-1";
        info.Environment["Auth__SigningKey"] = "a-signing-key-for-the-migrations-test-0123456789";
        info.Environment["OTEL_SDK_DISABLED"] = "true";
        // The test's own throwaway secrets, as a developer's stack has them.
        info.Environment["DOTNET_ENVIRONMENT"] = "Development";
        info.Environment["ASPNETCORE_ENVIRONMENT"] = "Development";
        using var process = Process.Start(info) ?? throw new InvalidOperationException("could not start the migrate command");
        var output = process.StandardOutput.ReadToEndAsync();
        var errors = process.StandardError.ReadToEndAsync();
        using var timeout = new CancellationTokenSource(TimeSpan.FromMinutes(2));
        try
        {
            await process.WaitForExitAsync(timeout.Token);
        }
        finally
        {
            if (!process.HasExited) process.Kill(entireProcessTree: true);
        }
        Assert.True(process.ExitCode == 0, $"migrate exited with {process.ExitCode}:\n{await output}\n{await errors}");
    }

    /// <summary>The built Cortensor.Api next to this test build (same configuration and framework).</summary>
    private static string ApiAssembly()
    {
        var bin = new DirectoryInfo(AppContext.BaseDirectory.TrimEnd(Path.DirectorySeparatorChar));
        var path = Path.Combine(Repository.Root, "src", "Cortensor.Api", "bin", bin.Parent!.Name, bin.Name, "Cortensor.Api.dll");
        Assert.True(File.Exists(path), $"{path} is missing: build the solution first");
        return path;
    }

    private sealed record TableFingerprint(string Table, long Rows, string Content);

    /// <summary>Every table's row count and a digest of its rows, and a digest of the schema (columns and indexes).</summary>
    private static async Task<List<TableFingerprint>> FingerprintAsync(string connectionString)
    {
        await using var connection = new NpgsqlConnection(connectionString);
        await connection.OpenAsync();
        var tables = new List<string>();
        await using (var list = new NpgsqlCommand("SELECT table_name FROM information_schema.tables WHERE table_schema = 'public' AND table_type = 'BASE TABLE' ORDER BY 1", connection))
        await using (var reader = await list.ExecuteReaderAsync())
            while (await reader.ReadAsync()) tables.Add(reader.GetString(0));

        var result = new List<TableFingerprint>();
        foreach (var table in tables)
        {
            await using var digest = new NpgsqlCommand(
                $"SELECT count(*), coalesce(md5(string_agg(t::text, '|' ORDER BY t::text)), '') FROM \"{table}\" t", connection);
            await using var reader = await digest.ExecuteReaderAsync();
            await reader.ReadAsync();
            result.Add(new TableFingerprint(table, reader.GetInt64(0), reader.GetString(1)));
        }
        await using (var schema = new NpgsqlCommand("""
            SELECT (SELECT md5(string_agg(table_name || '.' || column_name || ':' || data_type || ':' || coalesce(column_default, '') || ':' || is_nullable, ',' ORDER BY table_name, column_name))
                      FROM information_schema.columns WHERE table_schema = 'public')
                || (SELECT md5(string_agg(indexdef, ',' ORDER BY indexdef)) FROM pg_indexes WHERE schemaname = 'public')
            """, connection))
            result.Add(new TableFingerprint("(schema)", tables.Count, (string)(await schema.ExecuteScalarAsync())!));
        return result;
    }
}
