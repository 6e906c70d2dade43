using System.Security.Cryptography;
using System.Text;
using System.Text.RegularExpressions;
using Cortensor.Contracts;

namespace Cortensor.RouterSim;

/// <summary>A simulated answer: its text, the pieces it streams in (one per token), and its exact token count.</summary>
public sealed record GeneratedAnswer(string Text, IReadOnlyList<string> Pieces, int Tokens, bool Truncated);

/// <summary>
/// Deterministic stand-in for a model: short plain English that says it comes from a simulated router and
/// echoes what was asked (or, for prompts with tools or a response format, see <see cref="StructuredAnswers"/>). Counted with the model family's tokenizer, as a real router counts: the reported
/// completion tokens are exactly the count of the returned text, and max_tokens cuts it on a token boundary.
/// </summary>
public static partial class TextGenerator
{
    private const int EchoWords = 12;

    private static readonly string[] Openings =
    [
        "This is a simulated Cortensor router answering on session {0}.",
        "Hello from a simulated Cortensor router, session {0}.",
        "A simulated Cortensor router received your prompt on session {0}.",
    ];

    private static readonly string[] Closings =
    [
        "On the real network, miners would run this prompt and the router would return their answer here.",
        "A live router would assign this task to miners, wait for their results and send the answer back.",
        "No model ran: this text only stands in for what the network's miners would write.",
    ];

    /// <summary>The last user turn of a chat template (harmony, ChatML, Gemma), or the whole prompt.</summary>
    [GeneratedRegex(@"(?:<\|start\|>user<\|message\|>|<\|im_start\|>user\n|<start_of_turn>user\n)(?<text>.*?)(?:<\|end\|>|<\|im_end\|>|<end_of_turn>)", RegexOptions.Singleline)]
    private static partial Regex UserTurn();

    [GeneratedRegex(@"<\|[^|>]{1,32}\|>|<(?:start|end)_of_turn>")]
    private static partial Regex Markup();

    [GeneratedRegex(@"\s+")]
    private static partial Regex Space();

    /// <summary>
    /// The full answer before max_tokens: same prompt, session and seed, same text. With <paramref name="channels"/>, a
    /// harmony prompt is answered as gpt-oss answers through an engine that renders its control tokens (Ollama,
    /// llama.cpp): its reasoning in the analysis channel first, then the final answer or the call, without the
    /// <c>&lt;|return|&gt;</c> or <c>&lt;|call|&gt;</c> that stopped it.
    /// </summary>
    public static string Compose(string prompt, long session, int seed, bool channels = false)
    {
        var answer = Plain(prompt, session, seed);
        if (!channels || !prompt.Contains("<|start|>", StringComparison.Ordinal)) return answer;
        var analysis = $"<|channel|>analysis<|message|>The user asks: \"{Echo(prompt)}\". I should answer briefly.<|end|><|start|>assistant";
        return answer.StartsWith("<|channel|>commentary to=", StringComparison.Ordinal) && answer.EndsWith("<|call|>", StringComparison.Ordinal)
            ? analysis + answer[..^"<|call|>".Length]
            : analysis + "<|channel|>final<|message|>" + answer;
    }

    private static string Plain(string prompt, long session, int seed)
    {
        var hash = Hash(prompt, seed);
        var opening = string.Format(System.Globalization.CultureInfo.InvariantCulture, Openings[(int)(hash % (ulong)Openings.Length)], session);
        var closing = Closings[(int)(hash / 7 % (ulong)Closings.Length)];
        // Tools and response formats in the prompt get a tool call, a final answer or a JSON document, as a model would write them.
        if (StructuredAnswers.Answer(prompt, opening, closing) is { } structured) return structured;
        var asked = Echo(prompt);
        if (asked.Length == 0) return $"{opening} You sent an empty prompt. {closing}";
        // The quotation closes the sentence: a full stop after it unless the question already ends with one.
        var end = asked[^1] is '.' or '?' or '!' ? "" : ".";
        return $"{opening} You asked: \"{asked}\"{end} {closing}";
    }

    /// <summary>The answer as the router returns it: at most <paramref name="maxTokens"/> tokens of <see cref="Compose"/>.</summary>
    public static GeneratedAnswer Generate(ModelTokenizer tokenizer, string prompt, long session, int seed, int maxTokens, bool channels = false)
    {
        var full = Compose(prompt, session, seed, channels);
        var pieces = tokenizer.Pieces(full);
        var total = tokenizer.Count(full);
        if (total <= maxTokens) return new GeneratedAnswer(full, pieces, total, false);

        // Keep whole tokens; a prefix re-counted can merge differently, so it shrinks until it fits.
        var keep = Math.Min(maxTokens, pieces.Count);
        string text;
        int count;
        do
        {
            text = string.Concat(pieces.Take(keep));
            count = tokenizer.Count(text);
        }
        while (count > maxTokens && --keep > 0);
        return new GeneratedAnswer(text, pieces.Take(keep).ToArray(), count, true);
    }

    /// <summary>What was asked, in at most a dozen words and without template markup.</summary>
    public static string Echo(string prompt)
    {
        var turns = UserTurn().Matches(prompt);
        var asked = turns.Count > 0 ? turns[^1].Groups["text"].Value : prompt;
        asked = Space().Replace(Markup().Replace(asked, " "), " ").Trim().Replace('"', '\'');
        var words = asked.Split(' ', StringSplitOptions.RemoveEmptyEntries);
        return words.Length <= EchoWords ? asked : string.Join(' ', words.Take(EchoWords)) + " ...";
    }

    private static ulong Hash(string prompt, int seed)
    {
        // A cryptographic hash only for its stability across processes and runtimes.
        var digest = SHA256.HashData(Encoding.UTF8.GetBytes($"{seed}\u0001{prompt}"));
        return BitConverter.ToUInt64(digest, 0);
    }
}
