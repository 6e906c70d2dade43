using System.Text.Json;
using System.Text.RegularExpressions;
using Cortensor.Api.Errors;

namespace Cortensor.Api.Inference;

/// <summary>The router's text read as the request asked: tool calls, a JSON document, or text.</summary>
public sealed record StructuredAnswer(string? Content, AnswerToolCall[]? Calls, ApiError? Error)
{
    public string Finish(string textFinish) => Calls is { Length: > 0 } ? "tool_calls" : textFinish;
}

/// <summary>
/// Reads a model's answer back in its family's tool-call format (the inverse of <see cref="PromptTemplates"/>) and
/// checks JSON output against the requested format. An answer that is not what was asked for is a 502
/// <c>invalid_model_output</c>, never an unchecked string.
/// </summary>
public static partial class ModelOutput
{
    // <|channel|>commentary to=functions.name <|constrain|>json<|message|>{...}<|call|> (the recipient may also sit in the header before the channel).
    [GeneratedRegex(@"to=functions\.(?<name>[A-Za-z0-9_\-]+)[^<]*(?:<\|channel\|>[^<]*)?(?:<\|constrain\|>[^<]*)?<\|message\|>(?<args>.*?)(?:<\|call\|>|<\|end\|>|<\|return\|>|$)", RegexOptions.Singleline)]
    private static partial Regex HarmonyCall();

    [GeneratedRegex(@"<tool_call>\s*(?<json>.*?)\s*(?:</tool_call>|$)", RegexOptions.Singleline)]
    private static partial Regex HermesCall();

    [GeneratedRegex(@"^```[A-Za-z_]*\s*\n?(?<body>.*?)\n?```$", RegexOptions.Singleline)]
    private static partial Regex Fence();

    /// <summary>How a call begins in each family's output: while the start of a stream could still be one, it is held back.</summary>
    public static IReadOnlyList<string> CallOpeners(string family) => family switch
    {
        "gpt-oss" => ["<|channel|>commentary to=functions.", "<|start|>assistant<|channel|>commentary to=functions.", "to=functions."],
        "gemma" => ["{", "[", "```"],
        _ => ["<tool_call>"],
    };

    public static StructuredAnswer Interpret(string family, string text, InferenceRequest request, bool truncated)
    {
        var tools = request.Tools is { Active: true } t ? t : null;
        if (tools is not null)
        {
            var (content, calls, error) = ReadCalls(family, text, tools, truncated);
            if (error is not null) return new StructuredAnswer(null, null, error);
            if (calls is { Length: > 0 }) return new StructuredAnswer(content, calls, null);
            if (tools.CallRequired)
                return Invalid(tools.Choice == ToolChoiceMode.Named
                    ? $"tool_choice names '{tools.Named}', but the model answered with text instead of calling it."
                    : "tool_choice is 'required', but the model answered with text instead of calling a function.");
        }
        if (request.Format is { } format) return ReadDocument(family, text, format, truncated);
        return new StructuredAnswer(text, null, null);
    }

    private static (string? Content, AnswerToolCall[]? Calls, ApiError? Error) ReadCalls(string family, string text, ToolSet tools, bool truncated)
    {
        var found = new List<(string Name, string Arguments)>();
        string? content = null;
        switch (family)
        {
            case "gpt-oss":
                foreach (Match m in HarmonyCall().Matches(text)) found.Add((m.Groups["name"].Value, m.Groups["args"].Value));
                break;
            case "gemma":
                var body = Unfenced(text);
                if (body.Length == 0 || body[0] is not ('{' or '[')) break;
                JsonElement parsed;
                try { parsed = JsonElement.Parse(body); }
                catch (JsonException) { break; } // prose that happens to start with a brace or bracket
                foreach (var call in parsed.ValueKind == JsonValueKind.Array ? parsed.EnumerateArray().ToArray() : [parsed])
                {
                    if (call.ValueKind != JsonValueKind.Object || !call.TryGetProperty("name", out var name) || name.ValueKind != JsonValueKind.String
                        || tools.Find(name.GetString()!) is null)
                        return (text, null, null); // JSON that is not a call to one of the tools is the answer itself
                    found.Add((name.GetString()!, call.TryGetProperty("parameters", out var p) ? p.GetRawText()
                        : call.TryGetProperty("arguments", out var a) ? a.GetRawText() : "{}"));
                }
                break;
            default:
                var matches = HermesCall().Matches(text);
                if (matches.Count == 0) break;
                var before = text[..matches[0].Index].Trim();
                content = before.Length > 0 ? before : null;
                foreach (Match m in matches)
                {
                    JsonElement call;
                    try { call = JsonElement.Parse(m.Groups["json"].Value); }
                    catch (JsonException)
                    {
                        return (null, null, Bad(truncated
                            ? "the model's tool call was cut off by max_tokens; raise max_tokens."
                            : "the model wrote a <tool_call> that is not JSON."));
                    }
                    if (call.ValueKind != JsonValueKind.Object || !call.TryGetProperty("name", out var name) || name.ValueKind != JsonValueKind.String)
                        return (null, null, Bad("the model wrote a <tool_call> without a function name."));
                    found.Add((name.GetString()!, call.TryGetProperty("arguments", out var a) ? a.GetRawText() : "{}"));
                }
                break;
        }
        if (found.Count == 0) return (text, null, null);
        if (!tools.ParallelCalls && found.Count > 1) found.RemoveRange(1, found.Count - 1);

        var calls = new AnswerToolCall[found.Count];
        for (var i = 0; i < found.Count; i++)
        {
            var (name, raw) = found[i];
            var tool = tools.Find(name);
            if (tool is null) return (null, null, Bad($"the model called '{name}', which is not one of the tools."));
            if (tools.Choice == ToolChoiceMode.Named && name != tools.Named)
                return (null, null, Bad($"tool_choice names '{tools.Named}', but the model called '{name}'."));
            JsonElement args;
            try { args = JsonElement.Parse(raw); }
            catch (JsonException)
            {
                return (null, null, Bad(truncated
                    ? $"the model's arguments for '{name}' were cut off by max_tokens; raise max_tokens."
                    : $"the model's arguments for '{name}' are not JSON."));
            }
            if (args.ValueKind != JsonValueKind.Object) return (null, null, Bad($"the model's arguments for '{name}' are not a JSON object."));
            if (tool.Schema is { } schema && Violation(schema, args) is { } why)
                return (null, null, Bad($"the model's arguments for '{name}' do not match its strict parameters schema: {why}"));
            calls[i] = new AnswerToolCall(NewCallId(), "function", new AnswerFunction(name, args.GetRawText()));
        }
        return (content, calls, null);
    }

    private static StructuredAnswer ReadDocument(string family, string text, OutputFormat format, bool truncated)
    {
        var body = Unfenced(family == "gpt-oss" ? HarmonyFinal(text) : text);
        JsonElement document;
        try { document = JsonElement.Parse(body); }
        catch (JsonException)
        {
            return Invalid(truncated
                ? "the model's JSON was cut off by max_tokens before it was complete; raise max_tokens."
                : "the model's answer is not valid JSON.");
        }
        if (format.Kind == OutputKind.JsonObject && document.ValueKind != JsonValueKind.Object)
            return Invalid("response_format is json_object, but the model's answer is not a JSON object.");
        if (format.Compiled is { } schema && Violation(schema, document) is { } why)
            return Invalid($"the model's answer does not match the strict schema '{format.Name}': {why}");
        return new StructuredAnswer(body, null, null);
    }

    /// <summary>The first thing the instance breaks, or null when it validates.</summary>
    public static string? Violation(Json.Schema.JsonSchema schema, JsonElement instance)
    {
        if (SchemaLimits.SlowPatterns(schema, instance) is { } slow) return slow;
        Json.Schema.EvaluationResults results;
        try
        {
            results = schema.Evaluate(instance, new Json.Schema.EvaluationOptions { OutputFormat = Json.Schema.OutputFormat.List });
        }
        catch (System.Text.RegularExpressions.RegexMatchTimeoutException)
        {
            // A customer's 'pattern' can backtrack for ever on the right text; Program.cs bounds every regex in the process.
            return "a 'pattern' of the schema took too long to check against the answer.";
        }
        catch (Exception ex) when (ex is Json.Schema.RefResolutionException or Json.Schema.JsonSchemaException)
        {
            // What the request's check could not see (a reference under a part's own $id): the answer cannot be checked.
            return $"the schema could not be checked against the answer: {ex.Message}";
        }
        if (results.IsValid) return null;
        foreach (var detail in results.Details ?? [])
            if (detail.Errors is { Count: > 0 } errors)
                foreach (var (keyword, message) in errors)
                    return $"at '{(detail.InstanceLocation.ToString() is { Length: > 0 } at ? at : "/")}' ({keyword}) {message}";
        return results.Errors?.Values.FirstOrDefault() ?? "the document does not validate.";
    }

    private static StructuredAnswer Invalid(string why) => new(null, null, Bad(why));
    private static ApiError Bad(string why) => ApiError.InvalidModelOutput(why);

    private static string Unfenced(string text)
    {
        var trimmed = text.Trim();
        return trimmed.StartsWith("```", StringComparison.Ordinal) && Fence().Match(trimmed) is { Success: true } m ? m.Groups["body"].Value.Trim() : trimmed;
    }

    /// <summary>A harmony answer may come with its channel header; the document is the final message's body.</summary>
    private static string HarmonyFinal(string text)
    {
        var at = text.LastIndexOf("<|message|>", StringComparison.Ordinal);
        if (at < 0) return text;
        var body = text[(at + "<|message|>".Length)..];
        var end = body.IndexOf("<|", StringComparison.Ordinal);
        return end < 0 ? body : body[..end];
    }

    private static string NewCallId() => "call_" + Guid.NewGuid().ToString("N")[..24];
}

/// <summary>
/// The stream of an answer that may be structured. Text that cannot be the start of a tool call is passed on as it
/// comes; a tool call, and any answer under a response_format, is held to the end, read as a whole and then sent
/// (tool calls as OpenAI's <c>delta.tool_calls</c> chunks, a JSON document as one content chunk).
/// </summary>
public sealed class StructuredStream(string family, InferenceRequest request)
{
    private readonly System.Text.StringBuilder _held = new();
    private readonly IReadOnlyList<string> _openers = ModelOutput.CallOpeners(family);
    // With a response format, or a call required, nothing is text until the whole answer is read.
    private bool _passing;
    private readonly bool _holdAll = request.Format is not null || request.Tools is { CallRequired: true };

    /// <summary>The text that can be sent now.</summary>
    public string Push(string piece)
    {
        if (_passing) return piece;
        _held.Append(piece);
        if (_holdAll) return "";
        var start = _held.ToString().TrimStart();
        if (start.Length == 0) return "";
        foreach (var opener in _openers)
            if (opener.StartsWith(start, StringComparison.Ordinal) || start.StartsWith(opener, StringComparison.Ordinal))
                return "";
        _passing = true;
        var text = _held.ToString();
        _held.Clear();
        return text;
    }

    /// <summary>What the held answer is; null when everything was passed on as text.</summary>
    public StructuredAnswer? Finish(bool truncated) =>
        _passing ? null : ModelOutput.Interpret(family, _held.ToString(), request, truncated);
}
