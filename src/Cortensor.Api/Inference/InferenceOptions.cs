namespace Cortensor.Api.Inference;

/// <summary>Settings of section <c>Inference</c>.</summary>
public sealed class InferenceOptions
{
    /// <summary>Largest accepted request body; larger answers 413.</summary>
    public long MaxRequestBytes { get; set; } = 1 * 1024 * 1024;
    /// <summary>max_tokens when a chat request gives none: also the most a request can cost.</summary>
    public int DefaultMaxTokens { get; set; } = 1024;
    /// <summary>
    /// Memory for the token counts of long message bodies already counted, and of each organisation's short stretches
    /// (<see cref="PromptCounts"/>, about 29 KB per organisation sending gpt-oss prompts); 0 turns both off. 64 MB holds about
    /// 30 million characters of prompts, some 8 million tokens.
    /// </summary>
    public int PromptCountCacheMegabytes { get; set; } = 64;
}
