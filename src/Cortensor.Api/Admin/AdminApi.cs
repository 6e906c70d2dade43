using Cortensor.Api.Catalog;
using Cortensor.Api.Data;
using Cortensor.Api.Errors;
using Cortensor.Api.Infrastructure;
using Cortensor.Api.Keys;
using Cortensor.Api.Routing;
using Microsoft.AspNetCore.Http.HttpResults;
using Microsoft.AspNetCore.Mvc;
using Microsoft.EntityFrameworkCore;

namespace Cortensor.Api.Admin;

/// <summary>Operator controls (SPEC §5). Every change is audited and reaches the hot path of every replica within about a second.</summary>
public static class AdminApi
{
    private const string Actor = "operator";

    public static IEndpointRouteBuilder MapAdminApi(this IEndpointRouteBuilder app)
    {
        var admin = app.MapGroup("/admin").AddEndpointFilter<AdminTokenFilter>().WithTags("Admin");

        admin.MapPost("/organizations", CreateOrganization).WithSummary("Create an organisation on a plan");
        admin.MapPost("/organizations/{id:guid}/api-keys", CreateKey).WithSummary("Create an API key for an organisation (plaintext shown once)");
        admin.MapPost("/organizations/{id:guid}/pause", (Guid id, KeyService keys, CancellationToken ct) => SetOrganization(id, OrganizationStatus.Paused, keys, ct));
        admin.MapPost("/organizations/{id:guid}/resume", (Guid id, KeyService keys, CancellationToken ct) => SetOrganization(id, OrganizationStatus.Active, keys, ct));
        admin.MapPut("/organizations/{id:guid}/plan", ChangePlan);
        admin.MapPost("/organizations/{id:guid}/credits", AdjustCredits).WithSummary("Grant (positive) or claw back (negative) credits");
        admin.MapGet("/organizations/{id:guid}/balance", GetBalance).WithSummary("Ledger balance and the hot-path balance");
        admin.MapPost("/api-keys/{id:guid}/revoke", (Guid id, KeyService keys, CancellationToken ct) => SetKey(id, ApiKeyStatus.Revoked, keys, ct));
        admin.MapPost("/api-keys/{id:guid}/pause", (Guid id, KeyService keys, CancellationToken ct) => SetKey(id, ApiKeyStatus.Paused, keys, ct));
        admin.MapPost("/api-keys/{id:guid}/resume", (Guid id, KeyService keys, CancellationToken ct) => SetKey(id, ApiKeyStatus.Active, keys, ct));
        admin.MapPost("/models/{id}/disable", (string id, CatalogAdmin catalog, CancellationToken ct) => catalog.SetModelEnabledAsync(id, false, Actor, ct));
        admin.MapPost("/models/{id}/enable", (string id, CatalogAdmin catalog, CancellationToken ct) => catalog.SetModelEnabledAsync(id, true, Actor, ct));
        admin.MapPost("/pools/{id}/drain", (string id, CatalogAdmin catalog, CancellationToken ct) => catalog.SetPoolDrainingAsync(id, true, Actor, ct));
        admin.MapPost("/pools/{id}/undrain", (string id, CatalogAdmin catalog, CancellationToken ct) => catalog.SetPoolDrainingAsync(id, false, Actor, ct));
        admin.MapGet("/pools", ListPools).WithSummary("Pools and routers with health, load and error rate, as this replica sees them");
        admin.MapGet("/audit", ListAudit);
        admin.MapGet("/requests/{requestId}", FindRequest);
        return app;
    }

    public sealed record CreateOrganizationBody(string? Name, string? Plan);
    public sealed record OrganizationDto(Guid Id, string Name, string Plan, string Status, DateTimeOffset CreatedAt);
    public sealed record CreateKeyBody(string? Name, string? Environment, DateTimeOffset? ExpiresAt, string[]? Models, int? RequestsPerMinute, int? TokensPerMinute);
    public sealed record CreatedKeyDto(Guid Id, string Name, string Key, string Start, string Status, DateTimeOffset CreatedAt, DateTimeOffset? ExpiresAt, string[] Models);
    public sealed record KeyDto(Guid Id, string Name, string Start, string Status, DateTimeOffset? RevokedAt);
    public sealed record PlanBody(string? Plan);
    public sealed record CreditsBody(decimal? Amount, string? Reason);
    public sealed record BalanceDto(Guid OrganizationId, decimal Balance);

    private static async Task<Results<Created<OrganizationDto>, ErrorResult>> CreateOrganization(
        CreateOrganizationBody body, KeyService keys, PortalDbContext db, CancellationToken ct)
    {
        if (string.IsNullOrWhiteSpace(body.Name) || body.Name.Length > 200) return ApiError.InvalidField("name", "'name' is required (at most 200 characters).").ToResult();
        var plan = body.Plan ?? "free";
        if (!await db.Plans.AnyAsync(p => p.Id == plan, ct)) return ApiError.InvalidField("plan", $"Unknown plan '{plan}'.").ToResult();
        var org = await keys.CreateOrganizationAsync(body.Name.Trim(), plan, Actor, ct);
        return TypedResults.Created($"/admin/organizations/{org.Id}", ToDto(org));
    }

    private static async Task<Results<Created<CreatedKeyDto>, ErrorResult>> CreateKey(
        Guid id, CreateKeyBody body, KeyService keys, PortalDbContext db, CatalogStore catalog, TimeProvider clock, CancellationToken ct)
    {
        if (!await db.Organizations.AnyAsync(o => o.Id == id, ct)) return new ApiError(404, "invalid_request_error", "not_found", "No such organization.").ToResult();
        if (string.IsNullOrWhiteSpace(body.Name) || body.Name.Length > 100) return ApiError.InvalidField("name", "'name' is required (at most 100 characters).").ToResult();
        var environment = body.Environment ?? "live";
        if (environment is not ("live" or "test")) return ApiError.InvalidField("environment", "'environment' must be 'live' or 'test'.").ToResult();
        if (body.ExpiresAt is { } expires && expires <= clock.GetUtcNow()) return ApiError.InvalidField("expires_at", "'expires_at' must be in the future.").ToResult();
        var models = body.Models ?? [];
        if (models.FirstOrDefault(m => !catalog.Current.Models.ContainsKey(m)) is { } unknown)
            return ApiError.InvalidField("models", $"Unknown model '{unknown}'.").ToResult();
        if (body.RequestsPerMinute is < 1) return ApiError.InvalidField("requests_per_minute", "'requests_per_minute' must be at least 1.").ToResult();
        if (body.TokensPerMinute is < 1) return ApiError.InvalidField("tokens_per_minute", "'tokens_per_minute' must be at least 1.").ToResult();
        var created = await keys.CreateKeyAsync(id, body.Name.Trim(), environment, body.ExpiresAt, models, body.RequestsPerMinute, body.TokensPerMinute, null, Actor, ct);
        var k = created.Key;
        return TypedResults.Created($"/admin/api-keys/{k.Id}",
            new CreatedKeyDto(k.Id, k.Name, created.Plaintext, k.Start, k.Status.ToString().ToLowerInvariant(), k.CreatedAt, k.ExpiresAt, k.AllowedModels.ToArray()));
    }

    private static async Task<Results<Ok<OrganizationDto>, ErrorResult>> SetOrganization(Guid id, OrganizationStatus status, KeyService keys, CancellationToken ct) =>
        await keys.SetOrganizationStatusAsync(id, status, Actor, ct) is { } org ? TypedResults.Ok(ToDto(org)) : NotFound("organization");

    private static async Task<Results<Ok<KeyDto>, ErrorResult>> SetKey(Guid id, ApiKeyStatus status, KeyService keys, CancellationToken ct) =>
        await keys.SetKeyStatusAsync(id, status, Actor, ct) is { } k
            ? TypedResults.Ok(new KeyDto(k.Id, k.Name, k.Start, k.Status.ToString().ToLowerInvariant(), k.RevokedAt))
            : NotFound("API key");

    private static async Task<Results<Ok<OrganizationDto>, ErrorResult>> ChangePlan(Guid id, PlanBody body, KeyService keys, PortalDbContext db, CancellationToken ct)
    {
        if (string.IsNullOrWhiteSpace(body.Plan) || !await db.Plans.AnyAsync(p => p.Id == body.Plan, ct))
            return ApiError.InvalidField("plan", $"Unknown plan '{body.Plan}'.").ToResult();
        return await keys.ChangePlanAsync(id, body.Plan, Actor, ct) is { } org ? TypedResults.Ok(ToDto(org)) : NotFound("organization");
    }

    private static async Task<Results<Ok<BalanceDto>, ErrorResult>> AdjustCredits(Guid id, CreditsBody body, KeyService keys, CancellationToken ct)
    {
        if (body.Amount is not { } amount || amount == 0 || Math.Abs(amount) > 1_000_000m)
            return ApiError.InvalidField("amount", "'amount' must be a non-zero number of USD, at most 1,000,000 either way.").ToResult();
        if (decimal.Round(amount, 10) != amount) return ApiError.InvalidField("amount", "'amount' takes at most 10 decimal places.").ToResult();
        return await keys.AdjustCreditsAsync(id, amount, body.Reason ?? "", Actor, ct) is { } balance
            ? TypedResults.Ok(new BalanceDto(id, balance))
            : NotFound("organization");
    }

    public sealed record BalancesDto(Guid OrganizationId, decimal LedgerBalance, decimal? HotBalance, long TokensThisMonth, int UsageEntries, int UsageEvents);

    private static async Task<Results<Ok<BalancesDto>, ErrorResult>> GetBalance(
        Guid id, PortalDbContext db, Npgsql.NpgsqlDataSource postgres, Cortensor.Api.Limits.AdmissionGate quota, TimeProvider clock, CancellationToken ct)
    {
        if (!await db.Organizations.AnyAsync(o => o.Id == id, ct)) return NotFound("organization");
        var now = clock.GetUtcNow();
        // One statement, one snapshot: a ledger batch committing meanwhile is seen whole or not at all.
        await using var command = postgres.CreateCommand("""
            SELECT coalesce(sum(amount), 0),
                   coalesce(sum(tokens) FILTER (WHERE kind = 'Usage' AND created_at >= $2), 0)::bigint,
                   count(*) FILTER (WHERE kind = 'Usage')::int,
                   (SELECT count(*) FROM usage_events WHERE organization_id = $1)::int
            FROM billing_ledger WHERE organization_id = $1
            """);
        command.Parameters.Add(new Npgsql.NpgsqlParameter { Value = id });
        command.Parameters.Add(new Npgsql.NpgsqlParameter { Value = new DateTimeOffset(now.Year, now.Month, 1, 0, 0, 0, TimeSpan.Zero) });
        await using var reader = await command.ExecuteReaderAsync(ct);
        await reader.ReadAsync(ct);
        return TypedResults.Ok(new BalancesDto(id, reader.GetDecimal(0), await quota.HotBalanceAsync(id), reader.GetInt64(1), reader.GetInt32(2), reader.GetInt32(3)));
    }

    public sealed record RouterDto(string Id, bool Healthy, string Circuit, int InFlight, long ReportedLoad, long Completed, long Failed, double ErrorRate, double LatencyMs, DateTimeOffset? LastProbeAt);
    public sealed record PoolDto(string Id, bool Draining, string[] Models, RouterDto[] Routers);

    private static Ok<PoolDto[]> ListPools(CatalogStore catalog, RouterBalancer balancer)
    {
        var snapshot = catalog.Current;
        return TypedResults.Ok(snapshot.Pools.Values.OrderBy(p => p.Id).Select(p => new PoolDto(p.Id, p.Draining,
            snapshot.Models.Values.Where(m => m.PoolId == p.Id).Select(m => m.Id).Order().ToArray(),
            p.Routers.Select(r =>
            {
                var s = balancer.StateOf(r.Id);
                var total = s.Completed + s.Failed;
                return new RouterDto(r.Id, s.Available, s.Circuit.ToString(), s.InFlight, s.ReportedLoad, s.Completed, s.Failed,
                    total == 0 ? 0 : (double)s.Failed / total, Math.Round(s.LatencyMs, 2), s.LastProbeAt);
            }).ToArray())).ToArray());
    }

    private static async Task<Ok<AuditLogEntry[]>> ListAudit(PortalDbContext db, [FromQuery] int? limit, CancellationToken ct) =>
        TypedResults.Ok(await db.AuditLog.AsNoTracking().OrderByDescending(a => a.Id).Take(Math.Clamp(limit ?? 100, 1, 1000)).ToArrayAsync(ct));

    public sealed record RequestDto(RequestLog Log, UsageEvent? Usage);

    private static async Task<Results<Ok<RequestDto[]>, ErrorResult>> FindRequest(string requestId, PortalDbContext db, CancellationToken ct)
    {
        var found = await db.RequestLogs.AsNoTracking().Where(r => r.RequestId == requestId).OrderBy(r => r.CreatedAt)
            .GroupJoin(db.UsageEvents.AsNoTracking(), r => r.EventId, u => u.EventId, (r, u) => new { r, u })
            .SelectMany(x => x.u.DefaultIfEmpty(), (x, u) => new RequestDto(x.r, u))
            .ToArrayAsync(ct);
        return found.Length > 0 ? TypedResults.Ok(found) : NotFound("request");
    }

    private static ErrorResult NotFound(string what) => new ApiError(404, "invalid_request_error", "not_found", $"No such {what}.").ToResult();

    private static OrganizationDto ToDto(Organization o) => new(o.Id, o.Name, o.PlanId, o.Status.ToString().ToLowerInvariant(), o.CreatedAt);
}
