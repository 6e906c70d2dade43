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
    public long? Seed { get; set; }
    public double? PresencePenalty { get; set; }
    public double? FrequencyPenalty { get; set; }
    public string? User { get; set; }
    public List<ToolDefinition?>? Tools { get; set; }
    /// <summary>"none", "auto", "required" or {"type": "function", "function": {"name"}}.</summary>
    public JsonElement ToolChoice { get; set; }
    public bool? ParallelToolCalls { get; set; }
    public ResponseFormat? ResponseFormat { get; set; }

    /// <summary>Every other top-level field, checked against <see cref="RequestFields"/>; null (no allocation) when there is none.</summary>
    [JsonExtensionData]
    public Dictionary<string, JsonElement>? Unread { get; set; }
}

public sealed class ChatMessage
{
    public string? Role { get; set; }
    public MessageContent Content { get; set; }
    public string? Name { get; set; }
    /// <summary>An assistant turn's calls, sent back with the conversation.</summary>
    public List<ToolCall?>? ToolCalls { get; set; }
    /// <summary>Which call a <c>tool</c> message answers.</summary>
    public string? ToolCallId { get; set; }
}

/// <summary>
/// A message's <c>content</c>: a string, read straight into its text, or anything else kept as JSON for validation to
/// name. A JsonElement property copies its value's JSON into a document of its own before the text is read from it: for a
/// long conversation that copy was an eighth of what a request allocated.
/// </summary>
[JsonConverter(typeof(MessageContentConverter))]
public readonly record struct MessageContent(string? Text, JsonElement Json);

public sealed class MessageContentConverter : JsonConverter<MessageContent>
{
    public override bool HandleNull => true;

    public override MessageContent Read(ref Utf8JsonReader reader, Type typeToConvert, JsonSerializerOptions options) =>
        reader.TokenType == JsonTokenType.String ? new(reader.GetString(), default) : new(null, JsonElement.ParseValue(ref reader));

    public override void Write(Utf8JsonWriter writer, MessageContent value, JsonSerializerOptions options)
    {
        if (value.Text is not null) writer.WriteStringValue(value.Text);
        else if (value.Json.ValueKind != JsonValueKind.Undefined) value.Json.WriteTo(writer);
        else writer.WriteNullValue();
    }
}

/// <summary>A function the model may call; <c>parameters</c> is a JSON schema.</summary>
public sealed class ToolDefinition
{
    public string? Type { get; set; }
    public FunctionDefinition? Function { get; set; }
}

public sealed class FunctionDefinition
{
    public string? Name { get; set; }
    public string? Description { get; set; }
    public JsonElement Parameters { get; set; }
    public bool? Strict { get; set; }
}

public sealed class ToolCall
{
    public string? Id { get; set; }
    public string? Type { get; set; }
    public FunctionCall? Function { get; set; }
}

/// <summary><c>arguments</c> is a JSON object serialised as a string, as OpenAI sends it.</summary>
public sealed class FunctionCall
{
    public string? Name { get; set; }
    public string? Arguments { get; set; }
}

public sealed class ResponseFormat
{
    public string? Type { get; set; }
    public JsonSchemaFormat? JsonSchema { get; set; }
}

public sealed class JsonSchemaFormat
{
    public string? Name { get; set; }
    public string? Description { get; set; }
    public JsonElement Schema { get; set; }
    public bool? Strict { get; set; }
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
    public long? Seed { get; set; }
    public double? PresencePenalty { get; set; }
    public double? FrequencyPenalty { get; set; }
    public string? User { get; set; }

    /// <summary>Every other top-level field (echo, suffix, best_of, …), checked against <see cref="RequestFields"/>.</summary>
    [JsonExtensionData]
    public Dictionary<string, JsonElement>? Unread { get; set; }
}

/// <summary>
/// The usage object; <c>cost</c> (USD) is exactly what the ledger is debited for the request (OpenRouter's field).
/// <c>completion_tokens_details.reasoning_tokens</c> is the part of the completion the model did not show (a gpt-oss
/// answer's analysis channel), billed as completion tokens as OpenAI bills reasoning.
/// </summary>
public sealed record Usage(int PromptTokens, int CompletionTokens, int TotalTokens, decimal Cost, CompletionTokensDetails? CompletionTokensDetails = null)
{
    /// <summary>
    /// Always sent, as OpenAI sends it: clients read <c>prompt_tokens_details.cached_tokens</c> without checking for it.
    /// The Portal caches no prompts, so none of them is a cached token.
    /// </summary>
    public PromptTokensDetails PromptTokensDetails => PromptTokensDetails.Uncached;
}

public sealed record CompletionTokensDetails(int ReasoningTokens);

public sealed record PromptTokensDetails(int CachedTokens)
{
    public static readonly PromptTokensDetails Uncached = new(0);
}

public sealed record ChatCompletion(string Id, string Object, long Created, string Model, ChatChoice[] Choices, Usage Usage,
    [property: JsonIgnore(Condition = JsonIgnoreCondition.Never)] string? SystemFingerprint);
public sealed record ChatChoice(int Index, AssistantMessage Message,
    [property: JsonIgnore(Condition = JsonIgnoreCondition.Never)] string? FinishReason,
    [property: JsonIgnore(Condition = JsonIgnoreCondition.Never)] object? Logprobs);
public sealed record AssistantMessage(string Role,
    [property: JsonIgnore(Condition = JsonIgnoreCondition.Never)] string? Content, AnswerToolCall[]? ToolCalls = null);

/// <summary>A call in an answer: <c>arguments</c> is the JSON object as a string.</summary>
public sealed record AnswerToolCall(string Id, string Type, AnswerFunction Function);
public sealed record AnswerFunction(string Name, string Arguments);

public sealed record ChatCompletionChunk(string Id, string Object, long Created, string Model, ChunkChoice[] Choices,
    [property: JsonIgnore(Condition = JsonIgnoreCondition.Never)] Usage? Usage);
public sealed record ChunkChoice(int Index, ChunkDelta Delta,
    [property: JsonIgnore(Condition = JsonIgnoreCondition.Never)] string? FinishReason);
public sealed record ChunkDelta(string? Role, string? Content, ChunkToolCall[]? ToolCalls = null);

/// <summary>
/// A streamed piece of a call, as OpenAI sends it: the first chunk of a call has its index, id, type, name and
/// empty arguments; the following chunks carry only the index and a piece of the arguments.
/// </summary>
public sealed record ChunkToolCall(int Index, string? Id, string? Type, ChunkFunction Function);
public sealed record ChunkFunction(string? Name, string? Arguments);

public sealed record TextCompletion(string Id, string Object, long Created, string Model, TextChoice[] Choices, Usage? Usage);
public sealed record TextChoice(string Text, int Index,
    [property: JsonIgnore(Condition = JsonIgnoreCondition.Never)] object? Logprobs,
    [property: JsonIgnore(Condition = JsonIgnoreCondition.Never)] string? FinishReason);

public sealed record ModelList(string Object, ModelCard[] Data);
public sealed record ModelCard(string Id, string Object, long Created, string OwnedBy);
