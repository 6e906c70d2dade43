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
        if (RequestValidation.ReadModels(r.Model, r.Models, out var model, out var fallbacks) is { } badModel) return badModel;

        var messages = new List<PromptMessage>();
        if (!string.IsNullOrEmpty(r.Instructions)) messages.Add(new PromptMessage("developer", r.Instructions));
        if (ReadInput(r.Input, messages) is { } badInput) return badInput;

        if (r.MaxOutputTokens is < 1) return ApiError.InvalidField("max_output_tokens", $"'max_output_tokens' must be at least 1; got {r.MaxOutputTokens}.");
        if (r.Temperature is < 0 or > 2) return ApiError.InvalidField("temperature", $"'temperature' must be between 0 and 2; got {r.Temperature}.");
        if (r.TopP is < 0 or > 1) return ApiError.InvalidField("top_p", $"'top_p' must be between 0 and 1; got {r.TopP}.");
        if (ReadMetadata(r.Metadata) is { } badMetadata) return badMetadata;
        if (ReadTextFormat(r.Text, out var format, out var formatEcho) is { } badFormat) return badFormat;
        if (ReadTools(r, out var tools) is { } badTools) return badTools;

        request = new InferenceRequest(InferenceKind.Chat, model, messages, null, r.MaxOutputTokens, r.Temperature, r.TopP, [],
            r.Stream == true, IncludeUsage: true, Seed: null)
        {
            Tools = tools,
            Format = format,
            Fallbacks = fallbacks,
            Responses = new ResponseSettings(r.Instructions, r.MaxOutputTokens, r.Temperature, r.TopP,
                r.Metadata ?? new Dictionary<string, string>(),
                r.Tools.ValueKind == JsonValueKind.Array ? r.Tools.Clone() : NoTools,
                r.ToolChoice.ValueKind is JsonValueKind.String or JsonValueKind.Object ? r.ToolChoice.Clone() : AutoToolChoice,
                formatEcho, r.ParallelToolCalls ?? true),
        };
        return null;
    }

    /// <summary>Fields of the Responses API that need stored state or features the Portal does not have.</summary>
    private static ApiError? Refused(ResponseRequest r)
    {
        // Fields shared with chat (service_tier, safety_identifier, …) are judged by the one table; unknown ones are refused.
        if (RequestFields.Check(r.Unknown, ApiSurface.Responses, "/v1/responses") is { } unread) return unread;
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
        if (r.Prompt.ValueKind is not (JsonValueKind.Undefined or JsonValueKind.Null))
            return ApiError.UnsupportedParameter("prompt", "'prompt' (a stored prompt template) is not supported: the Portal stores no prompts. Send the text in 'instructions' and 'input'.");
        if (r.StreamOptions.ValueKind is not (JsonValueKind.Undefined or JsonValueKind.Null or JsonValueKind.Object))
            return ApiError.InvalidField("stream_options", "'stream_options' must be an object.");
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
                var callNames = new Dictionary<string, string>(StringComparer.Ordinal);
                foreach (var item in input.EnumerateArray())
                    if (ReadItem(item, $"input[{index++}]", messages, callNames) is { } error) return error;
                // Every function_call needs its function_call_output in the input, as OpenAI requires: without it the model
                // would be shown a call and no result.
                if (callNames.Count > 0)
                {
                    var unanswered = new HashSet<string>(callNames.Keys, StringComparer.Ordinal);
                    foreach (var m in messages)
                        if (m.ToolCallId is { } answered) unanswered.Remove(answered);
                    if (unanswered.Count > 0)
                    {
                        var ids = ToolValidation.InCallOrder(messages.Where(m => m.ToolCalls is not null).SelectMany(m => m.ToolCalls!), unanswered);
                        return ApiError.InvalidField("input", $"No tool output found for function call {ToolValidation.FirstShown(ids)}: " +
                            "send a function_call_output item with its call_id.");
                    }
                }
                return null;
            default:
                return ApiError.InvalidField("input", "'input' must be a string or an array of input items.");
        }
    }

    private static ApiError? ReadItem(JsonElement item, string at, List<PromptMessage> messages, Dictionary<string, string> callNames)
    {
        if (item.ValueKind != JsonValueKind.Object) return ApiError.InvalidField(at, $"'{at}' must be an object.");
        // A message may leave out its type (OpenAI's "easy input message").
        var type = "message";
        if (item.TryGetProperty("type", out var t))
        {
            if (t.ValueKind != JsonValueKind.String) return ApiError.InvalidField($"{at}.type", $"'{at}.type' must be a string.");
            type = t.GetString()!;
        }
        switch (type)
        {
            case "function_call": return ReadCall(item, at, messages, callNames);
            case "function_call_output": return ReadCallOutput(item, at, messages, callNames);
            case not "message":
                return ApiError.UnsupportedParameter($"{at}.type",
                    $"Input items of type '{type}' are not supported; send messages, function_call and function_call_output items.");
        }

        if (!item.TryGetProperty("role", out var role) || role.ValueKind != JsonValueKind.String) return ApiError.MissingField($"{at}.role");
        var name = role.GetString()!;
        if (!Roles.Contains(name))
            return ApiError.InvalidField($"{at}.role", $"'{at}.role' must be one of user, system, developer, assistant; got '{name}'.");
        if (!item.TryGetProperty("content", out var content)) return ApiError.MissingField($"{at}.content");
        if (ReadContent(content, $"{at}.content", out var text) is { } error) return error;
        messages.Add(new PromptMessage(name, text));
        return null;
    }

    /// <summary>
    /// An earlier call of the model (the function_call item of an earlier response): it joins the assistant turn
    /// before it, as chat's assistant <c>tool_calls</c> do, so the family's template renders it the same way.
    /// </summary>
    private static ApiError? ReadCall(JsonElement item, string at, List<PromptMessage> messages, Dictionary<string, string> callNames)
    {
        if (!item.TryGetProperty("call_id", out var callId) || callId.ValueKind != JsonValueKind.String) return ApiError.MissingField($"{at}.call_id");
        if (!item.TryGetProperty("name", out var name) || name.ValueKind != JsonValueKind.String) return ApiError.MissingField($"{at}.name");
        if (!ToolValidation.IsFunctionName(name.GetString()!)) return ToolValidation.NotAFunctionName($"{at}.name");
        var arguments = "{}";
        if (item.TryGetProperty("arguments", out var args))
        {
            if (args.ValueKind != JsonValueKind.String) return ApiError.InvalidField($"{at}.arguments", $"'{at}.arguments' must be a string (a JSON object as text).");
            arguments = args.GetString()!;
        }
        var call = new PromptToolCall(callId.GetString()!, name.GetString()!, arguments);
        callNames[call.Id] = call.Name;
        // The turn's list is this method's own and grows in place: copying it for every call made consecutive calls quadratic.
        if (messages.Count > 0 && messages[^1] is { Role: "assistant" } turn)
        {
            if (turn.ToolCalls is List<PromptToolCall> calls) calls.Add(call);
            else messages[^1] = turn with { ToolCalls = new List<PromptToolCall>(turn.ToolCalls ?? []) { call } };
        }
        else
            messages.Add(new PromptMessage("assistant", "") { ToolCalls = new List<PromptToolCall> { call } });
        return null;
    }

    /// <summary>A function's result (chat's <c>tool</c> turn), for a call made earlier in the input.</summary>
    private static ApiError? ReadCallOutput(JsonElement item, string at, List<PromptMessage> messages, Dictionary<string, string> callNames)
    {
        if (!item.TryGetProperty("call_id", out var callId) || callId.ValueKind != JsonValueKind.String) return ApiError.MissingField($"{at}.call_id");
        if (!callNames.TryGetValue(callId.GetString()!, out var name))
            return ApiError.InvalidField($"{at}.call_id", $"'{at}.call_id' is '{callId.GetString()}', which no earlier function_call item in 'input' has.");
        if (!item.TryGetProperty("output", out var output)) return ApiError.MissingField($"{at}.output");
        if (ReadContent(output, $"{at}.output", out var text) is { } error) return error;
        messages.Add(new PromptMessage("tool", text) { ToolCallId = callId.GetString(), Name = name });
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
                return RequestValidation.JoinTextParts(content, at, static type => type is "input_text" or "output_text",
                    static (partAt, type) => ApiError.UnsupportedParameter($"{partAt}.type",
                        $"Only 'input_text' (and 'output_text' of earlier answers) content parts are supported; got '{type}'."), out text);
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
            // JSON null reaches a string-valued map as null: OpenAI's metadata values are strings.
            if (value is null) return ApiError.InvalidField($"metadata.{key}", "'metadata' values are strings; this one is null.");
            if (key.Length > MaxMetadataKey) return ApiError.InvalidField("metadata", $"'metadata' keys are at most {MaxMetadataKey} characters.");
            if (value.Length > MaxMetadataValue) return ApiError.InvalidField($"metadata.{key}", $"'metadata' values are at most {MaxMetadataValue} characters.");
        }
        return null;
    }

    /// <summary>text.format, flat in the Responses API, read by chat's response_format rules (one validation for both).</summary>
    private static ApiError? ReadTextFormat(ResponseTextRequest? text, out OutputFormat? format, out JsonElement echo)
    {
        format = null;
        echo = PlainText;
        if (text is null) return null;
        // A null asks for nothing (text.verbosity: null is what the SDKs send for "unset").
        if (text.Unknown?.Where(u => u.Value.ValueKind != JsonValueKind.Null).Select(u => u.Key).Order(StringComparer.Ordinal).FirstOrDefault() is { } field)
        {
            var name = "text." + field;
            return ApiError.UnsupportedParameter(name, name == "text.verbosity"
                ? "'text.verbosity' is not supported: routers take no verbosity setting. Send null or leave it out."
                : $"'{name}' is not supported by the Portal's Responses API.");
        }
        var f = text.Format;
        if (f.ValueKind is JsonValueKind.Undefined or JsonValueKind.Null) return null;
        if (f.ValueKind != JsonValueKind.Object || !f.TryGetProperty("type", out var type) || type.ValueKind != JsonValueKind.String)
            return ApiError.InvalidField("text.format", "'text.format' must be an object with a 'type'.");
        var chat = new ResponseFormat { Type = type.GetString() };
        if (chat.Type == "json_schema")
            chat.JsonSchema = new JsonSchemaFormat
            {
                Name = String(f, "name"), Description = String(f, "description"),
                Schema = f.TryGetProperty("schema", out var schema) ? schema : default,
                Strict = f.TryGetProperty("strict", out var strict) && strict.ValueKind is JsonValueKind.True or JsonValueKind.False ? strict.GetBoolean() : null,
            };
        if (ToolValidation.ReadFormat(chat, out format) is { } error)
            return Renamed(error, ("response_format.json_schema.", "text.format."), ("response_format.", "text.format."), ("response_format", "text.format"));
        echo = f.Clone();
        return null;
    }

    /// <summary>
    /// Function tools, flat in the Responses API (<c>{"type": "function", "name", "parameters", "strict"}</c>), read by
    /// chat's tool rules; errors name the Responses fields.
    /// </summary>
    private static ApiError? ReadTools(ResponseRequest r, out ToolSet? tools)
    {
        tools = null;
        var chat = new ChatCompletionRequest();
        switch (r.Tools.ValueKind)
        {
            case JsonValueKind.Undefined or JsonValueKind.Null:
                break;
            case JsonValueKind.Array:
                chat.Tools = [];
                var i = 0;
                foreach (var tool in r.Tools.EnumerateArray())
                {
                    var at = $"tools[{i++}]";
                    if (tool.ValueKind != JsonValueKind.Object) return ApiError.InvalidField(at, $"'{at}' must be an object.");
                    var type = String(tool, "type");
                    if (type != "function")
                        return ApiError.UnsupportedParameter($"{at}.type", $"Only 'function' tools are supported; got '{type}'.");
                    chat.Tools.Add(new ToolDefinition
                    {
                        Type = "function",
                        Function = new FunctionDefinition
                        {
                            Name = String(tool, "name"), Description = String(tool, "description"),
                            Parameters = tool.TryGetProperty("parameters", out var parameters) ? parameters : default,
                            Strict = tool.TryGetProperty("strict", out var strict) && strict.ValueKind is JsonValueKind.True or JsonValueKind.False ? strict.GetBoolean() : null,
                        },
                    });
                }
                break;
            default:
                return ApiError.InvalidField("tools", "'tools' must be an array.");
        }
        // Without tools, Responses clients may still send the defaults: auto (or none) and parallel_tool_calls.
        var choice = r.ToolChoice;
        if (chat.Tools is null && (choice.ValueKind is JsonValueKind.Undefined or JsonValueKind.Null
            || (choice.ValueKind == JsonValueKind.String && choice.GetString() is "auto" or "none")))
            return null;
        if (choice.ValueKind == JsonValueKind.Object)
        {
            var type = String(choice, "type");
            if (type is not ("function" or "allowed_tools"))
                return ApiError.UnsupportedParameter("tool_choice.type",
                    "'tool_choice' is 'none', 'auto', 'required', {\"type\": \"function\", \"name\": …} or {\"type\": \"allowed_tools\", \"mode\": \"auto\", \"tools\": […]}.");
            choice = type == "function" ? NamedFunction(String(choice, "name")) : AllowedTools(choice);
        }
        chat.ToolChoice = choice;
        chat.ParallelToolCalls = chat.Tools is null ? null : r.ParallelToolCalls;
        return ToolValidation.ReadTools(chat, out tools) is { } error
            ? Renamed(error, ("].function.", "]."), ("tool_choice.function.name", "tool_choice.name"), ("tool_choice.allowed_tools.", "tool_choice."))
            : null;
    }

    /// <summary>
    /// Chat's form of Responses' allowed tools: <c>{"type": "allowed_tools", "mode", "tools": [{"type": "function", "name"}]}</c>
    /// becomes <c>{"type": "allowed_tools", "allowed_tools": {"mode", "tools": [{"type": "function", "function": {"name"}}]}}</c>.
    /// </summary>
    private static JsonElement AllowedTools(JsonElement choice)
    {
        var buffer = new System.Buffers.ArrayBufferWriter<byte>();
        using (var w = new Utf8JsonWriter(buffer))
        {
            w.WriteStartObject();
            w.WriteString("type", "allowed_tools");
            w.WriteStartObject("allowed_tools");
            if (choice.TryGetProperty("mode", out var mode)) { w.WritePropertyName("mode"); mode.WriteTo(w); }
            if (choice.TryGetProperty("tools", out var list))
            {
                w.WritePropertyName("tools");
                if (list.ValueKind != JsonValueKind.Array) list.WriteTo(w);
                else
                {
                    w.WriteStartArray();
                    foreach (var tool in list.EnumerateArray())
                    {
                        if (tool.ValueKind != JsonValueKind.Object) { tool.WriteTo(w); continue; }
                        w.WriteStartObject();
                        if (tool.TryGetProperty("type", out var type)) { w.WritePropertyName("type"); type.WriteTo(w); }
                        w.WriteStartObject("function");
                        if (tool.TryGetProperty("name", out var name)) { w.WritePropertyName("name"); name.WriteTo(w); }
                        w.WriteEndObject();
                        w.WriteEndObject();
                    }
                    w.WriteEndArray();
                }
            }
            w.WriteEndObject();
            w.WriteEndObject();
        }
        return JsonElement.Parse(buffer.WrittenSpan);
    }

    /// <summary>Chat's form of a named tool_choice: {"type": "function", "function": {"name": …}}.</summary>
    private static JsonElement NamedFunction(string? name)
    {
        var buffer = new System.Buffers.ArrayBufferWriter<byte>();
        using (var w = new Utf8JsonWriter(buffer))
        {
            w.WriteStartObject();
            w.WriteString("type", "function");
            w.WriteStartObject("function");
            if (name is not null) w.WriteString("name", name);
            w.WriteEndObject();
            w.WriteEndObject();
        }
        return JsonElement.Parse(buffer.WrittenSpan);
    }

    private static string? String(JsonElement o, string name) =>
        o.TryGetProperty(name, out var v) && v.ValueKind == JsonValueKind.String ? v.GetString() : null;

    /// <summary>An error of chat's rules, with the field named as the Responses API names it.</summary>
    private static ApiError Renamed(ApiError error, params (string Chat, string Responses)[] names)
    {
        string? Rename(string? text)
        {
            if (text is null) return null;
            foreach (var (chat, responses) in names) text = text.Replace(chat, responses, StringComparison.Ordinal);
            return text;
        }
        return error with { Param = Rename(error.Param), Message = Rename(error.Message)! };
    }
}
