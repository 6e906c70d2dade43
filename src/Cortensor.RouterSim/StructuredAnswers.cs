using System.Globalization;
using System.Text;
using System.Text.Json;
using System.Text.Json.Nodes;
using System.Text.RegularExpressions;

namespace Cortensor.RouterSim;

/// <summary>
/// What a model behind a router answers to a prompt that carries tools or a response format, deterministically,
/// in the family's own text format (the prompt's template says which): a call to the named or required tool, or to
/// the tool the last user message asks about, with arguments that fit the tool's schema; after a tool result, a
/// final answer in prose; under a response format, a JSON document that fits the schema. Null for any other prompt.
/// </summary>
public static partial class StructuredAnswers
{
    private enum Family { Harmony, ChatMl, Gemma }

    private sealed record Tool(string Name, JsonNode Schema);

    private const string FormatLead = "Respond only with a JSON document, and no other text, that conforms to this JSON schema:\n";
    private const string GemmaToolsEnd = "You SHOULD NOT include any other text in the response if you call a function\n";

    [GeneratedRegex(@"You must call the function '(?<name>[A-Za-z0-9_\-]+)'\.")]
    private static partial Regex NamedChoice();

    [GeneratedRegex(@"type (?<name>[A-Za-z0-9_\-]+) = (?:\(\) => any;|\(_: )")]
    private static partial Regex HarmonyFunction();

    [GeneratedRegex(@"[A-Z][a-z]+(?:\s[A-Z][a-z]+)*")]
    private static partial Regex ProperNoun();

    public static string? Answer(string prompt, string opening, string closing)
    {
        var family = prompt.Contains("<|im_start|>", StringComparison.Ordinal) ? Family.ChatMl
            : prompt.Contains("<start_of_turn>", StringComparison.Ordinal) ? Family.Gemma
            : prompt.Contains("<|start|>", StringComparison.Ordinal) ? Family.Harmony
            : (Family?)null;
        if (family is not { } f) return null;

        if (ToolResult(f, prompt) is { } result)
            return $"{opening} The tool answered: \"{TextGenerator.Echo(result)}\" {closing}";

        var tools = Tools(f, prompt);
        if (tools.Count > 0)
        {
            var question = LastUserText(f, prompt);
            var tool = NamedChoice().Match(prompt) is { Success: true } named ? tools.FirstOrDefault(t => t.Name == named.Groups["name"].Value)
                : Asks(question, tools) ?? (prompt.Contains("You must call at least one of the functions.", StringComparison.Ordinal) ? tools[0] : null);
            if (tool is not null)
            {
                var args = Instance(tool.Schema, tool.Schema, question, 0)?.ToJsonString() ?? "{}";
                return f switch
                {
                    Family.Harmony => $"<|channel|>commentary to=functions.{tool.Name} <|constrain|>json<|message|>{args}<|call|>",
                    Family.ChatMl => $"<tool_call>\n{{\"name\": \"{tool.Name}\", \"arguments\": {args}}}\n</tool_call>",
                    _ => $"{{\"name\": \"{tool.Name}\", \"parameters\": {args}}}",
                };
            }
        }

        if (Format(f, prompt) is { } schema)
        {
            var question = LastUserText(f, prompt);
            // {"type": "object"} (json_object) has nothing to fill: the answer goes in one field.
            if (schema is JsonObject o && !o.ContainsKey("properties") && (string?)o["type"] == "object")
                return new JsonObject { ["answer"] = $"{opening} You asked: \"{TextGenerator.Echo(question)}\"" }.ToJsonString();
            return Instance(schema, schema, question, 0)?.ToJsonString() ?? "null";
        }
        return null;
    }

    /// <summary>The content of the tool result the prompt ends with, if it ends with one.</summary>
    private static string? ToolResult(Family family, string prompt)
    {
        switch (family)
        {
            case Family.Harmony:
                var end = prompt.LastIndexOf("<|start|>assistant", StringComparison.Ordinal);
                var last = end <= 0 ? -1 : prompt.LastIndexOf("<|start|>", end - 1, StringComparison.Ordinal);
                if (last < 0 || !prompt.AsSpan(last).StartsWith("<|start|>functions.")) return null;
                var body = prompt[last..end];
                var at = body.IndexOf("<|message|>", StringComparison.Ordinal);
                return at < 0 ? "" : body[(at + "<|message|>".Length)..].Replace("<|end|>", "", StringComparison.Ordinal);
            case Family.ChatMl:
                var turn = LastTurn(prompt, "<|im_start|>", "<|im_end|>");
                return turn?.StartsWith("user\n<tool_response>", StringComparison.Ordinal) == true
                    ? turn["user\n".Length..].Replace("<tool_response>", "", StringComparison.Ordinal).Replace("</tool_response>", "", StringComparison.Ordinal)
                    : null;
            default:
                var gemma = LastTurn(prompt, "<start_of_turn>", "<end_of_turn>");
                return gemma?.StartsWith("user\n", StringComparison.Ordinal) == true && gemma.Contains("```tool_output", StringComparison.Ordinal)
                    ? gemma[(gemma.LastIndexOf("```tool_output", StringComparison.Ordinal) + "```tool_output".Length)..].Replace("```", "", StringComparison.Ordinal)
                    : null;
        }
    }

    /// <summary>The last complete turn before the open assistant turn: "role\ncontent".</summary>
    private static string? LastTurn(string prompt, string start, string end)
    {
        var close = prompt.LastIndexOf(end, StringComparison.Ordinal);
        if (close < 0) return null;
        var open = prompt.LastIndexOf(start, close, StringComparison.Ordinal);
        return open < 0 ? null : prompt[(open + start.Length)..close];
    }

    private static string LastUserText(Family family, string prompt)
    {
        switch (family)
        {
            case Family.Harmony:
                var at = prompt.LastIndexOf("<|start|>user<|message|>", StringComparison.Ordinal);
                if (at < 0) return "";
                var text = prompt[(at + "<|start|>user<|message|>".Length)..];
                var end = text.IndexOf("<|end|>", StringComparison.Ordinal);
                return end < 0 ? text : text[..end];
            case Family.ChatMl:
                var open = prompt.LastIndexOf("<|im_start|>user\n", StringComparison.Ordinal);
                if (open < 0) return "";
                var turn = prompt[(open + "<|im_start|>user\n".Length)..];
                var close = turn.IndexOf("<|im_end|>", StringComparison.Ordinal);
                return close < 0 ? turn : turn[..close];
            default:
                var g = prompt.LastIndexOf("<start_of_turn>user\n", StringComparison.Ordinal);
                if (g < 0) return "";
                var gturn = prompt[(g + "<start_of_turn>user\n".Length)..];
                var gclose = gturn.IndexOf("<end_of_turn>", StringComparison.Ordinal);
                gturn = gclose < 0 ? gturn : gturn[..gclose];
                // The first user turn leads with the function list and the format: the question is after them.
                var skip = Math.Max(gturn.IndexOf(GemmaToolsEnd, StringComparison.Ordinal), gturn.IndexOf(FormatLead, StringComparison.Ordinal));
                if (skip < 0) return gturn;
                var lead = gturn.IndexOf(FormatLead, StringComparison.Ordinal) == skip ? FormatLead : GemmaToolsEnd;
                var rest = gturn[(skip + lead.Length)..];
                var length = JsonValueLength(rest);
                rest = rest[length..].TrimStart();
                if (rest.StartsWith("You must call", StringComparison.Ordinal)) rest = rest[(rest.IndexOf('\n') is var n and >= 0 ? n : rest.Length)..];
                if (rest.Contains(FormatLead, StringComparison.Ordinal))
                {
                    rest = rest[(rest.IndexOf(FormatLead, StringComparison.Ordinal) + FormatLead.Length)..];
                    rest = rest[JsonValueLength(rest)..];
                }
                return rest.Trim();
        }
    }

    /// <summary>The tool the question is about: one whose name has a word (4 letters or more) the question uses.</summary>
    private static Tool? Asks(string question, IReadOnlyList<Tool> tools)
    {
        foreach (var tool in tools)
            foreach (var word in Regex.Split(tool.Name, "[_\\-]|(?<=[a-z])(?=[A-Z])"))
                if (word.Length >= 4 && question.Contains(word, StringComparison.OrdinalIgnoreCase)) return tool;
        return null;
    }

    private static List<Tool> Tools(Family family, string prompt)
    {
        var tools = new List<Tool>();
        switch (family)
        {
            case Family.Harmony:
                var start = prompt.IndexOf("namespace functions {", StringComparison.Ordinal);
                var end = prompt.IndexOf("} // namespace functions", StringComparison.Ordinal);
                if (start < 0 || end < start) break;
                var block = prompt[start..end];
                foreach (Match m in HarmonyFunction().Matches(block))
                {
                    var at = m.Index + m.Length;
                    var schema = m.Value.EndsWith("(_: ", StringComparison.Ordinal)
                        ? new TypeReader(block, at).ReadType()
                        : new JsonObject { ["type"] = "object", ["properties"] = new JsonObject() };
                    tools.Add(new Tool(m.Groups["name"].Value, schema));
                }
                break;
            case Family.ChatMl:
                var open = prompt.IndexOf("<tools>\n", StringComparison.Ordinal);
                var close = prompt.IndexOf("\n</tools>", StringComparison.Ordinal);
                if (open < 0 || close < open) break;
                foreach (var line in prompt[(open + "<tools>\n".Length)..close].Split('\n', StringSplitOptions.RemoveEmptyEntries))
                    if (JsonNode.Parse(line)?["function"] is JsonObject function) tools.Add(FromFunction(function));
                break;
            default:
                var g = prompt.IndexOf(GemmaToolsEnd, StringComparison.Ordinal);
                if (g < 0) break;
                var rest = prompt[(g + GemmaToolsEnd.Length)..];
                if (JsonNode.Parse(rest[..JsonValueLength(rest)]) is JsonArray list)
                    foreach (var item in list)
                        if (item is JsonObject function) tools.Add(FromFunction(function));
                break;
        }
        return tools;
    }

    private static Tool FromFunction(JsonObject function) =>
        new((string)function["name"]!, function["parameters"]?.DeepClone() ?? new JsonObject { ["type"] = "object" });

    /// <summary>The JSON schema of the requested response format, if the prompt asks for one.</summary>
    private static JsonNode? Format(Family family, string prompt)
    {
        string? rest = null;
        if (family == Family.Harmony)
        {
            var at = prompt.IndexOf("# Response Formats\n\n## ", StringComparison.Ordinal);
            if (at < 0) return null;
            rest = prompt[at..];
            // After the format's name and its optional "// description" line.
            var brace = rest.IndexOf("\n{", StringComparison.Ordinal);
            if (brace < 0) return null;
            rest = rest[(brace + 1)..];
        }
        else
        {
            var at = prompt.IndexOf(FormatLead, StringComparison.Ordinal);
            if (at < 0) return null;
            rest = prompt[(at + FormatLead.Length)..];
        }
        return JsonNode.Parse(rest[..JsonValueLength(rest)]);
    }

    /// <summary>How many characters the JSON value at the start of <paramref name="text"/> takes.</summary>
    private static int JsonValueLength(string text)
    {
        var bytes = Encoding.UTF8.GetBytes(text);
        var reader = new Utf8JsonReader(bytes, new JsonReaderOptions { AllowMultipleValues = true });
        try
        {
            if (!reader.Read()) return 0;
            reader.Skip();
            return Encoding.UTF8.GetCharCount(bytes, 0, (int)reader.BytesConsumed);
        }
        catch (JsonException)
        {
            return 0;
        }
    }

    /// <summary>A value that fits <paramref name="schema"/>: the first enum value, the lowest allowed number, every property.</summary>
    private static JsonNode? Instance(JsonNode? schema, JsonNode root, string question, int depth, string? property = null)
    {
        if (schema is not JsonObject s || depth > 12) return JsonValue.Create("example");
        if (s["$ref"] is JsonValue r && r.TryGetValue<string>(out var reference) && reference.StartsWith("#/", StringComparison.Ordinal))
        {
            JsonNode? target = root;
            foreach (var part in reference[2..].Split('/')) target = target?[part.Replace("~1", "/").Replace("~0", "~")];
            return Instance(target, root, question, depth + 1, property);
        }
        if (s["const"] is { } constant) return constant.DeepClone();
        if (s["enum"] is JsonArray values && values.Count > 0) return values[0]?.DeepClone();
        foreach (var union in (string[])["anyOf", "oneOf"])
            if (s[union] is JsonArray options && options.Count > 0) return Instance(options[0], root, question, depth + 1, property);
        if (s["allOf"] is JsonArray all && all.Count > 0 && !s.ContainsKey("type")) return Instance(all[0], root, question, depth + 1, property);

        var type = s["type"] switch
        {
            JsonArray types => types.Select(t => (string?)t).FirstOrDefault(t => t != "null") ?? "null",
            JsonValue t => (string?)t,
            _ => s.ContainsKey("properties") ? "object" : s.ContainsKey("items") ? "array" : "string",
        };
        switch (type)
        {
            case "object":
                var obj = new JsonObject();
                if (s["properties"] is JsonObject props)
                    foreach (var (name, sub) in props) obj[name] = Instance(sub, root, question, depth + 1, name);
                return obj;
            case "array":
                var array = new JsonArray();
                var count = Math.Max(1, s["minItems"] is JsonValue min ? min.GetValue<int>() : 1);
                if (s["maxItems"] is JsonValue max) count = Math.Min(count, max.GetValue<int>());
                for (var i = 0; i < count; i++) array.Add(Instance(s["items"], root, question, depth + 1, property));
                return array;
            case "integer" or "number":
                var low = Number(s, "minimum") ?? (Number(s, "exclusiveMinimum") is { } ex ? Math.Floor(ex) + 1 : 1);
                if (Number(s, "maximum") is { } high && low > high) low = high;
                return type == "integer" || low == Math.Floor(low) ? JsonValue.Create((long)low) : JsonValue.Create(low);
            case "boolean":
                return JsonValue.Create(true);
            case "null":
                return null;
            default:
                var text = (string?)s["format"] switch
                {
                    "date" => "2026-01-01",
                    "date-time" => "2026-01-01T00:00:00Z",
                    "email" => "someone@example.com",
                    "uri" or "url" => "https://example.com/",
                    "uuid" => "00000000-0000-4000-8000-000000000000",
                    _ => Word(property, question),
                };
                if (Number(s, "minLength") is { } minLength && text.Length < minLength) text = text.PadRight((int)minLength, 'x');
                if (Number(s, "maxLength") is { } maxLength && text.Length > maxLength) text = text[..(int)maxLength];
                return JsonValue.Create(text);
        }
    }

    private static double? Number(JsonObject s, string name) =>
        s[name] is JsonValue v && v.TryGetValue<double>(out var d) ? d : null;

    /// <summary>A place-like argument takes the question's proper noun ("weather in Paris" → "Paris"); others an example.</summary>
    private static string Word(string? property, string question)
    {
        if (property is not null && (property.Contains("city", StringComparison.OrdinalIgnoreCase) || property.Contains("location", StringComparison.OrdinalIgnoreCase)
            || property.Contains("place", StringComparison.OrdinalIgnoreCase) || property.Contains("name", StringComparison.OrdinalIgnoreCase)))
        {
            // The first word of a sentence is capitalised anyway: skip it.
            foreach (Match m in ProperNoun().Matches(question))
                if (m.Index > 0 && question[..m.Index].TrimEnd() is { Length: > 0 } before && before[^1] is not ('.' or '?' or '!'))
                    return m.Value;
        }
        return "example " + (property ?? "value").ToLower(CultureInfo.InvariantCulture);
    }

    /// <summary>Reads back the TypeScript-like types harmony shows functions with (the Portal's TypeScript.cs writes them).</summary>
    private sealed class TypeReader(string text, int at)
    {
        private int _at = at;

        public JsonNode ReadType()
        {
            var options = new List<JsonNode> { ReadPostfix() };
            while (Peek(" | "))
            {
                _at += 3;
                options.Add(ReadPostfix());
            }
            if (options.Count == 1) return options[0];
            if (options.All(o => o is JsonObject j && j.ContainsKey("const")))
                return new JsonObject { ["enum"] = new JsonArray(options.Select(o => o["const"]!.DeepClone()).ToArray()) };
            return new JsonObject { ["anyOf"] = new JsonArray(options.ToArray()) };
        }

        private JsonNode ReadPostfix()
        {
            var type = ReadPrimary();
            while (Peek("[]"))
            {
                _at += 2;
                type = new JsonObject { ["type"] = "array", ["items"] = type };
            }
            return type;
        }

        private JsonNode ReadPrimary()
        {
            foreach (var (word, schema) in (ReadOnlySpan<(string, string)>)[("string", "string"), ("number", "number"), ("boolean", "boolean"),
                         ("null", "null"), ("object", "object")])
                if (Peek(word))
                {
                    _at += word.Length;
                    return new JsonObject { ["type"] = schema };
                }
            if (Peek("any")) { _at += 3; return new JsonObject(); }
            if (Peek("never")) { _at += 5; return new JsonObject(); }
            if (Peek("("))
            {
                _at++;
                var inner = ReadType();
                if (Peek(")")) _at++;
                return inner;
            }
            if (Peek("{")) return ReadObject();
            // A JSON literal (an enum value).
            var rest = text[_at..];
            var length = JsonValueLength(rest);
            if (length == 0) { _at = text.Length; return new JsonObject(); }
            _at += length;
            return new JsonObject { ["const"] = JsonNode.Parse(rest[..length]) };
        }

        private JsonNode ReadObject()
        {
            _at++; // {
            var properties = new JsonObject();
            var required = new JsonArray();
            while (_at < text.Length)
            {
                while (_at < text.Length && char.IsWhiteSpace(text[_at])) _at++;
                if (Peek("}")) { _at++; break; }
                if (Peek("//")) { SkipLine(); continue; }
                var colon = text.IndexOf(':', _at);
                if (colon < 0) { _at = text.Length; break; }
                var name = text[_at..colon];
                var optional = name.EndsWith('?');
                if (optional) name = name[..^1];
                _at = colon + 2;
                properties[name] = ReadType();
                if (!optional) required.Add(name);
                if (Peek(",")) _at++;
                SkipLine(); // "// default: …" and the line end
            }
            return new JsonObject { ["type"] = "object", ["properties"] = properties, ["required"] = required };
        }

        private bool Peek(string s) => string.CompareOrdinal(text, _at, s, 0, s.Length) == 0;

        private void SkipLine()
        {
            var end = text.IndexOf('\n', _at);
            _at = end < 0 ? text.Length : end + 1;
        }
    }
}
