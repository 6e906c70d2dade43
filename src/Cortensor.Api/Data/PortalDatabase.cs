using Microsoft.EntityFrameworkCore;

namespace Cortensor.Api.Data;

public static class PortalDatabase
{
    /// <summary>`Cortensor.Api migrate` applies the migrations and exits; the AppHost runs it before the Api.</summary>
    public static bool IsMigrateCommand(string[] args) => args is ["migrate", ..];

    public static WebApplicationBuilder AddPortalDatabase(this WebApplicationBuilder builder)
    {
        builder.AddNpgsqlDbContext<PortalDbContext>(LaunchTopology.Database,
            configureDbContextOptions: PortalDbContext.Configure);
        return builder;
    }

    public static async Task MigrateAsync(IServiceProvider services, CancellationToken ct = default)
    {
        using var scope = services.CreateScope();
        var db = scope.ServiceProvider.GetRequiredService<PortalDbContext>();
        var log = scope.ServiceProvider.GetRequiredService<ILoggerFactory>().CreateLogger("Cortensor.Migrations");
        var pending = (await db.Database.GetPendingMigrationsAsync(ct)).ToList();
        log.LogInformation("Applying {Count} pending migration(s): {Migrations}", pending.Count, string.Join(", ", pending));
        // EF Core takes a database lock, so replicas racing here apply each migration once.
        await db.Database.MigrateAsync(ct);
        log.LogInformation("Database schema is up to date ({Applied} migrations applied in total)",
            (await db.Database.GetAppliedMigrationsAsync(ct)).Count());
    }
}

public static class OneAtATime
{
    /// <summary>The lock on an organisation's members: removing one, and deleting the account of one.</summary>
    public const string Members = "members";

    /// <summary>The lock on the platform's administrators: making or unmaking one, and deleting the account of one.</summary>
    public const string PlatformAdministrators = "platform-admins";

    /// <summary>
    /// Runs <paramref name="work"/> in a transaction that holds a Postgres advisory lock on (<paramref name="scope"/>,
    /// <paramref name="owner"/>), so a check and the write it allows (count the keys, then add one) happen one request at
    /// a time per owner, on every replica: ten concurrent requests against a cap of five left nine keys before. Inside the
    /// context's execution strategy, as a retrying context requires of a transaction it did not start itself.
    /// </summary>
    public static Task<T> OneAtATimeAsync<T>(this PortalDbContext db, string scope, Guid owner, Func<Task<T>> work, CancellationToken ct) =>
        db.Database.CreateExecutionStrategy().ExecuteAsync(async () =>
        {
            await using var transaction = await db.Database.BeginTransactionAsync(ct);
            await db.LockAsync(scope, owner, ct);
            var result = await work();
            await transaction.CommitAsync(ct);
            return result;
        });

    /// <summary>
    /// Takes the advisory lock on (<paramref name="scope"/>, <paramref name="owner"/>) until the current transaction ends.
    /// Whoever takes several takes them in ascending order of owner, so two such callers cannot wait on each other.
    /// </summary>
    public static async Task LockAsync(this PortalDbContext db, string scope, Guid owner, CancellationToken ct)
    {
        var lockName = $"{scope}:{owner}";
        await db.Database.ExecuteSqlAsync($"SELECT pg_advisory_xact_lock(hashtextextended({lockName}, 0))", ct);
    }
}
