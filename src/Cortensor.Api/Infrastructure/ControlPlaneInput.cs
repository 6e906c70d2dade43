using System.Text.Json;
using Cortensor.Api.Errors;
using Microsoft.AspNetCore.Http.Features;

namespace Cortensor.Api.Infrastructure;

/// <summary>
/// What the control plane (<c>/portal</c>, <c>/admin</c>) takes in, checked once before any endpoint binds it: a body of
/// at most <see cref="MaxBodyBytes"/>, JSON strings that are text, and no NUL character in the path, the query or the
/// body. Postgres stores no NUL in text, so a NUL that reached a row or a query was a 500 (a name, an address at
/// sign-in, a search of the request log), and a half surrogate pair failed wherever its string was read; here both are
/// a 400 that changes nothing, for every field there is and every one added later.
/// </summary>
public static class ControlPlaneInput
{
    /// <summary>Far above any control-plane body (a sign-in message, a key's settings); the framework's default is 30 MB.</summary>
    public const long MaxBodyBytes = 1024 * 1024;

    private static readonly JsonReaderOptions Reading = new() { MaxDepth = 64 };

    public static IApplicationBuilder UseControlPlaneInput(this IApplicationBuilder app) =>
        app.UseWhen(http => http.Request.Path.StartsWithSegments("/portal") || http.Request.Path.StartsWithSegments("/admin"),
            branch => branch.Use(CheckAsync));

    private static async Task CheckAsync(HttpContext http, RequestDelegate next)
    {
        // Control-plane answers hold tokens, keys shown once, recovery codes and account data: no cache or proxy keeps
        // them (RFC 6749 5.1 asks it of token answers), and no browser reads them as anything but what they say they are.
        http.Response.Headers.CacheControl = "no-store";
        http.Response.Headers.XContentTypeOptions = "nosniff";
        if (http.Features.Get<IHttpMaxRequestBodySizeFeature>() is { IsReadOnly: false } size) size.MaxRequestBodySize = MaxBodyBytes;
        var request = http.Request;
        if (request.Path.Value?.Contains('\0') == true || request.QueryString.Value?.Contains("%00", StringComparison.Ordinal) == true)
        {
            await new ErrorResult(Refused(JsonTextProblem.Nul)).ExecuteAsync(http);
            return;
        }
        if (request.ContentLength > MaxBodyBytes)
        {
            await new ErrorResult(ApiError.BodyTooLarge(MaxBodyBytes)).ExecuteAsync(http);
            return;
        }
        if (request.ContentLength != 0 && IsJson(request.ContentType))
        {
            // Kept for the endpoint to bind after this look: at most a megabyte, in memory up to 64 KB and on disk past it.
            request.EnableBuffering(64 * 1024, MaxBodyBytes);
            using var body = new MemoryStream();
            await request.Body.CopyToAsync(body, http.RequestAborted); // past the limit: a 413 from the error handler
            request.Body.Position = 0;
            ReadOnlySpan<byte> json = body.GetBuffer().AsSpan(0, (int)body.Length);
            if (JsonText.Check(json, Reading, refuseNul: true) is not JsonTextProblem.None and var problem)
            {
                await new ErrorResult(Refused(problem)).ExecuteAsync(http);
                return;
            }
            // Bound by the framework, a body that is not JSON would answer a bare 400 that names neither the fault nor where.
            json = JsonText.WithoutByteOrderMark(json);
            if (json.Length > 0 && JsonText.SyntaxError(json, Reading) is { } syntax)
            {
                await new ErrorResult(ApiError.MalformedJson(null, syntax)).ExecuteAsync(http);
                return;
            }
        }
        await next(http);
    }

    private static bool IsJson(string? type) =>
        type is not null && (type.StartsWith("application/json", StringComparison.OrdinalIgnoreCase) || type.Contains("+json", StringComparison.OrdinalIgnoreCase));

    private static ApiError Refused(JsonTextProblem problem) => problem == JsonTextProblem.Nul
        ? new ApiError(400, "invalid_request_error", "invalid_value", "Text may not contain the NUL character (\\u0000 or %00).")
        : ApiError.MalformedJson(null, "a string in it is not Unicode text (bytes that are not UTF-8, or an unpaired surrogate escape such as \\ud800).");
}
