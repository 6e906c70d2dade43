using System.Text.Json;
using System.Text.RegularExpressions;
using Cortensor.Api.Errors;

namespace Cortensor.Api.Inference;

/// <summary>Whether the answer read was cut before the model finished it, and by what: a cut answer fails the same way again.</summary>
public enum AnswerCut
{
    None,
    MaxTokens,
    StopSequence,
}

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
    // The JSON is trimmed after the match: a \s* on either side of the lazy body made each step of it rescan the whitespace.
    [GeneratedRegex(@"<tool_call>(?<json>.*?)(?:</tool_call>|$)", RegexOptions.Singleline)]
    private static partial Regex HermesCall();

    [GeneratedRegex(@"^```[A-Za-z_]*\s*\n?(?<body>.*?)\n?```$", RegexOptions.Singleline)]
    private static partial Regex Fence();

    private static readonly string[] HarmonyOpeners =
        ["<|channel|>commentary to=functions.", "<|start|>assistant<|channel|>commentary to=functions.", "<|start|>assistant to=functions.", "to=functions."];
    private static readonly string[] GemmaOpeners = ["{", "[", "```"];
    private static readonly string[] HermesOpeners = ["<tool_call>"];

    /// <summary>How a call begins in each family's output: while the text streamed could still be one, it is held back.</summary>
    public static IReadOnlyList<string> CallOpeners(string family) => family switch
    {
        "gpt-oss" => HarmonyOpeners,
        "gemma" => GemmaOpeners,
        _ => HermesOpeners,
    };

    /// <summary>
    /// Whether the family's calls may follow text ("I'll check.&lt;tool_call&gt;…"), the text then being the answer's content.
    /// Gemma's call is its whole answer (read as one JSON body), so an answer that begins with text has none.
    /// </summary>
    public static bool CallsMayFollowText(string family) => family != "gemma";

    /// <summary>Where the first of <paramref name="openers"/> in <paramref name="text"/> begins; -1 when none is in it.</summary>
    public static int FirstOpener(ReadOnlySpan<char> text, IReadOnlyList<string> openers) => ResponseNormaliser.FindStop(text, openers).Cut;

    public static StructuredAnswer Interpret(string family, string text, InferenceRequest request, AnswerCut cut)
    {
        var tools = request.Tools is { Active: true } t ? t : null;
        if (tools is not null)
        {
            var (content, calls, error) = ReadCalls(family, text, tools, cut);
            if (error is not null) return new StructuredAnswer(null, null, error);
            if (calls is { Length: > 0 }) return new StructuredAnswer(content, calls, null);
            if (tools.CallRequired)
                return Invalid(cut, cut == AnswerCut.MaxTokens
                    ? "the model's answer was cut off by max_tokens before it called a function; raise max_tokens."
                    : tools.Choice == ToolChoiceMode.Named
                    ? $"tool_choice names '{tools.Named}', but the model answered with text instead of calling it."
                    : "tool_choice is 'required', but the model answered with text instead of calling a function.");
        }
        if (request.Format is { } format) return ReadDocument(family, text, format, cut);
        return new StructuredAnswer(text, null, null);
    }

    private static (string? Content, AnswerToolCall[]? Calls, ApiError? Error) ReadCalls(string family, string text, ToolSet tools, AnswerCut cut)
    {
        var found = new List<(string Name, string Arguments)>();
        string? content = null;
        switch (family)
        {
            case "gpt-oss":
                found.AddRange(HarmonyCalls(text));
                // As with Hermes calls, text before the first call (a final message) is content: a stream has sent it by then.
                if (found.Count > 0) content = Before(text, FirstOpener(text, HarmonyOpeners));
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
                content = Before(text, matches[0].Index);
                foreach (Match m in matches)
                {
                    JsonElement call;
                    try { call = JsonElement.Parse(m.Groups["json"].ValueSpan.Trim()); }
                    catch (JsonException)
                    {
                        return (null, null, Bad(cut, cut == AnswerCut.MaxTokens
                            ? "the model's tool call was cut off by max_tokens; raise max_tokens."
                            : "the model wrote a <tool_call> that is not JSON."));
                    }
                    if (call.ValueKind != JsonValueKind.Object || !call.TryGetProperty("name", out var name) || name.ValueKind != JsonValueKind.String)
                        return (null, null, Bad(cut, "the model wrote a <tool_call> without a function name."));
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
            if (tool is null) return (null, null, Bad(cut, $"the model called '{name}', which is not one of the tools."));
            if (tools.Choice == ToolChoiceMode.Named && name != tools.Named)
                return (null, null, Bad(cut, $"tool_choice names '{tools.Named}', but the model called '{name}'."));
            JsonElement args;
            try { args = JsonElement.Parse(raw); }
            catch (JsonException)
            {
                return (null, null, Bad(cut, cut == AnswerCut.MaxTokens
                    ? $"the model's arguments for '{name}' were cut off by max_tokens; raise max_tokens."
                    : $"the model's arguments for '{name}' are not JSON."));
            }
            if (args.ValueKind != JsonValueKind.Object) return (null, null, Bad(cut, $"the model's arguments for '{name}' are not a JSON object."));
            if (tool.Schema is { } schema && Violation(schema, args) is { } why)
                return (null, null, Bad(cut, $"the model's arguments for '{name}' do not match its strict parameters schema: {why}"));
            calls[i] = new AnswerToolCall(NewCallId(), "function", new AnswerFunction(name, args.GetRawText()));
        }
        return (content, calls, null);
    }

    /// <summary>
    /// The calls in a harmony answer: <c>to=functions.name</c> (in the header, before or after the channel), then
    /// optionally <c>&lt;|channel|&gt;…</c> and <c>&lt;|constrain|&gt;…</c>, then <c>&lt;|message|&gt;</c> and the
    /// arguments up to <c>&lt;|call|&gt;</c>, <c>&lt;|end|&gt;</c>, <c>&lt;|return|&gt;</c> or the end.
    /// </summary>
    /// <remarks>
    /// Hand-written rather than a regex: the regex scanned from every <c>to=functions.</c> to the next <c>&lt;</c>, so an
    /// answer repeating that text (which a prompt can ask a model for) took time in the square of its length: 160,000
    /// characters cost 5.8 s. Here the header after a recipient is read once, however many recipients share it.
    /// </remarks>
    internal static List<(string Name, string Arguments)> HarmonyCalls(string text)
    {
        const string Recipient = "to=functions.";
        var calls = new List<(string, string)>();
        var refusedUpTo = -1; // a '<' from which no <|message|> follows: every recipient before it fails the same way
        var at = 0;
        while ((at = text.IndexOf(Recipient, at, StringComparison.Ordinal)) >= 0)
        {
            var nameStart = at + Recipient.Length;
            var nameEnd = nameStart;
            while (nameEnd < text.Length && (char.IsAsciiLetterOrDigit(text[nameEnd]) || text[nameEnd] is '_' or '-')) nameEnd++;
            if (nameEnd == nameStart || at < refusedUpTo) { at++; continue; }
            var tag = text.IndexOf('<', nameEnd);
            var body = tag < 0 ? -1 : MessageStart(text, tag);
            if (body < 0)
            {
                refusedUpTo = tag < 0 ? text.Length : tag;
                at++;
                continue;
            }
            var end = ArgumentsEnd(text, body, out var next);
            calls.Add((text[nameStart..nameEnd], text[body..end]));
            at = next;
        }
        return calls;
    }

    /// <summary>Where the arguments begin when the header from <paramref name="tag"/> leads to <c>&lt;|message|&gt;</c>; -1 when it does not.</summary>
    private static int MessageStart(string text, int tag)
    {
        foreach (var optional in (ReadOnlySpan<string>)["<|channel|>", "<|constrain|>"])
        {
            if (!text.AsSpan(tag).StartsWith(optional, StringComparison.Ordinal)) continue;
            tag = text.IndexOf('<', tag + optional.Length);
            if (tag < 0) return -1;
        }
        return text.AsSpan(tag).StartsWith("<|message|>", StringComparison.Ordinal) ? tag + "<|message|>".Length : -1;
    }

    /// <summary>Where the arguments end: the first <c>&lt;|call|&gt;</c>, <c>&lt;|end|&gt;</c> or <c>&lt;|return|&gt;</c>, else the end (before a last newline).</summary>
    private static int ArgumentsEnd(string text, int from, out int next)
    {
        for (var at = text.IndexOf("<|", from, StringComparison.Ordinal); at >= 0; at = text.IndexOf("<|", at + 2, StringComparison.Ordinal))
            foreach (var closer in (ReadOnlySpan<string>)["<|call|>", "<|end|>", "<|return|>"])
                if (text.AsSpan(at).StartsWith(closer, StringComparison.Ordinal))
                {
                    next = at + closer.Length;
                    return at;
                }
        next = text.Length;
        return text.Length > from && text[^1] == '\n' ? text.Length - 1 : text.Length;
    }

    private static StructuredAnswer ReadDocument(string family, string text, OutputFormat format, AnswerCut cut)
    {
        var body = Unfenced(family == "gpt-oss" ? HarmonyFinal(text) : text);
        JsonElement document;
        try { document = JsonElement.Parse(body); }
        catch (JsonException)
        {
            return Invalid(cut, cut == AnswerCut.MaxTokens
                ? "the model's JSON was cut off by max_tokens before it was complete; raise max_tokens."
                : "the model's answer is not valid JSON.");
        }
        if (format.Kind == OutputKind.JsonObject && document.ValueKind != JsonValueKind.Object)
            return Invalid(cut, "response_format is json_object, but the model's answer is not a JSON object.");
        if (format.Compiled is { } schema && Violation(schema, document) is { } why)
            return Invalid(cut, $"the model's answer does not match the strict schema '{format.Name}': {why}");
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
        catch (Exception ex) when (ex is FormatException or OverflowException)
        {
            // The library compares numbers for 'const' and 'enum' as decimals: an answer's 1e400 threw (a 500 after the
            // router was paid). The schema's own are refused with the request (SchemaLimits.UncomparableNumber).
            return "a number in the answer is too large to compare with the schema's 'const' or 'enum' values.";
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

    private static StructuredAnswer Invalid(AnswerCut cut, string why) => new(null, null, Bad(cut, why));
    private static ApiError Bad(AnswerCut cut, string why) => ApiError.InvalidModelOutput(why, cut);

    /// <summary>
    /// The text before a call, without the whitespace before the call; null when there is none. Its leading whitespace is
    /// kept, as in an answer without calls and as a stream has already sent it.
    /// </summary>
    private static string? Before(string text, int call)
    {
        var before = text.AsSpan(0, call).TrimEnd();
        return before.IsEmpty ? null : before.ToString();
    }

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
/// The stream of an answer that may be structured. Text that cannot be part of a tool call is passed on as it comes; a
/// tool call, and any answer under a response_format or a tool_choice that requires a call, is held to the end, read as a
/// whole and then sent (tool calls as OpenAI's <c>delta.tool_calls</c> chunks, a JSON document as one content chunk).
/// Where a family's calls may follow text, the text before the first call streams and the call is held from its opener
/// on, so the client is told what the whole answer would tell it: that text as content, then the calls.
/// </summary>
public sealed class StructuredStream(string family, InferenceRequest request)
{
    private readonly System.Text.StringBuilder _held = new();
    private readonly IReadOnlyList<string> _openers = ModelOutput.CallOpeners(family);
    private readonly int _longestOpener = ModelOutput.CallOpeners(family).Max(o => o.Length);
    private readonly bool _watching = ModelOutput.CallsMayFollowText(family);
    // Passing: everything is text from here on. Holding: the answer is a call (or must be read whole) and is read at the end.
    // With no tools in use and no format there is nothing to read (the relay makes no stream then).
    private bool _passing = request.Tools is not { Active: true } && request.Format is null;
    private bool _holding = request.Format is not null || request.Tools is { CallRequired: true };
    // Where the held text's first non-whitespace character is, or how far the whitespace before it has been scanned.
    private int _lead;
    // While watching: how much of the end of the held text could begin an opener; before it, the held text is whitespace.
    private int _partial;

    /// <summary>The text that can be sent now.</summary>
    public string Push(string piece)
    {
        if (_passing) return piece;
        if (_holding)
        {
            _held.Append(piece);
            return "";
        }
        return _watching ? Watch(piece) : Start(piece);
    }

    /// <summary>What the held answer is: its calls, its document or the text still held; null when everything was sent.</summary>
    public StructuredAnswer? Finish(AnswerCut cut) =>
        _passing ? null
        : _holding || !_watching ? ModelOutput.Interpret(family, _held.ToString(), request, cut)
        : _held.Length == 0 ? null
        : new StructuredAnswer(_held.ToString(), null, null);

    /// <summary>For a family whose call is the whole answer: held while its start could be a call, then passed or held to the end.</summary>
    /// <remarks>
    /// Each piece is looked at once: the decision needs only the first opener's length of text after the leading
    /// whitespace, so an answer of any length (a router's, which a prompt can make long) costs time in proportion to it.
    /// </remarks>
    private string Start(string piece)
    {
        _held.Append(piece);
        while (_lead < _held.Length && char.IsWhiteSpace(_held[_lead])) _lead++;
        var seen = Math.Min(_held.Length - _lead, _longestOpener);
        if (seen == 0) return "";
        var start = _held.ToString(_lead, seen);
        foreach (var opener in _openers)
        {
            if (start.StartsWith(opener, StringComparison.Ordinal))
            {
                _holding = true;
                return "";
            }
            if (opener.StartsWith(start, StringComparison.Ordinal)) return "";
        }
        _passing = true;
        var text = _held.ToString();
        _held.Clear();
        return text;
    }

    /// <summary>For a family whose calls may follow text: the text up to what could begin a call, which is held from there on.</summary>
    /// <remarks>
    /// As <see cref="StreamingStopFilter"/> holds what could begin a stop sequence, only the end that could begin an opener is
    /// held back, with the whitespace before it (the whole answer's content ends before the whitespace that precedes its
    /// first call, and a call at the start leaves none). Each piece is searched once, with less than an opener's length
    /// before it, so an answer of any length costs time in proportion to it.
    /// </remarks>
    private string Watch(string piece)
    {
        var space = _held.Length - _partial;
        var text = _partial == 0 ? piece : _held.ToString(space, _partial) + piece;
        var opener = ModelOutput.FirstOpener(text, _openers);
        var kept = opener >= 0 ? opener : PartialOpener(text);
        var end = kept;
        while (end > 0 && char.IsWhiteSpace(text[end - 1])) end--;
        var send = "";
        if (end == 0)
            _held.Append(piece); // whitespace at most comes before what is kept: all of it stays held
        else
        {
            send = space == 0 ? (end == text.Length ? text : text[..end]) : string.Concat(_held.ToString(0, space), text.AsSpan(0, end));
            _held.Clear().Append(text, end, text.Length - end);
        }
        if (opener >= 0) _holding = true;
        else _partial = text.Length - kept;
        return send;
    }

    /// <summary>Where the longest end of <paramref name="text"/> that begins an opener (and is not all of it) starts; its length when none does.</summary>
    private int PartialOpener(string text)
    {
        for (var at = Math.Max(0, text.Length - _longestOpener + 1); at < text.Length; at++)
            foreach (var opener in _openers)
                if (text[at] == opener[0] && opener.AsSpan().StartsWith(text.AsSpan(at), StringComparison.Ordinal)) return at;
        return text.Length;
    }
}
