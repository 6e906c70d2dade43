using Cortensor.Api.Accounts;
using Cortensor.Api.Errors;
using Microsoft.AspNetCore.OpenApi;
using Microsoft.OpenApi;

namespace Cortensor.Api.Infrastructure;

/// <summary>
/// Two OpenAPI documents: "v1" for customers (/v1 and /portal; public at /openapi/v1.json and browsable at
/// /reference) and "admin" for operators (/admin; /openapi/admin.json, administrators only), each with the
/// ways to authenticate and the error responses every endpoint can answer in the one error shape.
/// </summary>
public static class PortalOpenApi
{
    public const string ApiKeyScheme = "api_key";
    public const string AccessTokenScheme = "access_token";
    public const string PublicDocument = "v1";
    public const string AdminDocument = "admin";

    private static bool IsAdminPath(string? path) => path is not null && (path == "admin" || path.StartsWith("admin/", StringComparison.Ordinal));

    public static WebApplicationBuilder AddPortalOpenApi(this WebApplicationBuilder builder)
    {
        builder.Services.AddOpenApi(PublicDocument, options =>
        {
            options.ShouldInclude = description => !IsAdminPath(description.RelativePath);
            ReferenceExamples.Add(options);
            Describe(options, "Cortensor Portal API",
                "OpenAI-compatible inference (/v1, API key) and the customer control plane (/portal, access token). Errors always answer {\"error\": {message, type, param, code, request_id}}.");
        });
        builder.Services.AddOpenApi(AdminDocument, options =>
        {
            options.ShouldInclude = description => IsAdminPath(description.RelativePath);
            Describe(options, "Cortensor Portal admin API",
                "Operator controls (/admin, access token of an administrator). Errors always answer {\"error\": {message, type, param, code, request_id}}.");
        });
        return builder;
    }

    /// <summary>The customer document is public; the operator document only answers administrators.</summary>
    public static WebApplication MapPortalOpenApi(this WebApplication app)
    {
        app.MapOpenApi($"/openapi/{{documentName:regex(^{PublicDocument}$)}}.json");
        app.MapOpenApi($"/openapi/{{documentName:regex(^{AdminDocument}$)}}.json").RequireAuthorization(PortalAuth.AdminPolicy);
        return app;
    }

    private static void Describe(OpenApiOptions options, string title, string description) =>
        options.AddDocumentTransformer((document, _, _) =>
        {
            document.Info = new OpenApiInfo { Title = title, Version = "v1", Description = description };
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
        });

    /// <summary>Declares the error responses an endpoint group can answer, with the error envelope as their schema.</summary>
    public static TBuilder ProducesErrors<TBuilder>(this TBuilder builder, params int[] statuses) where TBuilder : IEndpointConventionBuilder =>
        builder.WithMetadata(statuses.Select(s => (object)new ProducesResponseTypeMetadata(s, typeof(ErrorEnvelope), ["application/json"])).ToArray());
}
