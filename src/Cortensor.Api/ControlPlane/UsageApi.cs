using Cortensor.Api.Data;
using Cortensor.Api.Errors;
using Cortensor.Api.Keys;
using Microsoft.AspNetCore.Http.HttpResults;
using Microsoft.AspNetCore.Mvc;
using Microsoft.EntityFrameworkCore;
using Npgsql;

namespace Cortensor.Api.ControlPlane;

/// <summary>What the organisation used and what it has left (SPEC §4): charts, the request log, the balance.</summary>
public static class UsageApi
{
    /// <summary>The longest range one summary covers; usage_daily keeps it cheap.</summary>
    public const int MaxRangeDays = 366;

    public static RouteGroupBuilder MapUsageApi(this RouteGroupBuilder portal)
    {
        portal.MapGet("/usage-summary", Summary).WithTags("Usage")
            .WithSummary("Requests, tokens and cost per UTC day, model or key (group_by: day, model, key, or two joined by a comma)");
        portal.MapGet("/requests", Requests).WithTags("Usage").WithSummary("The request log, newest first; filter by request id, key, status and time");
        portal.MapGet("/balance", Balance).WithTags("Usage").WithSummary("Credits, quota left this month and the plan's limits and models");
        return portal;
    }

    public sealed record UsageRow(DateOnly? Day, string? Model, Guid? KeyId, string? KeyName, long Requests, long Errors,
        long PromptTokens, long CompletionTokens, long TotalTokens, decimal Cost);
    public sealed record UsageSummaryDto(DateOnly From, DateOnly To, string[] GroupBy, UsageRow[] Data, UsageRow Totals);

    private static readonly string[] Dimensions = ["day", "model", "key"];

    private static async Task<Results<Ok<UsageSummaryDto>, ErrorResult>> Summary(PortalCaller caller, PortalDbContext db, TimeProvider clock,
        [FromQuery] string? from, [FromQuery] string? to, [FromQuery(Name = "group_by")] string? groupBy, CancellationToken ct)
    {
        if (QueryParameters.FirstError(QueryParameters.Date(from, "from", out var fromDate), QueryParameters.Date(to, "to", out var toDate)) is { } bad)
            return bad.ToResult();
        var today = DateOnly.FromDateTime(clock.GetUtcNow().UtcDateTime);
        var last = toDate ?? today;
        var first = fromDate ?? last.AddDays(-29);
        if (first > last) return ApiError.InvalidField("from", "'from' must not be after 'to'.").ToResult();
        if (last.DayNumber - first.DayNumber >= MaxRangeDays) return ApiError.InvalidField("from", $"The range covers at most {MaxRangeDays} days.").ToResult();
        var groups = (groupBy ?? "day").Split(',', StringSplitOptions.TrimEntries | StringSplitOptions.RemoveEmptyEntries);
        if (groups.Length is 0 or > 2 || groups.Any(g => !Dimensions.Contains(g)) || groups.Distinct().Count() != groups.Length)
            return ApiError.InvalidField("group_by", "'group_by' is one or two of 'day', 'model', 'key', joined by a comma (e.g. 'day,model').").ToResult();

        var rows = await db.UsageDaily.AsNoTracking()
            .Where(u => u.OrganizationId == caller.OrganizationId && u.Day >= first && u.Day <= last)
            .ToListAsync(ct);
        var keyIds = rows.Select(r => r.ApiKeyId).Distinct().ToList();
        var names = await db.ApiKeys.AsNoTracking().Where(k => keyIds.Contains(k.Id)).ToDictionaryAsync(k => k.Id, k => k.Name, ct);
        bool byDay = groups.Contains("day"), byModel = groups.Contains("model"), byKey = groups.Contains("key");
        var data = rows
            .GroupBy(r => (Day: byDay ? r.Day : (DateOnly?)null, Model: byModel ? r.ModelId : null, Key: byKey ? r.ApiKeyId : (Guid?)null))
            .Select(g => Sum(g, g.Key.Day, g.Key.Model, g.Key.Key, g.Key.Key is { } k ? names.GetValueOrDefault(k) : null))
            .OrderBy(r => r.Day).ThenBy(r => r.Model, StringComparer.Ordinal).ThenBy(r => r.KeyName, StringComparer.Ordinal).ThenBy(r => r.KeyId)
            .ToArray();
        return TypedResults.Ok(new UsageSummaryDto(first, last, groups, data, Sum(rows, null, null, null, null)));
    }

    private static UsageRow Sum(IEnumerable<UsageDaily> rows, DateOnly? day, string? model, Guid? key, string? keyName)
    {
        long requests = 0, errors = 0, prompt = 0, completion = 0;
        decimal cost = 0;
        foreach (var r in rows) { requests += r.Requests; errors += r.Errors; prompt += r.PromptTokens; completion += r.CompletionTokens; cost += r.Cost; }
        return new UsageRow(day, model, key, keyName, requests, errors, prompt, completion, prompt + completion, cost);
    }

    public sealed record RequestDto(string RequestId, DateTimeOffset CreatedAt, string Method, string Path, int Status, string? ErrorCode,
        int LatencyMs, string? Model, Guid? KeyId, int PromptTokens, int CompletionTokens, decimal Cost, bool Streamed, int? TimeToFirstTokenMs);
    public sealed record RequestPage(RequestDto[] Data, bool HasMore, DateTimeOffset? NextBefore);

    private static async Task<Results<Ok<RequestPage>, ErrorResult>> Requests(PortalCaller caller, PortalDbContext db,
        [FromQuery(Name = "request_id")] string? requestId, [FromQuery(Name = "key_id")] string? keyId, [FromQuery] string? status,
        [FromQuery] string? from, [FromQuery] string? to, [FromQuery] string? before, [FromQuery] string? limit, CancellationToken ct)
    {
        if (QueryParameters.FirstError(
                QueryParameters.Guid(keyId, "key_id", out var key),
                QueryParameters.Time(from, "from", out var fromTime),
                QueryParameters.Time(to, "to", out var toTime),
                QueryParameters.Time(before, "before", out var beforeTime),
                QueryParameters.Int(limit, "limit", 1, 500, out var pageSize)) is { } bad) return bad.ToResult();
        if (requestId is { Length: > 128 }) return ApiError.InvalidField("request_id", "'request_id' is at most 128 characters.").ToResult();
        var (minStatus, maxStatus) = status switch
        {
            null or "" => (0, 999),
            "2xx" or "4xx" or "5xx" => ((status[0] - '0') * 100, (status[0] - '0') * 100 + 99),
            "error" => (400, 599),
            _ when int.TryParse(status, out var code) && code is >= 100 and <= 599 => (code, code),
            _ => (-1, -1),
        };
        if (minStatus < 0) return ApiError.InvalidField("status", "'status' is an HTTP status (e.g. 429), a class ('2xx', '4xx', '5xx') or 'error'.").ToResult();
        if (key is { } k && !await db.ApiKeys.AnyAsync(x => x.Id == k && x.OrganizationId == caller.OrganizationId, ct))
            return ApiError.NotFound("API key").ToResult();

        var query = db.RequestLogs.AsNoTracking().Where(r => r.OrganizationId == caller.OrganizationId);
        if (!string.IsNullOrEmpty(requestId)) query = query.Where(r => r.RequestId == requestId);
        if (key is not null) query = query.Where(r => r.ApiKeyId == key);
        if (status is { Length: > 0 }) query = query.Where(r => r.Status >= minStatus && r.Status <= maxStatus);
        if (fromTime is not null) query = query.Where(r => r.CreatedAt >= fromTime);
        if (toTime is not null) query = query.Where(r => r.CreatedAt < toTime);
        if (beforeTime is not null) query = query.Where(r => r.CreatedAt < beforeTime);
        var size = pageSize ?? 50;
        var page = await query.OrderByDescending(r => r.CreatedAt).ThenByDescending(r => r.EventId).Take(size + 1)
            .GroupJoin(db.UsageEvents.AsNoTracking(), r => r.EventId, u => u.EventId, (r, u) => new { r, u })
            .SelectMany(x => x.u.DefaultIfEmpty(), (x, u) => new { x.r, u })
            .ToListAsync(ct);
        var data = page.OrderByDescending(x => x.r.CreatedAt).ThenByDescending(x => x.r.EventId).Take(size)
            .Select(x => new RequestDto(x.r.RequestId, x.r.CreatedAt, x.r.Method, x.r.Path, x.r.Status, x.r.ErrorCode, x.r.LatencyMs, x.r.ModelId,
                x.r.ApiKeyId, x.u?.PromptTokens ?? 0, x.u?.CompletionTokens ?? 0, x.u?.Cost ?? 0, x.u?.Streamed ?? false, x.u?.TimeToFirstTokenMs))
            .ToArray();
        var more = page.Count > size;
        return TypedResults.Ok(new RequestPage(data, more, more ? data[^1].CreatedAt : null));
    }

    public sealed record PlanDto(string Id, string Name, string BillingMode, int RequestsPerMinute, int TokensPerMinute, long? MonthlyTokenQuota);
    public sealed record QuotaDto(DateTimeOffset PeriodStart, DateTimeOffset PeriodEnd, long TokensUsed, long? TokensLeft);
    public sealed record BalanceDto(Guid OrganizationId, string OrganizationName, string Status, PlanDto Plan, decimal CreditBalanceUsd,
        QuotaDto Quota, string[] Models);

    private static async Task<Ok<BalanceDto>> Balance(PortalCaller caller, PortalDbContext db, NpgsqlDataSource postgres, TimeProvider clock, CancellationToken ct)
    {
        var now = clock.GetUtcNow();
        var row = await (from o in db.Organizations.AsNoTracking()
                         join p in db.Plans.AsNoTracking() on o.PlanId equals p.Id
                         where o.Id == caller.OrganizationId
                         select new { o, p }).SingleAsync(ct);
        var ledger = await Balances.ReadAsync(postgres, caller.OrganizationId, now, countEvents: false, ct);
        var models = await ModelEntitlements.ForOrganizationAsync(db, row.o.Id, row.p.Id, ct);
        var start = Balances.MonthStart(now);
        var plan = new PlanDto(row.p.Id, row.p.Name, row.p.BillingMode == BillingMode.MonthlyQuota ? "monthly_quota" : "prepaid_credits",
            row.p.RequestsPerMinute, row.p.TokensPerMinute, row.p.MonthlyTokenQuota);
        var quota = new QuotaDto(start, start.AddMonths(1), ledger.TokensThisMonth,
            row.p.MonthlyTokenQuota is { } q ? Math.Max(0, q - ledger.TokensThisMonth) : null);
        return TypedResults.Ok(new BalanceDto(row.o.Id, row.o.Name, row.o.Status.ToString().ToLowerInvariant(), plan, ledger.Balance, quota,
            models.Order(StringComparer.Ordinal).ToArray()));
    }
}
