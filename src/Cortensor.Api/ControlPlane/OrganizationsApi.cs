using System.Security.Claims;
using Cortensor.Api.Accounts;
using Cortensor.Api.Data;
using Cortensor.Api.Errors;
using Cortensor.Api.Infrastructure;
using Cortensor.Api.Keys;
using Microsoft.AspNetCore.Http.HttpResults;
using Microsoft.EntityFrameworkCore;

namespace Cortensor.Api.ControlPlane;

/// <summary>Organisations a user belongs to, and the members of the one they act in.</summary>
public static class OrganizationsApi
{
    /// <summary>Enough for agencies and teams; stops a script from creating organisations without end.</summary>
    public const int MaxOwnedOrganizations = 20;

    public static IEndpointRouteBuilder MapOrganizationsApi(this IEndpointRouteBuilder app)
    {
        var orgs = app.MapGroup("/portal/organizations").WithTags("Organizations").RequireAuthorization(PortalAuth.UserPolicy).ProducesErrors(400, 401, 409);
        orgs.MapGet("", List).WithSummary("Organisations the user belongs to, with their role");
        orgs.MapPost("", Create).WithSummary("Create an organisation (free plan); the user becomes its owner");
        return app;
    }

    public static RouteGroupBuilder MapMembersApi(this RouteGroupBuilder portal)
    {
        var members = portal.MapGroup("/members").WithTags("Organizations");
        members.MapGet("", ListMembers).WithSummary("Members of the organisation");
        members.MapPost("", AddMember).WithSummary("Add a signed-up user by e-mail as owner, admin or member");
        members.MapDelete("/{userId:guid}", RemoveMember).WithSummary("Remove a member (or leave); the last owner cannot leave");
        return portal;
    }

    public sealed record OrganizationDto(Guid Id, string Name, string Plan, string Status, string Role, DateTimeOffset CreatedAt);
    public sealed record CreateBody(string? Name);
    public sealed record MemberDto(Guid UserId, string? Email, string? DisplayName, string Role, DateTimeOffset CreatedAt);
    public sealed record AddMemberBody(string? Email, string? Role);

    public static async Task<OrganizationDto[]> ListForUserAsync(PortalDbContext db, Guid userId, CancellationToken ct) =>
        (await (from m in db.OrganizationMembers.AsNoTracking()
                join o in db.Organizations.AsNoTracking() on m.OrganizationId equals o.Id
                where m.UserId == userId
                orderby m.CreatedAt, o.Id
                select new { o, m.Role }).ToListAsync(ct))
        .Select(x => new OrganizationDto(x.o.Id, x.o.Name, x.o.PlanId, Lower(x.o.Status), Lower(x.Role), x.o.CreatedAt)).ToArray();

    private static async Task<Ok<OrganizationDto[]>> List(ClaimsPrincipal user, PortalDbContext db, CancellationToken ct) =>
        TypedResults.Ok(await ListForUserAsync(db, user.UserId(), ct));

    private static async Task<Results<Created<OrganizationDto>, ErrorResult>> Create(CreateBody body, ClaimsPrincipal user,
        PortalDbContext db, KeyService keys, CancellationToken ct)
    {
        var name = body.Name?.Trim();
        if (string.IsNullOrEmpty(name) || name.Length > 200) return ApiError.InvalidField("name", "'name' is required (at most 200 characters).").ToResult();
        var userId = user.UserId();
        if (await db.OrganizationMembers.CountAsync(m => m.UserId == userId && m.Role == MemberRole.Owner, ct) >= MaxOwnedOrganizations)
            return new ApiError(409, "invalid_request_error", "organization_limit", $"You own {MaxOwnedOrganizations} organizations already; delete or hand one over first.").ToResult();
        var org = await keys.CreateOrganizationAsync(name, "free", userId, AuditActor.From(user), ct);
        return TypedResults.Created($"/portal/organizations/{org.Id}",
            new OrganizationDto(org.Id, org.Name, org.PlanId, Lower(org.Status), Lower(MemberRole.Owner), org.CreatedAt));
    }

    private static async Task<Ok<MemberDto[]>> ListMembers(PortalCaller caller, PortalDbContext db, CancellationToken ct) =>
        TypedResults.Ok((await (from m in db.OrganizationMembers.AsNoTracking()
                                join u in db.Users.AsNoTracking() on m.UserId equals u.Id
                                where m.OrganizationId == caller.OrganizationId
                                orderby m.CreatedAt
                                select new { m, u.Email, u.DisplayName }).ToListAsync(ct))
            .Select(x => new MemberDto(x.m.UserId, x.Email, x.DisplayName, Lower(x.m.Role), x.m.CreatedAt)).ToArray());

    private static async Task<Results<Created<MemberDto>, ErrorResult>> AddMember(AddMemberBody body, PortalCaller caller,
        PortalDbContext db, TimeProvider clock, CancellationToken ct)
    {
        if (string.IsNullOrWhiteSpace(body.Email)) return ApiError.MissingField("email").ToResult();
        if (!Enum.TryParse<MemberRole>(body.Role ?? "member", ignoreCase: true, out var role) || !Enum.IsDefined(role) || int.TryParse(body.Role, out _))
            return ApiError.InvalidField("role", "'role' must be 'owner', 'admin' or 'member'.").ToResult();
        if (!caller.CanManage) return ApiError.InsufficientRole("add members").ToResult();
        if (role == MemberRole.Owner && caller.Role != MemberRole.Owner)
            return new ApiError(403, "permission_error", "insufficient_role", "Only an owner can add another owner.").ToResult();
        var normalized = body.Email.Trim().ToUpperInvariant();
        var user = await db.Users.AsNoTracking().SingleOrDefaultAsync(u => u.NormalizedEmail == normalized, ct);
        if (user is null)
            return new ApiError(404, "invalid_request_error", "user_not_found", "Nobody has signed up with that e-mail yet. Ask them to sign up, then add them.", "email").ToResult();
        if (await db.OrganizationMembers.AnyAsync(m => m.OrganizationId == caller.OrganizationId && m.UserId == user.Id, ct))
            return new ApiError(409, "invalid_request_error", "already_member", "That user is already a member of this organization.", "email").ToResult();
        var member = new OrganizationMember { OrganizationId = caller.OrganizationId, UserId = user.Id, Role = role, CreatedAt = clock.GetUtcNow() };
        db.OrganizationMembers.Add(member);
        db.Record(caller.Actor, "member.add", "organization", caller.OrganizationId.ToString(), null, new { UserId = user.Id, user.Email, Role = role }, member.CreatedAt);
        await db.SaveChangesAsync(ct);
        return TypedResults.Created($"/portal/members/{user.Id}", new MemberDto(user.Id, user.Email, user.DisplayName, Lower(role), member.CreatedAt));
    }

    private static async Task<Results<NoContent, ErrorResult>> RemoveMember(Guid userId, PortalCaller caller, PortalDbContext db,
        TimeProvider clock, CancellationToken ct)
    {
        var member = await db.OrganizationMembers.SingleOrDefaultAsync(m => m.OrganizationId == caller.OrganizationId && m.UserId == userId, ct);
        if (member is null) return ApiError.NotFound("member").ToResult();
        var leaving = userId == caller.UserId;
        if (!leaving && !caller.CanManage) return ApiError.InsufficientRole("remove members").ToResult();
        if (!leaving && member.Role == MemberRole.Owner && caller.Role != MemberRole.Owner)
            return new ApiError(403, "permission_error", "insufficient_role", "Only an owner can remove an owner.").ToResult();
        if (member.Role == MemberRole.Owner &&
            await db.OrganizationMembers.CountAsync(m => m.OrganizationId == caller.OrganizationId && m.Role == MemberRole.Owner, ct) == 1)
            return new ApiError(409, "invalid_request_error", "last_owner", "An organization needs an owner: add another owner first.").ToResult();
        db.OrganizationMembers.Remove(member);
        db.Record(caller.Actor, leaving ? "member.leave" : "member.remove", "organization", caller.OrganizationId.ToString(),
            new { UserId = userId, member.Role }, null, clock.GetUtcNow());
        await db.SaveChangesAsync(ct);
        return TypedResults.NoContent();
    }

    private static string Lower<T>(T value) where T : struct, Enum => value.ToString().ToLowerInvariant();
}
