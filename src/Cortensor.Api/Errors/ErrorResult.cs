using System.Globalization;
using Cortensor.Api.Infrastructure;

namespace Cortensor.Api.Errors;

/// <summary>Writes an <see cref="ApiError"/> with its status, Retry-After, x-should-retry and the request id.</summary>
public sealed class ErrorResult(ApiError error) : IResult, IStatusCodeHttpResult
{
    public ApiError Error { get; } = error;
    public int? StatusCode => Error.Status;

    public Task ExecuteAsync(HttpContext http)
    {
        http.Response.StatusCode = Error.Status;
        if (Error.RetryAfterSeconds is { } retry)
            http.Response.Headers.RetryAfter = retry.ToString(CultureInfo.InvariantCulture);
        if (Error.ShouldRetry is { } should)
            http.Response.Headers["x-should-retry"] = should ? "true" : "false";
        http.Features.Set(Error);
        return JsonBody.WriteAsync(http.Response, Error.ToEnvelope(http.GetRequestId()), PortalJsonContext.Default.ErrorEnvelope, "application/json");
    }
}

public static class ErrorResults
{
    public static ErrorResult ToResult(this ApiError error) => new(error);
}
