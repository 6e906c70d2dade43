using System.Runtime.InteropServices;
using System.Text;
using System.Text.Json;

namespace Cortensor.Api.Inference;

/// <summary>
/// A JSON schema as the TypeScript-like type harmony shows gpt-oss its functions with
/// (<c>{ // description \n name?: string, unit?: "c" | "f", }</c>). Hand-written: harmony's own renderer
/// (openai-harmony) is Rust/Python only, and the subset it renders is small. References (<c>$ref</c> to <c>$defs</c> or
/// <c>definitions</c>, as Pydantic and zod write any reused or nested model) are shown as the type they lead to, and
/// <c>allOf</c> as an intersection: shown as <c>any</c>, the model was told nothing of a nested object's shape, and its
/// answers failed the check against the real schema, every attempt charged.
/// </summary>
internal sealed class TypeScript
{
    /// <summary>
    /// How much of the schema's own text (in bytes) following references may copy out, at the least: one reference copies
    /// the whole definition it leads to, so 64 references to a definition holding a megabyte's description rendered 64 MB
    /// from a 1 MB body, and a chain of definitions that each refer twice to the next renders 2^n copies. Past the budget
    /// (this, or the schema's own size if larger) a reference shows as <c>any</c>, as one back to a definition being
    /// rendered does (a recursive type: its shape was shown once already). The prompt stays within about twice the schema.
    /// </summary>
    private const int LeastCopyBudget = 64 * 1024;

    private readonly JsonElement _root;
    private Dictionary<string, JsonElement>? _anchors;
    private readonly HashSet<string> _rendering = new(StringComparer.Ordinal);
    private long _copyBudget = -1;

    private TypeScript(JsonElement root) => _root = root;

    public static string Of(JsonElement schema)
    {
        var sb = new StringBuilder();
        new TypeScript(schema).Write(sb, schema, 0);
        return sb.ToString();
    }

    private void Write(StringBuilder sb, JsonElement s, int depth)
    {
        if (s.ValueKind != JsonValueKind.Object || depth > 16)
        {
            sb.Append("any");
            return;
        }
        if (s.TryGetProperty("$ref", out var reference) && reference.ValueKind == JsonValueKind.String)
        {
            var target = SchemaLimits.Resolve(_root, _anchors ??= SchemaLimits.Anchors(_root), reference.GetString()!);
            if (_copyBudget < 0) _copyBudget = Math.Max(LeastCopyBudget, JsonMarshal.GetRawUtf8Value(_root).Length);
            var cost = target is { } resolved ? JsonMarshal.GetRawUtf8Value(resolved.Node).Length : 0;
            if (target is not { } found || cost > _copyBudget || !_rendering.Add(found.At))
            {
                sb.Append("any");
                return;
            }
            _copyBudget -= cost;
            Write(sb, found.Node, depth + 1);
            _rendering.Remove(found.At);
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
        foreach (var (combinator, joiner) in (ReadOnlySpan<(string, string)>)[("anyOf", " | "), ("oneOf", " | "), ("allOf", " & ")])
            if (s.TryGetProperty(combinator, out var options) && options.ValueKind == JsonValueKind.Array && options.GetArrayLength() > 0)
            {
                var first = true;
                foreach (var o in options.EnumerateArray())
                {
                    if (!first) sb.Append(joiner);
                    first = false;
                    if (joiner == " | ")
                    {
                        Write(sb, o, depth + 1);
                        continue;
                    }
                    // A union within an intersection is bracketed, as TypeScript reads "a | b & c" as "a | (b & c)".
                    var part = new StringBuilder();
                    Write(part, o, depth + 1);
                    var text = part.ToString();
                    sb.Append(IsUnion(text) ? $"({text})" : text);
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

    /// <summary>Whether a rendered type is a union at its top level (not only within an object or a bracket of it).</summary>
    private static bool IsUnion(string type)
    {
        var depth = 0;
        for (var i = 0; i < type.Length; i++)
        {
            switch (type[i])
            {
                case '{' or '(' or '[': depth++; break;
                case '}' or ')' or ']': depth--; break;
                case '"': // a string of an enum or const: skip it, escapes included
                    for (i++; i < type.Length && type[i] != '"'; i++) if (type[i] == '\\') i++;
                    break;
                case '/' when i + 1 < type.Length && type[i + 1] == '/': // a description or default, to the end of its line
                    while (i < type.Length && type[i] != '\n') i++;
                    break;
                case '|' when depth == 0: return true;
            }
        }
        return false;
    }

    /// <summary>A type is named by a string; anything else a client put there (a number, true, an object) shows as <c>any</c>.</summary>
    private static string? Name(JsonElement type) => type.ValueKind == JsonValueKind.String ? type.GetString() : null;

    private void WriteType(StringBuilder sb, JsonElement s, string? type, int depth)
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
                    sb.Append(IsUnion(text) ? $"({text})" : text).Append("[]");
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

    private void WriteObject(StringBuilder sb, JsonElement s, int depth)
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
