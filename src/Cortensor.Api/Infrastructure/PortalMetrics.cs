using Cortensor.Api.Metering;
using System.Diagnostics;
using System.Diagnostics.Metrics;
using Cortensor.Api.Catalog;
using Cortensor.Api.Data;
using Cortensor.Api.Inference;
using Cortensor.Api.Routing;
using OpenTelemetry.Metrics;
using Polly.CircuitBreaker;

namespace Cortensor.Api.Infrastructure;

/// <summary>
/// The RED metrics of /v1 (requests, errors, duration) with refusals, tokens, cost and time to first token, all from
/// the one usage record each request ends with, so they agree with the ledger. Labels stay bounded: model, pool
/// and router ids come from the catalog (a model the catalog does not know is "unknown", never the client's
/// string) and error codes from <see cref="Errors.ApiError"/>'s factories.
/// </summary>
public static class PortalMetrics
{
    public const string Unknown = "unknown";
    private const string None = "none";

    private static readonly Meter Meter = new(CortensorTelemetry.MeterName);

    // Seconds, for requests that take from milliseconds (a refusal) to minutes (a long generation).
    private static readonly IReadOnlyList<double> SecondsBuckets =
        [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300];

    private static readonly Counter<long> Requests = Meter.CreateCounter<long>("cortensor.requests", "{request}",
        "/v1 requests by model, pool, router, status and error code");
    private static readonly Counter<long> Refusals = Meter.CreateCounter<long>("cortensor.refusals", "{request}",
        "/v1 requests refused by a limit, by kind (rate, quota, credit) and model");
    private static readonly Counter<long> Tokens = Meter.CreateCounter<long>("cortensor.tokens", "{token}",
        "Tokens charged, by model and type (prompt, completion)");
    private static readonly Counter<double> Cost = Meter.CreateCounter<double>("cortensor.cost", "USD",
        "Cost charged in USD, by model");
    private static readonly Histogram<double> Duration = Meter.CreateHistogram("cortensor.request.duration", "s",
        "Time from admission to the end of the answer, by model", advice: new InstrumentAdvice<double> { HistogramBucketBoundaries = SecondsBuckets });
    private static readonly Histogram<double> TimeToFirstToken = Meter.CreateHistogram("cortensor.request.time_to_first_token", "s",
        "Time from admission to the first token of a stream, by model", advice: new InstrumentAdvice<double> { HistogramBucketBoundaries = SecondsBuckets });

    private static readonly Histogram<double> Overhead = Meter.CreateHistogram("cortensor.request.overhead", "s",
        "The Portal's own time on a request a router was tried for: arrival to the answer (a stream's first token) less the time waiting on routers, by model",
        advice: new InstrumentAdvice<double> { HistogramBucketBoundaries = RouterWait.Buckets });

    /// <summary>
    /// Once per /v1 request, from <see cref="Metering.UsageTracker"/>'s completion, with the Portal's own time on it
    /// (<paramref name="overhead"/>) when a router was tried.
    /// </summary>
    public static void RecordRequest(UsageRecord record, TimeSpan? overhead = null)
    {
        // The pool is set only when the catalog resolved the model; otherwise ModelId is what the client sent.
        var model = record.PoolId is null ? Unknown : record.ModelId;
        var modelTag = new KeyValuePair<string, object?>("model", model);
        Requests.Add(1, new TagList
        {
            modelTag,
            { "pool", record.PoolId ?? None },
            { "router", record.RouterId ?? None },
            { "status", record.Status },
            { "error_code", record.ErrorCode ?? None },
        });
        if (RefusalKind(record.ErrorCode, record.BillingMode) is { } kind)
            Refusals.Add(1, modelTag, new("kind", kind));
        if (record.PromptTokens > 0) Tokens.Add(record.PromptTokens, modelTag, new("type", "prompt"));
        if (record.CompletionTokens > 0) Tokens.Add(record.CompletionTokens, modelTag, new("type", "completion"));
        if (record.Cost > 0) Cost.Add((double)record.Cost, modelTag);
        Duration.Record(record.LatencyMs / 1000.0, modelTag, new("streamed", record.Streamed));
        if (record.TimeToFirstTokenMs is { } ttft) TimeToFirstToken.Record(ttft / 1000.0, modelTag);
        if (overhead is { } own) Overhead.Record(own.TotalSeconds, modelTag, new("streamed", record.Streamed));
    }

    /// <summary>
    /// Which limit refused the request. Concurrency refusals share the rate limits' error code
    /// (<c>rate_limit_exceeded</c>, as OpenAI's clients expect) and count as "rate".
    /// </summary>
    public static string? RefusalKind(string? errorCode, BillingMode billing) => errorCode switch
    {
        "rate_limit_exceeded" => "rate",
        "insufficient_quota" => billing == BillingMode.PrepaidCredits ? "credit" : "quota",
        _ => null,
    };

    public static WebApplicationBuilder AddPortalMetrics(this WebApplicationBuilder builder)
    {
        builder.Services.AddSingleton<RouterMetrics>();
        if (builder.Configuration.GetValue<bool>("Metrics:Prometheus"))
            builder.Services.AddOpenTelemetry().WithMetrics(metrics => metrics.AddPrometheusExporter());
        return builder;
    }

    /// <summary>
    /// Starts the router gauges and, when <c>Metrics:Prometheus</c> is true, serves <c>/metrics</c> in Prometheus text.
    /// With <c>Metrics:PrometheusHost</c> (e.g. <c>*:9464</c>) it answers only on that host and port, which the
    /// public ingress does not expose (docs/deploy.md).
    /// </summary>
    public static WebApplication UsePortalMetrics(this WebApplication app)
    {
        app.Services.GetRequiredService<RouterMetrics>();
        if (!app.Configuration.GetValue<bool>("Metrics:Prometheus")) return app;
        var endpoint = app.MapPrometheusScrapingEndpoint("/metrics");
        if (app.Configuration["Metrics:PrometheusHost"] is { Length: > 0 } host) endpoint.RequireHost(host);
        return app;
    }
}

/// <summary>Each router's load as this replica sees it: in flight, its share of the pool's picks, its breaker.</summary>
public sealed class RouterMetrics : IDisposable
{
    private readonly Meter _meter;

    public RouterMetrics(IMeterFactory meters, RouterBalancer balancer, CatalogStore catalog)
    {
        _meter = meters.Create(CortensorTelemetry.MeterName);
        _meter.CreateObservableGauge("cortensor.router.in_flight", () => Observe(balancer, catalog, (state, _) => state.InFlight),
            "{request}", "Requests this replica has in flight on the router");
        _meter.CreateObservableGauge("cortensor.router.share", () => Observe(balancer, catalog, (state, poolPicked) =>
                poolPicked == 0 ? 0 : (double)state.Picked / poolPicked),
            description: "The router's share of its pool's picks since this replica started (0-1); an equal share is 1 / routers");
        _meter.CreateObservableGauge("cortensor.router.breaker_open", () => Observe(balancer, catalog, (state, _) =>
                state.Circuit is CircuitState.Open or CircuitState.Isolated ? 1 : state.Circuit == CircuitState.HalfOpen ? 0.5 : 0),
            description: "The router's circuit breaker: 0 closed, 0.5 half-open, 1 open");
        _meter.CreateObservableCounter("cortensor.router.picked", () => Observe(balancer, catalog, (state, _) => state.Picked),
            "{request}", "Times the balancer chose the router (retries included)");
    }

    private static IEnumerable<Measurement<T>> Observe<T>(RouterBalancer balancer, CatalogStore catalog, Func<RouterState, long, T> value)
        where T : struct
    {
        foreach (var pool in catalog.Current.Pools.Values)
        {
            var states = pool.Routers.Select(r => balancer.States.GetValueOrDefault(r.Id)).OfType<RouterState>().ToList();
            var picked = states.Sum(s => s.Picked);
            foreach (var state in states)
                yield return new Measurement<T>(value(state, picked), new("pool", pool.Id), new("router", state.Id));
        }
    }

    public void Dispose() => _meter.Dispose();
}
