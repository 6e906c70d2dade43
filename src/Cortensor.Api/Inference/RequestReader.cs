using System.Buffers;
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
            // A body that came whole in one piece (most do: a few hundred bytes) is parsed where Kestrel holds it, in one
            // synchronous pass, without the serializer's streaming path (its buffer, copy and resumable state).
            var reader = http.Request.BodyReader;
            var read = await reader.ReadAsync(http.RequestAborted);
            if (read.IsCompleted && read.Buffer.IsSingleSegment)
            {
                try
                {
                    return dialect.Read(read.Buffer.FirstSpan);
                }
                finally
                {
                    reader.AdvanceTo(read.Buffer.End);
                }
            }
            // Any other is gathered as it arrives, consuming as it goes: the connection holds only so much unread input.
            // The buffer grows with what has arrived, not with the length the client announced.
            var whole = new ArrayBufferWriter<byte>((int)Math.Clamp(read.Buffer.Length * 2, 4 * 1024, 64 * 1024));
            while (true)
            {
                foreach (var segment in read.Buffer) whole.Write(segment.Span);
                reader.AdvanceTo(read.Buffer.End);
                if (whole.WrittenCount > limit) return (null, ApiError.BodyTooLarge(limit));
                if (read.IsCompleted) return dialect.Read(whole.WrittenSpan);
                read = await reader.ReadAsync(http.RequestAborted);
            }
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
