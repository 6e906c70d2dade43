using System.Net.Mail;
using System.Security.Claims;
using System.Security.Cryptography;
using System.Text;
using Cortensor.Api.Accounts;
using Cortensor.Api.Accounts.Mail;
using Cortensor.Api.Data;
using Cortensor.Api.Errors;
using Cortensor.Api.Infrastructure;
using Microsoft.AspNetCore.Http.HttpResults;
using Microsoft.EntityFrameworkCore;
using Microsoft.EntityFrameworkCore.Metadata.Builders;
using Microsoft.IdentityModel.Tokens;

namespace Cortensor.Api.ControlPlane;

/// <summary>
/// An invitation to join an organisation, sent by e-mail. Nothing is granted by the address alone: the role
/// goes to the signed-in, verified owner of the address who opens the link and accepts.
/// </summary>
public sealed class Invitation
{
    public Guid Id { get; set; } = Guid.CreateVersion7();
    public Guid OrganizationId { get; set; }
    public required string Email { get; set; }
    /// <summary>Normalised as Identity's NormalizedEmail (<see cref="AccountEmail"/>), to match the invitee's account.</summary>
    public required string NormalizedEmail { get; set; }
    public MemberRole Role { get; set; }
    /// <summary>SHA-256 of the link's token; the token itself is only in the mail.</summary>
    public required byte[] TokenHash { get; set; }
    public Guid InvitedByUserId { get; set; }
    public DateTimeOffset CreatedAt { get; set; }
    public DateTimeOffset ExpiresAt { get; set; }
    public DateTimeOffset? AcceptedAt { get; set; }
    public Guid? AcceptedByUserId { get; set; }
    public DateTimeOffset? RevokedAt { get; set; }
}

public sealed class InvitationConfiguration : IEntityTypeConfiguration<Invitation>
{
    public void Configure(EntityTypeBuilder<Invitation> e)
    {
        e.ToTable("invitations");
        e.Property(x => x.Email).HasMaxLength(320);
        e.Property(x => x.NormalizedEmail).HasMaxLength(320);
        e.HasIndex(x => x.TokenHash).IsUnique();
        e.HasIndex(x => new { x.OrganizationId, x.NormalizedEmail });
        e.HasOne<Organization>().WithMany().HasForeignKey(x => x.OrganizationId).OnDelete(DeleteBehavior.Cascade);
        e.HasOne<User>().WithMany().HasForeignKey(x => x.InvitedByUserId).OnDelete(DeleteBehavior.Cascade);
    }
}

public static class InvitationsApi
{
    public static readonly TimeSpan Lifespan = TimeSpan.FromDays(7);
    /// <summary>Pending invitations one organisation may have at a time: enough for a team, not for a mailing campaign.</summary>
    public const int MaxPending = 50;
    public const int MaxPerHour = 50;

    public static RouteGroupBuilder MapInvitationsApi(this RouteGroupBuilder portal)
    {
        var invitations = portal.MapGroup("/invitations").WithTags("Organizations");
        invitations.MapGet("", List).WithSummary("Pending invitations of the organisation (owners and admins)");
        invitations.MapPost("", Invite).RequireVerifiedEmail("invite people")
            .WithSummary("Invite someone by e-mail as owner, admin or member; they join when they accept the link in the mail");
        invitations.MapDelete("/{id:guid}", Revoke).WithSummary("Revoke a pending invitation: its link stops working");
        return portal;
    }

    /// <summary>Accepting is not org-scoped: the invitee is not a member yet.</summary>
    public static IEndpointRouteBuilder MapInvitationAcceptance(this IEndpointRouteBuilder app)
    {
        app.MapPost("/portal/invitations/accept", Accept).WithTags("Organizations")
            .RequireAuthorization(PortalAuth.UserPolicy).RequireVerifiedEmail("join an organization")
            .RequireRateLimiting(AuthThrottling.Tokens).ProducesErrors(400, 401, 403, 409)
            .WithSummary("Accept an invitation with the token from its link, signed in as the invited, verified address");
        return app;
    }

    public sealed record InviteBody(string? Email, string? Role);
    public sealed record AcceptBody(string? Token);
    public sealed record InvitationDto(Guid Id, string Email, string Role, DateTimeOffset CreatedAt, DateTimeOffset ExpiresAt);
    public sealed record AcceptedDto(Guid OrganizationId, string OrganizationName, string Role);

    private static async Task<Results<Ok<InvitationDto[]>, ErrorResult>> List(PortalCaller caller, PortalDbContext db, TimeProvider clock, CancellationToken ct)
    {
        if (!caller.CanManage) return ApiError.InsufficientRole("see invitations").ToResult();
        var now = clock.GetUtcNow();
        var rows = await Pending(db, caller.OrganizationId, now).OrderBy(i => i.CreatedAt).ToListAsync(ct);
        return TypedResults.Ok(rows.Select(ToDto).ToArray());
    }

    private static async Task<Results<Created<InvitationDto>, ErrorResult>> Invite(InviteBody body, PortalCaller caller,
        PortalDbContext db, AccountMails mails, AddressMailLimiter mailLimit, TimeProvider clock, CancellationToken ct)
    {
        var email = body.Email?.Trim();
        if (string.IsNullOrEmpty(email)) return ApiError.MissingField("email").ToResult();
        if (email.Length > AuthApi.MaxEmailLength || !MailAddress.TryCreate(email, out var parsed) || parsed.Address != email)
            return ApiError.InvalidField("email", "'email' is not a valid e-mail address.").ToResult();
        if (!Enum.TryParse<MemberRole>(body.Role ?? "member", ignoreCase: true, out var role) || !Enum.IsDefined(role) || int.TryParse(body.Role, out _))
            return ApiError.InvalidField("role", "'role' must be 'owner', 'admin' or 'member'.").ToResult();
        if (!caller.CanManage) return ApiError.InsufficientRole("invite members").ToResult();
        if (role == MemberRole.Owner && caller.Role != MemberRole.Owner)
            return new ApiError(403, "permission_error", "insufficient_role", "Only an owner can invite another owner.").ToResult();
        var normalized = AccountEmail.Normalize(email);
        var now = clock.GetUtcNow();
        var token = "ctr_inv_" + Base64UrlEncoder.Encode(RandomNumberGenerator.GetBytes(32));
        var (invitation, refused) = await db.OneAtATimeAsync<(Invitation?, ApiError?)>("invitations", caller.OrganizationId, async () =>
        {
            if (await (from m in db.OrganizationMembers join u in db.Users on m.UserId equals u.Id
                       where m.OrganizationId == caller.OrganizationId && u.NormalizedEmail == normalized && u.EmailConfirmed select m).AnyAsync(ct))
                return (null, new ApiError(409, "invalid_request_error", "already_member", "Someone with that e-mail is already a member of this organization.", "email"));
            if (await Pending(db, caller.OrganizationId, now).AnyAsync(i => i.NormalizedEmail == normalized, ct))
                return (null, new ApiError(409, "invalid_request_error", "already_invited", "That address has a pending invitation. Revoke it to send a new one.", "email"));
            if (await Pending(db, caller.OrganizationId, now).CountAsync(ct) >= MaxPending)
                return (null, ApiError.LimitReached("invitation_limit", $"This organization has {MaxPending} pending invitations; revoke some first."));
            // Each invitation is a mail to an address the inviter chose: revoking and inviting again must not make the
            // Portal a mail cannon, to one address or to many.
            var lastHour = now - TimeSpan.FromHours(1);
            if (await db.Set<Invitation>().CountAsync(i => i.OrganizationId == caller.OrganizationId && i.CreatedAt > lastHour, ct) >= MaxPerHour)
                return (null, ApiError.LimitReached("invitation_limit", $"This organization sent {MaxPerHour} invitations in the last hour; try again later."));
            if (!mailLimit.TryAcquire(email, "invitation"))
                return (null, ApiError.AuthThrottled(15 * 60) with { Message = "That address was sent several mails in the last 15 minutes; invite it again later." });
            var added = new Invitation
            {
                OrganizationId = caller.OrganizationId, Email = email, NormalizedEmail = normalized, Role = role, TokenHash = Hash(token),
                InvitedByUserId = caller.UserId, CreatedAt = now, ExpiresAt = now + Lifespan,
            };
            db.Add(added);
            db.Record(caller.Actor, "invitation.create", "organization", caller.OrganizationId.ToString(), null, new { added.Id, email, Role = role }, now);
            await db.SaveChangesAsync(ct);
            return (added, null);
        }, ct);
        if (refused is not null) return refused.ToResult();
        var organization = await db.Organizations.AsNoTracking().Where(o => o.Id == caller.OrganizationId).Select(o => o.Name).SingleAsync(ct);
        // The mail names the inviter by what the account proved: its confirmed address, else its wallet (a wallet is enough to
        // invite). The address an account merely claims would let anyone send the Portal's mail in someone else's name.
        var inviter = await db.Users.AsNoTracking().Where(u => u.Id == caller.UserId)
            .Select(u => u.EmailConfirmed ? u.Email
                : db.UserLogins.Where(l => l.UserId == u.Id && l.LoginProvider == Accounts.Siwe.WalletAccounts.LoginProvider).Select(l => l.ProviderKey).FirstOrDefault())
            .SingleOrDefaultAsync(ct) ?? "A member of the organization";
        mails.SendInvitation(email, organization, inviter, Lower(role), token, invitation!.ExpiresAt);
        return TypedResults.Created($"/portal/invitations/{invitation.Id}", ToDto(invitation));
    }

    private static async Task<Results<NoContent, ErrorResult>> Revoke(Guid id, PortalCaller caller, PortalDbContext db, TimeProvider clock, CancellationToken ct)
    {
        if (!caller.CanManage) return ApiError.InsufficientRole("revoke invitations").ToResult();
        var now = clock.GetUtcNow();
        var invitation = await Pending(db, caller.OrganizationId, now).AsTracking().SingleOrDefaultAsync(i => i.Id == id, ct);
        if (invitation is null) return ApiError.NotFound("invitation").ToResult();
        invitation.RevokedAt = now;
        db.Record(caller.Actor, "invitation.revoke", "organization", caller.OrganizationId.ToString(), new { invitation.Id, invitation.Email }, null, now);
        await db.SaveChangesAsync(ct);
        return TypedResults.NoContent();
    }

    private static async Task<Results<Ok<AcceptedDto>, ErrorResult>> Accept(AcceptBody body, ClaimsPrincipal principal, PortalDbContext db,
        TimeProvider clock, CancellationToken ct)
    {
        if (string.IsNullOrWhiteSpace(body.Token)) return ApiError.MissingField("token").ToResult();
        var now = clock.GetUtcNow();
        var hash = Hash(body.Token.Trim());
        var invitation = await db.Set<Invitation>().AsNoTracking().SingleOrDefaultAsync(i => i.TokenHash == hash, ct);
        if (invitation is null || invitation.AcceptedAt is not null || invitation.RevokedAt is not null || invitation.ExpiresAt <= now)
            return ApiError.InvalidLink("invitation").ToResult();
        var userId = principal.UserId();
        var user = await db.Users.AsNoTracking().SingleAsync(u => u.Id == userId, ct);
        if (user.NormalizedEmail != invitation.NormalizedEmail)
            return new ApiError(403, "permission_error", "invitation_for_another_address",
                "This invitation was sent to another e-mail address. Sign in with the address that received it.").ToResult();
        if (await db.OrganizationMembers.AnyAsync(m => m.OrganizationId == invitation.OrganizationId && m.UserId == userId, ct))
            return new ApiError(409, "invalid_request_error", "already_member", "You are already a member of this organization.").ToResult();

        var strategy = db.Database.CreateExecutionStrategy();
        var accepted = await strategy.ExecuteAsync(async () =>
        {
            db.ChangeTracker.Clear();
            await using var transaction = await db.Database.BeginTransactionAsync(ct);
            // Claim the invitation with a conditional update: two concurrent accepts cannot both succeed.
            var claimed = await db.Set<Invitation>()
                .Where(i => i.Id == invitation.Id && i.AcceptedAt == null && i.RevokedAt == null && i.ExpiresAt > now)
                .ExecuteUpdateAsync(s => s.SetProperty(i => i.AcceptedAt, now).SetProperty(i => i.AcceptedByUserId, userId), ct);
            if (claimed == 0) return false;
            db.OrganizationMembers.Add(new OrganizationMember { OrganizationId = invitation.OrganizationId, UserId = userId, Role = invitation.Role, CreatedAt = now });
            db.Record(new AuditActor(userId, user.Email ?? userId.ToString()), "member.join", "organization", invitation.OrganizationId.ToString(), null,
                new { UserId = userId, user.Email, invitation.Role, InvitationId = invitation.Id }, now);
            await db.SaveChangesAsync(ct);
            await transaction.CommitAsync(ct);
            return true;
        });
        if (!accepted) return ApiError.InvalidLink("invitation").ToResult();
        var name = await db.Organizations.AsNoTracking().Where(o => o.Id == invitation.OrganizationId).Select(o => o.Name).SingleAsync(ct);
        return TypedResults.Ok(new AcceptedDto(invitation.OrganizationId, name, Lower(invitation.Role)));
    }

    private static IQueryable<Invitation> Pending(PortalDbContext db, Guid organizationId, DateTimeOffset now) =>
        db.Set<Invitation>().AsNoTracking().Where(i => i.OrganizationId == organizationId && i.AcceptedAt == null && i.RevokedAt == null && i.ExpiresAt > now);

    private static InvitationDto ToDto(Invitation i) => new(i.Id, i.Email, Lower(i.Role), i.CreatedAt, i.ExpiresAt);
    private static byte[] Hash(string token) => SHA256.HashData(Encoding.UTF8.GetBytes(token));
    private static string Lower(MemberRole role) => role.ToString().ToLowerInvariant();
}
