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
