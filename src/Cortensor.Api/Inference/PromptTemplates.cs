using System.Text;

namespace Cortensor.Api.Inference;

/// <summary>
/// Chat messages to the single prompt string a router session takes, per model family.
/// The templates are documented for customers in docs/prompt-templates.md.
/// </summary>
public static class PromptTemplates
{
    public static string Render(string family, IReadOnlyList<PromptMessage> messages) => family switch
    {
        "gpt-oss" => Harmony(messages),
        "gemma" => Gemma(messages),
        _ => ChatMl(messages),
    };

    /// <summary>The gpt-oss "harmony" format; developer and system both map to their own roles.</summary>
    private static string Harmony(IReadOnlyList<PromptMessage> messages)
    {
        var sb = new StringBuilder();
        foreach (var m in messages)
            sb.Append("<|start|>").Append(m.Role).Append("<|message|>").Append(m.Content).Append("<|end|>");
        return sb.Append("<|start|>assistant").ToString();
    }

    /// <summary>Gemma has user and model turns only: system and developer text leads the first user turn.</summary>
    private static string Gemma(IReadOnlyList<PromptMessage> messages)
    {
        var sb = new StringBuilder();
        var preamble = new StringBuilder();
        foreach (var m in messages)
        {
            switch (m.Role)
            {
                case "system" or "developer":
                    preamble.Append(m.Content).Append("\n\n");
                    break;
                case "assistant":
                    sb.Append("<start_of_turn>model\n").Append(m.Content).Append("<end_of_turn>\n");
                    break;
                default:
                    sb.Append("<start_of_turn>user\n").Append(preamble).Append(m.Content).Append("<end_of_turn>\n");
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
            sb.Append("<|im_start|>").Append(m.Role == "developer" ? "system" : m.Role).Append('\n').Append(m.Content).Append("<|im_end|>\n");
        return sb.Append("<|im_start|>assistant\n").ToString();
    }
}
