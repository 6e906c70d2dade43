using System.Globalization;
using Cortensor.Api.Errors;

namespace Cortensor.Api.ControlPlane;

/// <summary>
/// Query strings parsed by hand so a malformed value answers 400 naming the parameter, in the
/// Api's error shape (the framework's binder answers a bare 400 without saying which).
/// </summary>
public static class QueryParameters
{
    /// <summary>Every parameter is parsed (so all outputs are assigned); the first failure is reported.</summary>
    public static ApiError? FirstError(params ApiError?[] errors) => errors.FirstOrDefault(e => e is not null);

    // Dates and times a query may name: wide enough for any record, narrow enough that a range computed from them
    // (a month before, a day after) stays within what .NET and Postgres can hold.
    private static readonly DateTimeOffset Earliest = new(1970, 1, 1, 0, 0, 0, TimeSpan.Zero);
    private static readonly DateTimeOffset Latest = new(9000, 1, 1, 0, 0, 0, TimeSpan.Zero);

    public static ApiError? Date(string? value, string name, out DateOnly? date)
    {
        date = null;
        if (string.IsNullOrEmpty(value)) return null;
        DateOnly? read = DateOnly.TryParseExact(value, "yyyy-MM-dd", CultureInfo.InvariantCulture, DateTimeStyles.None, out var d) ? d
            : DateTimeOffset.TryParse(value, CultureInfo.InvariantCulture, DateTimeStyles.AssumeUniversal, out var t) ? DateOnly.FromDateTime(t.UtcDateTime)
            : null;
        if (read is { } day && day >= DateOnly.FromDateTime(Earliest.UtcDateTime) && day < DateOnly.FromDateTime(Latest.UtcDateTime)) { date = day; return null; }
        return ApiError.InvalidField(name, read is null
            ? $"'{name}' must be a date (YYYY-MM-DD) or an ISO 8601 time."
            : $"'{name}' must be between {Earliest:yyyy-MM-dd} and {Latest:yyyy-MM-dd}.");
    }

    /// <summary>A time in any offset, as the UTC instant it names (Postgres takes only UTC for a timestamptz parameter).</summary>
    public static ApiError? Time(string? value, string name, out DateTimeOffset? time)
    {
        time = null;
        if (string.IsNullOrEmpty(value)) return null;
        if (!DateTimeOffset.TryParse(value, CultureInfo.InvariantCulture, DateTimeStyles.AssumeUniversal, out var t))
            return ApiError.InvalidField(name, $"'{name}' must be an ISO 8601 time, e.g. 2026-11-26T12:00:00Z.");
        if (t < Earliest || t >= Latest) return ApiError.InvalidField(name, $"'{name}' must be between {Earliest:yyyy-MM-dd} and {Latest:yyyy-MM-dd}.");
        time = t.ToUniversalTime();
        return null;
    }

    public static ApiError? Guid(string? value, string name, out Guid? id)
    {
        id = null;
        if (string.IsNullOrEmpty(value)) return null;
        if (System.Guid.TryParse(value, out var g)) { id = g; return null; }
        return ApiError.InvalidField(name, $"'{name}' must be an id (a UUID).");
    }

    /// <summary>
    /// Refuses a query parameter the endpoint does not read (400 naming it): a misspelt filter (target for target_id) would
    /// otherwise answer with everything, unfiltered, as if the filter had applied. Names match as the binder does, in any case.
    /// </summary>
    public static RouteHandlerBuilder TakesQuery(this RouteHandlerBuilder endpoint, params string[] names) =>
        endpoint.AddEndpointFilter(async (context, next) =>
        {
            foreach (var key in context.HttpContext.Request.Query.Keys)
            {
                if (names.Contains(key, StringComparer.OrdinalIgnoreCase)) continue;
                var shown = key.Length <= 64 && !ApiError.NotOneLine(key) ? $"'{key}'" : "a parameter";
                return ApiError.InvalidField(key.Length <= 64 ? key : key[..64], $"This endpoint has no query parameter {shown}; it takes {string.Join(", ", names)}.").ToResult();
            }
            return await next(context);
        });

    public static ApiError? Int(string? value, string name, int min, int max, out int? number)
    {
        number = null;
        if (string.IsNullOrEmpty(value)) return null;
        if (int.TryParse(value, NumberStyles.None, CultureInfo.InvariantCulture, out var n) && n >= min && n <= max) { number = n; return null; }
        return ApiError.InvalidField(name, $"'{name}' must be a whole number from {min} to {max}.");
    }
}
