using System.Text.Json;
using System.Text.RegularExpressions;
using Cortensor.Api.Errors;
using Json.Schema;

namespace Cortensor.Api.Inference;

public enum ToolChoiceMode { Auto, None, Required, Named }

/// <summary>A function the model may call. <see cref="Parameters"/> is its JSON schema (an empty object schema when none was given).</summary>
public sealed record ToolSpec(string Name, string? Description, JsonElement Parameters, bool Strict)
{
    /// <summary>Built once, for strict tools only: their arguments are validated.</summary>
    public JsonSchema? Schema { get; init; }
}

/// <summary>The request's tools and how the model may use them.</summary>
public sealed record ToolSet(IReadOnlyList<ToolSpec> Tools, ToolChoiceMode Choice, string? Named, bool ParallelCalls)
{
    /// <summary>With tool_choice none the tools are not shown to the model and its answer is text.</summary>
    public bool Active => Choice != ToolChoiceMode.None && Tools.Count > 0;

    /// <summary>The model must answer with a call: a text answer is an invalid output.</summary>
    public bool CallRequired => Choice is ToolChoiceMode.Required or ToolChoiceMode.Named;

    /// <summary>Names are unique (validation refuses two alike); an answer with many calls looks each up once.</summary>
    public ToolSpec? Find(string name) => (_byName ??= Tools.ToDictionary(t => t.Name, StringComparer.Ordinal)).GetValueOrDefault(name);

    private Dictionary<string, ToolSpec>? _byName;
}

public enum OutputKind { JsonObject, JsonSchema }

/// <summary>response_format json_object or json_schema; the answer must parse and, when strict, validate.</summary>
public sealed record OutputFormat(OutputKind Kind, string Name, string? Description, JsonElement Schema, bool Strict)
{
    public JsonSchema? Compiled { get; init; }
}

/// <summary>A call the assistant made earlier in the conversation.</summary>
public sealed record PromptToolCall(string Id, string Name, string Arguments);

/// <summary>Reads tools, tool_choice, parallel_tool_calls, response_format and tool messages, naming the field at fault.</summary>
public static partial class ToolValidation
{
    // OpenAI's rule for function names. \z, not $: $ also matches before a final newline, which would reach the prompt.
    [GeneratedRegex("^[a-zA-Z0-9_-]{1,64}\\z")]
    private static partial Regex FunctionName();

    /// <summary>Whether <paramref name="name"/> is a function name OpenAI would take: 1-64 letters, digits, '_' or '-'.</summary>
    internal static bool IsFunctionName(string name) => FunctionName().IsMatch(name);

    /// <summary>The 400 for an earlier call's function name that is not one (see <see cref="IsFunctionName"/>).</summary>
    internal static ApiError NotAFunctionName(string at) =>
        ApiError.InvalidField(at, $"'{at}' must be 1-64 letters, digits, '_' or '-', as the name of a tool the model could call.");

    private static readonly JsonElement EmptyObjectSchema = JsonDocument.Parse("""{"type":"object","properties":{}}""").RootElement;

    public const int MaxTools = 128;

    public static ApiError? ReadTools(ChatCompletionRequest r, out ToolSet? tools)
    {
        tools = null;
        if (r.Tools is null)
        {
            if (r.ToolChoice.ValueKind is not (JsonValueKind.Undefined or JsonValueKind.Null)
                && !(r.ToolChoice.ValueKind == JsonValueKind.String && r.ToolChoice.GetString() == "none"))
                return ApiError.InvalidField("tool_choice", "'tool_choice' is only allowed when 'tools' are given.");
            if (r.ParallelToolCalls is not null)
                return ApiError.InvalidField("parallel_tool_calls", "'parallel_tool_calls' is only allowed when 'tools' are given.");
            return null;
        }
        // OpenAI's own limit, and a bound on what one request can make this replica compile (each strict tool's schema and its
        // patterns) before any limit of the key has counted it.
        if (r.Tools.Count > MaxTools)
            return ApiError.InvalidField("tools", $"Invalid 'tools': array too long. Expected an array with maximum length {MaxTools}, but got an array with length {r.Tools.Count} instead.");
        var list = new List<ToolSpec>(r.Tools.Count);
        // A set beside the list: looking each name up in the list made a megabyte of tools cost a second and a half.
        var names = new HashSet<string>(StringComparer.Ordinal);
        for (var i = 0; i < r.Tools.Count; i++)
        {
            var at = $"tools[{i}]";
            var t = r.Tools[i];
            if (t is null) return ApiError.InvalidField(at, $"'{at}' must be an object.");
            if (t.Type != "function")
                return ApiError.UnsupportedParameter($"{at}.type", $"Only 'function' tools are supported; got '{t.Type}'.");
            if (t.Function is null) return ApiError.MissingField($"{at}.function");
            if (t.Function.Name is null) return ApiError.MissingField($"{at}.function.name");
            if (!FunctionName().IsMatch(t.Function.Name))
                return ApiError.InvalidField($"{at}.function.name", $"'{at}.function.name' must be 1-64 letters, digits, '_' or '-'; got '{t.Function.Name}'.");
            if (!names.Add(t.Function.Name))
                return ApiError.InvalidField($"{at}.function.name", $"Two tools are named '{t.Function.Name}'.");
            var parameters = t.Function.Parameters;
            if (parameters.ValueKind is JsonValueKind.Undefined or JsonValueKind.Null) parameters = EmptyObjectSchema;
            if (parameters.ValueKind != JsonValueKind.Object)
                return ApiError.InvalidField($"{at}.function.parameters", $"'{at}.function.parameters' must be a JSON schema object.");
            var strict = t.Function.Strict == true;
            JsonSchema? schema = null;
            if (strict && Compile(parameters, $"{at}.function.parameters", out schema) is { } bad) return bad;
            list.Add(new ToolSpec(t.Function.Name, t.Function.Description, parameters, strict) { Schema = schema });
        }

        var choice = ToolChoiceMode.Auto;
        string? named = null;
        switch (r.ToolChoice.ValueKind)
        {
            case JsonValueKind.Undefined or JsonValueKind.Null:
                break;
            case JsonValueKind.String:
                var value = r.ToolChoice.GetString();
                ToolChoiceMode? mode = value switch
                {
                    "auto" => ToolChoiceMode.Auto,
                    "none" => ToolChoiceMode.None,
                    "required" => ToolChoiceMode.Required,
                    _ => null,
                };
                if (mode is null)
                    return ApiError.InvalidField("tool_choice", $"'tool_choice' must be 'none', 'auto', 'required' or a named function; got '{value}'.");
                choice = mode.Value;
                break;
            case JsonValueKind.Object when r.ToolChoice.TryGetProperty("type", out var allowedType) && allowedType.ValueKind == JsonValueKind.String
                && allowedType.GetString() == "allowed_tools":
                if (AllowedTools(r.ToolChoice, names, out var allowedMode, out var allowed) is { } badAllowed) return badAllowed;
                // Only the allowed tools are shown to the model and may be called; the others are as if not sent.
                list.RemoveAll(t => !allowed.Contains(t.Name));
                choice = allowedMode;
                break;
            case JsonValueKind.Object:
                if (!r.ToolChoice.TryGetProperty("type", out var type) || type.ValueKind != JsonValueKind.String || type.GetString() != "function")
                    return ApiError.UnsupportedParameter("tool_choice.type",
                        "'tool_choice' must be 'none', 'auto', 'required', a named function ({\"type\": \"function\", \"function\": {\"name\": …}}) or allowed tools ({\"type\": \"allowed_tools\", \"allowed_tools\": {\"mode\": \"auto\", \"tools\": […]}}).");
                if (!r.ToolChoice.TryGetProperty("function", out var function) || function.ValueKind != JsonValueKind.Object
                    || !function.TryGetProperty("name", out var name) || name.ValueKind != JsonValueKind.String)
                    return ApiError.MissingField("tool_choice.function.name");
                named = name.GetString()!;
                if (!names.Contains(named))
                    return ApiError.InvalidField("tool_choice.function.name", $"'tool_choice' names '{named}', which is not one of the tools.");
                choice = ToolChoiceMode.Named;
                break;
            default:
                return ApiError.InvalidField("tool_choice", "'tool_choice' must be a string or an object.");
        }
        if (list.Count == 0 && choice is ToolChoiceMode.Required)
            return ApiError.InvalidField("tool_choice", "'tool_choice' is 'required' but 'tools' is empty.");
        tools = new ToolSet(list, choice, named, r.ParallelToolCalls != false);
        return null;
    }

    /// <summary>
    /// Chat's <c>{"type": "allowed_tools", "allowed_tools": {"mode": "auto" | "required", "tools": [{"type": "function",
    /// "function": {"name": …}}]}}</c>: the tools the model may call this turn, of those sent, and whether it must call one.
    /// </summary>
    private static ApiError? AllowedTools(JsonElement choice, HashSet<string> names, out ToolChoiceMode mode, out HashSet<string> allowed)
    {
        mode = ToolChoiceMode.Auto;
        allowed = new HashSet<string>(StringComparer.Ordinal);
        if (!choice.TryGetProperty("allowed_tools", out var spec) || spec.ValueKind != JsonValueKind.Object)
            return ApiError.MissingField("tool_choice.allowed_tools");
        var modeName = spec.TryGetProperty("mode", out var m) && m.ValueKind == JsonValueKind.String ? m.GetString() : null;
        if (modeName is not ("auto" or "required"))
            return ApiError.InvalidField("tool_choice.allowed_tools.mode", "'tool_choice.allowed_tools.mode' must be 'auto' or 'required'.");
        mode = modeName == "required" ? ToolChoiceMode.Required : ToolChoiceMode.Auto;
        if (!spec.TryGetProperty("tools", out var list) || list.ValueKind != JsonValueKind.Array || list.GetArrayLength() == 0)
            return ApiError.InvalidField("tool_choice.allowed_tools.tools", "'tool_choice.allowed_tools.tools' must list at least one of the tools.");
        var i = 0;
        foreach (var tool in list.EnumerateArray())
        {
            var at = $"tool_choice.allowed_tools.tools[{i++}]";
            var name = tool.ValueKind == JsonValueKind.Object && tool.TryGetProperty("type", out var t) && t.ValueKind == JsonValueKind.String && t.GetString() == "function"
                && tool.TryGetProperty("function", out var f) && f.ValueKind == JsonValueKind.Object && f.TryGetProperty("name", out var n) && n.ValueKind == JsonValueKind.String
                ? n.GetString()! : null;
            if (name is null) return ApiError.InvalidField(at, $"'{at}' must be {{\"type\": \"function\", \"function\": {{\"name\": …}}}}.");
            if (!names.Contains(name)) return ApiError.InvalidField($"{at}.function.name", $"'{at}' names '{name}', which is not one of the tools.");
            allowed.Add(name);
        }
        return null;
    }

    public static ApiError? ReadFormat(ResponseFormat? f, out OutputFormat? format)
    {
        format = null;
        if (f is null) return null;
        switch (f.Type)
        {
            case null:
                return ApiError.MissingField("response_format.type");
            case "text":
                return null;
            case "json_object":
                format = new OutputFormat(OutputKind.JsonObject, "json_object", null, default, false);
                return null;
            case "json_schema":
                var s = f.JsonSchema;
                if (s is null) return ApiError.MissingField("response_format.json_schema");
                if (s.Name is null) return ApiError.MissingField("response_format.json_schema.name");
                if (!FunctionName().IsMatch(s.Name))
                    return ApiError.InvalidField("response_format.json_schema.name", "'response_format.json_schema.name' must be 1-64 letters, digits, '_' or '-'.");
                var schema = s.Schema;
                if (schema.ValueKind is JsonValueKind.Undefined or JsonValueKind.Null) schema = EmptyObjectSchema;
                if (schema.ValueKind != JsonValueKind.Object)
                    return ApiError.InvalidField("response_format.json_schema.schema", "'response_format.json_schema.schema' must be a JSON schema object.");
                var strict = s.Strict == true;
                JsonSchema? compiled = null;
                if (strict && Compile(schema, "response_format.json_schema.schema", out compiled) is { } bad) return bad;
                format = new OutputFormat(OutputKind.JsonSchema, s.Name, s.Description, schema, strict) { Compiled = compiled };
                return null;
            default:
                return ApiError.InvalidField("response_format.type", $"'response_format.type' must be 'text', 'json_object' or 'json_schema'; got '{f.Type}'.");
        }
    }

    /// <summary>OpenAI's refusal of a history whose assistant turn has calls that no tool turn right after it answers.</summary>
    public static ApiError Unanswered(string at, IReadOnlyList<PromptToolCall> calls, HashSet<string> unanswered)
    {
        var ids = InCallOrder(calls, unanswered);
        return ApiError.InvalidField(at,
            $"An assistant message with 'tool_calls' must be followed by tool messages responding to each 'tool_call_id'. " +
            $"The following tool_call_ids did not have response messages: {FirstShown(ids)}{(ids.Count > 5 ? $" and {ids.Count - 5} more" : "")}.");
    }

    /// <summary>The unanswered ids in the order the calls were made, each once.</summary>
    internal static List<string> InCallOrder(IEnumerable<PromptToolCall> calls, HashSet<string> unanswered) =>
        calls.Select(c => c.Id).Where(unanswered.Contains).Distinct().ToList();

    /// <summary>The first five ids as an error message quotes them, each whole up to 64 characters.</summary>
    internal static string FirstShown(IEnumerable<string> ids) =>
        string.Join(", ", ids.Take(5).Select(id => id.Length <= 64 ? id : id[..64] + "…"));

    /// <summary>An assistant turn's tool_calls and a tool turn's tool_call_id, checked against the calls made before it.</summary>
    public static ApiError? ReadToolTurn(ChatMessage m, string at, Dictionary<string, string> callNames, ref PromptMessage message)
    {
        if (m.Role == "assistant" && m.ToolCalls is { Count: > 0 })
        {
            var calls = new PromptToolCall[m.ToolCalls.Count];
            for (var j = 0; j < calls.Length; j++)
            {
                var c = m.ToolCalls[j];
                var cat = $"{at}.tool_calls[{j}]";
                if (c is null) return ApiError.InvalidField(cat, $"'{cat}' must be an object.");
                if (c.Id is null) return ApiError.MissingField($"{cat}.id");
                if (c.Type is not (null or "function")) return ApiError.UnsupportedParameter($"{cat}.type", "Only 'function' tool calls are supported.");
                if (c.Function?.Name is null) return ApiError.MissingField($"{cat}.function.name");
                // The name goes into the prompt as it is (the templates name the function a call was made to), so it is
                // held to the rule for tools' names: anything else could write the family's control tokens into the prompt.
                if (!IsFunctionName(c.Function.Name)) return NotAFunctionName($"{cat}.function.name");
                calls[j] = new PromptToolCall(c.Id, c.Function.Name, c.Function.Arguments ?? "{}");
                callNames[c.Id] = c.Function.Name;
            }
            message = message with { ToolCalls = calls };
        }
        else if (m.ToolCalls is not null && m.Role != "assistant")
            return ApiError.InvalidField($"{at}.tool_calls", $"Only assistant messages carry 'tool_calls'; this one is '{m.Role}'.");

        if (m.Role == "tool")
        {
            if (m.ToolCallId is null) return ApiError.MissingField($"{at}.tool_call_id");
            if (!callNames.TryGetValue(m.ToolCallId, out var name))
                return ApiError.InvalidField($"{at}.tool_call_id",
                    $"'{at}.tool_call_id' is '{m.ToolCallId}', which no earlier assistant message's 'tool_calls' has.");
            message = message with { ToolCallId = m.ToolCallId, Name = name };
        }
        return null;
    }

    private static ApiError? Compile(JsonElement schema, string param, out JsonSchema? compiled)
    {
        compiled = null;
        try
        {
            // A registry of its own: customers' schemas must not collide in (or fill) the global one. Without a "$schema",
            // JSON Schema 2020-12 as documented (the library's default, "v1", refuses any keyword it does not know: the
            // 'definitions' of draft-07 tools and the 'x-…' or 'discriminator' that schema generators add).
            compiled = JsonSchema.Build(schema, new BuildOptions { SchemaRegistry = new SchemaRegistry(), Dialect = Json.Schema.Dialect.Draft202012 }, null!);
        }
        catch (Exception ex) when (ex is JsonSchemaException or JsonException or ArgumentException or InvalidOperationException or RefResolutionException)
        {
            return ApiError.InvalidField(param, $"'{param}' is not a valid JSON schema: {ex.Message}");
        }
        // Building does not follow references; checking an answer does, and one that leads nowhere failed there, after
        // the router had been paid.
        if (SchemaLimits.UnresolvedReference(schema) is { } reference)
        {
            compiled = null;
            return ApiError.InvalidField(param,
                $"'{param}' refers to '{reference}', which is not in the schema: references are followed only within it ('#', '#/$defs/…', '#anchor').");
        }
        if (SchemaLimits.Complexity(schema) is { } tooMuch)
        {
            compiled = null;
            return ApiError.InvalidField(param, $"'{param}' is too costly to check answers against: {tooMuch}");
        }
        if (SchemaLimits.UncomparableNumber(schema) is { } number)
        {
            compiled = null;
            return ApiError.InvalidField(param, $"'{param}' lists {number} in a 'const' or 'enum': answers are compared with numbers of at most 28 digits, within ±7.9e28.");
        }
        // Every answer would fail it after the router was paid, and SDKs retry a 502.
        if (SchemaContradictions.Find(schema) is { } never)
        {
            compiled = null;
            return ApiError.InvalidField(param, $"'{param}' can never be met, so no answer could pass it: {never}");
        }
        SchemaLimits.Remember(compiled, schema);
        return null;
    }
}
