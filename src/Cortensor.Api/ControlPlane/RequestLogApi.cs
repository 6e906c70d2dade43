using System.Globalization;
using Cortensor.Api.Catalog;
using Cortensor.Api.Data;
using Cortensor.Api.Errors;
using Cortensor.Api.Metering;
using CsvHelper;
using Microsoft.AspNetCore.Http.HttpResults;
using Microsoft.AspNetCore.Mvc;
using Microsoft.EntityFrameworkCore;

namespace Cortensor.Api.ControlPlane;

/// <summary>
/// The organisation's request log (SPEC §4): a page for the dashboard and a CSV of the same filtered range.
/// Both take the same filters, so what a user sees filtered is what they download.
/// </summary>
public static class RequestLogApi
{
    public static RouteGroupBuilder MapRequestLogApi(this RouteGroupBuilder portal)
    {
        portal.MapGet("/requests", Page).TakesQuery([.. RequestFilter.Names, "before", "before_event", "limit"]).WithTags("Usage")
            .WithSummary("The request log, newest first; filter by key, model, status and time, search by request id or completion id");
        portal.MapGet("/requests.csv", Export).TakesQuery(RequestFilter.Names).WithTags("Usage")
            .WithSummary("The request log as CSV, streamed: every request matching the same filters as /portal/requests, newest first")
            .Produces(StatusCodes.Status200OK, contentType: "text/csv");
        return portal;
    }

    /// <summary>The filters both endpoints take, from the query string.</summary>
    public sealed class RequestFilter
    {
        public static readonly string[] Names = ["search", "request_id", "key_id", "model", "status", "from", "to"];

        [FromQuery(Name = "search")] public string? Search { get; init; }
        /// <summary>The older name of <see cref="Search"/>; either works.</summary>
        [FromQuery(Name = "request_id")] public string? RequestId { get; init; }
        [FromQuery(Name = "key_id")] public string? KeyId { get; init; }
        [FromQuery(Name = "model")] public string? Model { get; init; }
        [FromQuery(Name = "status")] public string? Status { get; init; }
        [FromQuery(Name = "from")] public string? From { get; init; }
        [FromQuery(Name = "to")] public string? To { get; init; }
    }

    public sealed record RequestDto(string RequestId, DateTimeOffset CreatedAt, string Method, string Path, int Status, string? ErrorCode,
        int LatencyMs, string? Model, Guid? KeyId, int PromptTokens, int CompletionTokens, decimal Cost, bool Streamed, int? TimeToFirstTokenMs,
        string? KeyName, string? CompletionId, bool ModelKnown, string ModelLabel);
    /// <summary>A page; the next is asked for with <c>before=NextBefore&amp;before_event=NextBeforeEvent</c>.</summary>
    public sealed record RequestPage(RequestDto[] Data, bool HasMore, DateTimeOffset? NextBefore, string? NextBeforeEvent = null);

    private static async Task<Results<Ok<RequestPage>, ErrorResult>> Page(PortalCaller caller, PortalDbContext db, CatalogStore catalog,
        [AsParameters] RequestFilter filter, [FromQuery] string? before, [FromQuery(Name = "before_event")] string? beforeEvent, [FromQuery] string? limit,
        CancellationToken ct)
    {
        if (QueryParameters.FirstError(
                QueryParameters.Time(before, "before", out var beforeTime),
                QueryParameters.Int(limit, "limit", 1, 500, out var pageSize)) is { } bad) return bad.ToResult();
        var (query, invalid) = await FilterAsync(caller, db, filter, ct);
        if (invalid is not null) return invalid.ToResult();
        if (beforeEvent is not null && beforeTime is null)
            return ApiError.InvalidField("before_event", "'before_event' goes with 'before': send the page's next_before and next_before_event.").ToResult();
        if (beforeEvent is { Length: > 64 }) return ApiError.InvalidField("before_event", "'before_event' is the next_before_event of the page before.").ToResult();
        // The page's order is (time, event id), newest first: the cursor is both, or requests logged in the same
        // microsecond as a page's last one were skipped.
        if (beforeTime is not null)
            query = beforeEvent is null ? query!.Where(r => r.CreatedAt < beforeTime)
                : query!.Where(r => r.CreatedAt < beforeTime || (r.CreatedAt == beforeTime && string.Compare(r.EventId, beforeEvent) < 0));
        var size = pageSize ?? 50;
        var rows = await Rows(db, query!).Take(size + 1).ToListAsync(ct);
        var snapshot = catalog.Current;
        var data = rows.Take(size).Select(r => Dto(r, snapshot)).ToArray();
        var more = rows.Count > size;
        return TypedResults.Ok(new RequestPage(data, more, more ? data[^1].CreatedAt : null, more ? rows[size - 1].Log.EventId : null));
    }

    private static async Task<Results<PushStreamHttpResult, ErrorResult>> Export(PortalCaller caller, PortalDbContext db, CatalogStore catalog,
        [AsParameters] RequestFilter filter, CancellationToken ct)
    {
        var (query, invalid) = await FilterAsync(caller, db, filter, ct);
        if (invalid is not null) return invalid.ToResult();
        var snapshot = catalog.Current;
        var name = $"cortensor-requests-{Stamp(filter.From, "start")}-{Stamp(filter.To, "now")}.csv";
        return TypedResults.Stream(async body =>
        {
            // CsvHelper quotes what needs quoting and defuses cells a spreadsheet would run as formulas
            // (a request id is the client's own X-Request-Id).
            await using var csv = CsvWriter.Create(body, new CsvWriterOptions { Injection = CsvInjection.Escape }, leaveOpen: true);
            foreach (var header in Columns) csv.WriteField(header);
            await csv.EndRecordAsync(ct);
            // Read a page at a time along the log's order (time, then event id), each page written before the next is
            // read: the client's pace holds the export back, and a range of any size is never held in memory. (One
            // query enumerated to the end was read whole first by EF, as it does under a retrying execution strategy:
            // a 160,000-row export took 300 MB and ran at the database's pace, not the download's.)
            DateTimeOffset? afterTime = null;
            var afterId = "";
            while (true)
            {
                var page = query!;
                if (afterTime is { } time)
                {
                    var id = afterId;
                    page = page.Where(r => r.CreatedAt < time || (r.CreatedAt == time && string.Compare(r.EventId, id) < 0));
                }
                var rows = await Rows(db, page).Take(ExportPageRows).ToListAsync(ct);
                foreach (var row in rows)
                {
                    foreach (var field in Fields(Dto(row, snapshot))) csv.WriteField(field);
                    await csv.EndRecordAsync(ct);
                }
                if (rows.Count < ExportPageRows) break;
                (afterTime, afterId) = (rows[^1].Log.CreatedAt, rows[^1].Log.EventId);
            }
            await csv.FlushAsync(ct);
        }, "text/csv; charset=utf-8", name);
    }

    private const int ExportPageRows = 1000;

    private static readonly string[] Columns =
    [
        "time_utc", "request_id", "completion_id", "key_name", "key_id", "model", "model_known", "method", "path", "status", "error_code",
        "stream", "prompt_tokens", "completion_tokens", "cost_usd", "latency_ms", "time_to_first_token_ms",
    ];

    private static IEnumerable<string?> Fields(RequestDto r)
    {
        var c = CultureInfo.InvariantCulture;
        yield return r.CreatedAt.UtcDateTime.ToString("yyyy-MM-dd'T'HH:mm:ss.fff'Z'", c);
        yield return r.RequestId;
        yield return r.CompletionId;
        yield return r.KeyName;
        yield return r.KeyId?.ToString();
        yield return r.Model;
        yield return r.ModelKnown ? "true" : "false";
        yield return r.Method;
        yield return r.Path;
        yield return r.Status.ToString(c);
        yield return r.ErrorCode;
        yield return r.Streamed ? "true" : "false";
        yield return r.PromptTokens.ToString(c);
        yield return r.CompletionTokens.ToString(c);
        yield return r.Cost.ToString(c);
        yield return r.LatencyMs.ToString(c);
        yield return r.TimeToFirstTokenMs?.ToString(c);
    }

    private static string Stamp(string? value, string otherwise) =>
        string.IsNullOrEmpty(value) ? otherwise : new string(value.Where(char.IsAsciiLetterOrDigit).Take(20).ToArray());

    /// <summary>The organisation's log narrowed by the filters, or the first bad filter as a 400 (404 for another org's key).</summary>
    private static async Task<(IQueryable<RequestLog>? Query, ApiError? Error)> FilterAsync(PortalCaller caller, PortalDbContext db, RequestFilter f, CancellationToken ct)
    {
        if (QueryParameters.FirstError(
                QueryParameters.Guid(f.KeyId, "key_id", out var key),
                QueryParameters.Time(f.From, "from", out var fromTime),
                QueryParameters.Time(f.To, "to", out var toTime)) is { } bad) return (null, bad);
        // A day given as 'to' (2026-11-29, as the usage summary takes it) includes that day: read as its midnight, a one-day
        // range was always empty, and a customer going from a day of the summary to its requests found none.
        if (toTime is { } end && DateOnly.TryParseExact(f.To, "yyyy-MM-dd", CultureInfo.InvariantCulture, DateTimeStyles.None, out _))
            toTime = end.AddDays(1);
        if (!string.IsNullOrEmpty(f.Search) && !string.IsNullOrEmpty(f.RequestId) && f.Search != f.RequestId)
            return (null, ApiError.InvalidField("search", "Give 'search' or its older name 'request_id', not both."));
        var search = (string.IsNullOrEmpty(f.Search) ? f.RequestId : f.Search)?.Trim();
        if (search is { Length: > 128 }) return (null, ApiError.InvalidField("search", "'search' is a request id or completion id of at most 128 characters."));
        if (f.Model is { Length: > 64 }) return (null, ApiError.InvalidField("model", "'model' is a model id of at most 64 characters."));
        if (fromTime is not null && toTime is not null && fromTime > toTime) return (null, ApiError.InvalidField("from", "'from' must not be after 'to'."));
        var (minStatus, maxStatus) = f.Status switch
        {
            null or "" => (0, 999),
            "2xx" or "4xx" or "5xx" => ((f.Status[0] - '0') * 100, (f.Status[0] - '0') * 100 + 99),
            "error" => (400, 599),
            _ when int.TryParse(f.Status, NumberStyles.None, CultureInfo.InvariantCulture, out var code) && code is >= 100 and <= 599 => (code, code),
            _ => (-1, -1),
        };
        if (minStatus < 0) return (null, ApiError.InvalidField("status", "'status' is an HTTP status (e.g. 429), a class ('2xx', '4xx', '5xx') or 'error'."));
        if (key is { } k && !await db.ApiKeys.AnyAsync(x => x.Id == k && x.OrganizationId == caller.OrganizationId, ct))
            return (null, ApiError.NotFound("API key"));

        var query = db.RequestLogs.AsNoTracking().Where(r => r.OrganizationId == caller.OrganizationId);
        if (!string.IsNullOrEmpty(search))
        {
            // The id an SDK user sees (chatcmpl-…, cmpl-…) names the event: both are looked up through indexed columns.
            var eventId = UsageTracker.EventIdOf(search);
            query = eventId is null ? query.Where(r => r.RequestId == search) : query.Where(r => r.RequestId == search || r.EventId == eventId);
        }
        if (key is not null) query = query.Where(r => r.ApiKeyId == key);
        if (!string.IsNullOrEmpty(f.Model)) query = query.Where(r => r.ModelId == f.Model);
        if (f.Status is { Length: > 0 }) query = query.Where(r => r.Status >= minStatus && r.Status <= maxStatus);
        if (fromTime is not null) query = query.Where(r => r.CreatedAt >= fromTime);
        if (toTime is not null) query = query.Where(r => r.CreatedAt < toTime);
        return (query, null);
    }

    private sealed record Row(RequestLog Log, UsageEvent? Usage, string? KeyName);

    private static IQueryable<Row> Rows(PortalDbContext db, IQueryable<RequestLog> query) =>
        from r in query
        join u in db.UsageEvents.AsNoTracking() on r.EventId equals u.EventId into usages
        from u in usages.DefaultIfEmpty()
        join k in db.ApiKeys.AsNoTracking() on r.ApiKeyId equals k.Id into keys
        from k in keys.DefaultIfEmpty()
        orderby r.CreatedAt descending, r.EventId descending
        select new Row(r, u, k == null ? null : k.Name);

    private static RequestDto Dto(Row row, CatalogSnapshot catalog)
    {
        var (r, u) = (row.Log, row.Usage);
        var known = r.ModelId is { Length: > 0 } m && catalog.Models.ContainsKey(m);
        return new RequestDto(r.RequestId, r.CreatedAt, r.Method, r.Path, r.Status, r.ErrorCode, r.LatencyMs, r.ModelId, r.ApiKeyId,
            u?.PromptTokens ?? 0, u?.CompletionTokens ?? 0, u?.Cost ?? 0, u?.Streamed ?? false, u?.TimeToFirstTokenMs,
            row.KeyName, CompletionId(r, u), known, ModelLabels.Describe(r.ModelId, known));
    }

    /// <summary>The id the client saw in the answer, for requests that got one (an answer started).</summary>
    private static string? CompletionId(RequestLog r, UsageEvent? u)
    {
        if (r.Status >= 400 && (u?.CompletionTokens ?? 0) == 0) return null;
        var prefix = r.Path switch { "/v1/chat/completions" => "chatcmpl", "/v1/completions" => "cmpl", "/v1/responses" => "resp", _ => null };
        return prefix is null ? null : UsageTracker.CompletionIdOf(r.EventId, prefix);
    }
}

/// <summary>How a model id reads in the dashboard: a request for a model that does not exist is named as such, never a blank.</summary>
public static class ModelLabels
{
    public static string Describe(string? modelId, bool known) => modelId switch
    {
        null or "" => "no model (refused before a model was read)",
        _ when known => modelId,
        _ => $"unknown model: {modelId}",
    };
}
