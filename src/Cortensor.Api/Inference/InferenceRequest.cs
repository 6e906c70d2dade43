using System.Text.Json;
using Cortensor.Api.Errors;

namespace Cortensor.Api.Inference;

public enum InferenceKind { Chat, Text }

public sealed record PromptMessage(string Role, string Content)
{
    /// <summary>The calls an assistant turn made (then its content may be empty).</summary>
    public IReadOnlyList<PromptToolCall>? ToolCalls { get; init; }
    /// <summary>For a tool turn: the call it answers, and that call's function name.</summary>
    public string? ToolCallId { get; init; }
    public string? Name { get; init; }
}

/// <summary>A validated /v1 request, independent of which endpoint it came from.</summary>
public sealed record InferenceRequest(
    InferenceKind Kind, string Model, IReadOnlyList<PromptMessage> Messages, string? RawPrompt,
    int? MaxTokens, double? Temperature, double? TopP, IReadOnlyList<string> Stop,
    bool Stream, bool IncludeUsage, long? Seed, double? PresencePenalty = null, double? FrequencyPenalty = null)
{
    /// <summary>Models to try in order when <see cref="Model"/> cannot serve (see <see cref="ModelFallback"/>).</summary>
    public IReadOnlyList<string> Fallbacks { get; init; } = [];

    /// <summary>What the client called the answer's token limit and its prompt, for errors that name them.</summary>
    public string MaxTokensField => _maxTokensField ?? (Responses is null ? "max_tokens" : "max_output_tokens");
    private readonly string? _maxTokensField;

    /// <summary>The name the limit was sent under, when not the dialect's usual one (chat's max_completion_tokens).</summary>
    public string? SentMaxTokensAs { init => _maxTokensField = value; }
    public string PromptField => Kind == InferenceKind.Text ? "prompt" : Responses is null ? "messages" : "input";

    /// <summary>Function tools and tool_choice (chat only); rendered in the family's tool format.</summary>
    public ToolSet? Tools { get; init; }

    /// <summary>response_format json_object / json_schema; null for text.</summary>
    public OutputFormat? Format { get; init; }

    /// <summary>The answer has to be read as a whole (tool calls, JSON) before it is given to the client.</summary>
    public bool Structured => Tools is { Active: true } || Format is not null;

    /// <summary>Rough prompt size (4 characters a token) for rate-limit and quota reservations before the router counts.</summary>
    /// <remarks>Computed once: it is read again for every streamed chunk.</remarks>
    public int EstimatedPromptTokens { get; } =
        Math.Max(1, ((RawPrompt?.Length ?? Messages.Sum(m => m.Content.Length + m.Role.Length + 4)) + 3) / 4);

    /// <summary>What a Responses API request echoes back in its response object (null for the other dialects).</summary>
    public ResponseSettings? Responses { get; init; }
}

/// <summary>Checks a request the way OpenAI does and names the offending field.</summary>
public static class RequestValidation
{
    private static readonly HashSet<string> Roles = ["system", "developer", "user", "assistant", "tool"];
    public const int MaxStopSequences = 4;
    // A streamed answer holds back the longest stop sequence's length at every piece: a sequence of a megabyte would
    // copy and search a megabyte per token.
    public const int MaxStopLength = 512;

    public static ApiError? Validate(ChatCompletionRequest r, out InferenceRequest? request)
    {
        request = null;
        if (ReadModels(r.Model, r.Models, out var model, out var fallbacks) is { } badModel) return badModel;
        if (r.Messages is null) return ApiError.MissingField("messages");
        if (r.Messages.Count == 0) return ApiError.InvalidField("messages", "'messages' must contain at least one message.");

        if (RequestFields.Check(r.Unread, ApiSurface.Chat, "/v1/chat/completions") is { } unread) return unread;
        var messages = new List<PromptMessage>(r.Messages.Count);
        Dictionary<string, string>? callNames = null;
        // The calls of the last assistant turn that no tool turn has answered yet: as OpenAI requires, they are answered
        // by the tool turns right after it, or the model would be shown a call without its result. A set, so a turn of
        // thousands of calls answered in any order costs no more than reading it.
        HashSet<string>? unanswered = null;
        IReadOnlyList<PromptToolCall>? lastCalls = null;
        for (var i = 0; i < r.Messages.Count; i++)
        {
            var m = r.Messages[i];
            var at = $"messages[{i}]";
            if (m is null) return ApiError.InvalidField(at, $"'{at}' must be an object.");
            if (string.IsNullOrEmpty(m.Role)) return ApiError.MissingField($"{at}.role");
            if (!Roles.Contains(m.Role))
                return ApiError.InvalidField($"{at}.role", $"'{at}.role' must be one of system, developer, user, assistant, tool; got '{m.Role}'.");
            if (m.Role != "tool" && unanswered is { Count: > 0 }) return ToolValidation.Unanswered(at, lastCalls!, unanswered);
            var error = ReadContent(m.Content, $"{at}.content", m.Role, out var text);
            if (error is not null) return error;
            var message = new PromptMessage(m.Role, text);
            if (m.ToolCalls is not null || m.Role == "tool")
            {
                callNames ??= new Dictionary<string, string>(StringComparer.Ordinal);
                if (ToolValidation.ReadToolTurn(m, at, callNames, ref message) is { } toolError) return toolError;
                if (message.ToolCalls is { Count: > 0 } calls) (unanswered, lastCalls) = (new HashSet<string>(calls.Select(c => c.Id), StringComparer.Ordinal), calls);
                else if (m.Role == "tool") unanswered?.Remove(m.ToolCallId!);
            }
            messages.Add(message);
        }
        if (unanswered is { Count: > 0 }) return ToolValidation.Unanswered("messages", lastCalls!, unanswered);
        if (ToolValidation.ReadTools(r, out var tools) is { } toolsError) return toolsError;
        if (ToolValidation.ReadFormat(r.ResponseFormat, out var format) is { } formatError) return formatError;

        var common = ValidateCommon(r.MaxCompletionTokens ?? r.MaxTokens, r.MaxCompletionTokens is null ? "max_tokens" : "max_completion_tokens",
            r.Temperature, r.TopP, r.N, r.Stop, r.Stream, r.StreamOptions, r.PresencePenalty, r.FrequencyPenalty, out var stop);
        if (common is not null) return common;

        request = new InferenceRequest(InferenceKind.Chat, model, messages, null, r.MaxCompletionTokens ?? r.MaxTokens,
            r.Temperature, r.TopP, stop, r.Stream == true, r.StreamOptions?.IncludeUsage == true, r.Seed, r.PresencePenalty, r.FrequencyPenalty)
        {
            Tools = tools,
            Format = format,
            Fallbacks = fallbacks,
            SentMaxTokensAs = r.MaxCompletionTokens is null ? null : "max_completion_tokens",
        };
        return null;
    }

    public static ApiError? Validate(CompletionRequest r, out InferenceRequest? request)
    {
        request = null;
        if (ReadModels(r.Model, r.Models, out var model, out var fallbacks) is { } badModel) return badModel;
        string prompt;
        switch (r.Prompt.ValueKind)
        {
            case JsonValueKind.Undefined or JsonValueKind.Null:
                return ApiError.MissingField("prompt");
            case JsonValueKind.String:
                prompt = r.Prompt.GetString()!;
                break;
            case JsonValueKind.Array when r.Prompt.GetArrayLength() == 1 && r.Prompt[0].ValueKind == JsonValueKind.String:
                prompt = r.Prompt[0].GetString()!;
                break;
            case JsonValueKind.Array:
                return ApiError.InvalidField("prompt", "'prompt' must be a string or an array of exactly one string (batched prompts are not supported).");
            default:
                return ApiError.InvalidField("prompt", "'prompt' must be a string.");
        }
        if (RequestFields.Check(r.Unread, ApiSurface.Text, "/v1/completions") is { } unread) return unread;

        var common = ValidateCommon(r.MaxTokens ?? 16, "max_tokens", r.Temperature, r.TopP, r.N, r.Stop, r.Stream, r.StreamOptions,
            r.PresencePenalty, r.FrequencyPenalty, out var stop);
        if (common is not null) return common;

        // OpenAI's legacy completions default to 16 tokens.
        request = new InferenceRequest(InferenceKind.Text, model, [], prompt, r.MaxTokens ?? 16, r.Temperature, r.TopP, stop,
            r.Stream == true, r.StreamOptions?.IncludeUsage == true, r.Seed, r.PresencePenalty, r.FrequencyPenalty)
        { Fallbacks = fallbacks };
        return null;
    }

    /// <summary>
    /// <c>model</c>, and <c>models</c> to fall back on (OpenRouter's convention): with both, <c>model</c> is tried
    /// first; with only <c>models</c>, its first entry is. Repeats are dropped, order kept.
    /// </summary>
    internal static ApiError? ReadModels(string? modelField, JsonElement models, out string model, out IReadOnlyList<string> fallbacks)
    {
        model = modelField ?? "";
        fallbacks = [];
        if (models.ValueKind is JsonValueKind.Undefined or JsonValueKind.Null)
            return string.IsNullOrWhiteSpace(modelField) ? ApiError.MissingField("model") : null;
        if (models.ValueKind != JsonValueKind.Array)
            return ApiError.InvalidField("models", "'models' must be an array of model ids.");
        var count = models.GetArrayLength();
        if (count == 0) return ApiError.InvalidField("models", "'models' must name at least one model.");
        if (count > ModelFallback.MaxModels)
            return ApiError.InvalidField("models", $"'models' takes at most {ModelFallback.MaxModels} models; got {count}.");
        var list = new List<string>(count + 1);
        if (!string.IsNullOrWhiteSpace(modelField)) list.Add(modelField);
        var index = 0;
        foreach (var item in models.EnumerateArray())
        {
            if (item.ValueKind != JsonValueKind.String || item.GetString() is not { } id || string.IsNullOrWhiteSpace(id))
                return ApiError.InvalidField($"models[{index}]", $"'models[{index}]' must be a model id (a non-empty string).");
            if (!list.Contains(id, StringComparer.Ordinal)) list.Add(id);
            index++;
        }
        model = list[0];
        fallbacks = list.Count == 1 ? [] : list.GetRange(1, list.Count - 1);
        return null;
    }

    private static ApiError? ValidateCommon(int? maxTokens, string maxTokensName, double? temperature, double? topP, int? n,
        JsonElement stopElement, bool? stream, StreamOptions? streamOptions, double? presence, double? frequency, out IReadOnlyList<string> stop)
    {
        stop = [];
        if (maxTokens is < 1) return ApiError.InvalidField(maxTokensName, $"'{maxTokensName}' must be at least 1; got {maxTokens}.");
        if (temperature is < 0 or > 2) return ApiError.InvalidField("temperature", $"'temperature' must be between 0 and 2; got {temperature}.");
        if (topP is < 0 or > 1) return ApiError.InvalidField("top_p", $"'top_p' must be between 0 and 1; got {topP}.");
        if (n is not null and not 1) return ApiError.UnsupportedParameter("n", $"'n' must be 1 (one choice per request is supported); got {n}.");
        if (presence is < -2 or > 2) return ApiError.InvalidField("presence_penalty", "'presence_penalty' must be between -2 and 2.");
        if (frequency is < -2 or > 2) return ApiError.InvalidField("frequency_penalty", "'frequency_penalty' must be between -2 and 2.");
        if (streamOptions is not null && stream != true)
            return ApiError.InvalidField("stream_options", "'stream_options' is only allowed when 'stream' is true.");

        switch (stopElement.ValueKind)
        {
            case JsonValueKind.Undefined or JsonValueKind.Null:
                break;
            case JsonValueKind.String:
                var single = stopElement.GetString()!;
                if (single.Length == 0) return ApiError.InvalidField("stop", "'stop' must not be empty.");
                stop = [single];
                break;
            case JsonValueKind.Array:
                if (stopElement.GetArrayLength() > MaxStopSequences)
                    return ApiError.InvalidField("stop", $"'stop' takes at most {MaxStopSequences} sequences.");
                var list = new List<string>();
                foreach (var item in stopElement.EnumerateArray())
                {
                    if (item.ValueKind != JsonValueKind.String || item.GetString() is not { Length: > 0 } s)
                        return ApiError.InvalidField("stop", "'stop' must be a string or an array of non-empty strings.");
                    list.Add(s);
                }
                stop = list;
                break;
            default:
                return ApiError.InvalidField("stop", "'stop' must be a string or an array of strings.");
        }
        foreach (var sequence in stop)
            if (sequence.Length > MaxStopLength)
            {
                var length = sequence.Length;
                stop = [];
                return ApiError.InvalidField("stop", $"each 'stop' sequence may be at most {MaxStopLength} characters; one has {length}.");
            }
        return null;
    }

    private static ApiError? ReadContent(MessageContent message, string at, string role, out string text)
    {
        text = message.Text ?? "";
        if (message.Text is not null) return null;
        var content = message.Json;
        switch (content.ValueKind)
        {
            case JsonValueKind.Undefined or JsonValueKind.Null:
                // An assistant turn may carry only tool calls; every other role needs content.
                return role == "assistant" ? null : ApiError.MissingField(at);
            case JsonValueKind.Array:
                // As OpenAI: no parts is no content, which only an assistant turn (carrying tool calls) may have.
                if (content.GetArrayLength() == 0 && role != "assistant")
                    return ApiError.InvalidField(at, $"'{at}' must not be an empty array: send at least one content part.");
                return JoinTextParts(content, at, static type => type == "text",
                    static (partAt, type) => ApiError.InvalidField($"{partAt}.type", $"Only 'text' content parts are supported; got '{type}'."), out text);
            default:
                return ApiError.InvalidField(at, $"'{at}' must be a string or an array of content parts.");
        }
    }

    /// <summary>
    /// Content parts joined by new lines, as both chat (<c>text</c>) and Responses (<c>input_text</c>, <c>output_text</c>)
    /// send them; <paramref name="refuse"/> words the error for a part of another type.
    /// </summary>
    internal static ApiError? JoinTextParts(JsonElement parts, string at, Func<string?, bool> accepted,
        Func<string, string?, ApiError> refuse, out string text)
    {
        text = "";
        var joined = new System.Text.StringBuilder();
        var index = 0;
        foreach (var part in parts.EnumerateArray())
        {
            var partAt = $"{at}[{index++}]";
            if (part.ValueKind != JsonValueKind.Object || !part.TryGetProperty("type", out var type) || type.ValueKind != JsonValueKind.String)
                return ApiError.InvalidField($"{partAt}.type", $"'{partAt}' must be an object with a 'type'.");
            if (!accepted(type.GetString())) return refuse(partAt, type.GetString());
            if (!part.TryGetProperty("text", out var partText) || partText.ValueKind != JsonValueKind.String)
                return ApiError.MissingField($"{partAt}.text");
            if (joined.Length > 0) joined.Append('\n');
            joined.Append(partText.GetString());
        }
        text = joined.ToString();
        return null;
    }
}
