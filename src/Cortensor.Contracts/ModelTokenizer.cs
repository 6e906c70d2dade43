using System.Text;
using Microsoft.ML.Tokenizers;

namespace Cortensor.Contracts;

/// <summary>
/// How a model family counts tokens. gpt-oss uses o200k with the harmony control tokens
/// (o200k_harmony), which Microsoft.ML.Tokenizers ships: its count is exact. Families without a
/// packaged tokenizer (Gemma, Qwen) get a bound instead of a count: their tokenizers are
/// byte-level BPE (Qwen) or SentencePiece with byte fallback (Gemma), so a text never takes more
/// tokens than its UTF-8 bytes (plus one for a leading marker). The o200k count stands in as their
/// estimate, which is what the router simulator reports for them.
/// </summary>
public sealed class ModelTokenizer
{
    // The harmony control tokens of gpt-oss, with their o200k_harmony ids.
    private static readonly Dictionary<string, int> HarmonyTokens = new()
    {
        ["<|startoftext|>"] = 199998, ["<|return|>"] = 200002, ["<|constrain|>"] = 200003,
        ["<|channel|>"] = 200005, ["<|start|>"] = 200006, ["<|end|>"] = 200007,
        ["<|message|>"] = 200008, ["<|call|>"] = 200012,
    };

    private static readonly Lazy<Tokenizer> O200kHarmony = new(() => TiktokenTokenizer.CreateForEncoding("o200k_base", HarmonyTokens));
    private static readonly Lazy<Tokenizer> O200k = new(() => TiktokenTokenizer.CreateForEncoding("o200k_base"));

    // o200k_base's own special tokens: the encoder takes them as one token each wherever they appear (a raw prompt may
    // hold them), so they end a run and bound a stretch as the harmony tokens do.
    private static readonly string[] EncoderSpecialTokens = ["<|endoftext|>", "<|endofprompt|>"];

    public static readonly ModelTokenizer GptOss = new("gpt-oss", exact: true, O200kHarmony, [.. HarmonyTokens.Keys, .. EncoderSpecialTokens]);
    public static readonly ModelTokenizer ByteBound = new("byte-bound", exact: false, O200k, EncoderSpecialTokens);

    private readonly Lazy<Tokenizer> _tokenizer;
    private readonly string[] _controlTokens;

    private ModelTokenizer(string name, bool exact, Lazy<Tokenizer> tokenizer, string[] controlTokens) =>
        (Name, IsExact, _tokenizer, _controlTokens) = (name, exact, tokenizer, controlTokens);

    public string Name { get; }

    /// <summary>True when <see cref="Count"/> is the family's own count, not an estimate.</summary>
    public bool IsExact { get; }

    public static ModelTokenizer ForFamily(string family) => family == "gpt-oss" ? GptOss : ByteBound;

    /// <summary>
    /// Loads this tokenizer's vocabulary now. Loading o200k takes hundreds of milliseconds, and without this the first
    /// request of each family after a start waited for it (0.2-1 s).
    /// </summary>
    public void Preload() => _ = _tokenizer.Value;

    /// <summary>
    /// The most characters of one run (characters that are all whitespace, or all neither whitespace nor digits) that are
    /// byte-pair encoded as one piece. The pre-tokenizer makes such a run one piece, and encoding a piece takes time that
    /// grows with the square of its length in Microsoft.ML.Tokenizers: 64,000 letters in a row took 1.1 s, a megabyte of
    /// them never finished, and any client could send that. A longer run is cut here and its parts counted apart. Text
    /// without such a run (natural language, nearly all code) is counted whole and exactly as before; a long run's parts
    /// can count differently from the run near each cut, and the bounds widen by <see cref="SlackPerCut"/> per cut.
    /// </summary>
    public const int LongestRun = 256;

    /// <summary>
    /// How far a cut may move the count, with a margin: over 660 random runs of 257-3,000 letters, symbols, CJK, emoji and
    /// spaces, the parts counted 0-2 tokens more per cut than the whole, never fewer. A megabyte in one run is counted in
    /// 90-120 ms (a megabyte of English, which needs no cut, in 14 ms).
    /// </summary>
    public const int SlackPerCut = 3;

    /// <summary>
    /// Stretches of at most this many characters are looked up in the caller's <see cref="ITokenCountCache"/> in a prompt of
    /// any length. A rendered conversation is mostly short stretches between control tokens: the template's own words
    /// (<c>user</c>, <c>assistant</c>, <c>commentary to=functions.read_file</c>, <c>json</c>) around every message and tool
    /// call, and short arguments and results. The encoder's fixed cost per call (its pre-tokenizer, its piece cache) was
    /// most of what counting them took: an agent's turn with eight tool calls took 57 µs to count with its long stretches
    /// already known. Stretches between this and <see cref="LongestRun"/> are counted, never looked up.
    /// </summary>
    public const int ShortStretch = 64;

    /// <summary>The family's count (exact families) or the o200k estimate (the others).</summary>
    public int Count(string text) => Measure(text).Count;

    /// <summary>
    /// Stretches the Portal's own templates write into every prompt (gpt-oss's system message: 220 characters, 289 with
    /// tools, otherwise counted on every request or held once per organisation), with their counts. A handful, compared by
    /// length first: a prompt's other stretches pass with a few comparisons each. Replaced whole, so a reader sees an
    /// entry with its count or not at all.
    /// </summary>
    private (string Text, TokenCount Count)[] _templateText = [];

    /// <summary>At most this many template stretches are kept: the last ones told (two headers a day, and the day before's).</summary>
    private const int TemplateTexts = 8;

    /// <summary>Counts <paramref name="stretch"/> (text without control tokens that a template writes) once, for every prompt after.</summary>
    public void Know(string stretch)
    {
        if (Knows(stretch)) return;
        Know(stretch, MeasureStretch(stretch));
    }

    /// <summary>Tests give a count of their own, to see it used.</summary>
    internal void Know(string stretch, TokenCount count)
    {
        // The last few only: a template's text changes (the date in gpt-oss's system message) and the old text is then unused.
        _templateText = [.. _templateText.TakeLast(TemplateTexts - 1), (stretch, count)];
    }

    /// <summary>A gpt-oss tokenizer of its own, for tests that tell it things the shared one must not know.</summary>
    internal static ModelTokenizer NewGptOss() => new("gpt-oss", exact: true, O200kHarmony, [.. HarmonyTokens.Keys, .. EncoderSpecialTokens]);

    /// <summary>Whether <paramref name="stretch"/> is one <see cref="Know"/> was given.</summary>
    public bool Knows(ReadOnlySpan<char> stretch) => TryKnown(stretch, out _);

    private bool TryKnown(ReadOnlySpan<char> stretch, out TokenCount count)
    {
        foreach (var (text, known) in _templateText)
        {
            if (text.Length == stretch.Length && stretch.SequenceEqual(text))
            {
                count = known;
                return true;
            }
        }
        count = default;
        return false;
    }

    /// <summary>
    /// A prompt shorter than this is counted without looking anything up: below it, looking its message bodies up costs
    /// about what counting them does.
    /// </summary>
    public const int SegmentedFrom = 1024;

    /// <summary>
    /// The count and how many cuts it took (see <see cref="LongestRun"/>); no cut means the count is the encoder's own.
    /// The text is counted a stretch at a time between its control tokens, and each control token is one token, counted
    /// here: the encoder splits a text at its special tokens before anything else, so this is its own count, and the
    /// control tokens are never handed to it. (Microsoft.ML.Tokenizers knows its special tokens only through its cache of
    /// the 8,192 pieces it met last: a replica that had counted enough other words since counted <c>&lt;|start|&gt;</c> as
    /// five tokens and <c>&lt;|endoftext|&gt;</c> as seven, so an exact count depended on what the replica had counted
    /// before.) With <paramref name="known"/>, the long stretches of a long text (in a rendered prompt: the message bodies,
    /// which a conversation sends again with every turn) and the short stretches of any text (<see cref="ShortStretch"/>)
    /// are looked up there first; the result is the same.
    /// </summary>
    public TokenCount Measure(string text, ITokenCountCache? known = null)
    {
        var span = text.AsSpan();
        var lookUpLong = text.Length >= SegmentedFrom;
        int count = 0, cuts = 0, at = 0;
        while (at < span.Length)
        {
            var (start, length) = NextControlToken(span, at);
            var stretch = span[at..start];
            TokenCount measured;
            var lookUp = known is not null && stretch.Length > 0 && (stretch.Length <= ShortStretch || (lookUpLong && stretch.Length >= LongestRun));
            if (TryKnown(stretch, out measured)) { }
            else if (!lookUp) measured = MeasureStretch(stretch);
            else if (!known!.TryGet(stretch, out measured))
            {
                measured = MeasureStretch(stretch);
                known.Add(stretch, measured);
            }
            count += measured.Count + (length > 0 ? 1 : 0);
            cuts += measured.Cuts;
            at = start + length;
        }
        return new(count, cuts);
    }

    /// <summary>Where the next control token at or after <paramref name="from"/> starts, and its length (the text's end and 0 when none).</summary>
    private (int Start, int Length) NextControlToken(ReadOnlySpan<char> text, int from)
    {
        if (_controlTokens.Length == 0) return (text.Length, 0);
        for (var at = from; at < text.Length; at++)
        {
            var next = text[at..].IndexOf('<');
            if (next < 0) break;
            at += next;
            if (ControlTokenAt(text, at) is { } control) return (at, control.Length);
        }
        return (text.Length, 0);
    }

    /// <summary>A stretch without control tokens, its long runs cut (see <see cref="LongestRun"/>).</summary>
    private TokenCount MeasureStretch(ReadOnlySpan<char> text)
    {
        if (text.Length == 0) return new(0, 0);
        var tokenizer = _tokenizer.Value;
        if (text.Length <= LongestRun) return new(tokenizer.CountTokens(text), 0);
        int count = 0, cuts = 0, start = 0, run = 0;
        var whitespace = false;
        for (var i = 0; i < text.Length; i++)
        {
            var c = text[i];
            // Digits are pieces of at most three, so they end any run; otherwise a run is whitespace or not.
            if (char.IsDigit(c))
            {
                run = 0;
                continue;
            }
            var space = char.IsWhiteSpace(c);
            if (run == 0 || space != whitespace) (run, whitespace) = (0, space);
            // Never between the halves of a surrogate pair: the part before would end in half a character.
            if (++run > LongestRun && !char.IsLowSurrogate(c))
            {
                count += tokenizer.CountTokens(text[start..i]);
                (start, run) = (i, 1);
                cuts++;
            }
        }
        return new(count + tokenizer.CountTokens(text[start..]), cuts);
    }

    private string? ControlTokenAt(ReadOnlySpan<char> text, int at)
    {
        foreach (var token in _controlTokens)
            if (text[at..].StartsWith(token, StringComparison.Ordinal)) return token;
        return null;
    }

    /// <summary>
    /// The text cut where its tokens begin, for a simulator that streams one token at a time: the pieces join back
    /// to the text, and there is one per token except where several tokens share one character (multi-byte UTF-8).
    /// A control token is a piece of its own, found here as <see cref="Measure"/> finds it: the encoder would split
    /// one it no longer has in its cache into several.
    /// </summary>
    public IReadOnlyList<string> Pieces(string text)
    {
        var pieces = new List<string>();
        for (var at = 0; at < text.Length;)
        {
            var (start, length) = NextControlToken(text, at);
            if (start > at) AddPieces(pieces, text[at..start]);
            if (length > 0) pieces.Add(text.Substring(start, length));
            at = start + length;
        }
        return pieces;
    }

    private void AddPieces(List<string> pieces, string stretch)
    {
        var tokens = _tokenizer.Value.EncodeToTokens(stretch, out _);
        var start = 0;
        for (var i = 1; i <= tokens.Count; i++)
        {
            var end = i == tokens.Count ? stretch.Length : tokens[i].Offset.Start.GetOffset(stretch.Length);
            if (end <= start) continue;
            pieces.Add(stretch[start..end]);
            start = end;
        }
    }

    /// <summary>
    /// The fewest and most tokens the text can take in this family (what a reservation must cover, and below which no honest
    /// router reports), with the family's count or estimate between them. One count serves all three.
    /// </summary>
    public TokenBounds Bounds(string text, ITokenCountCache? known = null)
    {
        if (!IsExact) return new(text.Length == 0 ? 0 : 1, null, Encoding.UTF8.GetByteCount(text) + 1);
        var (count, cuts) = Measure(text, known);
        return new(Math.Max(0, count - cuts * SlackPerCut), count, count + cuts * SlackPerCut);
    }
}

/// <summary>A text's token bounds in a family; <see cref="Count"/> is known up front only where the family counts exactly.</summary>
public readonly record struct TokenBounds(int Floor, int? Count, int Ceiling);

/// <summary>A text's count in a family, and how many cuts it took (see <see cref="ModelTokenizer.LongestRun"/>).</summary>
public readonly record struct TokenCount(int Count, int Cuts);

/// <summary>
/// Counts of texts measured before, kept by the caller (who decides what may be shared between whom and for how long).
/// <see cref="ModelTokenizer.Measure(string, ITokenCountCache?)"/> looks up the long stretches between control tokens of a long
/// text, and the short ones of any text (<see cref="ModelTokenizer.ShortStretch"/>), here.
/// </summary>
public interface ITokenCountCache
{
    bool TryGet(ReadOnlySpan<char> text, out TokenCount count);

    void Add(ReadOnlySpan<char> text, TokenCount count);
}
