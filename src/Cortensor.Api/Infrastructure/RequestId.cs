using System.Diagnostics;

namespace Cortensor.Api.Infrastructure;

/// <summary>
/// Step 1 of the hot path: accept a sane client X-Request-Id or mint one; it is returned on every
/// response, carried in every error body and log line, and tagged on the request's trace.
/// </summary>
public static class RequestId
{
    public const string Header = "X-Request-Id";
    private const int MaxLength = 128;
    private sealed record Holder(string Value, long ArrivedAt);

    /// <summary>When the request reached the Api (before authentication): what its latency is measured from.</summary>
    public static long ArrivedAt(this HttpContext http) => http.Features.Get<Holder>()?.ArrivedAt ?? Stopwatch.GetTimestamp();

    public static string GetRequestId(this HttpContext http) =>
        http.Features.Get<Holder>()?.Value ?? http.TraceIdentifier;

    public static IApplicationBuilder UseRequestId(this IApplicationBuilder app)
    {
        var log = app.ApplicationServices.GetRequiredService<ILoggerFactory>().CreateLogger("Cortensor.Request");
        return app.Use(async (http, next) =>
        {
            var supplied = http.Request.Headers[Header].ToString();
            var id = IsSane(supplied) ? supplied : SortableId.New("req_");
            http.Features.Set(new Holder(id, Stopwatch.GetTimestamp()));
            http.TraceIdentifier = id;
            http.Response.Headers[Header] = id;
            Activity.Current?.SetTag("cortensor.request_id", id);
            using (log.BeginScope(new KeyValuePair<string, object>[] { new("RequestId", id) }))
                await next(http);
        });
    }

    /// <summary>Printable ASCII without spaces, bounded: safe in headers, logs and the ledger.</summary>
    internal static bool IsSane(string value)
    {
        if (value.Length is 0 or > MaxLength) return false;
        foreach (var c in value)
            if (!(char.IsAsciiLetterOrDigit(c) || c is '-' or '_' or '.' or ':')) return false;
        return true;
    }
}
