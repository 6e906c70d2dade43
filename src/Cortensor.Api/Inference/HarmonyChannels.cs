using System.Text;

namespace Cortensor.Api.Inference;

/// <summary>
/// What a gpt-oss answer shows the customer. Served from a raw prompt (the Portal renders the template), gpt-oss writes
/// harmony messages, and the engines routers run (Ollama, llama.cpp) render their control tokens as text:
/// <c>&lt;|channel|&gt;analysis&lt;|message|&gt;…reasoning…&lt;|end|&gt;&lt;|start|&gt;assistant&lt;|channel|&gt;final&lt;|message|&gt;The answer</c>,
/// with no closing <c>&lt;|return|&gt;</c> or <c>&lt;|call|&gt;</c> (they stop generation and are not sent).
/// The answer is the final channel's text; the reasoning (analysis, and commentary addressed to no one) is generated,
/// and billed, but not shown, as OpenAI's reasoning models do; a call (<c>to=functions.…</c>) is passed on as written,
/// for <see cref="ModelOutput"/> to read. An answer that does not begin with a control token is plain text and passes
/// unchanged, so a router that already strips the channels is served as before.
/// </summary>
/// <remarks>
/// Fed piece by piece as a stream arrives, or whole. It remembers where each shown character was in the generated text,
/// so a stop sequence found in what is shown is billed where it was generated (<see cref="GeneratedIndex"/>).
/// </remarks>
public sealed class HarmonyChannels
{
    private const string Message = "<|message|>";
    // Longer than any header a model writes (a channel, a recipient, a constraint): past it the text is not harmony.
    private const int LongestHeader = 1024;
    private static readonly string[] Ends = ["<|end|>", "<|return|>", "<|call|>"];

    private enum State { Undecided, Plain, Header, Body }
    private enum Kind { Shown, Hidden, Call }

    private string _held = "";
    private readonly List<(int Shown, int Generated)> _runs = [];
    private State _state = State.Undecided;
    private Kind _kind;
    private int _generated; // characters of the generated text read so far, shown or not
    private int _shown;
    private bool _gap = true;

    /// <summary>A gpt-oss answer's reader; null for the other families, whose answers are shown as generated.</summary>
    public static HarmonyChannels? For(string family) => family == "gpt-oss" ? new HarmonyChannels() : null;

    /// <summary>
    /// The reader of a whole answer: null (shown as generated, nothing allocated) unless it is a gpt-oss answer that opens
    /// with a control token.
    /// </summary>
    public static HarmonyChannels? For(string family, string whole)
    {
        if (family != "gpt-oss") return null;
        var text = whole.AsSpan().TrimStart();
        return text.StartsWith("<|", StringComparison.Ordinal) ? new HarmonyChannels() : null;
    }

    /// <summary>A whole answer: what is shown of it (the generated text itself when <paramref name="channels"/> is null).</summary>
    public static string Shown(HarmonyChannels? channels, string generated) =>
        channels is null ? generated : channels.Push(generated) + channels.Flush();

    /// <summary>The next piece of the generated text; returns what can be shown now.</summary>
    public string Push(string piece)
    {
        if (_state != State.Plain || _held.Length != 0) return Drain(_held.Length == 0 ? piece : _held + piece, final: false);
        // Plain text (most answers, every piece): passed on as it is, nothing copied.
        if (_gap) _runs.Add((_shown, _generated));
        _gap = false;
        _generated += piece.Length;
        _shown += piece.Length;
        return piece;
    }

    /// <summary>The end of the answer: what was held back is shown, or dropped if it was an unfinished header.</summary>
    public string Flush() => Drain(_held, final: true);

    /// <summary>
    /// The tokens of the generated text (up to <paramref name="generatedEnd"/>) that were not shown: the analysis channel,
    /// headers and control tokens. What OpenAI reports as reasoning_tokens; 0 for an answer shown as generated.
    /// </summary>
    public static int HiddenTokens(HarmonyChannels? channels, string generated, int generatedEnd, Cortensor.Contracts.ModelTokenizer tokenizer)
    {
        if (channels is null || channels._generated == channels._shown) return 0;
        generatedEnd = Math.Min(generatedEnd, generated.Length);
        var runs = channels._runs;
        var tokens = 0;
        var from = 0; // the start of the hidden stretch being read
        for (var i = 0; i < runs.Count && from < generatedEnd; i++)
        {
            var length = (i + 1 < runs.Count ? runs[i + 1].Shown : channels._shown) - runs[i].Shown;
            if (runs[i].Generated > from) tokens += tokenizer.Count(generated[from..Math.Min(runs[i].Generated, generatedEnd)]);
            from = runs[i].Generated + length;
        }
        if (from < generatedEnd) tokens += tokenizer.Count(generated[from..generatedEnd]);
        return tokens;
    }

    /// <summary>Where the shown character at <paramref name="shownIndex"/> (or the end of the shown text) is in the generated text.</summary>
    public static int GeneratedIndex(HarmonyChannels? channels, int shownIndex)
    {
        if (channels is null) return shownIndex;
        var runs = channels._runs;
        // A run starting at the index would place it after the hidden text before that run: the run ending there is taken.
        for (var i = runs.Count - 1; i >= 0; i--)
            if (runs[i].Shown < shownIndex || runs[i].Shown == 0) return runs[i].Generated + (shownIndex - runs[i].Shown);
        return shownIndex;
    }

    /// <remarks>
    /// One pass over <paramref name="text"/> from left to right (every search starts where the last ended): a router's
    /// answer of any length, with any number of "&lt;|" in it, costs time in proportion to it.
    /// </remarks>
    private string Drain(string text, bool final)
    {
        var shown = new StringBuilder();
        var at = 0;
        while (at < text.Length)
        {
            switch (_state)
            {
                case State.Undecided:
                    var lead = at;
                    while (lead < text.Length && char.IsWhiteSpace(text[lead])) lead++;
                    // Decided by the first control token, if the answer opens with one a message can begin with; whitespace
                    // before it is bounded, so a router sending it a character at a time is not rescanned for ever.
                    var (begins, mayBegin) = Opens(text.AsSpan(lead));
                    var near = lead - at <= LongestHeader;
                    if (mayBegin && !final && near) return Hold(text, at, shown);
                    _state = begins && near ? State.Header : State.Plain;
                    break;

                case State.Plain:
                    at = Show(shown, text, at, text.Length);
                    break;

                case State.Header:
                    var message = text.IndexOf(Message, at, StringComparison.Ordinal);
                    // No header is this long: not harmony after all, shown as written (whether it came whole or in pieces).
                    // (In pieces, the end may hold the start of a <|message|> still to come.)
                    if ((message >= 0 ? message : final ? text.Length : text.Length - (Message.Length - 1)) - at > LongestHeader) { _state = State.Plain; break; }
                    if (message < 0)
                    {
                        if (final) at = Drop(text, at, text.Length); // an answer cut inside a header has nothing to show
                        return Hold(text, at, shown);
                    }
                    var header = text.AsSpan(at, message - at);
                    // Only a call to one of the request's functions is passed on; a built-in recipient's (python, browser) is
                    // reasoning like the analysis it follows.
                    _kind = header.Contains("to=functions.", StringComparison.Ordinal) ? Kind.Call
                        : header.Contains("to=", StringComparison.Ordinal) ? Kind.Hidden
                        : header.Contains("<|channel|>analysis", StringComparison.Ordinal) || header.Contains("<|channel|>commentary", StringComparison.Ordinal) ? Kind.Hidden
                        : Kind.Shown;
                    // A call is passed on with its header, as ModelOutput reads it; the other headers are markup.
                    at = _kind == Kind.Call ? Show(shown, text, at, message + Message.Length) : Drop(text, at, message + Message.Length);
                    _state = State.Body;
                    break;

                case State.Body:
                    var tag = text.IndexOf("<|", at, StringComparison.Ordinal);
                    if (tag < 0)
                    {
                        // A '<' at the very end may begin a control token: it waits for the next piece.
                        var end = !final && text[^1] == '<' ? text.Length - 1 : text.Length;
                        at = Emit(shown, text, at, end);
                        return Hold(text, at, shown);
                    }
                    at = Emit(shown, text, at, tag);
                    var rest = text.AsSpan(at);
                    var closer = Closer(rest);
                    if (closer > 0)
                    {
                        at = _kind == Kind.Call ? Show(shown, text, at, at + closer) : Drop(text, at, at + closer);
                        _state = State.Header;
                        break;
                    }
                    if (rest.StartsWith("<|start|>", StringComparison.Ordinal)) { _state = State.Header; break; } // a message begun without ending the last
                    if (!final && IsPrefixOfMarker(rest)) return Hold(text, at, shown);
                    at = Emit(shown, text, at, at + 2); // "<|" that begins no control token is text
                    break;
            }
        }
        return Hold(text, at, shown);
    }

    private static readonly string[] Markers = ["<|end|>", "<|return|>", "<|call|>", "<|start|>"];
    // What a harmony answer opens with: its first message's channel or body, or a message's start.
    private static readonly string[] Openers = ["<|channel|>", "<|start|>", Message];

    /// <summary>The length of the message's closing token at the start of <paramref name="text"/>, or 0.</summary>
    private static int Closer(ReadOnlySpan<char> text)
    {
        foreach (var end in Ends)
            if (text.StartsWith(end, StringComparison.Ordinal)) return end.Length;
        return 0;
    }

    /// <summary>Whether <paramref name="text"/> begins with a control token an answer may open with, or may yet (it is shorter).</summary>
    private static (bool Begins, bool MayBegin) Opens(ReadOnlySpan<char> text)
    {
        foreach (var opener in Openers)
            if (text.StartsWith(opener, StringComparison.Ordinal)) return (true, false);
        return (false, IsPrefixOfOne(text, Openers));
    }

    private static bool IsPrefixOfMarker(ReadOnlySpan<char> text) => IsPrefixOfOne(text, Markers);

    /// <summary>Whether <paramref name="text"/> is the start, not the whole, of one of <paramref name="tokens"/>.</summary>
    private static bool IsPrefixOfOne(ReadOnlySpan<char> text, string[] tokens)
    {
        foreach (var token in tokens)
            if (text.Length < token.Length && token.AsSpan().StartsWith(text, StringComparison.Ordinal)) return true;
        return false;
    }

    private string Hold(string text, int at, StringBuilder shown)
    {
        _held = at >= text.Length ? "" : text[at..];
        return shown.ToString();
    }

    private int Emit(StringBuilder shown, string text, int from, int to) =>
        _kind == Kind.Hidden ? Drop(text, from, to) : Show(shown, text, from, to);

    private int Show(StringBuilder shown, string text, int from, int to)
    {
        if (to <= from) return from;
        if (_gap) _runs.Add((_shown, _generated));
        _gap = false;
        shown.Append(text, from, to - from);
        _generated += to - from;
        _shown += to - from;
        return to;
    }

    private int Drop(string text, int from, int to)
    {
        if (to <= from) return from;
        _gap = true;
        _generated += to - from;
        return to;
    }
}
