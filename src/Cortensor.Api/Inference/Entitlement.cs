using Cortensor.Api.Catalog;
using Cortensor.Api.Errors;
using Cortensor.Api.Keys;

namespace Cortensor.Api.Inference;

/// <summary>Step 3 of the hot path: the model exists, is enabled, is the key's to use, and the request fits it.</summary>
public static class Entitlement
{
    /// <returns>Null when the request may go on; <paramref name="model"/> is set whenever the model exists.</returns>
    /// <param name="maxTokens">What the request sent, or null: the default then shrinks to what fits (<see cref="Completion"/>).</param>
    public static ApiError? Check(CatalogSnapshot catalog, KeySnapshot key, string modelId, int? maxTokens, string maxTokensField, out CatalogModel? model)
    {
        model = null;
        // A replica that has not loaded the catalog yet does not know: that is not a 404.
        if (!catalog.IsLoaded) return ApiError.DependencyUnavailable("The model catalog", 1);
        // Internal names (pool, router, backend model) never reach the client.
        if (!catalog.Models.TryGetValue(modelId, out model)) return ApiError.UnknownModel(modelId);
        if (!model.Enabled) return ApiError.ModelDisabled(model.Id);
        if (!key.MayUse(model.Id)) return ApiError.ModelNotEntitled(model, key.PlanId);
        if (maxTokens > model.ContextWindow)
            return ApiError.InvalidField(maxTokensField, $"'{maxTokensField}' must be at most {model.ContextWindow} for {model.Id}; got {maxTokens}.");
        return null;
    }

    /// <summary>Fields the model's routers cannot honour are refused, never dropped.</summary>
    public static ApiError? Honoured(CatalogModel model, CatalogPool pool, InferenceRequest request)
    {
        if (request.Seed is not null && !pool.Protocol.SupportsSeed)
            return ApiError.UnsupportedParameter("seed", $"'seed' is not supported by {model.Id}: its routers cannot make answers reproducible.");
        if (!pool.Protocol.SupportsPenalties)
        {
            if (request.PresencePenalty is { } p && p != 0)
                return ApiError.UnsupportedParameter("presence_penalty", $"'presence_penalty' is not supported by {model.Id}; send 0 or leave it out.");
            if (request.FrequencyPenalty is { } f && f != 0)
                return ApiError.UnsupportedParameter("frequency_penalty", $"'frequency_penalty' is not supported by {model.Id}; send 0 or leave it out.");
        }
        return null;
    }

    /// <summary>
    /// How many tokens the answer may have: max_tokens as sent, which with the prompt's fewest possible tokens must fit the
    /// model's context; or, when the request sent none, the default, shrunk to what is left of the context after the
    /// prompt (as OpenAI does: a request that did not ask for a length is not refused for the default's sake).
    /// </summary>
    public static ApiError? Completion(CatalogModel model, UsageBounds.Prompt prompt, InferenceRequest request, int defaultMaxTokens, out int maxTokens)
    {
        var left = model.ContextWindow - prompt.Floor;
        maxTokens = request.MaxTokens ?? Math.Min(defaultMaxTokens, left);
        if (request.MaxTokens is null ? left >= 1 : prompt.Floor + maxTokens <= model.ContextWindow) return null;
        var asked = request.MaxTokens is { } sent ? $" and {request.MaxTokensField} asks for up to {sent} more" : "";
        return ApiError.ContextLengthExceeded(request.PromptField,
            $"This model's maximum context length is {model.ContextWindow} tokens; the prompt is {prompt.Floor} tokens{asked}. " +
            $"Shorten the {(request.PromptField == "prompt" ? "prompt" : "conversation")}{(request.MaxTokens is null ? "" : $" or lower {request.MaxTokensField}")}.");
    }
}
