using System.Buffers;
using System.Text.Json;
using System.Text.Json.Serialization.Metadata;
using Microsoft.AspNetCore.Http.Metadata;

namespace Cortensor.Api.Inference;

/// <summary>
/// A whole (non-streamed) answer, sent with its Content-Length in one write. A JSON result of the framework is sent
/// chunked: a chunk frame around the body and a closing chunk that, with nothing else in flight, goes out as a
/// second send and a second wake-up of the client, which is what one connection's latency is made of.
/// </summary>
public sealed class JsonAnswer<T>(T value, JsonTypeInfo<T> type) : IResult, IStatusCodeHttpResult, IValueHttpResult, IValueHttpResult<T>, IContentTypeHttpResult
{
    private const string JsonContentType = "application/json; charset=utf-8";

    public T Value => value;
    object? IValueHttpResult.Value => value;
    public int? StatusCode => StatusCodes.Status200OK;
    public string ContentType => JsonContentType;

    public Task ExecuteAsync(HttpContext http)
    {
        var buffer = AnswerBuffer.Rent();
        try
        {
            using (var json = new Utf8JsonWriter(buffer, new JsonWriterOptions { Encoder = type.Options.Encoder, Indented = type.Options.WriteIndented, MaxDepth = type.Options.MaxDepth, SkipValidation = true }))
                JsonSerializer.Serialize(json, value, type);
            http.Response.StatusCode = StatusCodes.Status200OK;
            http.Response.ContentType = JsonContentType;
            http.Response.ContentLength = buffer.WrittenCount;
            // Copied into the server's own buffer before the first await, so the per-thread buffer is free again at once.
            http.Response.BodyWriter.Write(buffer.WrittenSpan);
        }
        finally
        {
            AnswerBuffer.Return(buffer);
        }
        return http.Response.BodyWriter.FlushAsync(http.RequestAborted).AsTask();
    }
}

/// <summary>One serialisation buffer per thread for whole answers: an answer is written synchronously, so it never crosses threads.</summary>
internal static class AnswerBuffer
{
    [ThreadStatic] private static ArrayBufferWriter<byte>? t_buffer;

    public static ArrayBufferWriter<byte> Rent()
    {
        var buffer = t_buffer ??= new ArrayBufferWriter<byte>(4 * 1024);
        buffer.ResetWrittenCount();
        return buffer;
    }

    // A huge answer's buffer is not kept.
    public static void Return(ArrayBufferWriter<byte> buffer)
    {
        if (buffer.Capacity > 1024 * 1024) t_buffer = null;
    }
}

public static class JsonAnswer
{
    public static JsonAnswer<T> Of<T>(T value, JsonTypeInfo<T> type) => new(value, type);
}
