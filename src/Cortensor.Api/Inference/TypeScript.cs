using System.Text;
using System.Text.Json;

namespace Cortensor.Api.Inference;

/// <summary>
/// A JSON schema as the TypeScript-like type harmony shows gpt-oss its functions with
/// (<c>{ // description \n name?: string, unit?: "c" | "f", }</c>). Hand-written: harmony's own renderer
/// (openai-harmony) is Rust/Python only, and the subset it renders is small.
/// </summary>
internal static class TypeScript
{
    public static string Of(JsonElement schema)
    {
        var sb = new StringBuilder();
        Write(sb, schema, 0);
        return sb.ToString();
    }

    private static void Write(StringBuilder sb, JsonElement s, int depth)
    {
        if (s.ValueKind != JsonValueKind.Object || depth > 16)
        {
            sb.Append("any");
            return;
        }
        if (s.TryGetProperty("enum", out var values) && values.ValueKind == JsonValueKind.Array)
        {
            var first = true;
            foreach (var v in values.EnumerateArray())
            {
                if (!first) sb.Append(" | ");
                sb.Append(v.GetRawText());
                first = false;
            }
            if (first) sb.Append("never");
            return;
        }
        if (s.TryGetProperty("const", out var constant))
        {
            sb.Append(constant.GetRawText());
            return;
        }
        foreach (var union in (string[])["anyOf", "oneOf"])
            if (s.TryGetProperty(union, out var options) && options.ValueKind == JsonValueKind.Array)
            {
                var first = true;
                foreach (var o in options.EnumerateArray())
                {
                    if (!first) sb.Append(" | ");
                    Write(sb, o, depth + 1);
                    first = false;
                }
                return;
            }
        if (!s.TryGetProperty("type", out var type))
        {
            if (s.TryGetProperty("properties", out var props) && props.ValueKind == JsonValueKind.Object) WriteObject(sb, s, depth);
            else sb.Append("any");
            return;
        }
        if (type.ValueKind == JsonValueKind.Array)
        {
            var first = true;
            foreach (var t in type.EnumerateArray())
            {
                if (!first) sb.Append(" | ");
                WriteType(sb, s, Name(t), depth);
                first = false;
            }
            return;
        }
        WriteType(sb, s, Name(type), depth);
    }

    /// <summary>A type is named by a string; anything else a client put there (a number, true, an object) shows as <c>any</c>.</summary>
    private static string? Name(JsonElement type) => type.ValueKind == JsonValueKind.String ? type.GetString() : null;

    private static void WriteType(StringBuilder sb, JsonElement s, string? type, int depth)
    {
        switch (type)
        {
            case "string": sb.Append("string"); break;
            case "number" or "integer": sb.Append("number"); break;
            case "boolean": sb.Append("boolean"); break;
            case "null": sb.Append("null"); break;
            case "array":
                if (s.TryGetProperty("items", out var items))
                {
                    var inner = new StringBuilder();
                    Write(inner, items, depth + 1);
                    var text = inner.ToString();
                    sb.Append(text.Contains(" | ", StringComparison.Ordinal) ? $"({text})" : text).Append("[]");
                }
                else sb.Append("any[]");
                break;
            case "object":
                if (s.TryGetProperty("properties", out var props) && props.ValueKind == JsonValueKind.Object) WriteObject(sb, s, depth);
                else sb.Append("object");
                break;
            default: sb.Append("any"); break;
        }
    }

    private static void WriteObject(StringBuilder sb, JsonElement s, int depth)
    {
        var required = new HashSet<string>(StringComparer.Ordinal);
        if (s.TryGetProperty("required", out var req) && req.ValueKind == JsonValueKind.Array)
            foreach (var r in req.EnumerateArray())
                if (r.ValueKind == JsonValueKind.String) required.Add(r.GetString()!);
        sb.Append("{\n");
        foreach (var p in s.GetProperty("properties").EnumerateObject())
        {
            if (p.Value.ValueKind == JsonValueKind.Object && p.Value.TryGetProperty("description", out var d) && d.ValueKind == JsonValueKind.String)
                sb.Append("// ").Append(d.GetString()!.ReplaceLineEndings(" ")).Append('\n');
            sb.Append(p.Name).Append(required.Contains(p.Name) ? ": " : "?: ");
            Write(sb, p.Value, depth + 1);
            sb.Append(',');
            if (p.Value.ValueKind == JsonValueKind.Object && p.Value.TryGetProperty("default", out var def))
                sb.Append(" // default: ").Append(def.ValueKind == JsonValueKind.String ? def.GetString() : def.GetRawText());
            sb.Append('\n');
        }
        sb.Append('}');
    }
}
