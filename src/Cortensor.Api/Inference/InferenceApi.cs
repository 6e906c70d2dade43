using Cortensor.Api.Catalog;
using Cortensor.Api.Errors;
using Cortensor.Api.Idempotency;
using Cortensor.Api.Infrastructure;
using Cortensor.Api.Keys;
using Microsoft.AspNetCore.Http.HttpResults;

namespace Cortensor.Api.Inference;

/// <summary>The public OpenAI-compatible API. The key check is a policy of the group, resolved once per request.</summary>
public static class InferenceApi
{
    private static readonly Metering.MeteredEndpoint Metered = new();

    public static IEndpointRouteBuilder MapInferenceApi(this IEndpointRouteBuilder app)
    {
        var v1 = app.MapGroup("/v1").AddEndpointFilter<ApiKeyFilter>().WithTags("Inference");

        v1.MapGet("/models", ListModels).WithName("ListModels").WithSummary("Models this key may use")
            .Produces<ErrorEnvelope>(401).Produces<ErrorEnvelope>(403).Produces<ErrorEnvelope>(503);
        v1.MapGet("/models/{id}", GetModel).WithName("RetrieveModel").WithSummary("One model this key may use")
            .Produces<ErrorEnvelope>(401).Produces<ErrorEnvelope>(403).Produces<ErrorEnvelope>(404).Produces<ErrorEnvelope>(503);
        v1.MapPost("/chat/completions", (HttpContext http, InferenceHandler handler) => handler.HandleAsync(http, Dialect.Chat))
            .WithIdempotencyKey().WithMetadata(Metered)
            .WithName("CreateChatCompletion").WithSummary("Chat completion, streaming (SSE) or not")
            .Accepts<ChatCompletionRequest>("application/json")
            .Produces<ChatCompletion>().Produces<ChatCompletionChunk>(200, "text/event-stream")
            .Produces<ErrorEnvelope>(400).Produces<ErrorEnvelope>(401).Produces<ErrorEnvelope>(402).Produces<ErrorEnvelope>(403).Produces<ErrorEnvelope>(404).Produces<ErrorEnvelope>(413)
            .Produces<ErrorEnvelope>(429).Produces<ErrorEnvelope>(502).Produces<ErrorEnvelope>(503).Produces<ErrorEnvelope>(504);
        v1.MapPost("/completions", (HttpContext http, InferenceHandler handler) => handler.HandleAsync(http, Dialect.Text))
            .WithIdempotencyKey().WithMetadata(Metered)
            .WithName("CreateCompletion").WithSummary("Text completion, streaming (SSE) or not")
            .Accepts<CompletionRequest>("application/json")
            .Produces<TextCompletion>()
            .Produces<ErrorEnvelope>(400).Produces<ErrorEnvelope>(401).Produces<ErrorEnvelope>(402).Produces<ErrorEnvelope>(403).Produces<ErrorEnvelope>(404).Produces<ErrorEnvelope>(413)
            .Produces<ErrorEnvelope>(429).Produces<ErrorEnvelope>(502).Produces<ErrorEnvelope>(503).Produces<ErrorEnvelope>(504);
        v1.MapPost("/responses", (HttpContext http, InferenceHandler handler) => handler.HandleAsync(http, Dialect.Responses))
            .WithIdempotencyKey().WithMetadata(Metered)
            .WithName("CreateResponse").WithSummary("Responses API: a response to text or message input, streaming (SSE events) or not; nothing is stored")
            .Accepts<ResponseRequest>("application/json")
            .Produces<ResponseObject>().Produces<ResponseLifecycleEvent>(200, "text/event-stream")
            .Produces<ErrorEnvelope>(400).Produces<ErrorEnvelope>(401).Produces<ErrorEnvelope>(402).Produces<ErrorEnvelope>(403).Produces<ErrorEnvelope>(404).Produces<ErrorEnvelope>(413)
            .Produces<ErrorEnvelope>(429).Produces<ErrorEnvelope>(502).Produces<ErrorEnvelope>(503).Produces<ErrorEnvelope>(504);
        return app;
    }

    /// <summary>
    /// As OpenAI: a model the key may use, else 404. A model that exists but is not the key's is 403 model_not_entitled,
    /// as a completion for it would be, so the dashboard's upgrade path can name it.
    /// </summary>
    private static Results<JsonHttpResult<ModelCard>, ErrorResult> GetModel(string id, HttpContext http, CatalogStore catalog)
    {
        var snapshot = catalog.Current;
        if (!snapshot.IsLoaded) return ApiError.DependencyUnavailable("The model catalog", 1).ToResult();
        if (!snapshot.Models.TryGetValue(id, out var model) || !model.Enabled) return ApiError.UnknownModel(id).ToResult();
        if (http.GetKey() is var key && !key.MayUse(model.Id)) return ApiError.ModelNotEntitled(model, key.PlanId).ToResult();
        return TypedResults.Json(Card(model), PortalJsonContext.Default.ModelCard);
    }

    private static ModelCard Card(CatalogModel m) => new(m.Id, "model", m.CreatedAt.ToUnixTimeSeconds(), "cortensor");

    /// <summary>
    /// The models the key may use. A replica that has not loaded the catalog yet does not know them: that is a 503 to
    /// retry, as for one model or a completion, not an empty list a client would cache as "no models".
    /// </summary>
    internal static Results<JsonHttpResult<ModelList>, ErrorResult> ListModels(HttpContext http, CatalogStore catalog)
    {
        var snapshot = catalog.Current;
        if (!snapshot.IsLoaded) return ApiError.DependencyUnavailable("The model catalog", 1).ToResult();
        var key = http.GetKey();
        var models = snapshot.Models.Values
            .Where(m => m.Enabled && key.MayUse(m.Id))
            .OrderBy(m => m.Id, StringComparer.Ordinal)
            .Select(Card)
            .ToArray();
        return TypedResults.Json(new ModelList("list", models), PortalJsonContext.Default.ModelList);
    }
}
