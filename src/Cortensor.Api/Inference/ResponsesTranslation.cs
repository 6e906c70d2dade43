using System.Text;
using System.Text.Json;
using Cortensor.Api.Errors;

namespace Cortensor.Api.Inference;

/// <summary>
/// A Responses API request checked the way OpenAI checks it and turned into the chat request the hot
/// path serves: instructions first (as the developer turn), then the input items in order. A field the
/// Portal cannot honour is a 400 naming it, never dropped.
/// </summary>
public static class ResponsesTranslation
{
    private static readonly HashSet<string> Roles = ["system", "developer", "user", "assistant"];
    private const int MaxMetadataPairs = 16, MaxMetadataKey = 64, MaxMetadataValue = 512;

    private static readonly JsonElement NoTools = JsonDocument.Parse("[]").RootElement;
    private static readonly JsonElement AutoToolChoice = JsonDocument.Parse("\"auto\"").RootElement;
    private static readonly JsonElement PlainText = JsonDocument.Parse("""{"type":"text"}""").RootElement;

    public static ApiError? Translate(ResponseRequest r, out InferenceRequest? request)
    {
        request = null;
        if (Refused(r) is { } refused) return refused;
        if (string.IsNullOrWhiteSpace(r.Model)) return ApiError.MissingField("model");

        var messages = new List<PromptMessage>();
        if (!string.IsNullOrEmpty(r.Instructions)) messages.Add(new PromptMessage("developer", r.Instructions));
        if (ReadInput(r.Input, messages) is { } badInput) return badInput;

        if (r.MaxOutputTokens is < 1) return ApiError.InvalidField("max_output_tokens", $"'max_output_tokens' must be at least 1; got {r.MaxOutputTokens}.");
        if (r.Temperature is < 0 or > 2) return ApiError.InvalidField("temperature", $"'temperature' must be between 0 and 2; got {r.Temperature}.");
        if (r.TopP is < 0 or > 1) return ApiError.InvalidField("top_p", $"'top_p' must be between 0 and 1; got {r.TopP}.");
        if (ReadMetadata(r.Metadata) is { } badMetadata) return badMetadata;
        if (ReadTextFormat(r.Text, out var format) is { } badFormat) return badFormat;
        if (ReadTools(r.Tools, r.ToolChoice) is { } badTools) return badTools;

        request = new InferenceRequest(InferenceKind.Chat, r.Model, messages, null, r.MaxOutputTokens, r.Temperature, r.TopP, [],
            r.Stream == true, IncludeUsage: true, Seed: null)
        {
            Responses = new ResponseSettings(r.Instructions, r.MaxOutputTokens, r.Temperature, r.TopP,
                r.Metadata ?? new Dictionary<string, string>(), NoTools, AutoToolChoice, format, r.ParallelToolCalls ?? true),
        };
        return null;
    }

    /// <summary>Fields of the Responses API that need stored state or features the Portal does not have.</summary>
    private static ApiError? Refused(ResponseRequest r)
    {
        if (r.Unknown is { Count: > 0 } unknown)
        {
            var name = unknown.Keys.Order(StringComparer.Ordinal).First();
            return ApiError.UnsupportedParameter(name, $"'{name}' is not supported by the Portal's Responses API.");
        }
        if (r.Store == true)
            return ApiError.UnsupportedParameter("store", "'store' must be false: the Portal does not store responses, so none can be retrieved or continued later. Send 'store': false or leave it out.");
        if (r.PreviousResponseId is not null)
            return ApiError.UnsupportedParameter("previous_response_id", "'previous_response_id' is not supported: responses are not stored. Send the earlier turns in 'input' instead.");
        if (r.Background == true)
            return ApiError.UnsupportedParameter("background", "'background' is not supported: responses are not stored, so a background response could not be fetched.");
        if (r.Include.ValueKind == JsonValueKind.Array && r.Include.GetArrayLength() > 0)
            return ApiError.UnsupportedParameter("include", "'include' is not supported: there is no extra output to include.");
        if (r.Include.ValueKind is not (JsonValueKind.Undefined or JsonValueKind.Null or JsonValueKind.Array))
            return ApiError.InvalidField("include", "'include' must be an array.");
        if (r.Truncation is not (null or "disabled"))
            return ApiError.UnsupportedParameter("truncation", "Only 'truncation': 'disabled' is supported: an input longer than the context window is refused, never cut.");
        return null;
    }

    private static ApiError? ReadInput(JsonElement input, List<PromptMessage> messages)
    {
        switch (input.ValueKind)
        {
            case JsonValueKind.Undefined or JsonValueKind.Null:
                return ApiError.MissingField("input");
            case JsonValueKind.String:
                messages.Add(new PromptMessage("user", input.GetString()!));
                return null;
            case JsonValueKind.Array:
                if (input.GetArrayLength() == 0) return ApiError.InvalidField("input", "'input' must contain at least one item.");
                var index = 0;
                foreach (var item in input.EnumerateArray())
                    if (ReadItem(item, $"input[{index++}]", messages) is { } error) return error;
                return null;
            default:
                return ApiError.InvalidField("input", "'input' must be a string or an array of input items.");
        }
    }

    private static ApiError? ReadItem(JsonElement item, string at, List<PromptMessage> messages)
    {
        if (item.ValueKind != JsonValueKind.Object) return ApiError.InvalidField(at, $"'{at}' must be an object.");
        // A message may leave out its type (OpenAI's "easy input message").
        var type = "message";
        if (item.TryGetProperty("type", out var t))
        {
            if (t.ValueKind != JsonValueKind.String) return ApiError.InvalidField($"{at}.type", $"'{at}.type' must be a string.");
            type = t.GetString()!;
        }
        if (type != "message")
            return ApiError.UnsupportedParameter($"{at}.type", $"Input items of type '{type}' are not supported; send messages.");

        if (!item.TryGetProperty("role", out var role) || role.ValueKind != JsonValueKind.String) return ApiError.MissingField($"{at}.role");
        var name = role.GetString()!;
        if (!Roles.Contains(name))
            return ApiError.InvalidField($"{at}.role", $"'{at}.role' must be one of user, system, developer, assistant; got '{name}'.");
        if (!item.TryGetProperty("content", out var content)) return ApiError.MissingField($"{at}.content");
        if (ReadContent(content, $"{at}.content", out var text) is { } error) return error;
        messages.Add(new PromptMessage(name, text));
        return null;
    }

    /// <summary>A string, or text parts (input_text; output_text for earlier assistant turns) joined by new lines.</summary>
    private static ApiError? ReadContent(JsonElement content, string at, out string text)
    {
        text = "";
        switch (content.ValueKind)
        {
            case JsonValueKind.String:
                text = content.GetString()!;
                return null;
            case JsonValueKind.Array:
                var parts = new StringBuilder();
                var index = 0;
                foreach (var part in content.EnumerateArray())
                {
                    var partAt = $"{at}[{index++}]";
                    if (part.ValueKind != JsonValueKind.Object || !part.TryGetProperty("type", out var type) || type.ValueKind != JsonValueKind.String)
                        return ApiError.InvalidField($"{partAt}.type", $"'{partAt}' must be an object with a 'type'.");
                    if (type.GetString() is not ("input_text" or "output_text"))
                        return ApiError.UnsupportedParameter($"{partAt}.type", $"Only 'input_text' (and 'output_text' of earlier answers) content parts are supported; got '{type.GetString()}'.");
                    if (!part.TryGetProperty("text", out var partText) || partText.ValueKind != JsonValueKind.String)
                        return ApiError.MissingField($"{partAt}.text");
                    if (parts.Length > 0) parts.Append('\n');
                    parts.Append(partText.GetString());
                }
                text = parts.ToString();
                return null;
            default:
                return ApiError.InvalidField(at, $"'{at}' must be a string or an array of content parts.");
        }
    }

    private static ApiError? ReadMetadata(Dictionary<string, string>? metadata)
    {
        if (metadata is null) return null;
        if (metadata.Count > MaxMetadataPairs) return ApiError.InvalidField("metadata", $"'metadata' takes at most {MaxMetadataPairs} pairs.");
        foreach (var (key, value) in metadata)
        {
            if (key.Length > MaxMetadataKey) return ApiError.InvalidField("metadata", $"'metadata' keys are at most {MaxMetadataKey} characters.");
            if (value.Length > MaxMetadataValue) return ApiError.InvalidField($"metadata.{key}", $"'metadata' values are at most {MaxMetadataValue} characters.");
        }
        return null;
    }

    private static ApiError? ReadTextFormat(ResponseTextRequest? text, out JsonElement format)
    {
        format = PlainText;
        if (text is null) return null;
        if (text.Unknown is { Count: > 0 } unknown)
        {
            var name = "text." + unknown.Keys.Order(StringComparer.Ordinal).First();
            return ApiError.UnsupportedParameter(name, $"'{name}' is not supported by the Portal's Responses API.");
        }
        if (text.Format.ValueKind is JsonValueKind.Undefined or JsonValueKind.Null) return null;
        if (text.Format.ValueKind != JsonValueKind.Object || !text.Format.TryGetProperty("type", out var type) || type.ValueKind != JsonValueKind.String)
            return ApiError.InvalidField("text.format", "'text.format' must be an object with a 'type'.");
        if (type.GetString() != "text")
            return ApiError.UnsupportedParameter("text.format", $"'text.format' of type '{type.GetString()}' is not supported yet; only 'text' is.");
        format = text.Format.Clone();
        return null;
    }

    private static ApiError? ReadTools(JsonElement tools, JsonElement toolChoice)
    {
        if (tools.ValueKind == JsonValueKind.Array && tools.GetArrayLength() > 0)
            return ApiError.UnsupportedParameter("tools", "'tools' are not supported yet by the Portal's Responses API.");
        if (tools.ValueKind is not (JsonValueKind.Undefined or JsonValueKind.Null or JsonValueKind.Array))
            return ApiError.InvalidField("tools", "'tools' must be an array.");
        if (toolChoice.ValueKind is JsonValueKind.Undefined or JsonValueKind.Null) return null;
        if (toolChoice.ValueKind == JsonValueKind.String && toolChoice.GetString() is "auto" or "none") return null;
        return ApiError.UnsupportedParameter("tool_choice", "'tool_choice' needs 'tools', which are not supported yet.");
    }
}
