using System.Diagnostics;
using System.Runtime.CompilerServices;
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

    /// <summary>The tag of a check without which a replica cannot serve at all: only these (and liveness) make /health 503.</summary>
    public const string ReadinessTag = "ready";

    /// <summary>The tag of a dependency's check, bounded and Degraded at worst (see <see cref="DependencyCheck"/>).</summary>
    public const string DependencyTag = "dependency";

    /// <summary>How long a dependency's check may take before it counts as failed: well inside the readiness probe's timeout.</summary>
    public static readonly TimeSpan DependencyCheckTimeout = TimeSpan.FromSeconds(2);

    public static TBuilder AddDefaultHealthChecks<TBuilder>(this TBuilder builder) where TBuilder : IHostApplicationBuilder
    {
        builder.Services.AddHealthChecks()
            .AddCheck("self", () => HealthCheckResult.Healthy(), ["live"]);
        // /health is the platform's readiness probe. Every replica shares Postgres and Redis, so taking replicas out of
        // rotation when one of them fails helps nothing and stops all service at once; the services keep serving what
        // they can (the Api: known keys, usage spooled; docs/reliability.md). So a dependency's check reports Degraded
        // (200), and only checks tagged ReadinessTag (the Api's catalog, Redis not yet reached since start) report
        // Unhealthy (503). Applied after every registration, the client libraries' own included.
        builder.Services.PostConfigure<HealthCheckServiceOptions>(options =>
        {
            foreach (var check in options.Registrations)
            {
                // The registrations are shared by every build of these options: each is wrapped once (DependencyTag).
                if (check.Tags.Contains(ReadinessTag) || check.Tags.Contains("live") || !check.Tags.Add(DependencyTag)) continue;
                check.FailureStatus = HealthStatus.Degraded;
                var run = new DependencyRun(check.Name, check.Factory);
                check.Factory = services => new DependencyCheck(run, services);
            }
        });
        return builder;
    }

    /// <summary>
    /// A dependency's check as the readiness probe needs it. Written by hand because the libraries' checks do not allow
    /// it: EF Core's returns Unhealthy itself on an exception, whatever the registration's failure status, and Npgsql's
    /// connect does not heed cancellation at once (a Postgres behind a proxy that accepts and hangs held /health for
    /// Npgsql's 15 s, past the probe's timeout, on every replica at once). So: an answer within DependencyCheckTimeout,
    /// never worse than Degraded.
    /// </summary>
    private sealed class DependencyCheck(DependencyRun run, IServiceProvider services) : IHealthCheck
    {
        public async Task<HealthCheckResult> CheckHealthAsync(HealthCheckContext context, CancellationToken cancellationToken = default)
        {
            var running = run.Current(services, context);
            try
            {
                var result = await running.WaitAsync(DependencyCheckTimeout, cancellationToken);
                return result.Status == HealthStatus.Unhealthy ? new HealthCheckResult(HealthStatus.Degraded, result.Description, result.Exception, result.Data) : result;
            }
            catch (TimeoutException) when (!running.IsCompleted)
            {
                return HealthCheckResult.Degraded($"no answer within {DependencyCheckTimeout.TotalSeconds:0} s");
            }
            catch (Exception ex) when (!cancellationToken.IsCancellationRequested)
            {
                return HealthCheckResult.Degraded(exception: ex);
            }
        }
    }

    /// <summary>
    /// One registration's check, run once at a time. /health is public and answers within DependencyCheckTimeout, so
    /// calls that each started a check of a hanging database would pile up connections (its pool is the ledger writer's
    /// too): a call while a run is under way waits on that run. A run is cancelled after DependencyCheckTimeout, whoever
    /// waits; it has a scope of its own, disposed when it ends (the health service's would dispose its DbContext under
    /// it); and how a run that nobody waited for ended is logged, since /health only said it was slow.
    /// </summary>
    private sealed class DependencyRun(string name, Func<IServiceProvider, IHealthCheck> factory)
    {
        private readonly Lock _gate = new();
        private Task<HealthCheckResult>? _running;

        public Task<HealthCheckResult> Current(IServiceProvider services, HealthCheckContext context)
        {
            lock (_gate)
            {
                if (_running is { IsCompleted: false } running) return running;
                return _running = StartAsync(services, context);
            }
        }

        private async Task<HealthCheckResult> StartAsync(IServiceProvider services, HealthCheckContext context)
        {
            // Singletons, taken now: the caller's scope may be gone by the time a slow run ends.
            var scopes = services.GetRequiredService<IServiceScopeFactory>();
            var log = services.GetRequiredService<ILoggerFactory>().CreateLogger("Microsoft.Extensions.Diagnostics.HealthChecks.DefaultHealthCheckService");
            await Task.Yield(); // out of the lock
            var started = Stopwatch.GetTimestamp();
            await using var scope = scopes.CreateAsyncScope();
            using var deadline = new CancellationTokenSource(DependencyCheckTimeout);
            try
            {
                var result = await factory(scope.ServiceProvider).CheckHealthAsync(context, deadline.Token);
                if (result.Status != HealthStatus.Healthy && Stopwatch.GetElapsedTime(started) > DependencyCheckTimeout)
                    Log(log, result.Exception, $"ended {result.Status}: {result.Description}", started);
                return result;
            }
            catch (Exception ex)
            {
                if (Stopwatch.GetElapsedTime(started) > DependencyCheckTimeout) Log(log, ex, "failed", started);
                throw;
            }
        }

        private void Log(ILogger log, Exception? exception, string outcome, long started) =>
            log.LogWarning(exception, "Health check {HealthCheckName}, reported Degraded after {Timeout} s, {Outcome} after {ElapsedMilliseconds:0} ms",
                    name, DependencyCheckTimeout.TotalSeconds, outcome, Stopwatch.GetElapsedTime(started).TotalMilliseconds);
    }

    /// <summary>
    /// A readiness check (<see cref="ReadinessTag"/>) that is Unhealthy until <paramref name="reachable"/> has been true once
    /// since the process started, then Healthy for good: a replica started while a dependency it cannot serve without is
    /// away (the Api knows no key until it has reached Redis) stays out of rotation, while one that was serving rides out
    /// a later outage of it (the dependency's own check then says Degraded).
    /// </summary>
    public static IHealthChecksBuilder AddReachedOnceCheck(this IHealthChecksBuilder checks, string name, Func<IServiceProvider, bool> reachable, string notYet)
    {
        var reached = new StrongBox<bool>();
        // Reached means reached whether or not a probe asked at that moment: a replica no probe happened to ask while the
        // dependency was up would otherwise count as never having reached it once the dependency is away.
        // As a singleton of its own: AddHostedService would keep only the first watcher of this type.
        checks.Services.AddSingleton<IHostedService>(services => new ReachedOnceWatcher(reached, () => reachable(services)));
        return checks.Add(new HealthCheckRegistration(name, services => new ReachedOnceCheck(reached, () => reachable(services), notYet),
            HealthStatus.Unhealthy, [ReadinessTag]));
    }

    /// <summary>Asks from the start, a few times a second, until the dependency was reached once.</summary>
    private sealed class ReachedOnceWatcher(StrongBox<bool> reached, Func<bool> reachable) : BackgroundService
    {
        protected override async Task ExecuteAsync(CancellationToken stoppingToken)
        {
            // Off the host's start: resolving the dependency's client may connect before it returns.
            await Task.Yield();
            using var every = new PeriodicTimer(TimeSpan.FromMilliseconds(250));
            do
            {
                if (Volatile.Read(ref reached.Value)) return;
                try
                {
                    if (reachable()) Volatile.Write(ref reached.Value, true);
                }
                catch (Exception) when (!stoppingToken.IsCancellationRequested)
                {
                    // Not reachable yet (its client could not even be made): asked again at the next tick.
                }
            }
            while (await every.WaitForNextTickAsync(stoppingToken));
        }
    }

    private sealed class ReachedOnceCheck(StrongBox<bool> reached, Func<bool> reachable, string notYet) : IHealthCheck
    {
        public Task<HealthCheckResult> CheckHealthAsync(HealthCheckContext context, CancellationToken cancellationToken = default)
        {
            if (!Volatile.Read(ref reached.Value) && reachable()) Volatile.Write(ref reached.Value, true);
            return Task.FromResult(reached.Value ? HealthCheckResult.Healthy("reached since start") : HealthCheckResult.Unhealthy(notYet));
        }
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
