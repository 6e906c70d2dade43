using System.Text.Json.Nodes;
using Cortensor.Api.Accounts;
using Cortensor.Api.Billing;
using Cortensor.Api.Inference;
using Cortensor.Api.Keys;
using Microsoft.AspNetCore.OpenApi;
using Microsoft.OpenApi;
using Scalar.AspNetCore;

namespace Cortensor.Api.Infrastructure;

/// <summary>
/// The interactive reference as customers see it (/reference): request bodies with the fields they must send marked
/// required and an example that succeeds as sent, optional fields typed as what they are (a number, not
/// "null | number | string"), and Scalar configured for production.
/// </summary>
public static class ReferenceExamples
{
    /// <summary>Per request type: what must be sent, and an example that works with a new free-plan key as it stands.</summary>
    private static readonly Dictionary<Type, (string[] Required, Func<JsonNode> Example)> Bodies = new()
    {
        [typeof(ChatCompletionRequest)] = (["model", "messages"], () => new JsonObject
        {
            ["model"] = "gpt-oss-20b",
            ["messages"] = new JsonArray(
                new JsonObject { ["role"] = "system", ["content"] = "You are a concise assistant." },
                new JsonObject { ["role"] = "user", ["content"] = "Say hello in five words." }),
            ["max_tokens"] = 64,
            ["temperature"] = 0.7,
        }),
        [typeof(ChatMessage)] = (["role", "content"], () => new JsonObject { ["role"] = "user", ["content"] = "Say hello in five words." }),
        [typeof(CompletionRequest)] = (["model", "prompt"], () => new JsonObject
        {
            ["model"] = "gpt-oss-20b", ["prompt"] = "Once upon a time", ["max_tokens"] = 32,
        }),
        [typeof(CreateKeyBody)] = (["name"], () => new JsonObject { ["name"] = "production backend" }),
        [typeof(CreditPurchasesApi.CheckoutBody)] = (["amount_usd"], () => new JsonObject { ["amount_usd"] = 20 }),
        [typeof(AuthApi.LogInBody)] = (["email", "password"], () => new JsonObject { ["email"] = "you@example.com", ["password"] = "Correct-horse-42" }),
        [typeof(AuthApi.SignUpBody)] = (["email", "password"], () => new JsonObject { ["email"] = "you@example.com", ["password"] = "Correct-horse-42", ["organization"] = "Acme Robotics" }),
    };

    public static void Add(OpenApiOptions options)
    {
        options.AddSchemaTransformer((schema, context, _) =>
        {
            if (!Bodies.TryGetValue(context.JsonTypeInfo.Type, out var body)) return Task.CompletedTask;
            schema.Required = new HashSet<string>(body.Required, StringComparer.Ordinal);
            schema.Examples = [body.Example()];
            // Optional means "leave it out", not "send null": each property is typed as what it holds.
            foreach (var property in (schema.Properties ?? new Dictionary<string, IOpenApiSchema>()).Values.OfType<OpenApiSchema>())
                if (property.Type is { } type && type != JsonSchemaType.Null) property.Type = type & ~JsonSchemaType.Null;
            return Task.CompletedTask;
        });
        // The same example on the request body itself: what the reference's "Test request" fills in.
        options.AddOperationTransformer((operation, context, _) =>
        {
            var bodyType = context.Description.ParameterDescriptions
                .FirstOrDefault(p => p.Source == Microsoft.AspNetCore.Mvc.ModelBinding.BindingSource.Body)?.Type;
            if (bodyType is null || !Bodies.TryGetValue(bodyType, out var body)) return Task.CompletedTask;
            if (operation.RequestBody?.Content is { } content && content.TryGetValue("application/json", out var json) && json is OpenApiMediaType media)
                media.Example = body.Example();
            return Task.CompletedTask;
        });
    }

    /// <summary>
    /// Scalar for customers: its bundle is served by the Api itself (no CDN), no web fonts fetched from a CDN (the
    /// system's fonts instead), no developer toolbar ("Deploy", "Generate SDK"), no telemetry.
    /// </summary>
    public static WebApplication MapPortalReference(this WebApplication app)
    {
        app.MapScalarApiReference("/reference", o =>
        {
            o.WithTitle("Cortensor Portal API reference").HideDeveloperTools().DisableDefaultFonts();
            o.Telemetry = false;
        });
        return app;
    }
}
