using Cortensor.Api.Metering;
using System.Collections.Concurrent;
using System.Diagnostics.Metrics;
using System.Net;
using Cortensor.Api.Catalog;
using Cortensor.Api.Data;
using Cortensor.Api.Inference;
using Cortensor.Api.Infrastructure;
using Cortensor.Api.Routing;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Hosting;
using Microsoft.AspNetCore.TestHost;
using Microsoft.Extensions.DependencyInjection;

namespace Cortensor.Tests.Unit;

/// <summary>The /v1 RED metrics as a listener and a Prometheus scraper see them.</summary>
public sealed class PortalMetricsTests : IDisposable
{
    private sealed record Seen(string Instrument, double Value, Dictionary<string, object?> Tags);

    private readonly ConcurrentQueue<Seen> _seen = new();
    private readonly MeterListener _listener = new();

    public PortalMetricsTests()
    {
        _listener.InstrumentPublished = (instrument, listener) =>
        {
            if (instrument.Meter.Name == CortensorTelemetry.MeterName) listener.EnableMeasurementEvents(instrument);
        };
        _listener.SetMeasurementEventCallback<long>((i, v, tags, _) => Keep(i, v, tags));
        _listener.SetMeasurementEventCallback<double>((i, v, tags, _) => Keep(i, v, tags));
        _listener.Start();
    }

    private void Keep(Instrument instrument, double value, ReadOnlySpan<KeyValuePair<string, object?>> tags) =>
        _seen.Enqueue(new Seen(instrument.Name, value, new Dictionary<string, object?>(tags.ToArray())));

    public void Dispose() => _listener.Dispose();

    [Fact]
    public void AStreamedRequestMovesRequestsTokensCostDurationAndTimeToFirstTokenUnderItsModel()
    {
        var model = "m-" + Guid.NewGuid().ToString("N")[..8];
        PortalMetrics.RecordRequest(Record(model, "oss-20b", "router-2", 200, null, prompt: 12, completion: 30, cost: 0.0042m,
            latencyMs: 1500, ttftMs: 250, streamed: true));

        var mine = _seen.Where(s => Equals(s.Tags.GetValueOrDefault("model"), model)).ToList();
        var request = Assert.Single(mine, s => s.Instrument == "cortensor.requests");
        Assert.Equal(1, request.Value);
        Assert.Equal("oss-20b", request.Tags["pool"]);
        Assert.Equal("router-2", request.Tags["router"]);
        Assert.Equal(200, request.Tags["status"]);
        Assert.Equal("none", request.Tags["error_code"]);
        Assert.Equal(12, Assert.Single(mine, s => s.Instrument == "cortensor.tokens" && Equals(s.Tags["type"], "prompt")).Value);
        Assert.Equal(30, Assert.Single(mine, s => s.Instrument == "cortensor.tokens" && Equals(s.Tags["type"], "completion")).Value);
        Assert.Equal(0.0042, Assert.Single(mine, s => s.Instrument == "cortensor.cost").Value, 10);
        Assert.Equal(1.5, Assert.Single(mine, s => s.Instrument == "cortensor.request.duration").Value, 6);
        Assert.Equal(0.25, Assert.Single(mine, s => s.Instrument == "cortensor.request.time_to_first_token").Value, 6);
        Assert.DoesNotContain(mine, s => s.Instrument == "cortensor.refusals");
    }

    [Theory]
    [InlineData("rate_limit_exceeded", 429, BillingMode.MonthlyQuota, "rate")]
    [InlineData("insufficient_quota", 402, BillingMode.MonthlyQuota, "quota")]
    [InlineData("insufficient_quota", 402, BillingMode.PrepaidCredits, "credit")]
    public void ARefusalCountsUnderItsKind(string code, int status, BillingMode billing, string kind)
    {
        var model = "m-" + Guid.NewGuid().ToString("N")[..8];
        PortalMetrics.RecordRequest(Record(model, "oss-20b", null, status, code, 0, 0, 0m, 3, null, false) with { BillingMode = billing });

        var mine = _seen.Where(s => Equals(s.Tags.GetValueOrDefault("model"), model)).ToList();
        Assert.Equal(kind, Assert.Single(mine, s => s.Instrument == "cortensor.refusals").Tags["kind"]);
        var request = Assert.Single(mine, s => s.Instrument == "cortensor.requests");
        Assert.Equal(code, request.Tags["error_code"]);
        Assert.Equal("none", request.Tags["router"]);
        Assert.DoesNotContain(mine, s => s.Instrument is "cortensor.tokens" or "cortensor.cost" or "cortensor.request.time_to_first_token");
    }

    [Fact]
    public void AModelTheCatalogDoesNotKnowIsLabelledUnknownNeverWithTheClientsString()
    {
        var junk = "client-" + Guid.NewGuid().ToString("N");
        PortalMetrics.RecordRequest(Record(junk, pool: null, router: null, 404, "model_not_found", 0, 0, 0m, 2, null, false));

        Assert.DoesNotContain(_seen, s => s.Tags.Values.Any(v => Equals(v, junk)));
        Assert.Contains(_seen, s => s.Instrument == "cortensor.requests" && Equals(s.Tags["model"], PortalMetrics.Unknown)
                                    && Equals(s.Tags["error_code"], "model_not_found"));
    }

    [Fact]
    public async Task MetricsAnswersInPrometheusTextWhenEnabled()
    {
        await using var app = MetricsApp(enabled: true);
        await app.StartAsync();
        var model = "m-" + Guid.NewGuid().ToString("N")[..8];
        PortalMetrics.RecordRequest(Record(model, "oss-20b", "router-1", 502, "upstream_error", 5, 0, 0m, 40, null, false));

        using var response = await app.GetTestClient().GetAsync("/metrics");

        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        Assert.StartsWith("text/plain", response.Content.Headers.ContentType?.ToString());
        var text = await response.Content.ReadAsStringAsync();
        Assert.Contains("# TYPE cortensor_requests_total counter", text);
        var line = Assert.Single(text.Split('\n'), l => l.StartsWith("cortensor_requests_total{") && l.Contains($"model=\"{model}\""));
        Assert.Contains("error_code=\"upstream_error\"", line);
        Assert.Contains("status=\"502\"", line);
        Assert.Contains("cortensor_request_duration_seconds_bucket{", text);
    }

    [Fact]
    public async Task MetricsIsNotServedUnlessEnabled()
    {
        await using var app = MetricsApp(enabled: false);
        await app.StartAsync();

        using var response = await app.GetTestClient().GetAsync("/metrics");

        Assert.Equal(HttpStatusCode.NotFound, response.StatusCode);
    }

    [Fact]
    public async Task MetricsRestrictedToAPortAnswersOnlyThere()
    {
        await using var app = MetricsApp(enabled: true, "--Metrics:PrometheusHost=*:9464");
        await app.StartAsync();
        var client = app.GetTestClient();

        using var publicPort = await client.GetAsync("http://localhost/metrics");
        using var internalPort = await client.GetAsync("http://localhost:9464/metrics");

        Assert.Equal(HttpStatusCode.NotFound, publicPort.StatusCode);
        Assert.Equal(HttpStatusCode.OK, internalPort.StatusCode);
    }

    /// <summary>The Api's metrics wiring (service defaults, then the Portal's metrics) without its databases.</summary>
    private static WebApplication MetricsApp(bool enabled, params string[] args)
    {
        var builder = WebApplication.CreateBuilder([$"--Metrics:Prometheus={enabled}", .. args]);
        builder.WebHost.UseTestServer();
        builder.AddServiceDefaults();
        builder.Services.AddSingleton(TimeProvider.System);
        builder.Services.AddOptions<RoutingOptions>();
        builder.Services.AddSingleton<RouterBalancer>();
        builder.Services.AddSingleton<CatalogStore>();
        builder.AddPortalMetrics();
        var app = builder.Build();
        app.UsePortalMetrics();
        return app;
    }

    private static UsageRecord Record(string model, string? pool, string? router, int status, string? errorCode,
        int prompt, int completion, decimal cost, int latencyMs, int? ttftMs, bool streamed) => new(
        "evt_test", "req_test", Guid.NewGuid(), Guid.NewGuid(), BillingMode.MonthlyQuota,
        model, pool, router, null, "POST", "/v1/chat/completions", status, errorCode,
        prompt, completion, cost, latencyMs, ttftMs, streamed, DateTimeOffset.UtcNow);
}
