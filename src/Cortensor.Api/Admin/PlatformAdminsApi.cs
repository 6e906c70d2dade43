using System.Security.Claims;
using Cortensor.Api.Accounts;
using Cortensor.Api.Data;
using Cortensor.Api.Errors;
using Microsoft.AspNetCore.Http.HttpResults;
using Microsoft.EntityFrameworkCore;

namespace Cortensor.Api.Admin;

/// <summary>
/// Who is a Portal administrator. The role travels in access tokens, so changing it ends every sign-in
/// of that user: on every replica their current tokens stop within about a second, and the next sign-in
/// carries the new role.
/// </summary>
public static class PlatformAdminsApi
{
    public static RouteGroupBuilder MapPlatformAdmins(this RouteGroupBuilder admin)
    {
        admin.MapPost("/users/{id:guid}/make-admin", (Guid id, ClaimsPrincipal user, PortalDbContext db, PortalTokens tokens, TimeProvider clock, CancellationToken ct) =>
            SetAdminAsync(id, true, user, db, tokens, clock, ct)).WithSummary("Make a user a Portal administrator (their current sign-ins end)");
        admin.MapPost("/users/{id:guid}/remove-admin", (Guid id, ClaimsPrincipal user, PortalDbContext db, PortalTokens tokens, TimeProvider clock, CancellationToken ct) =>
            SetAdminAsync(id, false, user, db, tokens, clock, ct)).WithSummary("Take the administrator role away: the user's tokens stop on every replica within about a second");
        return admin;
    }

    public sealed record AdminUserDto(Guid Id, string? Email, bool IsAdmin);

    private static async Task<Results<Ok<AdminUserDto>, ErrorResult>> SetAdminAsync(Guid id, bool isAdmin, ClaimsPrincipal principal,
        PortalDbContext db, PortalTokens tokens, TimeProvider clock, CancellationToken ct)
    {
        // One change of the administrators at a time: two removals at once each saw the other stay.
        var (user, changed, refused) = await db.OneAtATimeAsync<(User?, bool, ErrorResult?)>(OneAtATime.PlatformAdministrators, Guid.Empty, async () =>
        {
            var user = await db.Users.SingleOrDefaultAsync(u => u.Id == id, ct);
            if (user is null) return (null, false, ApiError.NotFound("user").ToResult());
            if (user.IsAdmin == isAdmin) return (user, false, null);
            if (!isAdmin && !await db.Users.AnyAsync(u => u.IsAdmin && u.Id != id, ct))
                return (null, false, new ApiError(409, "invalid_request_error", "last_admin", "This is the last administrator; make someone else an administrator first.").ToResult());
            user.IsAdmin = isAdmin;
            db.Record(AuditActor.From(principal), isAdmin ? "user.make_admin" : "user.remove_admin", "user", id.ToString(),
                new { IsAdmin = !isAdmin }, new { IsAdmin = isAdmin }, clock.GetUtcNow());
            await db.SaveChangesAsync(ct);
            return (user, true, null);
        }, ct);
        if (refused is not null) return refused;
        // Tokens carry the role: the user signs in again to hold the new one.
        if (changed) await tokens.RevokeAllSessionsAsync(id, ct);
        return TypedResults.Ok(new AdminUserDto(user!.Id, user.Email, user.IsAdmin));
    }
}
