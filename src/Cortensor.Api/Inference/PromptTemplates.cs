using System.Text;

namespace Cortensor.Api.Inference;

/// <summary>
/// Chat messages to the single prompt string a router session takes, per model family.
/// The templates are documented for customers in docs/api.md ("Prompt templates").
/// </summary>
public static class PromptTemplates
{
    /// <summary>
    /// U+200D ZERO WIDTH JOINER, put right after the '&lt;' of a control token found in message content.
    /// Tokenizers match special tokens as exact strings, so "&lt;\u200D|start|&gt;" is plain text to the model;
    /// unlike a lookalike character (e.g. a full-width '＜') it survives NFKC normalisation unchanged, and
    /// it is invisible when the model quotes the text back.
    /// </summary>
    public const char Neutraliser = '\u200D';

    /// <summary>
    /// Gemma's control tokens. Harmony and ChatML write every control token as &lt;|name|&gt;, so for them
    /// every "&lt;|" is broken (that also covers reserved and tool tokens not listed here).
    /// </summary>
    private static readonly string[] GemmaTokens =
        ["<start_of_turn>", "<end_of_turn>", "<bos>", "<eos>", "<pad>", "<unk>", "<mask>", "<start_of_image>", "<end_of_image>"];

    public static string Render(string family, IReadOnlyList<PromptMessage> messages) => family switch
    {
        "gpt-oss" => Harmony(messages),
        "gemma" => Gemma(messages),
        _ => ChatMl(messages),
    };

    /// <summary>Message content as inert text for <paramref name="family"/>: no control token of that family survives.</summary>
    public static string Neutralise(string family, string content)
    {
        if (family == "gemma")
        {
            if (!content.Contains('<')) return content;
            foreach (var token in GemmaTokens)
                content = content.Replace(token, token.Insert(1, Neutraliser.ToString()), StringComparison.Ordinal);
            return content;
        }
        return content.Contains("<|", StringComparison.Ordinal) ? content.Replace("<|", $"<{Neutraliser}|", StringComparison.Ordinal) : content;
    }

    /// <summary>The gpt-oss "harmony" format; developer and system both map to their own roles.</summary>
    private static string Harmony(IReadOnlyList<PromptMessage> messages)
    {
        var sb = new StringBuilder();
        foreach (var m in messages)
            sb.Append("<|start|>").Append(m.Role).Append("<|message|>").Append(Neutralise("gpt-oss", m.Content)).Append("<|end|>");
        return sb.Append("<|start|>assistant").ToString();
    }

    /// <summary>Gemma has user and model turns only: system and developer text leads the first user turn.</summary>
    private static string Gemma(IReadOnlyList<PromptMessage> messages)
    {
        var sb = new StringBuilder();
        var preamble = new StringBuilder();
        foreach (var m in messages)
        {
            var content = Neutralise("gemma", m.Content);
            switch (m.Role)
            {
                case "system" or "developer":
                    preamble.Append(content).Append("\n\n");
                    break;
                case "assistant":
                    sb.Append("<start_of_turn>model\n").Append(content).Append("<end_of_turn>\n");
                    break;
                default:
                    sb.Append("<start_of_turn>user\n").Append(preamble).Append(content).Append("<end_of_turn>\n");
                    preamble.Clear();
                    break;
            }
        }
        if (preamble.Length > 0) sb.Append("<start_of_turn>user\n").Append(preamble.ToString().TrimEnd()).Append("<end_of_turn>\n");
        return sb.Append("<start_of_turn>model\n").ToString();
    }

    /// <summary>ChatML (Qwen and the default); developer is sent as system.</summary>
    private static string ChatMl(IReadOnlyList<PromptMessage> messages)
    {
        var sb = new StringBuilder();
        foreach (var m in messages)
            sb.Append("<|im_start|>").Append(m.Role == "developer" ? "system" : m.Role).Append('\n')
                .Append(Neutralise("chatml", m.Content)).Append("<|im_end|>\n");
        return sb.Append("<|im_start|>assistant\n").ToString();
    }
}
