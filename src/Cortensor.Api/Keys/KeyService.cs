using Cortensor.Api.Data;
using Cortensor.Api.Limits;
using Microsoft.EntityFrameworkCore;

namespace Cortensor.Api.Keys;

public sealed record CreatedKey(ApiKey Key, string Plaintext);

/// <summary>
/// The application service behind key and organisation changes; the admin API and the control
/// plane both use it. Every change is durable in Postgres first, then evicted from every replica's
/// snapshot cache, and recorded in the audit log.
/// </summary>
public sealed class KeyService(PortalDbContext db, EntitlementCache entitlements, HotCounters counters, TimeProvider clock, IKeyProvider provider)
{
    /// <summary>Creates an organisation; with <paramref name="owner"/>, that user becomes its owner in the same transaction.</summary>
    public async Task<Organization> CreateOrganizationAsync(string name, string planId, Guid? owner, AuditActor actor, CancellationToken ct)
    {
        var org = new Organization { Name = name, PlanId = planId, CreatedAt = clock.GetUtcNow() };
        db.Organizations.Add(org);
        if (owner is { } userId)
            db.OrganizationMembers.Add(new OrganizationMember { OrganizationId = org.Id, UserId = userId, Role = MemberRole.Owner, CreatedAt = org.CreatedAt });
        db.PlanSubscriptions.Add(new PlanSubscription { OrganizationId = org.Id, PlanId = planId, StartsAt = clock.GetUtcNow() });
        Audit(actor, "organization.create", "organization", org.Id.ToString(), null, new { org.Name, org.PlanId });
        await db.SaveChangesAsync(ct);
        return org;
    }

    public async Task<CreatedKey> CreateKeyAsync(Guid organizationId, string name, string environment, DateTimeOffset? expiresAt,
        IReadOnlyList<string> models, int? requestsPerMinute, int? tokensPerMinute, Guid? createdBy, AuditActor actor, CancellationToken ct)
    {
        var id = Guid.CreateVersion7();
        // Issued first (Unkey: a call out): should saving then fail, the issued key has no row, so it verifies as unknown.
        var issued = await provider.IssueAsync(new KeyToIssue(id, organizationId, name, environment, expiresAt, requestsPerMinute, tokensPerMinute), ct);
        var plaintext = issued.Plaintext;
        var key = new ApiKey
        {
            Id = id, OrganizationId = organizationId, Name = name, Environment = environment, Start = ApiKeyFormat.Start(plaintext),
            Hash = ApiKeyFormat.Hash(plaintext), ExpiresAt = expiresAt, AllowedModels = models.ToList(),
            RequestsPerMinute = requestsPerMinute, TokensPerMinute = tokensPerMinute, CreatedByUserId = createdBy,
            CreatedAt = clock.GetUtcNow(),
        };
        db.ApiKeys.Add(key);
        if (issued.ProviderKeyId is { } providerKeyId)
            db.Set<UnkeyKey>().Add(new UnkeyKey { ApiKeyId = key.Id, UnkeyKeyId = providerKeyId, CreatedAt = key.CreatedAt });
        Audit(actor, "api_key.create", "api_key", key.Id.ToString(), null, new { key.Name, key.Start, key.ExpiresAt, key.AllowedModels });
        await db.SaveChangesAsync(ct);
        // A lookup of this key may have been cached as unknown moments ago.
        await entitlements.InvalidateKeyAsync(key.Hash);
        return new CreatedKey(key, plaintext);
    }

    /// <summary>Changes a key's status; with <paramref name="organizationId"/>, only a key of that organisation (else null).</summary>
    public async Task<ApiKey?> SetKeyStatusAsync(Guid keyId, ApiKeyStatus status, Guid? organizationId, AuditActor actor, CancellationToken ct)
    {
        var key = await db.ApiKeys.SingleOrDefaultAsync(k => k.Id == keyId && (organizationId == null || k.OrganizationId == organizationId), ct);
        if (key is null) return null;
        if (key.Status == ApiKeyStatus.Revoked && status != ApiKeyStatus.Revoked) return key; // revocation is final
        var before = key.Status;
        // The provider first: if it cannot be told, nothing changes here either (a 503, retried by the caller).
        await provider.SetStatusAsync(key.Id, status, db, ct);
        key.Status = status;
        if (status == ApiKeyStatus.Revoked) key.RevokedAt ??= clock.GetUtcNow();
        Audit(actor, $"api_key.{status.ToString().ToLowerInvariant()}", "api_key", key.Id.ToString(), new { Status = before }, new { key.Status });
        await db.SaveChangesAsync(ct);
        await entitlements.InvalidateKeyAsync(key.Hash);
        return key;
    }

    public async Task<Organization?> SetOrganizationStatusAsync(Guid orgId, OrganizationStatus status, AuditActor actor, CancellationToken ct)
    {
        var org = await db.Organizations.SingleOrDefaultAsync(o => o.Id == orgId, ct);
        if (org is null) return null;
        var before = org.Status;
        org.Status = status;
        Audit(actor, status == OrganizationStatus.Paused ? "organization.pause" : "organization.resume", "organization", org.Id.ToString(),
            new { Status = before }, new { org.Status });
        await db.SaveChangesAsync(ct);
        await entitlements.InvalidateOrganizationAsync(org.Id);
        return org;
    }

    public async Task<Organization?> ChangePlanAsync(Guid orgId, string planId, AuditActor actor, CancellationToken ct)
    {
        var org = await db.Organizations.SingleOrDefaultAsync(o => o.Id == orgId, ct);
        if (org is null) return null;
        var before = org.PlanId;
        var now = clock.GetUtcNow();
        org.PlanId = planId;
        await db.PlanSubscriptions.Where(s => s.OrganizationId == orgId && s.EndsAt == null)
            .ExecuteUpdateAsync(s => s.SetProperty(x => x.EndsAt, now), ct);
        db.PlanSubscriptions.Add(new PlanSubscription { OrganizationId = orgId, PlanId = planId, StartsAt = now });
        Audit(actor, "organization.plan", "organization", org.Id.ToString(), new { PlanId = before }, new { org.PlanId });
        await db.SaveChangesAsync(ct);
        await entitlements.InvalidateOrganizationAsync(org.Id);
        return org;
    }

    /// <summary>Grants (positive) or claws back (negative) credit: a ledger entry, then the hot-path balance.</summary>
    public async Task<decimal?> AdjustCreditsAsync(Guid orgId, decimal amount, string reason, AuditActor actor, CancellationToken ct)
    {
        if (!await db.Organizations.AnyAsync(o => o.Id == orgId, ct)) return null;
        var entry = new BillingLedgerEntry
        {
            OrganizationId = orgId, Kind = amount >= 0 ? LedgerEntryKind.Grant : LedgerEntryKind.Adjustment,
            Amount = Pricing.RoundForLedger(Math.Abs(amount)) * Math.Sign(amount), Reference = "adm_" + Guid.CreateVersion7().ToString("N"),
            Description = reason, CreatedAt = clock.GetUtcNow(),
        };
        db.BillingLedger.Add(entry);
        Audit(actor, "credits.adjust", "organization", orgId.ToString(), null, new { entry.Amount, reason, entry.Reference });
        await db.SaveChangesAsync(ct);
        await counters.AddCreditAsync(orgId, entry.Amount);
        return await db.BillingLedger.Where(e => e.OrganizationId == orgId).SumAsync(e => e.Amount, ct);
    }

    private void Audit(AuditActor actor, string action, string targetType, string targetId, object? before, object? after) =>
        db.Record(actor, action, targetType, targetId, before, after, clock.GetUtcNow());
}
