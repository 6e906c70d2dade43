using System.Text.Json;
using System.Text.Json.Serialization;
using Refit;

namespace Cortensor.Web.Services;

/// <summary>The Portal Api as the dashboard sees it; the one way the Web talks to the backend.</summary>
public interface IPortalApi
{
    [Get("/portal/models")]
    Task<IReadOnlyList<CatalogModel>> GetModelsAsync(CancellationToken ct = default);
}

public sealed record CatalogModel(
    string Id, string DisplayName, string Family, bool Enabled, int ContextWindow,
    [property: JsonPropertyName("input_price_per_1k")] decimal InputPricePer1K,
    [property: JsonPropertyName("output_price_per_1k")] decimal OutputPricePer1K,
    bool Available);

public static class PortalApiClientExtensions
{
    public static WebApplicationBuilder AddPortalApiClient(this WebApplicationBuilder builder)
    {
        var json = new JsonSerializerOptions(JsonSerializerDefaults.Web) { PropertyNamingPolicy = JsonNamingPolicy.SnakeCaseLower };
        builder.Services
            .AddRefitGeneratedClient<IPortalApi>(new RefitSettings { ContentSerializer = new SystemTextJsonContentSerializer(json) })
            // Resolved by service discovery from the AppHost's reference to the Api.
            .ConfigureHttpClient(c => c.BaseAddress = new Uri(builder.Configuration["PortalApi:BaseAddress"] ?? "https+http://api"));
        return builder;
    }
}
