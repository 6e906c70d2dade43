using Cortensor.Api.Data;
using Cortensor.Api.Keys;
using Microsoft.AspNetCore.Identity;

namespace Cortensor.Api.Accounts;

/// <summary>
/// The first operator: `Admin:Email` / `Admin:Password` (AppHost parameters admin-email, admin-password),
/// created by the migrations step when no account has that address. An existing account is never made an
/// administrator: whoever signed up with the address first would otherwise receive the role.
/// </summary>
public static class AdminAccount
{
    public static async Task EnsureAsync(IServiceProvider services, CancellationToken ct = default)
    {
        using var scope = services.CreateScope();
        var configuration = scope.ServiceProvider.GetRequiredService<IConfiguration>();
        var log = scope.ServiceProvider.GetRequiredService<ILoggerFactory>().CreateLogger("Cortensor.Migrations");
        var email = configuration["Admin:Email"];
        var password = configuration["Admin:Password"];
        if (string.IsNullOrWhiteSpace(email) || string.IsNullOrEmpty(password))
        {
            log.LogWarning("Admin:Email / Admin:Password not set: no initial administrator account was created");
            return;
        }
        var users = scope.ServiceProvider.GetRequiredService<UserManager<User>>();
        var user = await users.FindByEmailAsync(email);
        if (user is null)
        {
            user = new User { UserName = email, Email = email, EmailConfirmed = true, IsAdmin = true, DisplayName = "Administrator" };
            var created = await users.CreateAsync(user, password);
            if (!created.Succeeded)
                throw new InvalidOperationException("The initial admin account could not be created: " + string.Join(" ", created.Errors.Select(e => e.Description)));
            var keys = scope.ServiceProvider.GetRequiredService<KeyService>();
            await keys.CreateOrganizationAsync("Operators", "free", user.Id, AuditActor.System, ct);
            log.LogInformation("Created the initial admin account {Email}", email);
        }
        else if (!user.IsAdmin)
        {
            log.LogWarning("An account with Admin:Email {Email} exists and is not an administrator: it was left as it is. Choose another Admin:Email, or grant the role by hand", email);
        }
    }
}
