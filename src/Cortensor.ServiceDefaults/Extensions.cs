using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Diagnostics.HealthChecks;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Http.Resilience;
using Microsoft.Extensions.Diagnostics.HealthChecks;
using Microsoft.Extensions.Logging;
using OpenTelemetry;
using OpenTelemetry.Metrics;
using OpenTelemetry.Trace;

namespace Microsoft.Extensions.Hosting;

// The Aspire service-defaults template: telemetry, health, service discovery, resilience.
// Product-wide helpers live in the files beside this one.
public static class Extensions
{
    private const string HealthEndpointPath = "/health";
    private const string AlivenessEndpointPath = "/alive";
    private const string RouterStatusPath = "/api/v1/status";
    private const string BlazorHubPath = "/_blazor";
    private const string PrometheusScrapePath = "/metrics";

    private static readonly string[] QuietCategories =
    [
        "Microsoft.EntityFrameworkCore",
        "ZiggyCreatures.Caching.Fusion",
        "Microsoft.Extensions.Diagnostics.HealthChecks",
        "Microsoft.AspNetCore",
        "System.Net.Http.HttpClient",
        "Polly",
    ];

    public static TBuilder AddServiceDefaults<TBuilder>(this TBuilder builder) where TBuilder : IHostApplicationBuilder
    {
        builder.ConfigureOpenTelemetry();
        builder.AddDefaultHealthChecks();
        // No "Server: Kestrel" on every answer: it tells a scanner what to try and a client nothing.
        builder.Services.Configure<Microsoft.AspNetCore.Server.Kestrel.Core.KestrelServerOptions>(kestrel => kestrel.AddServerHeader = false);
        builder.Services.AddServiceDiscovery();
        builder.Services.ConfigureHttpClientDefaults(http =>
        {
            // Reads are retried; anything that changes something is not: a POST answered 5xx or timed out may have
            // done its work (a key created, credit granted, a completion billed), and the caller decides about sending it again.
            http.AddStandardResilienceHandler(o => o.Retry.DisableForUnsafeHttpMethods());
            http.AddServiceDiscovery();
        });
        return builder;
    }

    public static TBuilder ConfigureOpenTelemetry<TBuilder>(this TBuilder builder) where TBuilder : IHostApplicationBuilder
    {
        // Framework and library chatter at Warning unless configuration asks for more
        // (e.g. Logging__LogLevel__Microsoft.EntityFrameworkCore=Information): every EF command,
        // cache lookup and health probe at Information buried the product's own logs.
        foreach (var category in QuietCategories)
            if (builder.Configuration[$"Logging:LogLevel:{category}"] is null)
                builder.Logging.AddFilter(category, LogLevel.Warning);

        builder.Logging.AddOpenTelemetry(logging =>
        {
            logging.IncludeFormattedMessage = true;
            logging.IncludeScopes = true;
        });

        builder.Services.AddOpenTelemetry()
            .WithMetrics(metrics => metrics
                .AddAspNetCoreInstrumentation()
                .AddHttpClientInstrumentation()
                .AddRuntimeInstrumentation()
                .AddMeter(CortensorTelemetry.MeterName))
            .WithTracing(tracing => tracing
                // Every trace unless Telemetry:TraceSampleRatio says less (a sampled parent from a client is always
                // followed); an unsampled request carries its trace id but records no spans, at almost no cost.
                .SetSampler(new ParentBasedSampler(new TraceIdRatioBasedSampler(double.TryParse(builder.Configuration["Telemetry:TraceSampleRatio"], System.Globalization.CultureInfo.InvariantCulture, out var ratio) ? ratio : 1.0)))
                .AddSource(builder.Environment.ApplicationName)
                .AddSource(CortensorTelemetry.ActivitySourceName)
                .AddAspNetCoreInstrumentation(o =>
                    // Probes, Prometheus scrapes, router status polls (their client side is filtered below, so each would be
                    // a root trace on the router) and Blazor's hub traffic would drown the request traces.
                    o.Filter = ctx => !ctx.Request.Path.StartsWithSegments(HealthEndpointPath)
                                      && !ctx.Request.Path.StartsWithSegments(AlivenessEndpointPath)
                                      && !ctx.Request.Path.StartsWithSegments(PrometheusScrapePath)
                                      && !ctx.Request.Path.StartsWithSegments(RouterStatusPath)
                                      && !ctx.Request.Path.StartsWithSegments(BlazorHubPath))
                .AddHttpClientInstrumentation(o =>
                    o.FilterHttpRequestMessage = req => req.RequestUri?.AbsolutePath != RouterStatusPath));

        if (!string.IsNullOrWhiteSpace(builder.Configuration["OTEL_EXPORTER_OTLP_ENDPOINT"]))
            builder.Services.AddOpenTelemetry().UseOtlpExporter();

        return builder;
    }

    public static TBuilder AddDefaultHealthChecks<TBuilder>(this TBuilder builder) where TBuilder : IHostApplicationBuilder
    {
        builder.Services.AddHealthChecks()
            .AddCheck("self", () => HealthCheckResult.Healthy(), ["live"]);
        return builder;
    }

    /// <summary>/health names each dependency (database, Redis, router pools, ...) with its state, for operators and probes alike.</summary>
    private static Task WriteHealthJsonAsync(Microsoft.AspNetCore.Http.HttpContext context, HealthReport report)
    {
        context.Response.ContentType = "application/json; charset=utf-8";
        var body = new System.Text.Json.Nodes.JsonObject
        {
            ["status"] = report.Status.ToString(),
            ["duration_ms"] = Math.Round(report.TotalDuration.TotalMilliseconds, 1),
            ["checks"] = new System.Text.Json.Nodes.JsonObject(report.Entries.Select(e =>
                new KeyValuePair<string, System.Text.Json.Nodes.JsonNode?>(e.Key, new System.Text.Json.Nodes.JsonObject
                {
                    ["status"] = e.Value.Status.ToString(),
                    // A failing check's exception names what it could not reach (hosts, ports, endpoints), and a check that
                    // throws gets its message as the description: this answer is public, so a failure with an exception says
                    // only what kind it was. The framework logs the exception in full. (The Portal's own checks attach none.)
                    ["description"] = e.Value.Exception is { } failure ? failure.GetType().Name : e.Value.Description,
                    ["duration_ms"] = Math.Round(e.Value.Duration.TotalMilliseconds, 1),
                    ["data"] = new System.Text.Json.Nodes.JsonObject(e.Value.Data.Select(d =>
                        new KeyValuePair<string, System.Text.Json.Nodes.JsonNode?>(d.Key, System.Text.Json.Nodes.JsonValue.Create(d.Value?.ToString())))),
                }))),
        };
        return Microsoft.AspNetCore.Http.HttpResponseWritingExtensions.WriteAsync(context.Response, body.ToJsonString());
    }

    public static WebApplication MapDefaultEndpoints(this WebApplication app)
    {
        // Health endpoints are served in every environment: the orchestrator and the
        // container platform both probe them. They reveal states and counts, never an exception's message.
        app.MapHealthChecks(HealthEndpointPath, new HealthCheckOptions { ResponseWriter = WriteHealthJsonAsync });
        app.MapHealthChecks(AlivenessEndpointPath, new HealthCheckOptions { Predicate = r => r.Tags.Contains("live") });
        return app;
    }
}
