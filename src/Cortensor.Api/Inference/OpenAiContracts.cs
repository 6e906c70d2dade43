using System.Text.Json;
using System.Text.Json.Serialization;

namespace Cortensor.Api.Inference;

// The OpenAI wire format the public /v1 API speaks. Polymorphic fields (content, stop, prompt)
// stay JsonElement so validation can name exactly what is wrong with them.

public sealed class ChatCompletionRequest
{
    public string? Model { get; set; }
    /// <summary>Fallback models, tried in order when the first cannot serve (OpenRouter's convention).</summary>
    public JsonElement Models { get; set; }
    public List<ChatMessage>? Messages { get; set; }
    public int? MaxTokens { get; set; }
    public int? MaxCompletionTokens { get; set; }
    public double? Temperature { get; set; }
    public double? TopP { get; set; }
    public int? N { get; set; }
    public JsonElement Stop { get; set; }
    public bool? Stream { get; set; }
    public StreamOptions? StreamOptions { get; set; }
    public int? Seed { get; set; }
    public double? PresencePenalty { get; set; }
    public double? FrequencyPenalty { get; set; }
    public string? User { get; set; }
}

public sealed class ChatMessage
{
    public string? Role { get; set; }
    public JsonElement Content { get; set; }
    public string? Name { get; set; }
}

public sealed class StreamOptions
{
    public bool? IncludeUsage { get; set; }
}

public sealed class CompletionRequest
{
    public string? Model { get; set; }
    /// <summary>Fallback models, tried in order when the first cannot serve (OpenRouter's convention).</summary>
    public JsonElement Models { get; set; }
    public JsonElement Prompt { get; set; }
    public int? MaxTokens { get; set; }
    public double? Temperature { get; set; }
    public double? TopP { get; set; }
    public int? N { get; set; }
    public JsonElement Stop { get; set; }
    public bool? Stream { get; set; }
    public StreamOptions? StreamOptions { get; set; }
    public int? Seed { get; set; }
    public bool? Echo { get; set; }
    public string? Suffix { get; set; }
    public double? PresencePenalty { get; set; }
    public double? FrequencyPenalty { get; set; }
    public string? User { get; set; }
}

/// <summary>The usage object; <c>cost</c> (USD) is exactly what the ledger is debited for the request (OpenRouter's field).</summary>
public sealed record Usage(int PromptTokens, int CompletionTokens, int TotalTokens, decimal Cost);

public sealed record ChatCompletion(string Id, string Object, long Created, string Model, ChatChoice[] Choices, Usage Usage,
    [property: JsonIgnore(Condition = JsonIgnoreCondition.Never)] string? SystemFingerprint);
public sealed record ChatChoice(int Index, AssistantMessage Message,
    [property: JsonIgnore(Condition = JsonIgnoreCondition.Never)] string? FinishReason,
    [property: JsonIgnore(Condition = JsonIgnoreCondition.Never)] object? Logprobs);
public sealed record AssistantMessage(string Role, string Content);

public sealed record ChatCompletionChunk(string Id, string Object, long Created, string Model, ChunkChoice[] Choices,
    [property: JsonIgnore(Condition = JsonIgnoreCondition.Never)] Usage? Usage);
public sealed record ChunkChoice(int Index, ChunkDelta Delta,
    [property: JsonIgnore(Condition = JsonIgnoreCondition.Never)] string? FinishReason);
public sealed record ChunkDelta(string? Role, string? Content);

public sealed record TextCompletion(string Id, string Object, long Created, string Model, TextChoice[] Choices, Usage? Usage);
public sealed record TextChoice(string Text, int Index,
    [property: JsonIgnore(Condition = JsonIgnoreCondition.Never)] object? Logprobs,
    [property: JsonIgnore(Condition = JsonIgnoreCondition.Never)] string? FinishReason);

public sealed record ModelList(string Object, ModelCard[] Data);
public sealed record ModelCard(string Id, string Object, long Created, string OwnedBy);
