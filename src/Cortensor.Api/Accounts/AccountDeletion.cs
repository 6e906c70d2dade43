using Cortensor.Api.ControlPlane;
using Cortensor.Api.Data;
using Cortensor.Api.Keys;
using Microsoft.EntityFrameworkCore;

namespace Cortensor.Api.Accounts;

/// <summary>
/// Deleting an account, decided per organisation it belongs to (docs/api.md, "Deleting an account"):
/// <list type="bullet">
/// <item><b>closed</b>: the user is its only member. Every key is revoked (refused within about a second), the
/// organisation is paused, and its pending invitations end. Its ledger, usage and receipts are kept (billing records),
/// but nobody can sign in to it any more; an operator can still see it.</item>
/// <item><b>handed_over</b>: the user is its only owner and others remain. Ownership passes to the longest-standing
/// admin, or the longest-standing member when there is no admin. Keys and credit stay with the organisation.</item>
/// <item><b>left</b>: another owner remains. The user just leaves; keys stay with the organisation.</item>
/// </list>
/// Then every sign-in of the account ends and the account (and its authenticator, recovery codes and memberships) is deleted.
/// </summary>
public sealed class AccountDeletion(PortalDbContext db, KeyService keys, PortalTokens tokens, TimeProvider clock)
{
    public sealed record OrganizationOutcome(Guid OrganizationId, string Name, string Role, int Members, int ActiveKeys, string Outcome, string? NewOwner, string Explanation);
    public sealed record Plan(bool Deleted, OrganizationOutcome[] Organizations);

    public async Task<Plan> PlanAsync(Guid userId, CancellationToken ct) =>
        new(false, [.. (await DecideAsync(userId, ct)).Select(d => d.Outcome)]);

    /// <summary>Each organisation's outcome, with the heir's id where ownership passes: an heir is found by id, since one may have no address.</summary>
    private async Task<List<(OrganizationOutcome Outcome, Guid? Heir)>> DecideAsync(Guid userId, CancellationToken ct)
    {
        var memberships = await db.OrganizationMembers.AsNoTracking().Where(m => m.UserId == userId)
            .Join(db.Organizations.AsNoTracking(), m => m.OrganizationId, o => o.Id, (m, o) => new { m.OrganizationId, o.Name, m.Role })
            .OrderBy(x => x.Name).ToListAsync(ct);
        var outcomes = new List<(OrganizationOutcome, Guid?)>();
        foreach (var m in memberships)
        {
            var others = await (from member in db.OrganizationMembers.AsNoTracking()
                                join u in db.Users.AsNoTracking() on member.UserId equals u.Id
                                where member.OrganizationId == m.OrganizationId && member.UserId != userId
                                select new { member.UserId, member.Role, member.CreatedAt, u.Email, u.DisplayName }).ToListAsync(ct);
            var activeKeys = await db.ApiKeys.CountAsync(k => k.OrganizationId == m.OrganizationId && k.Status != ApiKeyStatus.Revoked, ct);
            var role = m.Role.ToString().ToLowerInvariant();
            if (others.Count == 0)
            {
                outcomes.Add((new(m.OrganizationId, m.Name, role, 1, activeKeys, "closed", null,
                    $"You are its only member: its {activeKeys} active key(s) are revoked and it is closed. Its billing records are kept."), null));
            }
            else if (m.Role == MemberRole.Owner && others.All(o => o.Role != MemberRole.Owner))
            {
                var heir = others.OrderBy(o => o.Role == MemberRole.Admin ? 0 : 1).ThenBy(o => o.CreatedAt).First();
                var heirName = heir.Email ?? heir.DisplayName ?? "its longest-standing member";
                outcomes.Add((new(m.OrganizationId, m.Name, role, others.Count + 1, activeKeys, "handed_over", heirName,
                    $"You are its only owner: {heirName} becomes owner. Its keys and credit stay with it."), heir.UserId));
            }
            else
            {
                outcomes.Add((new(m.OrganizationId, m.Name, role, others.Count + 1, activeKeys, "left", null,
                    "You leave it. Its keys and credit stay with it."), null));
            }
        }
        return outcomes;
    }

    /// <summary>Deletes the account; null when the user is the last platform administrator (nothing changes then).</summary>
    public async Task<Plan?> DeleteAsync(User user, AuditActor actor, CancellationToken ct)
    {
        // Decided and carried out per organisation under its members' lock, as removing a member is: two owners deleting
        // their accounts at once each saw the other stay, both left, and the organisation kept its keys with no member.
        // The user leaves where others stay inside that transaction, so whoever decides next sees them gone.
        var administrator = user.IsAdmin; // as read, should the strategy run the work again
        var decided = await db.Database.CreateExecutionStrategy().ExecuteAsync<List<(OrganizationOutcome Outcome, Guid? Heir)>?>(async () =>
        {
            await using var transaction = await db.Database.BeginTransactionAsync(ct);
            if (administrator)
            {
                // Under the administrators' lock, taken before any other here as its only other holder takes it alone:
                // two administrators deleting their accounts at once each saw the other stay. The role goes now, with
                // the check, so the next one to decide sees it gone.
                await db.LockAsync(OneAtATime.PlatformAdministrators, Guid.Empty, ct);
                if (!await db.Users.AnyAsync(u => u.IsAdmin && u.Id != user.Id, ct)) return null;
                user.IsAdmin = false;
            }
            var organizations = await db.OrganizationMembers.Where(m => m.UserId == user.Id).Select(m => m.OrganizationId).ToListAsync(ct);
            foreach (var organizationId in organizations.Order())
                await db.LockAsync(OneAtATime.Members, organizationId, ct);
            var decided = await DecideAsync(user.Id, ct);
            foreach (var (org, heirId) in decided.Where(d => d.Outcome.Outcome != "closed"))
            {
                if (heirId is { } heir)
                {
                    await db.OrganizationMembers.Where(m => m.OrganizationId == org.OrganizationId && m.UserId == heir)
                        .ExecuteUpdateAsync(s => s.SetProperty(m => m.Role, MemberRole.Owner), ct);
                    db.Record(actor, "member.handover", "organization", org.OrganizationId.ToString(), new { From = user.Id }, new { To = heir }, clock.GetUtcNow());
                }
                await db.OrganizationMembers.Where(m => m.OrganizationId == org.OrganizationId && m.UserId == user.Id).ExecuteDeleteAsync(ct);
            }
            await db.SaveChangesAsync(ct);
            await transaction.CommitAsync(ct);
            return decided;
        });
        if (decided is null) return null;
        // An organisation the user was the last member of is closed step by step, outside the lock: each revocation is
        // durable and evicted from every replica's cache before the next. The user stays its member until the account
        // goes, so a deletion cut short here decides "closed" again when retried.
        foreach (var (org, _) in decided.Where(d => d.Outcome.Outcome == "closed"))
        {
            foreach (var keyId in await db.ApiKeys.Where(k => k.OrganizationId == org.OrganizationId && k.Status != ApiKeyStatus.Revoked).Select(k => k.Id).ToListAsync(ct))
                await keys.SetKeyStatusAsync(keyId, ApiKeyStatus.Revoked, org.OrganizationId, actor, ct);
            await keys.SetOrganizationStatusAsync(org.OrganizationId, OrganizationStatus.Paused, actor, ct);
            await db.Set<Invitation>().Where(i => i.OrganizationId == org.OrganizationId).ExecuteDeleteAsync(ct);
        }
        await tokens.RevokeAllSessionsAsync(user.Id, ct);
        db.Record(actor, "account.delete", "user", user.Id.ToString(), new { user.Email }, new { Length = decided.Count }, clock.GetUtcNow());
        db.Users.Remove(user);
        await db.SaveChangesAsync(ct);
        return new Plan(true, [.. decided.Select(d => d.Outcome)]);
    }
}
