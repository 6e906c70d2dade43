using System.Buffers;
using System.Security.Cryptography;
using System.Text.Json;

namespace Cortensor.Api.Idempotency;

/// <summary>
/// The hash that says whether two bodies are the same request: JSON with its object members in ordinal
/// order and no insignificant white space, so re-serialising the same request (another SDK, another key
/// order) is still the same; anything that is not JSON is hashed as sent.
/// </summary>
public static class CanonicalBody
{
    /// <summary>
    /// What a replay must match: the endpoint (its route, whatever the path's case) as well as the body. The body alone
    /// let a key used on /v1/completions replay its text completion on /v1/chat/completions.
    /// </summary>
    public static string Request(string endpoint, ReadOnlyMemory<byte> body) => $"{endpoint} {Hash(body)}";

    public static string Hash(ReadOnlyMemory<byte> body)
    {
        var canonical = new ArrayBufferWriter<byte>(body.Length + 16);
        try
        {
            using var document = JsonDocument.Parse(body);
            using var writer = new Utf8JsonWriter(canonical);
            Write(writer, document.RootElement);
        }
        // Not JSON, or JSON whose strings are not text (an unpaired surrogate escape, which rewriting has to unescape):
        // the inference endpoint refuses it with a 400; here it is only compared byte for byte.
        catch (Exception ex) when (ex is JsonException or InvalidOperationException)
        {
            return Convert.ToHexStringLower(SHA256.HashData(body.Span));
        }
        return Convert.ToHexStringLower(SHA256.HashData(canonical.WrittenSpan));
    }

    private static void Write(Utf8JsonWriter writer, JsonElement element)
    {
        switch (element.ValueKind)
        {
            case JsonValueKind.Object:
                writer.WriteStartObject();
                foreach (var property in element.EnumerateObject().OrderBy(p => p.Name, StringComparer.Ordinal))
                {
                    writer.WritePropertyName(property.Name);
                    Write(writer, property.Value);
                }
                writer.WriteEndObject();
                break;
            case JsonValueKind.Array:
                writer.WriteStartArray();
                foreach (var item in element.EnumerateArray()) Write(writer, item);
                writer.WriteEndArray();
                break;
            default:
                element.WriteTo(writer);
                break;
        }
    }
}
