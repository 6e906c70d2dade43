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

    public static readonly ModelTokenizer GptOss = new("gpt-oss", exact: true, O200kHarmony);
    public static readonly ModelTokenizer ByteBound = new("byte-bound", exact: false, O200k);

    private readonly Lazy<Tokenizer> _tokenizer;

    private ModelTokenizer(string name, bool exact, Lazy<Tokenizer> tokenizer) => (Name, IsExact, _tokenizer) = (name, exact, tokenizer);

    public string Name { get; }

    /// <summary>True when <see cref="Count"/> is the family's own count, not an estimate.</summary>
    public bool IsExact { get; }

    public static ModelTokenizer ForFamily(string family) => family == "gpt-oss" ? GptOss : ByteBound;

    /// <summary>
    /// Loads this tokenizer's vocabulary now. Loading o200k takes hundreds of milliseconds, and without this the first
    /// request of each family after a start waited for it (0.2-1 s).
    /// </summary>
    public void Preload() => _ = _tokenizer.Value;

    /// <summary>The family's count (exact families) or the o200k estimate (the others).</summary>
    public int Count(string text) => text.Length == 0 ? 0 : _tokenizer.Value.CountTokens(text);

    /// <summary>
    /// The text cut where its tokens begin, for a simulator that streams one token at a time: the pieces join back
    /// to the text, and there is one per token except where several tokens share one character (multi-byte UTF-8).
    /// </summary>
    public IReadOnlyList<string> Pieces(string text)
    {
        if (text.Length == 0) return [];
        var tokens = _tokenizer.Value.EncodeToTokens(text, out _);
        var pieces = new List<string>(tokens.Count);
        var start = 0;
        for (var i = 1; i <= tokens.Count; i++)
        {
            var end = i == tokens.Count ? text.Length : tokens[i].Offset.Start.GetOffset(text.Length);
            if (end <= start) continue;
            pieces.Add(text[start..end]);
            start = end;
        }
        return pieces;
    }

    /// <summary>The most tokens the text can take in this family: what a reservation must cover.</summary>
    public int Ceiling(string text) => IsExact ? Count(text) : Encoding.UTF8.GetByteCount(text) + 1;

    /// <summary>The fewest tokens the text can take: an honest router never reports less.</summary>
    public int Floor(string text) => IsExact ? Count(text) : text.Length == 0 ? 0 : 1;
}
