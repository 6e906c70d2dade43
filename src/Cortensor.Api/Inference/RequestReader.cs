using System.Buffers;
using System.Text.Json;
using Cortensor.Api.Errors;
using Cortensor.Api.Infrastructure;
using Microsoft.AspNetCore.Http.Features;

namespace Cortensor.Api.Inference;

/// <summary>
/// A /v1 body read: the request, or what is wrong with it and, when the body names them, the model and stream it asked
/// for (a refused request is logged under its model too).
/// </summary>
public readonly record struct RequestRead(InferenceRequest? Request, ApiError? Error)
{
    public (string Model, bool Stream)? Requested { get; init; }

    public static implicit operator RequestRead(ApiError error) => new(null, error);
}

/// <summary>Reads a /v1 body within the size limit and names what is wrong with it, whichever dialect it is.</summary>
public static class RequestReader
{
    public static async Task<RequestRead> ReadAsync(HttpContext http, Dialect dialect, long limit)
    {
        if (http.Request.ContentLength > limit) return ApiError.BodyTooLarge(limit);
        if (http.Features.Get<IHttpMaxRequestBodySizeFeature>() is { IsReadOnly: false } size) size.MaxRequestBodySize = limit;
        if (http.Request.ContentType is not { } type || !IsJson(type))
            return ApiError.UnsupportedMediaType();
        // A compressed body read as JSON was "a string in it is not Unicode text": say what is wrong with it.
        if (http.Request.Headers.ContentEncoding is { Count: > 0 } encoding && !encoding.All(e => string.Equals(e?.Trim(), "identity", StringComparison.OrdinalIgnoreCase)))
            return new ApiError(415, "invalid_request_error", "unsupported_content_encoding",
                $"Request bodies are taken uncompressed: 'Content-Encoding: {encoding}' is not supported. Send the JSON as it is.");
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
                    return Read(dialect, read.Buffer.FirstSpan);
                }
                finally
                {
                    reader.AdvanceTo(read.Buffer.End);
                }
            }
            // Any other is gathered as it arrives, consuming as it goes: the connection holds only so much unread input.
            // The buffer grows with what has arrived, not with the length the client announced. It is rented: a long
            // conversation's body (tens of kilobytes, in several pieces) was allocated afresh, zeroed and grown by copying
            // for every request.
            var whole = ArrayPool<byte>.Shared.Rent((int)Math.Clamp(read.Buffer.Length * 2, 4 * 1024, 64 * 1024));
            var written = 0;
            try
            {
                while (true)
                {
                    if (written + read.Buffer.Length > limit)
                    {
                        reader.AdvanceTo(read.Buffer.End);
                        return ApiError.BodyTooLarge(limit);
                    }
                    if (written + read.Buffer.Length > whole.Length)
                    {
                        var larger = ArrayPool<byte>.Shared.Rent((int)Math.Max(whole.Length * 2L, written + read.Buffer.Length));
                        whole.AsSpan(0, written).CopyTo(larger);
                        ArrayPool<byte>.Shared.Return(whole);
                        whole = larger;
                    }
                    read.Buffer.CopyTo(whole.AsSpan(written));
                    written += (int)read.Buffer.Length;
                    reader.AdvanceTo(read.Buffer.End);
                    if (read.IsCompleted) return Read(dialect, whole.AsSpan(0, written));
                    read = await reader.ReadAsync(http.RequestAborted);
                }
            }
            finally
            {
                ArrayPool<byte>.Shared.Return(whole);
            }
        }
        catch (BadHttpRequestException ex) when (ex.StatusCode == StatusCodes.Status413PayloadTooLarge)
        {
            return ApiError.BodyTooLarge(limit);
        }
        catch (BadHttpRequestException ex) when (!http.RequestAborted.IsCancellationRequested)
        {
            // A body that ended before its Content-Length (the client closed its side): the client's fault, recorded as
            // such, where it escaped as a 500 internal_error. A client that is gone altogether is a 499 (the handler).
            return ApiError.BadRequest(ex.Message);
        }
    }

    /// <summary>application/json itself (not application/jsonfoo), and no charset but UTF-8: the body is read as UTF-8 whatever it says.</summary>
    private static bool IsJson(string type)
    {
        if (type.Equals("application/json", StringComparison.OrdinalIgnoreCase)) return true;
        if (!Microsoft.Net.Http.Headers.MediaTypeHeaderValue.TryParse(type, out var media)
            || !media.MediaType.Equals("application/json", StringComparison.OrdinalIgnoreCase)) return false;
        var charset = Microsoft.Net.Http.Headers.HeaderUtilities.RemoveQuotes(media.Charset);
        return !charset.HasValue || charset.Equals("utf-8", StringComparison.OrdinalIgnoreCase) || charset.Equals("utf8", StringComparison.OrdinalIgnoreCase);
    }

    private static RequestRead Read(Dialect dialect, ReadOnlySpan<byte> body)
    {
        body = JsonText.WithoutByteOrderMark(body);
        // Fields kept as JSON (message content, tool schemas, the Responses input) hold a string the serializer would have
        // refused until something reads its text, and that was a 500 wherever it happened: checked here, once.
        if (JsonText.Check(body, Reading, refuseNul: false) != JsonTextProblem.None)
            return ApiError.MalformedJson(null, "a string in it is not Unicode text (bytes that are not UTF-8, or an unpaired surrogate escape such as \\ud800).");
        RequestRead read;
        try
        {
            var (request, error) = dialect.Read(body);
            read = new RequestRead(request, error);
        }
        catch (JsonException ex)
        {
            var path = ex.Path is { Length: > 2 } p ? p.TrimStart('$', '.') : null;
            read = JsonText.SyntaxError(body, Reading) is { } syntax ? ApiError.MalformedJson(null, syntax)
                : path is null ? ApiError.MalformedJson(null, "check the syntax of the body.")
                : ApiError.InvalidField(path, $"'{path}' has the wrong type or is malformed.");
        }
        // Only a refused body is read a second time, for the log.
        return read.Request is null ? read with { Requested = Requested(body) } : read;
    }

    /// <summary>The body's <c>model</c> and <c>stream</c>, for its line in the request log; null when the body is not a JSON object.</summary>
    public static (string Model, bool Stream)? Requested(ReadOnlySpan<byte> body)
    {
        try
        {
            var reader = new Utf8JsonReader(body, Reading);
            using var document = JsonDocument.ParseValue(ref reader);
            if (document.RootElement.ValueKind != JsonValueKind.Object) return null;
            var model = document.RootElement.TryGetProperty("model", out var m) && m.ValueKind == JsonValueKind.String ? m.GetString()! : "";
            var stream = document.RootElement.TryGetProperty("stream", out var st) && st.ValueKind == JsonValueKind.True;
            return (model, stream);
        }
        catch (Exception ex) when (ex is JsonException or InvalidOperationException) // not JSON, or a model name that is not text
        {
            return null;
        }
    }


    /// <summary>The serializer's own reading rules, so the check above reads exactly the JSON the serializer accepts.</summary>
    private static readonly JsonReaderOptions Reading = new()
    {
        AllowTrailingCommas = PortalJsonContext.Default.Options.AllowTrailingCommas,
        CommentHandling = PortalJsonContext.Default.Options.ReadCommentHandling,
        MaxDepth = PortalJsonContext.Default.Options.MaxDepth is > 0 and var depth ? depth : 64,
    };
}
