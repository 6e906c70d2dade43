using System.Security.Claims;
using Cortensor.Api.Accounts;
using Cortensor.Api.Catalog;
using Cortensor.Api.ControlPlane;
using Cortensor.Api.Data;
using Cortensor.Api.Errors;
using Cortensor.Api.Infrastructure;
using Cortensor.Api.Keys;
using Cortensor.Api.Routing;
using Microsoft.AspNetCore.Http.HttpResults;
using Microsoft.AspNetCore.Mvc;
using Microsoft.EntityFrameworkCore;

namespace Cortensor.Api.Admin;

/// <summary>
/// Operator controls (SPEC §5), for users with the admin role. Every change is audited with the
/// operator who made it and reaches the hot path of every replica within about a second.
/// </summary>
public static class AdminApi
{
    public static IEndpointRouteBuilder MapAdminApi(this IEndpointRouteBuilder app)
    {
        var admin = app.MapGroup("/admin").RequireAuthorization(PortalAuth.AdminPolicy).WithTags("Admin").ProducesErrors(400, 401, 403, 404);

        admin.MapGet("/organizations", ListOrganizations).WithSummary("Organisations, newest first; 'search' matches name or id");
        admin.MapPost("/organizations", CreateOrganization).WithSummary("Create an organisation on a plan");
        admin.MapGet("/organizations/{id:guid}/api-keys", ListKeys).WithSummary("An organisation's keys");
        admin.MapPost("/organizations/{id:guid}/api-keys", CreateKey).WithSummary("Create an API key for an organisation (plaintext shown once)");
        admin.MapPost("/organizations/{id:guid}/pause", (Guid id, ClaimsPrincipal user, KeyService keys, CancellationToken ct) => SetOrganization(id, OrganizationStatus.Paused, user, keys, ct))
            .WithSummary("Pause an organisation: its keys answer 403 within about a second");
        admin.MapPost("/organizations/{id:guid}/resume", (Guid id, ClaimsPrincipal user, KeyService keys, CancellationToken ct) => SetOrganization(id, OrganizationStatus.Active, user, keys, ct))
            .WithSummary("Resume a paused organisation");
        admin.MapPut("/organizations/{id:guid}/plan", ChangePlan).WithSummary("Move an organisation to another plan");
        admin.MapPost("/organizations/{id:guid}/credits", AdjustCredits).WithSummary("Grant (positive) or claw back (negative) credits");
        admin.MapGet("/organizations/{id:guid}/balance", GetBalance).WithSummary("Ledger balance and the hot-path balance");
        admin.MapPost("/api-keys/{id:guid}/revoke", (Guid id, ClaimsPrincipal user, KeyService keys, TimeProvider clock, CancellationToken ct) => SetKey(id, ApiKeyStatus.Revoked, user, keys, clock, ct))
            .WithSummary("Revoke a key (final)");
        admin.MapPost("/api-keys/{id:guid}/pause", (Guid id, ClaimsPrincipal user, KeyService keys, TimeProvider clock, CancellationToken ct) => SetKey(id, ApiKeyStatus.Paused, user, keys, clock, ct))
            .WithSummary("Pause a key: it answers 403 until resumed");
        admin.MapPost("/api-keys/{id:guid}/resume", (Guid id, ClaimsPrincipal user, KeyService keys, TimeProvider clock, CancellationToken ct) => SetKey(id, ApiKeyStatus.Active, user, keys, clock, ct))
            .WithSummary("Resume a paused key");
        admin.MapPost("/models/{id}/disable", (string id, ClaimsPrincipal user, CatalogAdmin catalog, CancellationToken ct) => catalog.SetModelEnabledAsync(id, false, AuditActor.From(user), ct))
            .WithSummary("Disable a model: requests for it answer 403 model_disabled");
        admin.MapPost("/models/{id}/enable", (string id, ClaimsPrincipal user, CatalogAdmin catalog, CancellationToken ct) => catalog.SetModelEnabledAsync(id, true, AuditActor.From(user), ct))
            .WithSummary("Enable a model");
        admin.MapPost("/pools/{id}/drain", (string id, ClaimsPrincipal user, CatalogAdmin catalog, CancellationToken ct) => catalog.SetPoolDrainingAsync(id, true, AuditActor.From(user), ct))
            .WithSummary("Drain a pool: its models answer 503 with Retry-After, requests in flight finish");
        admin.MapPost("/pools/{id}/undrain", (string id, ClaimsPrincipal user, CatalogAdmin catalog, CancellationToken ct) => catalog.SetPoolDrainingAsync(id, false, AuditActor.From(user), ct))
            .WithSummary("Put a drained pool back into service");
        admin.MapGet("/pools", ListPools).WithSummary("Pools and routers with health, load and error rate, as this replica sees them");
        admin.MapGet("/audit", ListAudit).WithSummary("The audit log, newest first; filter by action, target or actor");
        admin.MapGet("/requests/{requestId}", FindRequest).WithSummary("Any request by its request id, with its usage");
        admin.MapUsageDeadLetters();
        admin.MapPlatformAdmins();
        return app;
    }

    public sealed record CreateOrganizationBody(string? Name, string? Plan);
    public sealed record OrganizationDto(Guid Id, string Name, string Plan, string Status, DateTimeOffset CreatedAt);
    public sealed record PlanBody(string? Plan);
    public sealed record CreditsBody(decimal? Amount, string? Reason);
    public sealed record BalanceDto(Guid OrganizationId, decimal Balance);

    private static async Task<Results<Ok<OrganizationDto[]>, ErrorResult>> ListOrganizations(PortalDbContext db,
        [FromQuery] string? search, [FromQuery] string? limit, CancellationToken ct)
    {
        if (QueryParameters.Int(limit, "limit", 1, 500, out var size) is { } bad) return bad.ToResult();
        if (search is { Length: > 200 }) return ApiError.InvalidField("search", "'search' is at most 200 characters.").ToResult();
        var query = db.Organizations.AsNoTracking();
        if (!string.IsNullOrWhiteSpace(search))
            query = Guid.TryParse(search, out var id)
                ? query.Where(o => o.Id == id)
                : query.Where(o => EF.Functions.ILike(o.Name, "%" + search.Replace("\\", "\\\\").Replace("%", "\\%").Replace("_", "\\_") + "%"));
        var orgs = await query.OrderByDescending(o => o.CreatedAt).Take(size ?? 100).ToListAsync(ct);
        return TypedResults.Ok(orgs.Select(ToDto).ToArray());
    }

    private static async Task<Results<Ok<ApiKeyDto[]>, ErrorResult>> ListKeys(Guid id, PortalDbContext db, TimeProvider clock, CancellationToken ct)
    {
        if (!await db.Organizations.AnyAsync(o => o.Id == id, ct)) return ApiError.NotFound("organization").ToResult();
        var keys = await db.ApiKeys.AsNoTracking().Where(k => k.OrganizationId == id).OrderByDescending(k => k.CreatedAt).ToListAsync(ct);
        var now = clock.GetUtcNow();
        return TypedResults.Ok(keys.Select(k => ApiKeyDto.From(k, now)).ToArray());
    }

    private static async Task<Results<Created<OrganizationDto>, ErrorResult>> CreateOrganization(
        CreateOrganizationBody body, ClaimsPrincipal user, KeyService keys, PortalDbContext db, CancellationToken ct)
    {
        if (string.IsNullOrWhiteSpace(body.Name) || body.Name.Length > 200) return ApiError.InvalidField("name", "'name' is required (at most 200 characters).").ToResult();
        var plan = body.Plan ?? "free";
        if (!await db.Plans.AnyAsync(p => p.Id == plan, ct)) return ApiError.InvalidField("plan", $"Unknown plan '{plan}'.").ToResult();
        var org = await keys.CreateOrganizationAsync(body.Name.Trim(), plan, null, AuditActor.From(user), ct);
        return TypedResults.Created($"/admin/organizations/{org.Id}", ToDto(org));
    }

    private static async Task<Results<Created<CreatedApiKeyDto>, ErrorResult>> CreateKey(
        Guid id, CreateKeyBody body, ClaimsPrincipal user, KeyService keys, PortalDbContext db, CatalogStore catalog, TimeProvider clock, CancellationToken ct)
    {
        if (!await db.Organizations.AnyAsync(o => o.Id == id, ct)) return ApiError.NotFound("organization").ToResult();
        if (body.Validate(catalog.Current, clock.GetUtcNow()) is { } invalid) return invalid.ToResult();
        var created = await keys.CreateKeyAsync(id, body.Name!.Trim(), body.Environment ?? "live", body.ExpiresAt, body.Models ?? [],
            body.RequestsPerMinute, body.TokensPerMinute, null, AuditActor.From(user), ct);
        return TypedResults.Created($"/admin/api-keys/{created.Key.Id}", CreatedApiKeyDto.From(created));
    }

    private static async Task<Results<Ok<OrganizationDto>, ErrorResult>> SetOrganization(Guid id, OrganizationStatus status, ClaimsPrincipal user, KeyService keys, CancellationToken ct) =>
        await keys.SetOrganizationStatusAsync(id, status, AuditActor.From(user), ct) is { } org ? TypedResults.Ok(ToDto(org)) : ApiError.NotFound("organization").ToResult();

    private static async Task<Results<Ok<ApiKeyDto>, ErrorResult>> SetKey(Guid id, ApiKeyStatus status, ClaimsPrincipal user, KeyService keys, TimeProvider clock, CancellationToken ct) =>
        await keys.SetKeyStatusAsync(id, status, null, AuditActor.From(user), ct) is { } k
            ? TypedResults.Ok(ApiKeyDto.From(k, clock.GetUtcNow()))
            : ApiError.NotFound("API key").ToResult();

    private static async Task<Results<Ok<OrganizationDto>, ErrorResult>> ChangePlan(Guid id, PlanBody body, ClaimsPrincipal user, KeyService keys, PortalDbContext db, CancellationToken ct)
    {
        if (string.IsNullOrWhiteSpace(body.Plan) || !await db.Plans.AnyAsync(p => p.Id == body.Plan, ct))
            return ApiError.InvalidField("plan", $"Unknown plan '{body.Plan}'.").ToResult();
        return await keys.ChangePlanAsync(id, body.Plan, AuditActor.From(user), ct) is { } org ? TypedResults.Ok(ToDto(org)) : ApiError.NotFound("organization").ToResult();
    }

    private static async Task<Results<Ok<BalanceDto>, ErrorResult>> AdjustCredits(Guid id, CreditsBody body, ClaimsPrincipal user, KeyService keys, CancellationToken ct)
    {
        if (body.Amount is not { } amount || amount == 0 || Math.Abs(amount) > 1_000_000m)
            return ApiError.InvalidField("amount", "'amount' must be a non-zero number of USD, at most 1,000,000 either way.").ToResult();
        if (decimal.Round(amount, 10) != amount) return ApiError.InvalidField("amount", "'amount' takes at most 10 decimal places.").ToResult();
        return await keys.AdjustCreditsAsync(id, amount, body.Reason ?? "", AuditActor.From(user), ct) is { } balance
            ? TypedResults.Ok(new BalanceDto(id, balance))
            : ApiError.NotFound("organization").ToResult();
    }

    public sealed record BalancesDto(Guid OrganizationId, decimal LedgerBalance, decimal? HotBalance, long TokensThisMonth, int UsageEntries, int UsageEvents);

    private static async Task<Results<Ok<BalancesDto>, ErrorResult>> GetBalance(
        Guid id, PortalDbContext db, Npgsql.NpgsqlDataSource postgres, Cortensor.Api.Limits.HotCounters counters, TimeProvider clock, CancellationToken ct)
    {
        if (!await db.Organizations.AnyAsync(o => o.Id == id, ct)) return ApiError.NotFound("organization").ToResult();
        var ledger = await Balances.ReadAsync(postgres, id, clock.GetUtcNow(), countEvents: true, ct);
        return TypedResults.Ok(new BalancesDto(id, ledger.Balance, await counters.HotBalanceAsync(id), ledger.TokensThisMonth, ledger.UsageEntries, ledger.UsageEvents));
    }

    /// <summary>A router as this Api replica sees it; <c>Share</c> is its part of the pool's picks here (a starved router shows near 0).</summary>
    public sealed record RouterDto(string Id, bool Healthy, string Circuit, int InFlight, long ReportedLoad, long Completed, long Failed, double ErrorRate, double LatencyMs, DateTimeOffset? LastProbeAt,
        long Picked, double Share, double ProbeLatencyMs);
    public sealed record PoolDto(string Id, bool Draining, string[] Models, RouterDto[] Routers);

    private static Ok<PoolDto[]> ListPools(CatalogStore catalog, RouterBalancer balancer)
    {
        var snapshot = catalog.Current;
        return TypedResults.Ok(snapshot.Pools.Values.OrderBy(p => p.Id).Select(p => new PoolDto(p.Id, p.Draining,
            snapshot.Models.Values.Where(m => m.PoolId == p.Id).Select(m => m.Id).Order().ToArray(),
            RoutersOf(p, balancer))).ToArray());
    }

    private static RouterDto[] RoutersOf(CatalogPool pool, RouterBalancer balancer)
    {
        var poolPicked = pool.Routers.Sum(r => balancer.StateOf(r.Id).Picked);
        return pool.Routers.Select(r =>
        {
            var s = balancer.StateOf(r.Id);
            var total = s.Completed + s.Failed;
            return new RouterDto(r.Id, s.Available, s.Circuit.ToString(), s.InFlight, s.ReportedLoad, s.Completed, s.Failed,
                total == 0 ? 0 : (double)s.Failed / total, Math.Round(s.LatencyMs, 2), s.LastProbeAt,
                s.Picked, poolPicked == 0 ? 0 : Math.Round((double)s.Picked / poolPicked, 4), Math.Round(s.ProbeLatencyMs, 2));
        }).ToArray();
    }

    private static async Task<Results<Ok<AuditLogEntry[]>, ErrorResult>> ListAudit(PortalDbContext db, [FromQuery] string? limit,
        [FromQuery] string? action, [FromQuery(Name = "target_id")] string? targetId, [FromQuery] string? actor, CancellationToken ct)
    {
        if (QueryParameters.Int(limit, "limit", 1, 1000, out var size) is { } bad) return bad.ToResult();
        var query = db.AuditLog.AsNoTracking();
        if (!string.IsNullOrEmpty(action)) query = query.Where(a => a.Action == action);
        if (!string.IsNullOrEmpty(targetId)) query = query.Where(a => a.TargetId == targetId);
        if (!string.IsNullOrEmpty(actor)) query = query.Where(a => a.Actor == actor);
        return TypedResults.Ok(await query.OrderByDescending(a => a.Id).Take(size ?? 100).ToArrayAsync(ct));
    }

    public sealed record RequestDto(RequestLog Log, UsageEvent? Usage);

    private static async Task<Results<Ok<RequestDto[]>, ErrorResult>> FindRequest(string requestId, PortalDbContext db, CancellationToken ct)
    {
        var found = await db.RequestLogs.AsNoTracking().Where(r => r.RequestId == requestId).OrderBy(r => r.CreatedAt)
            .GroupJoin(db.UsageEvents.AsNoTracking(), r => r.EventId, u => u.EventId, (r, u) => new { r, u })
            .SelectMany(x => x.u.DefaultIfEmpty(), (x, u) => new RequestDto(x.r, u))
            .ToArrayAsync(ct);
        return found.Length > 0 ? TypedResults.Ok(found) : ApiError.NotFound("request").ToResult();
    }

    private static OrganizationDto ToDto(Organization o) => new(o.Id, o.Name, o.PlanId, o.Status.ToString().ToLowerInvariant(), o.CreatedAt);
}
