using System.Diagnostics;
using Cortensor.Api.Data;
using Cortensor.Tests.Fixtures;
using Microsoft.EntityFrameworkCore;

namespace Cortensor.Tests.Integration;

/// <summary>The migrations step's initial administrator, run as the AppHost runs it (the Api's `migrate` command).</summary>
[Collection(InfrastructureCollection.Name)]
public class AdminBootstrapTests(InfrastructureFixture infrastructure)
{
    [Fact]
    public async Task TheMigrationsStepCreatesANewAdministratorButNeverPromotesAnExistingAccount()
    {
        var connectionString = await infrastructure.CreateDatabaseAsync();
        // Someone signed up with the operator's address before the deployment named it.
        var taken = $"ops-{Guid.NewGuid():N}@example.com";
        await using (var db = Context(connectionString))
        {
            db.Users.Add(new User
            {
                UserName = taken, NormalizedUserName = taken.ToUpperInvariant(), Email = taken, NormalizedEmail = taken.ToUpperInvariant(),
                SecurityStamp = Guid.NewGuid().ToString("N"),
            });
            await db.SaveChangesAsync();
        }
        var output = await MigrateAsync(connectionString, taken);
        Assert.Contains("left as it is", output);
        await using (var db = Context(connectionString))
            Assert.False((await db.Users.SingleAsync(u => u.Email == taken)).IsAdmin);

        var fresh = $"ops-{Guid.NewGuid():N}@example.com";
        await MigrateAsync(connectionString, fresh);
        await using (var db = Context(connectionString))
        {
            var admin = await db.Users.SingleAsync(u => u.Email == fresh);
            Assert.True(admin.IsAdmin);
            Assert.True(admin.EmailConfirmed);
            Assert.Equal(1, await db.Users.CountAsync(u => u.IsAdmin));
        }
    }

    private static PortalDbContext Context(string connectionString)
    {
        var options = new DbContextOptionsBuilder<PortalDbContext>().UseNpgsql(connectionString);
        PortalDbContext.Configure(options);
        return new PortalDbContext(options.Options);
    }

    private async Task<string> MigrateAsync(string connectionString, string adminEmail)
    {
        var start = new ProcessStartInfo("dotnet", [Path.Combine(AppContext.BaseDirectory, "Cortensor.Api.dll"), "migrate"])
        {
            RedirectStandardOutput = true, RedirectStandardError = true, WorkingDirectory = AppContext.BaseDirectory,
        };
        start.Environment["DOTNET_ENVIRONMENT"] = "Development";
        start.Environment["ASPNETCORE_ENVIRONMENT"] = "Development";
        start.Environment[$"ConnectionStrings__{LaunchTopology.Database}"] = connectionString;
        start.Environment[$"ConnectionStrings__{LaunchTopology.Redis}"] = infrastructure.RedisConnectionString;
        start.Environment["Admin__Email"] = adminEmail;
        start.Environment["Admin__Password"] = "Operator-password-1";
        start.Environment["Auth__SigningKey"] = "a-test-signing-key-that-is-long-enough-0123456789";
        using var process = Process.Start(start)!;
        var stdout = process.StandardOutput.ReadToEndAsync();
        var stderr = process.StandardError.ReadToEndAsync();
        using var timeout = new CancellationTokenSource(TimeSpan.FromMinutes(2));
        await process.WaitForExitAsync(timeout.Token);
        var output = await stdout + await stderr;
        Assert.True(process.ExitCode == 0, output);
        return output;
    }
}
