using Cortensor.Api.Accounts;
using Cortensor.Api.Catalog;
using Cortensor.Api.Data;
using Cortensor.Api.Errors;
using Cortensor.Api.Keys;
using Microsoft.AspNetCore.Http.HttpResults;
using Microsoft.EntityFrameworkCore;
using Microsoft.Extensions.Options;
using StackExchange.Redis;
using System.Text.Json;
using Cortensor.Api.Infrastructure;

namespace Cortensor.Api.ControlPlane;

/// <summary>The organisation's API keys. Another organisation's key does not exist here (404).</summary>
public static class ApiKeysApi
{
    public static RouteGroupBuilder MapApiKeysApi(this RouteGroupBuilder portal)
    {
        var keys = portal.MapGroup("/api-keys").WithTags("API keys");
        keys.MapGet("", List).WithSummary("The organisation's keys (visible start only), newest first");
        keys.MapPost("", Create).RequireVerifiedEmail("create API keys")
            .WithSummary("Create a key; the answer is the only time the plaintext key is shown. The plan caps active keys per organisation (409 api_key_limit)");
        keys.MapGet("/{id:guid}", Get).WithSummary("One key");
        keys.MapDelete("/{id:guid}", Revoke).WithSummary("Revoke a key: it answers 401 on every replica within about a second");
        keys.MapPatch("/{id:guid}", Update)
            .WithSummary("Change a key's name, models, rate limits, expiry or budget (only the fields sent; null clears one). Effective on every replica within about a second");
        keys.MapPost("/{id:guid}/rotate", Rotate)
            .WithSummary("A new secret for the same key (shown once); the replaced secret works for grace_period_seconds (default 0), then answers 401 api_key_rotated");
        return portal;
    }

    private static async Task<Ok<ApiKeyDto[]>> List(PortalCaller caller, PortalDbContext db, IConnectionMultiplexer redis, TimeProvider clock, CancellationToken ct) =>
        TypedResults.Ok(await ListAsync(db, redis, caller.OrganizationId, clock.GetUtcNow(), ct));

    /// <summary>An organisation's keys as its owner sees them (last use, budget state), for the portal and the admin API alike.</summary>
    internal static async Task<ApiKeyDto[]> ListAsync(PortalDbContext db, IConnectionMultiplexer redis, Guid organizationId, DateTimeOffset now, CancellationToken ct)
    {
        var rows = await Query(db, organizationId).ToListAsync(ct);
        var keys = new List<ApiKeyDto>(rows.Count);
        foreach (var x in rows) keys.Add(ApiKeyDto.From(x.Key, now, x.LastUsedAt, await BudgetStateAsync(redis, x.Key, now)));
        return keys.ToArray();
    }

    private static async Task<Results<Ok<ApiKeyDto>, ErrorResult>> Get(Guid id, PortalCaller caller, PortalDbContext db, IConnectionMultiplexer redis,
        TimeProvider clock, CancellationToken ct)
    {
        if (await Query(db, caller.OrganizationId, id).SingleOrDefaultAsync(ct) is not { } row) return ApiError.NotFound("API key").ToResult();
        var now = clock.GetUtcNow();
        return TypedResults.Ok(ApiKeyDto.From(row.Key, now, row.LastUsedAt, await BudgetStateAsync(redis, row.Key, now)));
    }

    private static async Task<Results<Ok<ApiKeyDto>, ErrorResult>> Update(Guid id, JsonElement body, PortalCaller caller, PortalDbContext db,
        KeyService keys, CatalogStore catalog, IConnectionMultiplexer redis, IOptions<ControlPlaneLimits> limits, TimeProvider clock,
        ILogger<KeyService> log, CancellationToken ct)
    {
        var now = clock.GetUtcNow();
        return await UpdateAsync(id, caller.OrganizationId, body, caller.Actor, db, keys, catalog, redis, now, log, async (current, changes) =>
        {
            if (Refusal(current.CreatedByUserId, current.Status, caller, "change a key someone else created") is { } notYours) return notYours;
            // A member changing a key they created may tighten it, not undo what an owner or admin set on it.
            if (!caller.CanManage && changes.Loosens(current) is { } loosened)
                return ApiError.InsufficientRole($"loosen a key's {loosened} (members may tighten the keys they created)");
            // An expired key given a later expiry (or none) is active again: it counts against the plan's cap as a new key does.
            var revived = changes.ExpiresAtSet && current.ExpiresAt <= now && (changes.ExpiresAt is null || changes.ExpiresAt > now);
            return revived ? await AtCapAsync(caller.OrganizationId, db, limits.Value, now, ct) : null;
        }, ct);
    }

    /// <summary>
    /// A key's PATCH for the portal and the admin API alike: <paramref name="allowed"/> judges the change on the key as it
    /// is written. The key is read once, under the organisation's key lock, so a member's tightening and an owner's
    /// loosening of the same key cannot interleave, nor can two revivals of expired keys and the cap.
    /// </summary>
    internal static async Task<Results<Ok<ApiKeyDto>, ErrorResult>> UpdateAsync(Guid id, Guid organizationId, JsonElement body, AuditActor actor,
        PortalDbContext db, KeyService keys, CatalogStore catalog, IConnectionMultiplexer redis, DateTimeOffset now, ILogger log,
        Func<ApiKey, KeyChanges, Task<ApiError?>> allowed, CancellationToken ct)
    {
        var (changes, invalid) = KeyChanges.Read(body, catalog.Current, now);
        if (changes is null) return (invalid ?? ApiError.MalformedJson(null, "the body must be a JSON object.")).ToResult();
        var (key, refused) = await db.OneAtATimeAsync("api-keys", organizationId, () =>
        {
            db.ChangeTracker.Clear(); // a retried transaction reads the key afresh, not as the failed attempt left it
            return keys.UpdateKeyAsync(id, organizationId, changes, current => allowed(current, changes), actor, ct);
        }, ct);
        if (refused is not null) return refused.ToResult();
        if (key is null) return ApiError.NotFound("API key").ToResult();
        try
        {
            // A budget set (or moved to another period) counts what the key already spent this period. The change is
            // committed: this runs to its end whoever goes away, and whatever it meets, the snapshots are dropped below.
            if (changes.BudgetSet && KeyBudget.From(key.BudgetUsd, key.BudgetTokens, key.BudgetPeriod) is { } budget)
                await CountSpentAsync(db, redis, key, budget, now, log);
        }
        finally
        {
            // Committed: now every replica may drop its snapshot and read the key as changed.
            await keys.InvalidateAsync(key);
        }
        return TypedResults.Ok(ApiKeyDto.From(key, now, null, await BudgetStateAsync(redis, key, now)));
    }

    /// <summary>
    /// The key's spend this period so far, from the ledger's daily totals (periods are whole UTC days), into the budget's
    /// counter. Requests whose usage has not reached the ledger yet (a second or so) are not in it.
    /// </summary>
    private static async Task CountSpentAsync(PortalDbContext db, IConnectionMultiplexer redis, ApiKey key, KeyBudget budget, DateTimeOffset now, ILogger log)
    {
        try
        {
            var (_, start, _) = budget.PeriodAt(now);
            var (first, today) = (DateOnly.FromDateTime(start.UtcDateTime), DateOnly.FromDateTime(now.UtcDateTime));
            var spent = await db.UsageDaily.AsNoTracking().Where(d => d.ApiKeyId == key.Id && d.Day >= first && d.Day <= today)
                .GroupBy(_ => 1).Select(g => new { Cost = g.Sum(d => d.Cost), Tokens = g.Sum(d => d.PromptTokens + d.CompletionTokens) })
                .SingleOrDefaultAsync(CancellationToken.None);
            if (spent is null || (spent.Cost <= 0 && spent.Tokens <= 0)) return;
            await budget.CountSpentAsync(redis.GetDatabase(), key.OrganizationId, key.Id, Limits.Pricing.ToUnits(spent.Cost), spent.Tokens, now);
        }
        catch (Exception ex)
        {
            // The change is saved; only the earlier spend is not counted (Redis or Postgres away). Said, so an operator
            // can tell why a key spent more than its first period's budget.
            log.LogWarning(ex, "The spend of key {KeyId} before its budget was set could not be counted; the budget counts from now", key.Id);
        }
    }

    /// <summary>409 api_key_limit when the organisation has as many active keys (not revoked, not expired) as its plan allows.</summary>
    private static async Task<ApiError?> AtCapAsync(Guid organizationId, PortalDbContext db, ControlPlaneLimits limits, DateTimeOffset now, CancellationToken ct)
    {
        var plan = await db.Organizations.AsNoTracking().Where(o => o.Id == organizationId).Select(o => o.PlanId).SingleAsync(ct);
        var cap = limits.ApiKeysFor(plan);
        return await db.ApiKeys.CountAsync(k => k.OrganizationId == organizationId && k.Status != ApiKeyStatus.Revoked && (k.ExpiresAt == null || k.ExpiresAt > now), ct) >= cap
            ? ApiError.LimitReached("api_key_limit", $"The {plan} plan allows {cap} active API keys per organization. Revoke one, or upgrade.")
            : null;
    }

    private static async Task<Results<Ok<RotatedApiKeyDto>, ErrorResult>> Rotate(Guid id, RotateKeyBody? body, PortalCaller caller, PortalDbContext db,
        KeyService keys, CancellationToken ct)
    {
        if (body?.Validate() is { } invalid) return invalid.ToResult();
        if (await Changeable(id, caller, db, "rotate a key someone else created", ct) is { } refused) return refused.ToResult();
        var rotated = await keys.RotateKeyAsync(id, caller.OrganizationId, TimeSpan.FromSeconds(body?.GracePeriodSeconds ?? 0), caller.Actor, ct);
        return rotated is null ? ApiError.NotFound("API key").ToResult() : TypedResults.Ok(RotatedApiKeyDto.From(rotated));
    }

    /// <summary>Who may change a key: an owner or admin, or whoever created it; a revoked key is final.</summary>
    private static async Task<ApiError?> Changeable(Guid id, PortalCaller caller, PortalDbContext db, string what, CancellationToken ct)
    {
        var key = await db.ApiKeys.AsNoTracking().Where(k => k.Id == id && k.OrganizationId == caller.OrganizationId)
            .Select(k => new { k.CreatedByUserId, k.Status }).SingleOrDefaultAsync(ct);
        return key is null ? ApiError.NotFound("API key") : Refusal(key.CreatedByUserId, key.Status, caller, what);
    }

    private static ApiError? Refusal(Guid? createdBy, ApiKeyStatus status, PortalCaller caller, string what)
    {
        if (!caller.CanManage && createdBy != caller.UserId) return ApiError.InsufficientRole(what);
        return status == ApiKeyStatus.Revoked ? ApiError.KeyAlreadyRevoked() : null;
    }

    /// <summary>Spent and left this period, from the admission counters (settled and still reserved); none when Redis is away.</summary>
    private static async Task<KeyBudgetState?> BudgetStateAsync(IConnectionMultiplexer redis, ApiKey key, DateTimeOffset now)
    {
        if (KeyBudget.From(key.BudgetUsd, key.BudgetTokens, key.BudgetPeriod) is not { } budget) return null;
        try
        {
            return await budget.StateAsync(redis.GetDatabase(), key.OrganizationId, key.Id, now);
        }
        catch (Exception ex) when (Outage.IsRedis(ex))
        {
            return null;
        }
    }

    private static async Task<Results<Created<CreatedApiKeyDto>, ErrorResult>> Create(CreateKeyBody body, PortalCaller caller,
        KeyService keys, CatalogStore catalog, PortalDbContext db, IOptions<ControlPlaneLimits> limits, TimeProvider clock, CancellationToken ct)
    {
        var now = clock.GetUtcNow();
        if (body.Validate(catalog.Current, now) is { } invalid) return invalid.ToResult();
        return await db.OneAtATimeAsync<Results<Created<CreatedApiKeyDto>, ErrorResult>>("api-keys", caller.OrganizationId, async () =>
        {
            if (await AtCapAsync(caller.OrganizationId, db, limits.Value, now, ct) is { } full) return full.ToResult();
            var created = await keys.CreateKeyAsync(caller.OrganizationId, body.Name!.Trim(), body.Environment ?? "live", body.ExpiresAt,
                body.Models ?? [], body.RequestsPerMinute, body.TokensPerMinute, caller.UserId, caller.Actor, ct);
            return TypedResults.Created($"/portal/api-keys/{created.Key.Id}", CreatedApiKeyDto.From(created));
        }, ct);
    }

    private static async Task<Results<Ok<ApiKeyDto>, ErrorResult>> Revoke(Guid id, PortalCaller caller, PortalDbContext db,
        KeyService keys, TimeProvider clock, CancellationToken ct)
    {
        var owner = await db.ApiKeys.AsNoTracking().Where(k => k.Id == id && k.OrganizationId == caller.OrganizationId)
            .Select(k => new { k.CreatedByUserId }).SingleOrDefaultAsync(ct);
        if (owner is null) return ApiError.NotFound("API key").ToResult();
        if (!caller.CanManage && owner.CreatedByUserId != caller.UserId) return ApiError.InsufficientRole("revoke a key someone else created").ToResult();
        var key = await keys.SetKeyStatusAsync(id, ApiKeyStatus.Revoked, caller.OrganizationId, caller.Actor, ct);
        return key is null ? ApiError.NotFound("API key").ToResult() : TypedResults.Ok(ApiKeyDto.From(key, clock.GetUtcNow()));
    }

    private sealed record KeyRow(ApiKey Key, DateTimeOffset? LastUsedAt);

    /// <summary>Last use comes from the request log (indexed by key and time) rather than a write on every request.</summary>
    private static IQueryable<KeyRow> Query(PortalDbContext db, Guid organizationId, Guid? keyId = null) =>
        db.ApiKeys.AsNoTracking().Where(k => k.OrganizationId == organizationId && (keyId == null || k.Id == keyId))
            .OrderByDescending(k => k.CreatedAt)
            .Select(k => new KeyRow(k, db.RequestLogs.Where(r => r.ApiKeyId == k.Id).Max(r => (DateTimeOffset?)r.CreatedAt)));
}
