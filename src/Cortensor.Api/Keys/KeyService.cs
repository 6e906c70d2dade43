using Cortensor.Api.Data;
using Cortensor.Api.Errors;
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
        // The instant a client named in any offset: Postgres takes a timestamptz only in UTC.
        expiresAt = expiresAt?.ToUniversalTime();
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
        var key = await FindKeyAsync(keyId, organizationId, ct);
        if (key is null) return null;
        // Revocation is final; a status the key already has changes nothing and is not audited as a change, but every
        // replica is told again (an operator repeating a pause because a replica still serves the key).
        if (key.Status == ApiKeyStatus.Revoked || key.Status == status)
        {
            await InvalidateAsync(key);
            return key;
        }
        var before = key.Status;
        // The provider first: if it cannot be told, nothing changes here either (a 503, retried by the caller).
        await provider.SetStatusAsync(key.Id, status, db, ct);
        key.Status = status;
        if (status == ApiKeyStatus.Revoked) key.RevokedAt ??= clock.GetUtcNow();
        Audit(actor, $"api_key.{status.ToString().ToLowerInvariant()}", "api_key", key.Id.ToString(), new { Status = before }, new { key.Status });
        await db.SaveChangesAsync(ct);
        await InvalidateAsync(key);
        return key;
    }

    /// <summary>
    /// Applies a PATCH (only the fields it carries) to a key of <paramref name="organizationId"/> if <paramref name="allowed"/>,
    /// shown the key as it is before the change, finds nothing to refuse; no key and no refusal if there is no such key.
    /// Runs in the caller's transaction, which then commits and calls <see cref="InvalidateAsync"/>: dropped from the
    /// snapshots before the commit, a key could be read back as it was and cached for minutes.
    /// </summary>
    public async Task<(ApiKey? Key, ApiError? Refused)> UpdateKeyAsync(Guid keyId, Guid? organizationId, KeyChanges changes,
        Func<ApiKey, Task<ApiError?>> allowed, AuditActor actor, CancellationToken ct)
    {
        var key = await FindKeyAsync(keyId, organizationId, ct);
        if (key is null) return (null, null);
        if (await allowed(key) is { } refused) return (null, refused);
        var before = Describe(key);
        if (changes.Name is { } name) key.Name = name;
        if (changes.ExpiresAtSet) key.ExpiresAt = changes.ExpiresAt;
        if (changes.Models is { } models) key.AllowedModels = [.. models];
        if (changes.RequestsPerMinuteSet) key.RequestsPerMinute = changes.RequestsPerMinute;
        if (changes.TokensPerMinuteSet) key.TokensPerMinute = changes.TokensPerMinute;
        if (changes.BudgetSet)
            (key.BudgetUsd, key.BudgetTokens, key.BudgetPeriod) = (changes.Budget?.Usd, changes.Budget?.Tokens, changes.Budget?.Period);
        // The provider first (Unkey keeps the key's name, expiry and limits): if it cannot be told, nothing changes here.
        await provider.UpdateAsync(key.Id, new KeySettings(key.Name, key.ExpiresAt, key.RequestsPerMinute, key.TokensPerMinute), db, ct);
        Audit(actor, "api_key.update", "api_key", key.Id.ToString(), before, Describe(key));
        await db.SaveChangesAsync(ct);
        return (key, null);
    }

    /// <summary>
    /// Gives a key a new secret (same id, limits, budget and history). The replaced one keeps working for
    /// <paramref name="grace"/>, then answers api_key_rotated; one rotated before it stops at once.
    /// </summary>
    public async Task<CreatedKey?> RotateKeyAsync(Guid keyId, Guid? organizationId, TimeSpan grace, AuditActor actor, CancellationToken ct)
    {
        var key = await FindKeyAsync(keyId, organizationId, ct);
        if (key is null) return null;
        var now = clock.GetUtcNow();
        var earlier = key.RetiredHash;
        // The new secret comes from the key provider, as at creation (with Unkey: a second Unkey key for the same Portal key).
        var issued = await provider.IssueAsync(new KeyToIssue(key.Id, key.OrganizationId, key.Name, key.Environment, key.ExpiresAt,
            key.RequestsPerMinute, key.TokensPerMinute), ct);
        var plaintext = issued.Plaintext;
        if (issued.ProviderKeyId is { } providerKeyId)
            db.Set<UnkeyKey>().Add(new UnkeyKey { ApiKeyId = key.Id, UnkeyKeyId = providerKeyId, CreatedAt = now });
        (key.RetiredHash, key.RetiredHashExpiresAt, key.RotatedAt) = (key.Hash, now + grace, now);
        (key.Hash, key.Start) = (ApiKeyFormat.Hash(plaintext), ApiKeyFormat.Start(plaintext));
        Audit(actor, "api_key.rotate", "api_key", key.Id.ToString(), null, new { key.Start, PreviousSecretExpiresAt = key.RetiredHashExpiresAt });
        await db.SaveChangesAsync(ct);
        await InvalidateAsync(key);
        if (earlier is not null) await entitlements.InvalidateKeyAsync(earlier);
        return new CreatedKey(key, plaintext);
    }

    /// <summary>A key by id; with <paramref name="organizationId"/>, only a key of that organisation.</summary>
    private Task<ApiKey?> FindKeyAsync(Guid keyId, Guid? organizationId, CancellationToken ct) =>
        db.ApiKeys.SingleOrDefaultAsync(k => k.Id == keyId && (organizationId == null || k.OrganizationId == organizationId), ct);

    /// <summary>Every replica drops the key's snapshots (its secret's and a rotated one's) within about a second.</summary>
    public async Task InvalidateAsync(ApiKey key)
    {
        await entitlements.InvalidateKeyAsync(key.Hash);
        if (key.RetiredHash is { } retired) await entitlements.InvalidateKeyAsync(retired);
    }

    private static object Describe(ApiKey k) => new
    {
        k.Name, k.ExpiresAt, Models = k.AllowedModels.ToArray(), k.RequestsPerMinute, k.TokensPerMinute,
        k.BudgetUsd, k.BudgetTokens, BudgetPeriod = k.BudgetPeriod?.ToString(),
    };

    public async Task<Organization?> SetOrganizationStatusAsync(Guid orgId, OrganizationStatus status, AuditActor actor, CancellationToken ct)
    {
        var org = await db.Organizations.SingleOrDefaultAsync(o => o.Id == orgId, ct);
        if (org is null) return null;
        // Asked again, nothing changes and nothing is audited as a change, but every replica is told again.
        if (org.Status != status)
        {
            var before = org.Status;
            org.Status = status;
            Audit(actor, status == OrganizationStatus.Paused ? "organization.pause" : "organization.resume", "organization", org.Id.ToString(),
                new { Status = before }, new { org.Status });
            await db.SaveChangesAsync(ct);
        }
        await entitlements.InvalidateOrganizationAsync(org.Id);
        return org;
    }

    public async Task<Organization?> ChangePlanAsync(Guid orgId, string planId, AuditActor actor, CancellationToken ct)
    {
        var org = await db.Organizations.SingleOrDefaultAsync(o => o.Id == orgId, ct);
        if (org is null) return null;
        if (org.PlanId == planId)
        {
            // The same plan: its subscription goes on and nothing is audited as a change; every replica is told again.
            await entitlements.InvalidateOrganizationAsync(org.Id);
            return org;
        }
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

    /// <summary>Grants (positive) or claws back (negative) credit: a ledger entry, and the hot-path balance once.</summary>
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
        await counters.GrantAsync(orgId, entry.Reference, entry.Amount, async () =>
        {
            await db.SaveChangesAsync(ct);
            return true;
        });
        return await db.LedgerTotals.Where(t => t.OrganizationId == orgId).SumAsync(t => t.Amount, ct);
    }

    private void Audit(AuditActor actor, string action, string targetType, string targetId, object? before, object? after) =>
        db.Record(actor, action, targetType, targetId, before, after, clock.GetUtcNow());
}
