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
            // A number is a number: "12" is refused as it is by OpenAI (and by the /v1 reader), and the OpenAPI
            // document (generated from these options) types numbers as numbers rather than "number | string" with a pattern.
            o.SerializerOptions.NumberHandling = JsonNumberHandling.Strict;
        });
        return builder;
    }
}
