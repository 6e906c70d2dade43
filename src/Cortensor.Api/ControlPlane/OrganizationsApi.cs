using System.Security.Claims;
using Cortensor.Api.Accounts;
using Cortensor.Api.Data;
using Cortensor.Api.Errors;
using Cortensor.Api.Infrastructure;
using Cortensor.Api.Keys;
using Microsoft.AspNetCore.Http.HttpResults;
using Microsoft.EntityFrameworkCore;
using Microsoft.Extensions.Options;

namespace Cortensor.Api.ControlPlane;

/// <summary>Organisations a user belongs to, and the members of the one they act in.</summary>
public static class OrganizationsApi
{
    public static IEndpointRouteBuilder MapOrganizationsApi(this IEndpointRouteBuilder app)
    {
        var orgs = app.MapGroup("/portal/organizations").WithTags("Organizations").RequireAuthorization(PortalAuth.UserPolicy).ProducesErrors(400, 401, 409);
        orgs.MapGet("", List).WithSummary("Organisations the user belongs to, with their role");
        orgs.MapPost("", Create).RequireVerifiedEmail("create organizations")
            .WithSummary("Create an organisation (free plan); the user becomes its owner. A user may own a few free organisations (409 organization_limit beyond)");
        return app;
    }

    public static RouteGroupBuilder MapMembersApi(this RouteGroupBuilder portal)
    {
        var members = portal.MapGroup("/members").WithTags("Organizations");
        members.MapGet("", ListMembers).WithSummary("Members of the organisation");
        members.MapDelete("/{userId:guid}", RemoveMember).WithSummary("Remove a member (or leave); the last owner cannot leave");
        return portal;
    }

    public sealed record OrganizationDto(Guid Id, string Name, string Plan, string Status, string Role, DateTimeOffset CreatedAt);
    public sealed record CreateBody(string? Name);
    public sealed record MemberDto(Guid UserId, string? Email, string? DisplayName, string Role, DateTimeOffset CreatedAt);

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
        PortalDbContext db, KeyService keys, IOptions<ControlPlaneLimits> limits, CancellationToken ct)
    {
        var name = body.Name?.Trim();
        if (ApiError.Text("name", "Name", name, 200) is { } badName) return badName.ToResult();
        var userId = user.UserId();
        var cap = limits.Value.FreeOrganizationsPerUser;
        return await db.OneAtATimeAsync<Results<Created<OrganizationDto>, ErrorResult>>("free-organizations", userId, async () =>
        {
            var ownedFree = await (from m in db.OrganizationMembers join o in db.Organizations on m.OrganizationId equals o.Id
                                   where m.UserId == userId && m.Role == MemberRole.Owner && o.PlanId == "free" select o.Id).CountAsync(ct);
            if (ownedFree >= cap)
                return ApiError.LimitReached("organization_limit", $"You own {cap} free organizations already (the most one user may own); upgrade or hand one over first.").ToResult();
            var org = await keys.CreateOrganizationAsync(name!, "free", userId, AuditActor.From(user), ct);
            return TypedResults.Created($"/portal/organizations/{org.Id}",
                new OrganizationDto(org.Id, org.Name, org.PlanId, Lower(org.Status), Lower(MemberRole.Owner), org.CreatedAt));
        }, ct);
    }

    private static async Task<Ok<MemberDto[]>> ListMembers(PortalCaller caller, PortalDbContext db, CancellationToken ct) =>
        TypedResults.Ok((await (from m in db.OrganizationMembers.AsNoTracking()
                                join u in db.Users.AsNoTracking() on m.UserId equals u.Id
                                where m.OrganizationId == caller.OrganizationId
                                orderby m.CreatedAt
                                select new { m, u.Email, u.DisplayName }).ToListAsync(ct))
            .Select(x => new MemberDto(x.m.UserId, x.Email, x.DisplayName, Lower(x.m.Role), x.m.CreatedAt)).ToArray());

    private static async Task<Results<NoContent, ErrorResult>> RemoveMember(Guid userId, PortalCaller caller, PortalDbContext db,
        TimeProvider clock, CancellationToken ct)
    {
        // One change of the members at a time: two owners leaving at once each saw the other stay, and left no owner.
        return await db.OneAtATimeAsync<Results<NoContent, ErrorResult>>(OneAtATime.Members, caller.OrganizationId, async () =>
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
        }, ct);
    }

    private static string Lower<T>(T value) where T : struct, Enum => value.ToString().ToLowerInvariant();
}
