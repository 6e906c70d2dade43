using System.Collections.Frozen;
using System.Text.Json;
using Cortensor.Api.Errors;

namespace Cortensor.Api.Inference;

/// <summary>The public request surfaces a field can belong to.</summary>
[Flags]
public enum ApiSurface { None = 0, Chat = 1, Text = 2, Responses = 4, All = Chat | Text | Responses }

/// <summary>What the Portal does with a top-level request field.</summary>
public enum FieldHandling
{
    /// <summary>Implemented: read by the request contract and acted on.</summary>
    Honoured,
    /// <summary>Accepted and deliberately without effect (documented in docs/api.md).</summary>
    Ignored,
    /// <summary>Answered with 400 <c>unsupported_parameter</c> unless its value asks for nothing (null, or <see cref="RequestField.Neutral"/>).</summary>
    Refused,
}

/// <summary>
/// One OpenAI request field: on which surfaces it exists, how the Portal handles it, and why.
/// <see cref="Neutral"/> says which values of a refused field ask for nothing (<c>n: 1</c>, <c>logprobs: false</c>),
/// so SDKs that send defaults are not turned away.
/// </summary>
public sealed record RequestField(string Name, ApiSurface Surfaces, FieldHandling Handling, string Reason, Func<JsonElement, bool>? Neutral = null);

/// <summary>
/// Every OpenAI request field the Portal knows, in one table shared by the dialects (chat, completions, responses).
/// Honoured fields are properties of the request contracts; every other top-level field lands in the contract's
/// extension data (allocated only when such a field is present) and is checked here: refused with 400
/// <c>unsupported_parameter</c> naming it, accepted when it asks for nothing, and an unknown field is refused too —
/// nothing is dropped without a word.
/// </summary>
public static class RequestFields
{
    private static bool IsFalse(JsonElement v) => v.ValueKind == JsonValueKind.False;
    private static bool IsZero(JsonElement v) => v.ValueKind == JsonValueKind.Number && v.TryGetDouble(out var d) && d == 0;
    private static bool IsOne(JsonElement v) => v.ValueKind == JsonValueKind.Number && v.TryGetInt32(out var i) && i == 1;
    private static bool IsEmpty(JsonElement v) =>
        v.ValueKind switch
        {
            JsonValueKind.String => v.GetString()!.Length == 0,
            JsonValueKind.Object => !v.EnumerateObject().Any(),
            JsonValueKind.Array => v.GetArrayLength() == 0,
            _ => false,
        };
    private static bool IsString(JsonElement v, params string[] values) => v.ValueKind == JsonValueKind.String && values.Contains(v.GetString());
    private static bool TextOnly(JsonElement v) =>
        v.ValueKind == JsonValueKind.Array && v.EnumerateArray().All(m => m.ValueKind == JsonValueKind.String && m.GetString() == "text");

    public static readonly IReadOnlyList<RequestField> All =
    [
        // Honoured (read by the contracts).
        new("model", ApiSurface.All, FieldHandling.Honoured, "the public model name"),
        new("models", ApiSurface.All, FieldHandling.Honoured, "fallback models, tried in order (OpenRouter's convention)"),
        new("messages", ApiSurface.Chat, FieldHandling.Honoured, "rendered with the model family's template"),
        new("prompt", ApiSurface.Text, FieldHandling.Honoured, "sent unchanged"),
        new("max_tokens", ApiSurface.Chat | ApiSurface.Text, FieldHandling.Honoured, "the completion's token limit"),
        new("max_completion_tokens", ApiSurface.Chat, FieldHandling.Honoured, "the completion's token limit"),
        new("temperature", ApiSurface.All, FieldHandling.Honoured, "passed to the router"),
        new("top_p", ApiSurface.All, FieldHandling.Honoured, "passed to the router"),
        new("n", ApiSurface.Chat | ApiSurface.Text, FieldHandling.Honoured, "only 1"),
        new("stop", ApiSurface.Chat | ApiSurface.Text, FieldHandling.Honoured, "applied by the Portal"),
        new("stream", ApiSurface.All, FieldHandling.Honoured, "server-sent events"),
        new("stream_options", ApiSurface.Chat | ApiSurface.Text, FieldHandling.Honoured, "include_usage"),
        new("seed", ApiSurface.Chat | ApiSurface.Text, FieldHandling.Honoured, "where the model's router pool accepts it, else refused"),
        new("presence_penalty", ApiSurface.Chat | ApiSurface.Text, FieldHandling.Honoured, "where the model's router pool accepts it, else refused unless 0"),
        new("frequency_penalty", ApiSurface.Chat | ApiSurface.Text, FieldHandling.Honoured, "where the model's router pool accepts it, else refused unless 0"),
        new("tools", ApiSurface.Chat | ApiSurface.Responses, FieldHandling.Honoured, "function tools, rendered in the family's tool format"),
        new("tool_choice", ApiSurface.Chat | ApiSurface.Responses, FieldHandling.Honoured, "none, auto, required or a named function"),
        new("parallel_tool_calls", ApiSurface.Chat | ApiSurface.Responses, FieldHandling.Honoured, "false keeps the first call only"),
        new("response_format", ApiSurface.Chat, FieldHandling.Honoured, "text, json_object, json_schema (validated)"),
        new("user", ApiSurface.All, FieldHandling.Ignored, "an end-user id for abuse tracking; the Portal keeps none"),

        // Accepted without effect: they ask for nothing the Portal would have to do differently.
        new("metadata", ApiSurface.Chat | ApiSurface.Responses, FieldHandling.Ignored, "tags for stored completions; the Portal stores none"),
        new("safety_identifier", ApiSurface.Chat | ApiSurface.Responses, FieldHandling.Ignored, "an end-user id for abuse tracking; the Portal keeps none"),
        new("prompt_cache_key", ApiSurface.Chat | ApiSurface.Responses, FieldHandling.Ignored, "a caching hint; routers cache nothing"),
        new("prompt_cache_retention", ApiSurface.Chat | ApiSurface.Responses, FieldHandling.Ignored, "a caching hint; routers cache nothing"),

        // Refused unless neutral.
        new("store", ApiSurface.Chat | ApiSurface.Responses, FieldHandling.Refused, "completions are not stored", IsFalse),
        new("service_tier", ApiSurface.Chat | ApiSurface.Responses, FieldHandling.Refused, "there is one tier; send 'auto' or 'default'",
            v => IsString(v, "auto", "default")),
        new("logprobs", ApiSurface.Chat | ApiSurface.Text, FieldHandling.Refused, "routers return no token probabilities", v => IsFalse(v) || IsZero(v)),
        new("top_logprobs", ApiSurface.Chat | ApiSurface.Responses, FieldHandling.Refused, "routers return no token probabilities", IsZero),
        new("logit_bias", ApiSurface.Chat | ApiSurface.Text, FieldHandling.Refused, "routers take no logit bias", IsEmpty),
        new("modalities", ApiSurface.Chat, FieldHandling.Refused, "text is the only modality", TextOnly),
        new("audio", ApiSurface.Chat, FieldHandling.Refused, "no model answers with audio"),
        new("prediction", ApiSurface.Chat, FieldHandling.Refused, "routers take no predicted outputs"),
        new("reasoning_effort", ApiSurface.Chat, FieldHandling.Refused, "the reasoning effort is fixed by the router pool"),
        new("reasoning", ApiSurface.Responses, FieldHandling.Refused, "the reasoning effort is fixed by the router pool",
            v => v.ValueKind == JsonValueKind.Object && v.EnumerateObject().All(p => p.Value.ValueKind == JsonValueKind.Null)),
        new("conversation", ApiSurface.Responses, FieldHandling.Refused, "nothing is stored: send the earlier turns in 'input'"),
        new("max_tool_calls", ApiSurface.Responses, FieldHandling.Refused, "it limits built-in tools, which the Portal does not run"),
        new("verbosity", ApiSurface.Chat, FieldHandling.Refused, "routers take no verbosity setting"),
        new("web_search_options", ApiSurface.Chat, FieldHandling.Refused, "the Portal runs no web search"),
        new("functions", ApiSurface.Chat, FieldHandling.Refused, "deprecated by OpenAI: send 'tools'"),
        new("function_call", ApiSurface.Chat, FieldHandling.Refused, "deprecated by OpenAI: send 'tool_choice'"),
        new("echo", ApiSurface.Text, FieldHandling.Refused, "the prompt is not echoed", IsFalse),
        new("best_of", ApiSurface.Text, FieldHandling.Refused, "one completion per request", IsOne),
        new("suffix", ApiSurface.Text, FieldHandling.Refused, "routers take no suffix", IsEmpty),
    ];

    private static readonly FrozenDictionary<string, RequestField> ByName = All.ToFrozenDictionary(f => f.Name, StringComparer.Ordinal);

    public static RequestField? Find(string name) => ByName.GetValueOrDefault(name);

    /// <summary>
    /// Checks the top-level fields a contract did not read (its extension data). Null when every one of them may be
    /// accepted; otherwise 400 <c>unsupported_parameter</c> naming the first that may not.
    /// </summary>
    public static ApiError? Check(IReadOnlyDictionary<string, JsonElement>? unread, ApiSurface surface, string endpoint)
    {
        if (unread is null || unread.Count == 0) return null;
        foreach (var (name, value) in unread)
        {
            if (!ByName.TryGetValue(name, out var field) || (field.Surfaces & surface) == 0)
                return ApiError.UnsupportedParameter(name, field is null
                    ? $"Unrecognized request argument supplied: '{name}'. {endpoint} does not know this field; remove it."
                    : $"'{name}' is not a parameter of {endpoint}.");
            if (value.ValueKind == JsonValueKind.Null || field.Handling != FieldHandling.Refused) continue;
            if (field.Neutral?.Invoke(value) == true) continue;
            return ApiError.UnsupportedParameter(name, $"'{name}' is not supported: {field.Reason}.");
        }
        return null;
    }
}
