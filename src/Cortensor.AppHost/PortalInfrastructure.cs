using System.Diagnostics;
using Microsoft.Extensions.DependencyInjection;
using Npgsql;
using StackExchange.Redis;

namespace Cortensor.AppHost;

/// <summary>
/// Postgres (the Supabase stand-in) and Redis. With a working container runtime, or when
/// publishing, they are the standard Aspire container resources; without one they run as local
/// processes under the AppHost. <c>Infrastructure:Mode</c> = auto | container | local.
/// </summary>
public static class PortalInfrastructure
{
    public static (IResourceBuilder<IResourceWithConnectionString> Database, IResourceBuilder<IResourceWithConnectionString> Redis)
        AddPortalInfrastructure(this IDistributedApplicationBuilder builder)
    {
        var postgresPassword = builder.AddParameter("postgres-password", secret: true);
        var redisPassword = builder.AddParameter("redis-password", secret: true);

        if (UseContainers(builder))
        {
            var database = builder.AddPostgres("postgres", password: postgresPassword).WithDataVolume()
                .AddDatabase(LaunchTopology.Database, "portal");
            var redisFlags = $"{RedisForMoney} --maxmemory {builder.Configuration["Infrastructure:RedisMaxMemory"] ?? "1gb"}";
            var redis = builder.AddRedis(LaunchTopology.Redis, password: redisPassword).WithDataVolume().WithPersistence()
                .WithArgs(context =>
                {
                    // Aspire starts Redis as `/bin/sh -c "redis-server ..."`: flags must go inside that one command string.
                    for (var i = context.Args.Count - 1; i >= 0; i--)
                        if (context.Args[i] is string command && command.StartsWith("redis-server", StringComparison.Ordinal))
                        {
                            context.Args[i] = $"{command} {redisFlags}";
                            break;
                        }
                });
            return (database, redis);
        }

        var dataRoot = DataRoot(builder);
        var scripts = FindScriptsDirectory(builder.AppHostDirectory);

        var postgres = builder.AddResource(new LocalPostgresResource("postgres", scripts, postgresPassword.Resource))
            .WithArgs(Path.Combine(scripts, "local-postgres.sh"))
            .WithEndpoint(name: "tcp", scheme: "tcp", env: "PGPORT")
            .WithEnvironment("PGDATA", Path.Combine(dataRoot, "postgres"))
            .WithEnvironment("POSTGRES_PASSWORD", postgresPassword)
            .WithServerHealthCheck(builder, "postgres-server",
                (services, key, cs) => services.AddHealthChecks().AddNpgSql(_ => cs(), name: key));

        var localRedis = builder.AddResource(new LocalRedisResource(LaunchTopology.Redis, scripts, redisPassword.Resource))
            .WithArgs(Path.Combine(scripts, "local-redis.sh"))
            .WithEndpoint(name: "tcp", scheme: "tcp", env: "REDIS_PORT")
            .WithEnvironment("REDIS_DATA", Path.Combine(dataRoot, "redis"))
            .WithEnvironment("REDIS_PASSWORD", redisPassword)
            .WithServerHealthCheck(builder, "redis-server",
                (services, key, cs) => services.AddHealthChecks().AddRedis(_ => ConnectionMultiplexer.Connect(cs()), name: key));

        return (postgres, localRedis);
    }

    /// <summary>
    /// Redis holds the usage buffer and the hot balances: an append-only file fsynced every second (snapshots alone
    /// lose up to a minute), and a full Redis refuses writes rather than evicting keys (the Api spools usage to disk
    /// when Redis refuses it; eviction would drop the usage stream silently). Same flags as scripts/local-redis.sh;
    /// the memory bound is Infrastructure:RedisMaxMemory (default 1gb), kept below the container's memory limit.
    /// </summary>
    private const string RedisForMoney = "--appendonly yes --appendfsync everysec --maxmemory-policy noeviction";

    /// <summary>Where this stack keeps local state (database and Redis files, the usage spool): one directory per stack.</summary>
    public static string DataRoot(IDistributedApplicationBuilder builder) =>
        builder.Configuration["Infrastructure:DataDirectory"] is { Length: > 0 } configured
            ? configured
            : Path.Combine(Path.GetTempPath(), "cortensor", "dev");

    private static IResourceBuilder<T> WithServerHealthCheck<T>(
        this IResourceBuilder<T> resource, IDistributedApplicationBuilder builder, string key,
        Action<IServiceCollection, string, Func<string>> register) where T : IResourceWithServerConnection
    {
        // A check that talks to the server: the orchestrator's proxy accepts TCP before the server does.
        register(builder.Services, key, () => resource.Resource.ServerConnectionString.GetValueAsync(default).AsTask().GetAwaiter().GetResult()
            ?? throw new InvalidOperationException($"{resource.Resource.Name} has no address yet"));
        return resource.WithHealthCheck(key);
    }

    private static bool UseContainers(IDistributedApplicationBuilder builder)
    {
        if (builder.ExecutionContext.IsPublishMode) return true;
        return builder.Configuration["Infrastructure:Mode"]?.ToLowerInvariant() switch
        {
            "container" => true,
            "local" => false,
            _ => ContainerRuntimeIsHealthy(),
        };
    }

    /// <summary>`docker info` fails fast without a daemon; a client alone is not a runtime.</summary>
    private static bool ContainerRuntimeIsHealthy()
    {
        try
        {
            using var docker = Process.Start(new ProcessStartInfo("docker", "info --format {{.ServerVersion}}")
            {
                RedirectStandardOutput = true, RedirectStandardError = true, UseShellExecute = false,
            });
            if (docker is null) return false;
            if (!docker.WaitForExit(TimeSpan.FromSeconds(5))) { docker.Kill(); return false; }
            return docker.ExitCode == 0;
        }
        catch (System.ComponentModel.Win32Exception)
        {
            return false;
        }
    }

    private static string FindScriptsDirectory(string start)
    {
        for (var dir = new DirectoryInfo(start); dir is not null; dir = dir.Parent)
        {
            var candidate = Path.Combine(dir.FullName, "scripts", "local-postgres.sh");
            if (File.Exists(candidate)) return Path.GetDirectoryName(candidate)!;
        }
        throw new DirectoryNotFoundException($"scripts/local-postgres.sh not found above {start}");
    }
}

/// <summary>A local resource whose server (not database) connection the health check uses.</summary>
public interface IResourceWithServerConnection : IResourceWithConnectionString
{
    ReferenceExpression ServerConnectionString { get; }
}

/// <summary>A PostgreSQL server run as a local process; its connection string names the portal database.</summary>
public sealed class LocalPostgresResource(string name, string scripts, ParameterResource password)
    : ExecutableResource(name, "bash", scripts), IResourceWithServerConnection
{
    private EndpointReference Endpoint => new(this, "tcp");

    public ReferenceExpression ServerConnectionString => ReferenceExpression.Create(
        $"Host={Endpoint.Property(EndpointProperty.Host)};Port={Endpoint.Property(EndpointProperty.Port)};Username=postgres;Password={password};Database=postgres");

    // EF Core's migrator creates the portal database on first start.
    public ReferenceExpression ConnectionStringExpression => ReferenceExpression.Create(
        $"Host={Endpoint.Property(EndpointProperty.Host)};Port={Endpoint.Property(EndpointProperty.Port)};Username=postgres;Password={password};Database=portal");
}

/// <summary>A Redis server run as a local process.</summary>
public sealed class LocalRedisResource(string name, string scripts, ParameterResource password)
    : ExecutableResource(name, "bash", scripts), IResourceWithServerConnection
{
    private EndpointReference Endpoint => new(this, "tcp");

    public ReferenceExpression ServerConnectionString => ConnectionStringExpression;

    public ReferenceExpression ConnectionStringExpression => ReferenceExpression.Create(
        $"{Endpoint.Property(EndpointProperty.Host)}:{Endpoint.Property(EndpointProperty.Port)},password={password}");
}
