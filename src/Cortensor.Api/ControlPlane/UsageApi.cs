using Cortensor.Api.Catalog;
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
        portal.MapGet("/usage-summary", Summary).TakesQuery("from", "to", "group_by").WithTags("Usage")
            .WithSummary("Requests, tokens and cost per UTC day, model or key (group_by: day, model, key, or two joined by a comma)");
        portal.MapRequestLogApi();
        portal.MapGet("/balance", Balance).WithTags("Usage").WithSummary("Credits, quota left this month and the plan's limits and models");
        return portal;
    }

    public sealed record UsageRow(DateOnly? Day, string? Model, Guid? KeyId, string? KeyName, long Requests, long Errors,
        long PromptTokens, long CompletionTokens, long TotalTokens, decimal Cost);
    /// <summary>
    /// One line of a chart: a model's (or key's, or all) figures for every day of <see cref="UsageSummaryDto.Days"/>,
    /// a day without usage as zero, so a chart spans the range asked for rather than the days that had traffic.
    /// </summary>
    public sealed record UsageSeries(string Name, string? Model, Guid? KeyId, bool ModelKnown, long[] Requests, long[] TotalTokens, decimal[] Cost);
    public sealed record UsageSummaryDto(DateOnly From, DateOnly To, string[] GroupBy, UsageRow[] Data, UsageRow Totals,
        DateOnly[] Days, UsageSeries[] Series);

    private static readonly string[] Dimensions = ["day", "model", "key"];

    private static async Task<Results<Ok<UsageSummaryDto>, ErrorResult>> Summary(PortalCaller caller, PortalDbContext db, CatalogStore catalog, TimeProvider clock,
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
        var days = Enumerable.Range(0, last.DayNumber - first.DayNumber + 1).Select(first.AddDays).ToArray();
        var models = catalog.Current.Models;
        var series = rows
            .GroupBy(r => (Model: byKey ? null : byModel ? r.ModelId : null, Key: byKey ? r.ApiKeyId : (Guid?)null))
            .Select(g =>
            {
                var perDay = g.GroupBy(r => r.Day).ToDictionary(d => d.Key, d => Sum(d, d.Key, null, null, null));
                var known = g.Key.Model is { Length: > 0 } m && models.ContainsKey(m);
                var name = byKey ? (names.GetValueOrDefault(g.Key.Key!.Value) ?? g.Key.Key.ToString()!)
                    : byModel ? ModelLabels.Describe(g.Key.Model, known) : "All requests";
                return new UsageSeries(name, g.Key.Model, g.Key.Key, byModel && known,
                    [.. days.Select(d => perDay.GetValueOrDefault(d)?.Requests ?? 0)],
                    [.. days.Select(d => perDay.GetValueOrDefault(d)?.TotalTokens ?? 0)],
                    [.. days.Select(d => perDay.GetValueOrDefault(d)?.Cost ?? 0m)]);
            })
            .OrderBy(s => s.Name, StringComparer.Ordinal)
            .ToArray();
        return TypedResults.Ok(new UsageSummaryDto(first, last, groups, data, Sum(rows, null, null, null, null), days, series));
    }

    private static UsageRow Sum(IEnumerable<UsageDaily> rows, DateOnly? day, string? model, Guid? key, string? keyName)
    {
        long requests = 0, errors = 0, prompt = 0, completion = 0;
        decimal cost = 0;
        foreach (var r in rows) { requests += r.Requests; errors += r.Errors; prompt += r.PromptTokens; completion += r.CompletionTokens; cost += r.Cost; }
        return new UsageRow(day, model, key, keyName, requests, errors, prompt, completion, prompt + completion, cost);
    }

    public sealed record PlanDto(string Id, string Name, string BillingMode, int RequestsPerMinute, int TokensPerMinute, long? MonthlyTokenQuota,
        decimal MonthlyPriceUsd);
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
            row.p.RequestsPerMinute, row.p.TokensPerMinute, row.p.MonthlyTokenQuota, row.p.MonthlyPriceUsd);
        var quota = new QuotaDto(start, start.AddMonths(1), ledger.TokensThisMonth,
            row.p.MonthlyTokenQuota is { } q ? Math.Max(0, q - ledger.TokensThisMonth) : null);
        return TypedResults.Ok(new BalanceDto(row.o.Id, row.o.Name, row.o.Status.ToString().ToLowerInvariant(), plan, ledger.Balance, quota,
            models.Order(StringComparer.Ordinal).ToArray()));
    }
}
