using System.Text.Json.Serialization;
using Microsoft.AspNetCore.Http.HttpResults;

namespace Cortensor.Api.Catalog;

public static class CatalogApi
{
    public static IEndpointRouteBuilder MapCatalogApi(this IEndpointRouteBuilder app)
    {
        var portal = app.MapGroup("/portal").WithTags("Catalog");
        portal.MapGet("/models", GetModels)
            .WithName("ListCatalogModels")
            .WithSummary("The model catalog with prices per 1K tokens");
        return app;
    }

    public static Ok<CatalogModelDto[]> GetModels(CatalogStore catalog) =>
        TypedResults.Ok(catalog.Current.Models.Values
            .OrderBy(m => m.Id, StringComparer.Ordinal)
            .Select(m => new CatalogModelDto(m.Id, m.DisplayName, m.Family, m.Enabled, m.ContextWindow,
                m.InputPricePer1K, m.OutputPricePer1K,
                catalog.Current.Pools.TryGetValue(m.PoolId, out var pool) && !pool.Draining && pool.Routers.Count > 0))
            .ToArray());
}

/// <summary>A catalog entry as customers see it; pools and routers stay internal.</summary>
public sealed record CatalogModelDto(
    string Id, string DisplayName, string Family, bool Enabled, int ContextWindow,
    [property: JsonPropertyName("input_price_per_1k")] decimal InputPricePer1K,
    [property: JsonPropertyName("output_price_per_1k")] decimal OutputPricePer1K,
    bool Available);
