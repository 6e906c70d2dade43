using Cortensor.Api.Data;
using Cortensor.Api.Errors;
using Cortensor.Api.Keys;
using Microsoft.AspNetCore.Http.HttpResults;
using Microsoft.EntityFrameworkCore;
using System.Text.Json;

namespace Cortensor.Api.Admin;

/// <summary>Any key, whichever organisation it belongs to: revoke (final), pause, resume.</summary>
public static class KeysAdminApi
{
    public static RouteGroupBuilder MapKeysAdmin(this RouteGroupBuilder admin)
    {
        var keys = admin.MapGroup("/api-keys");
        keys.MapPost("/{id:guid}/revoke", (Guid id, [AsParameters] AdminChanges c) => SetStatus(id, ApiKeyStatus.Revoked, c)).WithSummary("Revoke a key (final)");
        keys.MapPost("/{id:guid}/pause", (Guid id, [AsParameters] AdminChanges c) => SetStatus(id, ApiKeyStatus.Paused, c)).WithSummary("Pause a key: it answers 403 until resumed");
        keys.MapPost("/{id:guid}/resume", (Guid id, [AsParameters] AdminChanges c) => SetStatus(id, ApiKeyStatus.Active, c)).WithSummary("Resume a paused key");
        keys.MapPatch("/{id:guid}", Update)
            .WithSummary("Change any key's name, models, rate limits, expiry or budget, as an owner may (PATCH /portal/api-keys/{id}); also for organisations without members");
        return admin;
    }

    private static async Task<Results<Ok<ApiKeyDto>, ErrorResult>> Update(Guid id, JsonElement body, [AsParameters] AdminChanges c,
        StackExchange.Redis.IConnectionMultiplexer redis, ILogger<KeyService> log)
    {
        if (await c.Db.ApiKeys.AsNoTracking().Where(k => k.Id == id).Select(k => (Guid?)k.OrganizationId).SingleOrDefaultAsync(c.Ct) is not { } organizationId)
            return ApiError.NotFound("API key").ToResult();
        // An operator is not held to the plan's key cap (as when creating a key here); a revoked key stays final.
        return await ControlPlane.ApiKeysApi.UpdateAsync(id, organizationId, body, c.Actor, c.Db, c.Keys, c.Catalog, redis, c.Clock.GetUtcNow(), log,
            (current, _) => Task.FromResult(current.Status == ApiKeyStatus.Revoked ? ApiError.KeyAlreadyRevoked() : null), c.Ct);
    }

    private static async Task<Results<Ok<ApiKeyDto>, ErrorResult>> SetStatus(Guid id, ApiKeyStatus status, AdminChanges c)
    {
        if (await c.Keys.SetKeyStatusAsync(id, status, null, c.Actor, c.Ct) is not { } key) return ApiError.NotFound("API key").ToResult();
        // Pausing or resuming a revoked key changes nothing: said as such, not as a 200 the operator would read as done.
        if (key.Status != status) return ApiError.KeyAlreadyRevoked().ToResult();
        return TypedResults.Ok(ApiKeyDto.From(key, c.Clock.GetUtcNow()));
    }
}
