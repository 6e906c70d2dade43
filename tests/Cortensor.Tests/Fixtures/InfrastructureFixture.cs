using Cortensor.Api.Data;
using Microsoft.EntityFrameworkCore;
using Npgsql;
using StackExchange.Redis;

namespace Cortensor.Tests.Fixtures;

/// <summary>
/// Real Postgres and Redis for integration tests, shared by a test collection. Each test that
/// needs isolation asks for its own database with <see cref="CreateDatabaseAsync"/>.
/// </summary>
public sealed class InfrastructureFixture : IAsyncLifetime
{
    private const string PostgresPassword = "integration-tests";
    private const string RedisPassword = "integration-tests";

    public LocalServer Postgres { get; private set; } = null!;
    public LocalServer Redis { get; private set; } = null!;

    public string RedisConnectionString => $"127.0.0.1:{Redis.Port},password={RedisPassword},abortConnect=false";

    // Timeout=60: opening a connection once took over the default 15 s while the whole fast loop created and migrated
    // its databases on two cores; a slow connect is load, not a failure of what the tests check.
    public string ConnectionString(string database) =>
        $"Host=127.0.0.1;Port={Postgres.Port};Username=postgres;Password={PostgresPassword};Database={database};Pooling=true;Timeout=60";

    public async Task InitializeAsync()
    {
        try
        {
            await StartAsync();
        }
        catch
        {
            // xUnit does not dispose a fixture whose start failed: leave no server behind.
            await DisposeAsync();
            throw;
        }
    }

    private async Task StartAsync()
    {
        Postgres = LocalServer.Start("local-postgres.sh", (port, data) => new Dictionary<string, string>
        {
            ["PGPORT"] = port.ToString(), ["PGDATA"] = data, ["POSTGRES_PASSWORD"] = PostgresPassword,
        });
        Redis = LocalServer.Start("local-redis.sh", (port, data) => new Dictionary<string, string>
        {
            ["REDIS_PORT"] = port.ToString(), ["REDIS_DATA"] = data, ["REDIS_PASSWORD"] = RedisPassword,
        });
        await WaitUntilAsync(async () =>
        {
            await using var connection = new NpgsqlConnection(ConnectionString("postgres"));
            await connection.OpenAsync();
        }, Postgres, "Postgres");
        await WaitUntilAsync(async () =>
        {
            await using var mux = await ConnectionMultiplexer.ConnectAsync(RedisConnectionString.Replace("abortConnect=false", "abortConnect=true"));
            await mux.GetDatabase().PingAsync();
        }, Redis, "Redis");
    }

    /// <summary>A fresh database with the Portal schema and seed data applied by the real migrations.</summary>
    public async Task<string> CreateDatabaseAsync()
    {
        var name = "portal_" + Guid.NewGuid().ToString("N")[..12];
        var options = new DbContextOptionsBuilder<PortalDbContext>().UseNpgsql(ConnectionString(name));
        PortalDbContext.Configure(options);
        await using var db = new PortalDbContext(options.Options);
        await db.Database.MigrateAsync();
        return ConnectionString(name);
    }

    public async Task DisposeAsync()
    {
        try
        {
            if (Postgres is not null) await Postgres.DisposeAsync();
        }
        finally
        {
            if (Redis is not null) await Redis.DisposeAsync();
        }
    }

    /// <summary>Until the server answers a real request (not just a TCP connect), for at most a minute.</summary>
    private static async Task WaitUntilAsync(Func<Task> probe, LocalServer server, string what)
    {
        Exception? last = null;
        try
        {
            await Eventually.WaitUntilAsync(async () =>
            {
                if (server.HasExited) throw new InvalidOperationException($"{what} exited while starting");
                try
                {
                    await probe();
                    return true;
                }
                catch (Exception ex) when (ex is NpgsqlException or RedisException or System.Net.Sockets.SocketException or TimeoutException)
                {
                    last = ex;
                    return false;
                }
            }, TimeSpan.FromSeconds(60), $"{what} did not start", TimeSpan.FromMilliseconds(200));
        }
        catch (TimeoutException ex)
        {
            throw new InvalidOperationException(ex.Message, last);
        }
    }
}

[CollectionDefinition(Name)]
public sealed class InfrastructureCollection : ICollectionFixture<InfrastructureFixture>
{
    public const string Name = "Postgres and Redis";
}
