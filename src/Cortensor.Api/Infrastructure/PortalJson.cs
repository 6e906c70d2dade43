using System.Text.Json;
using System.Text.Json.Serialization;

namespace Cortensor.Api.Infrastructure;

public static class PortalJson
{
    /// <summary>snake_case everywhere: the OpenAI schema and the Portal contract both use it.</summary>
    public static WebApplicationBuilder AddPortalJson(this WebApplicationBuilder builder)
    {
        builder.Services.ConfigureHttpJsonOptions(o =>
        {
            o.SerializerOptions.PropertyNamingPolicy = JsonNamingPolicy.SnakeCaseLower;
            o.SerializerOptions.DefaultIgnoreCondition = JsonIgnoreCondition.WhenWritingNull;
        });
        return builder;
    }
}
