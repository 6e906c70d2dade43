using System.Security.Cryptography;
using System.Text;
using System.Text.RegularExpressions;

namespace Cortensor.RouterSim;

/// <summary>
/// Deterministic stand-in for a model: the same prompt and seed always give the same tokens,
/// and <see cref="CountTokens"/> of the generated text equals the number of tokens generated.
/// </summary>
public static partial class TextGenerator
{
    private static readonly string[] Vocabulary =
    [
        "the", "router", "pool", "session", "model", "answer", "token", "stream", "request", "network",
        "node", "inference", "portal", "quickly", "reliable", "cortensor", "miner", "validator", "result",
        "context", "latency", "prompt", "gateway", "ledger", "credit", "quota", "balance", "dedicated",
        "healthy", "route", "serves", "returns", "computes", "checks", "decentralised", "compute", "task",
    ];

    private static readonly string[] Endings = [".", ",", "!", ";"];

    /// <summary>Splits text the way usage is counted: words and single punctuation marks.</summary>
    [GeneratedRegex(@"\w+|[^\w\s]")]
    private static partial Regex TokenPattern();

    public static int CountTokens(string text) => TokenPattern().Count(text);

    /// <summary>How many tokens this prompt naturally answers with (before max_tokens).</summary>
    public static int NaturalLength(string prompt, int seed) => 12 + (int)(Hash(prompt, seed) % 53);

    /// <summary>The tokens of the answer, each a piece of text that counts as exactly one token.</summary>
    public static IEnumerable<string> Generate(string prompt, int seed, int count)
    {
        var rng = new Random(unchecked((int)Hash(prompt, seed)));
        for (var i = 0; i < count; i++)
        {
            // Punctuation every few words keeps the text readable and is a token of its own.
            if (i > 0 && i % 7 == 6)
                yield return Endings[rng.Next(Endings.Length)];
            else
                yield return (i == 0 ? "" : " ") + Vocabulary[rng.Next(Vocabulary.Length)];
        }
    }

    private static ulong Hash(string prompt, int seed)
    {
        // A cryptographic hash only for its stability across processes and runtimes.
        var digest = SHA256.HashData(Encoding.UTF8.GetBytes($"{seed}\u0001{prompt}"));
        return BitConverter.ToUInt64(digest, 0);
    }
}
