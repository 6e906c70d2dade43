using System.Text.Json;
using System.Text.Json.Serialization;

namespace Cortensor.Api.Inference;

// The OpenAI Responses API wire format (POST /v1/responses). Polymorphic fields (input, tools,
// tool_choice, text.format) stay JsonElement so validation can name exactly what is wrong with them;
// every field not listed here lands in Unknown and is refused by name.

public sealed class ResponseRequest
{
    public string? Model { get; set; }
    /// <summary>Models to fall back on, as in chat (OpenRouter's convention).</summary>
    public JsonElement Models { get; set; }
    public JsonElement Input { get; set; }
    public string? Instructions { get; set; }
    public int? MaxOutputTokens { get; set; }
    public double? Temperature { get; set; }
    public double? TopP { get; set; }
    public bool? Stream { get; set; }
    public JsonElement Tools { get; set; }
    public JsonElement ToolChoice { get; set; }
    public ResponseTextRequest? Text { get; set; }
    public Dictionary<string, string>? Metadata { get; set; }
    public bool? Store { get; set; }
    public string? PreviousResponseId { get; set; }
    public bool? Background { get; set; }
    public JsonElement Include { get; set; }
    public bool? ParallelToolCalls { get; set; }
    public string? Truncation { get; set; }
    public string? User { get; set; }
    /// <summary>A stored prompt template's reference (refused unless null): read here, as chat's <c>prompt</c> is another field.</summary>
    public JsonElement Prompt { get; set; }
    /// <summary>
    /// <c>include_obfuscation</c>, padding against a side channel on the stream's sizes: accepted without effect (the
    /// Portal's events are not padded).
    /// </summary>
    public JsonElement StreamOptions { get; set; }

    [JsonExtensionData]
    public Dictionary<string, JsonElement>? Unknown { get; set; }
}

public sealed class ResponseTextRequest
{
    public JsonElement Format { get; set; }

    [JsonExtensionData]
    public Dictionary<string, JsonElement>? Unknown { get; set; }
}

/// <summary>What a Responses request echoes back in its response object.</summary>
public sealed record ResponseSettings(string? Instructions, int? MaxOutputTokens, double? Temperature, double? TopP,
    IReadOnlyDictionary<string, string> Metadata, JsonElement Tools, JsonElement ToolChoice, JsonElement TextFormat, bool ParallelToolCalls);

/// <summary>The response object, as OpenAI returns it; fields OpenAI always sends are written even when null.</summary>
public sealed record ResponseObject(
    string Id, string Object, long CreatedAt, string Status,
    [property: JsonIgnore(Condition = JsonIgnoreCondition.Never)] ResponseErrorBody? Error,
    [property: JsonIgnore(Condition = JsonIgnoreCondition.Never)] ResponseIncompleteDetails? IncompleteDetails,
    [property: JsonIgnore(Condition = JsonIgnoreCondition.Never)] string? Instructions,
    [property: JsonIgnore(Condition = JsonIgnoreCondition.Never)] int? MaxOutputTokens,
    string Model, ResponseOutputItem[] Output, bool ParallelToolCalls,
    [property: JsonIgnore(Condition = JsonIgnoreCondition.Never)] string? PreviousResponseId,
    bool Store,
    [property: JsonIgnore(Condition = JsonIgnoreCondition.Never)] double? Temperature,
    ResponseTextOptions Text, JsonElement ToolChoice, JsonElement Tools,
    [property: JsonIgnore(Condition = JsonIgnoreCondition.Never)] double? TopP,
    string Truncation,
    [property: JsonIgnore(Condition = JsonIgnoreCondition.Never)] ResponseUsage? Usage,
    IReadOnlyDictionary<string, string> Metadata);

public sealed record ResponseErrorBody(string Code, string Message);
public sealed record ResponseIncompleteDetails(string Reason);
public sealed record ResponseTextOptions(JsonElement Format);

/// <summary>One output item: a message (Role, Content) or a function call (CallId, Name, Arguments).</summary>
public sealed record ResponseOutputItem(string Type, string Id, string Status, string? Role = null, ResponseContentPart[]? Content = null,
    string? CallId = null, string? Name = null, string? Arguments = null);

public sealed record ResponseContentPart(string Type, string Text, object[] Annotations);

/// <summary>OpenAI's usage, and <c>cost</c>: the USD the ledger is debited for the request, as on chat and completions.</summary>
public sealed record ResponseUsage(int InputTokens, ResponseInputTokensDetails InputTokensDetails, int OutputTokens,
    ResponseOutputTokensDetails OutputTokensDetails, int TotalTokens, decimal Cost);
public sealed record ResponseInputTokensDetails(int CachedTokens);
public sealed record ResponseOutputTokensDetails(int ReasoningTokens);

// Streaming events (SSE "event:" is the same as their type), numbered by sequence_number from 0.

/// <summary>response.created, response.in_progress, response.completed, response.incomplete, response.failed.</summary>
public sealed record ResponseLifecycleEvent(string Type, int SequenceNumber, ResponseObject Response);

/// <summary>response.output_item.added, response.output_item.done.</summary>
public sealed record ResponseItemEvent(string Type, int SequenceNumber, int OutputIndex, ResponseOutputItem Item);

/// <summary>response.content_part.added, response.content_part.done.</summary>
public sealed record ResponsePartEvent(string Type, int SequenceNumber, string ItemId, int OutputIndex, int ContentIndex, ResponseContentPart Part);

/// <summary>response.output_text.delta.</summary>
public sealed record ResponseTextDeltaEvent(string Type, int SequenceNumber, string ItemId, int OutputIndex, int ContentIndex, string Delta, object[] Logprobs);

/// <summary>response.output_text.done.</summary>
public sealed record ResponseTextDoneEvent(string Type, int SequenceNumber, string ItemId, int OutputIndex, int ContentIndex, string Text, object[] Logprobs);

/// <summary>response.function_call_arguments.delta.</summary>
public sealed record ResponseArgumentsDeltaEvent(string Type, int SequenceNumber, string ItemId, int OutputIndex, string Delta);

/// <summary>response.function_call_arguments.done.</summary>
public sealed record ResponseArgumentsDoneEvent(string Type, int SequenceNumber, string ItemId, int OutputIndex, string Name, string Arguments);

/// <summary>error: a failure of the stream itself (sent before response.failed).</summary>
public sealed record ResponseErrorEvent(string Type, int SequenceNumber, string Code, string Message,
    [property: JsonIgnore(Condition = JsonIgnoreCondition.Never)] string? Param);
