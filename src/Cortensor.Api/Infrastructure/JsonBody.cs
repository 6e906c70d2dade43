using System.Buffers;
using System.Text.Json;
using System.Text.Json.Serialization.Metadata;

namespace Cortensor.Api.Infrastructure;

/// <summary>
/// A JSON body written whole, with its Content-Length, in one write. Serialising straight to the response
/// sends it chunked: the body and then a closing chunk, which with nothing else in flight goes out as a second
/// send that the client waits for. Answers and errors of the /v1 API are written this way.
/// </summary>
public static class JsonBody
{
    [ThreadStatic] private static ArrayBufferWriter<byte>? t_buffer;

    public static Task WriteAsync<T>(HttpResponse response, T value, JsonTypeInfo<T> type, string contentType)
    {
        // One buffer per thread: the body is serialised and copied into the server's own buffer before the
        // first await, so it never crosses threads and is free again at once.
        var buffer = t_buffer ??= new ArrayBufferWriter<byte>(4 * 1024);
        buffer.ResetWrittenCount();
        try
        {
            using (var json = new Utf8JsonWriter(buffer, new JsonWriterOptions
                   { Encoder = type.Options.Encoder, Indented = type.Options.WriteIndented, MaxDepth = type.Options.MaxDepth, SkipValidation = true }))
                JsonSerializer.Serialize(json, value, type);
            response.ContentType = contentType;
            response.ContentLength = buffer.WrittenCount;
            response.BodyWriter.Write(buffer.WrittenSpan);
        }
        finally
        {
            if (buffer.Capacity > 1024 * 1024) t_buffer = null; // a huge answer's buffer is not kept
        }
        return response.BodyWriter.FlushAsync(response.HttpContext.RequestAborted).AsTask();
    }
}
