using Cortensor.Api.Errors;
using Microsoft.AspNetCore.OpenApi;
using Microsoft.OpenApi;

namespace Cortensor.Api.Infrastructure;

/// <summary>
/// One OpenAPI document for /v1, /portal and /admin (served at /openapi/v1.json, browsable at /reference):
/// the two ways to authenticate, and the error responses each part can answer in the one error shape.
/// </summary>
public static class PortalOpenApi
{
    public const string ApiKeyScheme = "api_key";
    public const string AccessTokenScheme = "access_token";

    public static WebApplicationBuilder AddPortalOpenApi(this WebApplicationBuilder builder)
    {
        builder.Services.AddOpenApi(options => options.AddDocumentTransformer((document, _, _) =>
        {
            document.Info = new OpenApiInfo
            {
                Title = "Cortensor Portal API",
                Version = "v1",
                Description = "OpenAI-compatible inference (/v1, API key), the customer control plane (/portal, access token) and operator controls (/admin, access token of an administrator). Errors always answer {\"error\": {message, type, param, code, request_id}}.",
            };
            document.Components ??= new OpenApiComponents();
            document.Components.SecuritySchemes = new Dictionary<string, IOpenApiSecurityScheme>
            {
                [ApiKeyScheme] = new OpenApiSecurityScheme { Type = SecuritySchemeType.Http, Scheme = "bearer", BearerFormat = "ctr_live_…", Description = "An API key from the Portal: 'Authorization: Bearer ctr_live_…'." },
                [AccessTokenScheme] = new OpenApiSecurityScheme { Type = SecuritySchemeType.Http, Scheme = "bearer", BearerFormat = "JWT", Description = "An access token from POST /portal/auth/login (or a configured Supabase Auth / Clerk token)." },
            };
            foreach (var (path, item) in document.Paths)
            {
                var scheme = path.StartsWith("/v1", StringComparison.Ordinal) ? ApiKeyScheme
                    : path.StartsWith("/portal/auth", StringComparison.Ordinal) || path == "/portal/models" ? null
                    : path.StartsWith("/portal", StringComparison.Ordinal) || path.StartsWith("/admin", StringComparison.Ordinal) ? AccessTokenScheme
                    : null;
                if (scheme is null || item.Operations is null) continue;
                foreach (var operation in item.Operations.Values)
                {
                    operation.Security ??= [];
                    operation.Security.Add(new OpenApiSecurityRequirement { [new OpenApiSecuritySchemeReference(scheme, document)] = [] });
                }
            }
            return Task.CompletedTask;
        }));
        return builder;
    }

    /// <summary>Declares the error responses an endpoint group can answer, with the error envelope as their schema.</summary>
    public static TBuilder ProducesErrors<TBuilder>(this TBuilder builder, params int[] statuses) where TBuilder : IEndpointConventionBuilder =>
        builder.WithMetadata(statuses.Select(s => (object)new ProducesResponseTypeMetadata(s, typeof(ErrorEnvelope), ["application/json"])).ToArray());
}
