using Cortensor.Api.Catalog;
using Cortensor.Api.Errors;
using Cortensor.Api.Keys;
using Cortensor.Api.Routing;

namespace Cortensor.Api.Inference;

/// <summary>
/// Step 3 with fallbacks: the first of the request's models (OpenRouter's <c>models</c> convention) that exists, is
/// enabled, is the key's to use, can honour the request and has a router free to take it serves the request. The
/// choice is made before admission, so the reservation and the charge are at the price of the model that serves.
/// Without fallbacks this is exactly the single-model check, and its error is the one the client sees.
/// </summary>
public static class ModelFallback
{
    /// <summary>The most models one request may name: each is a catalog lookup, and more is a misuse.</summary>
    public const int MaxModels = 5;

    public readonly record struct Choice(CatalogModel? Model, CatalogPool? Pool, ApiError? Error);

    public static Choice Pick(CatalogSnapshot catalog, KeySnapshot key, InferenceRequest request, RouterBalancer balancer)
    {
        var first = Serve(catalog, key, request, request.Model, balancer);
        if (first.Error is null || request.Fallbacks.Count == 0 || !MayFallBack(first.Error)) return first;
        foreach (var candidate in request.Fallbacks)
        {
            var next = Serve(catalog, key, request, candidate, balancer);
            if (next.Error is null) return next;
        }
        // None could serve: the client hears why the model it asked for first could not.
        return first;
    }

    private static Choice Serve(CatalogSnapshot catalog, KeySnapshot key, InferenceRequest request, string modelId, RouterBalancer balancer)
    {
        var denied = Entitlement.Check(catalog, key, modelId, request.MaxTokens, request.MaxTokensField, out var model);
        if (denied is not null || model is null) return new(model, null, denied ?? ApiError.UnknownModel(modelId));
        // A request its pool cannot take is refused before it counts against any limit.
        if (!catalog.Pools.TryGetValue(model.PoolId, out var pool) || pool.Routers.Count == 0)
            return new(model, null, ApiError.NoCapacity($"The model '{model.Id}' has no capacity right now. Retry shortly."));
        if (pool.Draining)
            return new(model, pool, ApiError.NoCapacity($"The model '{model.Id}' is paused for maintenance. Retry later.", 30));
        if (Entitlement.Honoured(model, pool, request) is { } unsupported) return new(model, pool, unsupported);
        // Only a request with somewhere else to go asks the balancer first: a lone model keeps today's path,
        // where the forwarder answers no_capacity itself.
        if (request.Fallbacks.Count > 0 && !balancer.AnyAvailable(pool))
            return new(model, pool, ApiError.NoCapacity($"The model '{model.Id}' has no capacity free right now. Retry shortly."));
        return new(model, pool, null);
    }

    /// <summary>
    /// The catalog not being loaded is this replica's problem, not the model's: another model would fare no better.
    /// Every other refusal here (unknown, disabled, not entitled, no capacity, a field it cannot honour) is the model's.
    /// </summary>
    private static bool MayFallBack(ApiError error) => error.Code != "dependency_unavailable";
}
