using Cortensor.Api.ControlPlane;
using Cortensor.Api.Data;
using Cortensor.Api.Errors;
using Cortensor.Api.Keys;
using Cortensor.Api.Limits;
using Microsoft.AspNetCore.Http.HttpResults;
using Microsoft.AspNetCore.Mvc;
using Microsoft.EntityFrameworkCore;

namespace Cortensor.Api.Admin;

/// <summary>Organisations: create, find, pause, change plan, credit, and their keys.</summary>
public static class OrganizationsAdminApi
{
    public static RouteGroupBuilder MapOrganizationsAdmin(this RouteGroupBuilder admin)
    {
        var orgs = admin.MapGroup("/organizations");
        orgs.MapGet("", List).TakesQuery("search", "limit").WithSummary("Organisations, newest first; 'search' matches name or id");
        orgs.MapPost("", Create).WithSummary("Create an organisation on a plan");
        orgs.MapGet("/{id:guid}/api-keys", ListKeys).WithSummary("An organisation's keys");
        orgs.MapPost("/{id:guid}/api-keys", CreateKey).WithSummary("Create an API key for an organisation (plaintext shown once)");
        orgs.MapPost("/{id:guid}/pause", (Guid id, [AsParameters] AdminChanges c) => SetStatus(id, OrganizationStatus.Paused, c))
            .WithSummary("Pause an organisation: its keys answer 403 within about a second");
        orgs.MapPost("/{id:guid}/resume", (Guid id, [AsParameters] AdminChanges c) => SetStatus(id, OrganizationStatus.Active, c))
            .WithSummary("Resume a paused organisation");
        orgs.MapPut("/{id:guid}/plan", ChangePlan).WithSummary("Move an organisation to another plan");
        orgs.MapPost("/{id:guid}/credits", AdjustCredits).WithSummary("Grant (positive) or claw back (negative) credits");
        orgs.MapGet("/{id:guid}/balance", GetBalance).WithSummary("Ledger balance and the hot-path balance");
        return admin;
    }

    private static async Task<Results<Ok<OrganizationDto[]>, ErrorResult>> List(PortalDbContext db,
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
        return TypedResults.Ok(orgs.Select(OrganizationDto.From).ToArray());
    }

    private static async Task<Results<Created<OrganizationDto>, ErrorResult>> Create(CreateOrganizationBody body, [AsParameters] AdminChanges c)
    {
        if (ApiError.Text("name", "Name", body.Name, 200) is { } badName) return badName.ToResult();
        var plan = body.Plan ?? "free";
        if (!await c.Db.Plans.AnyAsync(p => p.Id == plan, c.Ct)) return ApiError.InvalidField("plan", $"Unknown plan '{plan}'.").ToResult();
        var org = await c.Keys.CreateOrganizationAsync(body.Name!.Trim(), plan, null, c.Actor, c.Ct);
        return TypedResults.Created($"/admin/organizations/{org.Id}", OrganizationDto.From(org));
    }

    private static async Task<Results<Ok<ApiKeyDto[]>, ErrorResult>> ListKeys(Guid id, PortalDbContext db, StackExchange.Redis.IConnectionMultiplexer redis,
        TimeProvider clock, CancellationToken ct)
    {
        if (!await db.Organizations.AnyAsync(o => o.Id == id, ct)) return ApiError.NotFound("organization").ToResult();
        // As the organisation's owner sees them: an operator answering about a 402 key_budget_exceeded sees the budget's state.
        return TypedResults.Ok(await ApiKeysApi.ListAsync(db, redis, id, clock.GetUtcNow(), ct));
    }

    private static async Task<Results<Created<CreatedApiKeyDto>, ErrorResult>> CreateKey(Guid id, CreateKeyBody body, [AsParameters] AdminChanges c)
    {
        if (!await c.Db.Organizations.AnyAsync(o => o.Id == id, c.Ct)) return ApiError.NotFound("organization").ToResult();
        if (body.Validate(c.Catalog.Current, c.Clock.GetUtcNow()) is { } invalid) return invalid.ToResult();
        var created = await c.Keys.CreateKeyAsync(id, body.Name!.Trim(), body.Environment ?? "live", body.ExpiresAt, body.Models ?? [],
            body.RequestsPerMinute, body.TokensPerMinute, null, c.Actor, c.Ct);
        return TypedResults.Created($"/admin/api-keys/{created.Key.Id}", CreatedApiKeyDto.From(created));
    }

    private static async Task<Results<Ok<OrganizationDto>, ErrorResult>> SetStatus(Guid id, OrganizationStatus status, AdminChanges c) =>
        await c.Keys.SetOrganizationStatusAsync(id, status, c.Actor, c.Ct) is { } org ? TypedResults.Ok(OrganizationDto.From(org)) : ApiError.NotFound("organization").ToResult();

    private static async Task<Results<Ok<OrganizationDto>, ErrorResult>> ChangePlan(Guid id, PlanBody body, [AsParameters] AdminChanges c)
    {
        if (string.IsNullOrWhiteSpace(body.Plan) || !await c.Db.Plans.AnyAsync(p => p.Id == body.Plan, c.Ct))
            return ApiError.InvalidField("plan", $"Unknown plan '{body.Plan}'.").ToResult();
        return await c.Keys.ChangePlanAsync(id, body.Plan, c.Actor, c.Ct) is { } org ? TypedResults.Ok(OrganizationDto.From(org)) : ApiError.NotFound("organization").ToResult();
    }

    public const int MaxReasonLength = 500;

    private static async Task<Results<Ok<BalanceDto>, ErrorResult>> AdjustCredits(Guid id, CreditsBody body, [AsParameters] AdminChanges c)
    {
        if (body.Amount is not { } amount || amount == 0 || Math.Abs(amount) > 1_000_000m)
            return ApiError.InvalidField("amount", "'amount' must be a non-zero number of USD, at most 1,000,000 either way.").ToResult();
        if (decimal.Round(amount, 10) != amount) return ApiError.InvalidField("amount", "'amount' takes at most 10 decimal places.").ToResult();
        // The reason is kept with the ledger entry for good and shown in the ledger's lists: one line, of a bounded length.
        if (!string.IsNullOrWhiteSpace(body.Reason) && ApiError.Text("reason", "'reason'", body.Reason, MaxReasonLength) is { } badReason)
            return badReason.ToResult();
        return await c.Keys.AdjustCreditsAsync(id, amount, body.Reason?.Trim() ?? "", c.Actor, c.Ct) is { } balance
            ? TypedResults.Ok(new BalanceDto(id, balance))
            : ApiError.NotFound("organization").ToResult();
    }

    private static async Task<Results<Ok<BalancesDto>, ErrorResult>> GetBalance(
        Guid id, PortalDbContext db, Npgsql.NpgsqlDataSource postgres, HotCounters counters, TimeProvider clock, CancellationToken ct)
    {
        if (!await db.Organizations.AnyAsync(o => o.Id == id, ct)) return ApiError.NotFound("organization").ToResult();
        var ledger = await Balances.ReadAsync(postgres, id, clock.GetUtcNow(), countEvents: true, ct);
        return TypedResults.Ok(new BalancesDto(id, ledger.Balance, await counters.HotBalanceAsync(id), ledger.TokensThisMonth, ledger.UsageEntries, ledger.UsageEvents));
    }
}
