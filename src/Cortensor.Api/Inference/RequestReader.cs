using System.Text.Json;
using Cortensor.Api.Errors;
using Microsoft.AspNetCore.Http.Features;

namespace Cortensor.Api.Inference;

/// <summary>Reads a /v1 body within the size limit and names what is wrong with it, whichever dialect it is.</summary>
public static class RequestReader
{
    public static async Task<(InferenceRequest? Request, ApiError? Error)> ReadAsync(HttpContext http, Dialect dialect, long limit)
    {
        if (http.Request.ContentLength > limit) return (null, ApiError.BodyTooLarge(limit));
        if (http.Features.Get<IHttpMaxRequestBodySizeFeature>() is { IsReadOnly: false } size) size.MaxRequestBodySize = limit;
        if (http.Request.ContentType is not { } type || !type.StartsWith("application/json", StringComparison.OrdinalIgnoreCase))
            return (null, new ApiError(400, "invalid_request_error", "invalid_content_type", "Send the request body as JSON with 'Content-Type: application/json'."));
        try
        {
            return await dialect.ReadAsync(http.Request.Body, http.RequestAborted);
        }
        catch (JsonException ex)
        {
            var path = ex.Path is { Length: > 2 } p ? p.TrimStart('$', '.') : null;
            return (null, path is null
                ? ApiError.MalformedJson(null, "check the syntax of the body.")
                : ApiError.InvalidField(path, $"'{path}' has the wrong type or is malformed."));
        }
        catch (BadHttpRequestException ex) when (ex.StatusCode == StatusCodes.Status413PayloadTooLarge)
        {
            return (null, ApiError.BodyTooLarge(limit));
        }
    }
}
