using System.Collections.Concurrent;
using System.Diagnostics;
using System.Diagnostics.Metrics;
using Cortensor.Api.Catalog;
using Cortensor.Api.Data;
using Cortensor.Api.Infrastructure;
using Cortensor.Api.Keys;
using Cortensor.Api.Limits;
using Cortensor.Api.Metering;
using Cortensor.Api.Routing;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Hosting;
using Microsoft.AspNetCore.Http;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Logging.Abstractions;
using Microsoft.Extensions.Options;

namespace Cortensor.Tests.Unit;

/// <summary>
/// The time a request waits on routers, and the Portal's own time that is left: what tells an operator whether a slow
/// request was the routers or the Portal. Routers here are a real HTTP server that answers after a set delay.
/// </summary>
public sealed class RouterWaitTests : IAsyncLifetime, IDisposable
{
    private static readonly TimeSpan RouterDelay = TimeSpan.FromMilliseconds(150);
    private static readonly TimeSpan StreamTail = TimeSpan.FromMilliseconds(200);
    /// <summary>Timers may end a delay a few milliseconds early.</summary>
    private static readonly TimeSpan TimerSlack = TimeSpan.FromMilliseconds(10);

    private sealed record Seen(string Instrument, double Value, Dictionary<string, object?> Tags);

    private readonly ConcurrentQueue<Seen> _seen = new();
    private readonly MeterListener _listener = new();
    private WebApplication _routers = null!;
    private string _base = "";

    public RouterWaitTests()
    {
        _listener.InstrumentPublished = (instrument, listener) =>
        {
            if (instrument.Meter.Name == CortensorTelemetry.MeterName) listener.EnableMeasurementEvents(instrument);
        };
        _listener.SetMeasurementEventCallback<double>((i, v, tags, _) =>
            _seen.Enqueue(new Seen(i.Name, v, new Dictionary<string, object?>(tags.ToArray()))));
        _listener.Start();
    }

    public async Task InitializeAsync()
    {
        // One server plays every router: the first path segment says how it behaves.
        var builder = WebApplication.CreateSlimBuilder();
        builder.WebHost.UseUrls("http://127.0.0.1:0");
        builder.Logging.ClearProviders();
        _routers = builder.Build();
        _routers.MapPost("/{behaviour}/api/v1/completions/{session}", async (string behaviour) =>
        {
            await Task.Delay(RouterDelay);
            return behaviour == "answers" ? Results.Text("\"Hello from the router\"", "application/json") : Results.StatusCode(503);
        });
        await _routers.StartAsync();
        _base = _routers.Urls.Single();
    }

    public async Task DisposeAsync() => await _routers.DisposeAsync();

    public void Dispose() => _listener.Dispose();

    [Fact]
    public async Task EachAttemptOnARouterIsTimedUnderItsRouterAndOutcomeAndAddsToTheRequestsWait()
    {
        var failing = Pool(("router-a", "fails"), ("router-b", "fails"));
        var answering = Pool(("router-c", "answers"));
        using var client = new RouterHttpClient(Options.Create(new RoutingOptions { RouterToken = "t" }));
        var forwarder = new RouterForwarder(new RouterBalancer(Options.Create(new RoutingOptions()), TimeProvider.System), client,
            Options.Create(new RoutingOptions { RouterToken = "t" }), NullLogger<RouterForwarder>.Instance);

        var failed = new RouterWait();
        var (none, error) = await forwarder.SendAsync(failing, Model(failing.Id), Body(), failed, CancellationToken.None);
        var answered = new RouterWait();
        var (response, _) = await forwarder.SendAsync(answering, Model(answering.Id), Body(), answered, CancellationToken.None);
        response?.Dispose();

        // Both routers of the first pool were tried and failed; each wait is at least the router's own delay.
        Assert.Null(none);
        Assert.NotNull(error);
        Assert.Equal(2, failed.Attempts);
        Assert.True(failed.Total >= 2 * (RouterDelay - TimerSlack), $"waited {failed.Total.TotalMilliseconds} ms on two routers that take {RouterDelay.TotalMilliseconds} ms each");
        var failures = _seen.Where(s => s.Instrument == "cortensor.router.duration" && Equals(s.Tags["pool"], failing.Id)).ToList();
        Assert.Equal(["router-a", "router-b"], failures.Select(s => (string)s.Tags["router"]!).Order());
        Assert.All(failures, s => Assert.Equal("failed", s.Tags["outcome"]));
        Assert.All(failures, s => Assert.True(s.Value >= (RouterDelay - TimerSlack).TotalSeconds, $"{s.Value} s"));
        Assert.Equal(failed.Total.TotalSeconds, failures.Sum(s => s.Value), 9);

        Assert.NotNull(response);
        Assert.Equal(1, answered.Attempts);
        var answer = Assert.Single(_seen, s => s.Instrument == "cortensor.router.duration" && Equals(s.Tags["pool"], answering.Id));
        Assert.Equal("answer", answer.Tags["outcome"]);
        Assert.Equal("router-c", answer.Tags["router"]);
        Assert.Equal(answered.Total.TotalSeconds, answer.Value, 9);
        Assert.True(answer.Value >= (RouterDelay - TimerSlack).TotalSeconds, $"{answer.Value} s");
    }

    [Fact]
    public async Task TheOverheadIsTheRequestsTimeLessItsRouterWait()
    {
        var (usage, model) = Tracker(streamed: false);
        await RouterAnswersAsync(usage);

        usage.Complete();

        var (overhead, duration) = Measured(model);
        // The request's duration is counted in whole milliseconds (rounded down), the overhead and the wait to the tick,
        // all to the same end: the two differ by less than a millisecond. (Each taking its own end, they once differed by
        // 11 ms under a loaded CI run.)
        Assert.InRange(overhead + usage.RouterWait.Total.TotalSeconds - duration, -1e-9, 0.0011);
        Assert.InRange(overhead, double.Epsilon, usage.RouterWait.Total.TotalSeconds);
    }

    [Fact]
    public async Task AStreamsOverheadEndsAtItsFirstTokenNotAtTheEndOfTheRouterPacedStream()
    {
        var (usage, model) = Tracker(streamed: true);
        await RouterAnswersAsync(usage);
        usage.FirstToken();
        await Task.Delay(StreamTail); // the rest of the stream, at the router's pace

        usage.Complete();

        var (overhead, duration) = Measured(model);
        Assert.True(duration - overhead - usage.RouterWait.Total.TotalSeconds >= (StreamTail - TimerSlack).TotalSeconds,
            $"duration {duration} s, overhead {overhead} s, router {usage.RouterWait.Total.TotalSeconds} s: the tail after the first token was counted");
    }

    [Fact]
    public void ARequestNoRouterWasTriedForHasNoOverhead()
    {
        var (usage, model) = Tracker(streamed: false);

        usage.Complete();

        Assert.Contains(_seen, s => s.Instrument == "cortensor.request.duration" && Equals(s.Tags["model"], model));
        Assert.DoesNotContain(_seen, s => s.Instrument == "cortensor.request.overhead" && Equals(s.Tags["model"], model));
    }

    private static async Task RouterAnswersAsync(UsageTracker usage)
    {
        var sent = Stopwatch.GetTimestamp();
        await Task.Delay(RouterDelay);
        usage.RouterWait.Attempted("pool", "router-1", sent, answered: true);
    }

    private (double Overhead, double Duration) Measured(string model) => (
        Assert.Single(_seen, s => s.Instrument == "cortensor.request.overhead" && Equals(s.Tags["model"], model)).Value,
        Assert.Single(_seen, s => s.Instrument == "cortensor.request.duration" && Equals(s.Tags["model"], model)).Value);

    /// <summary>A request's tracker as the handler makes it, under a model of its own so the measurements are this test's.</summary>
    private static (UsageTracker Usage, string Model) Tracker(bool streamed)
    {
        var model = "m-" + Guid.NewGuid().ToString("N")[..8];
        var services = new ServiceCollection().AddLogging().BuildServiceProvider();
        var http = new DefaultHttpContext { RequestServices = services };
        http.Request.Method = "POST";
        http.Request.Path = "/v1/chat/completions";
        var key = new KeySnapshot(Guid.CreateVersion7(), Guid.CreateVersion7(), ApiKeyStatus.Active, null, OrganizationStatus.Active,
            "quota", BillingMode.MonthlyQuota, [model], 1000, 100_000_000, 1_000_000, 1000, 100_000_000, 256);
        // Nothing reaches the meter or the settlement queue here: a test context runs no completion callbacks.
        var meter = new UsageMeter(null!, null!, NullLogger<UsageMeter>.Instance);
        var settlements = new SettlementQueue(meter, Options.Create(new MeteringOptions()), NullLogger<SettlementQueue>.Instance);
        var usage = new UsageTracker(http, key, meter, settlements, new LocalAdmission(TimeProvider.System), TimeProvider.System)
        {
            Model = Model("pool", model),
        };
        usage.Requested(model, streamed);
        return (usage, model);
    }

    private CatalogPool Pool(params (string Id, string Behaviour)[] routers)
    {
        var id = "pool-" + Guid.NewGuid().ToString("N")[..8];
        return new CatalogPool(id, Draining: false, routers.Select(r => new CatalogRouter(r.Id, id, $"{_base}/{r.Behaviour}", [1])).ToList());
    }

    private static CatalogModel Model(string pool, string id = "gpt-oss-20b") =>
        new(id, id, "gpt-oss", true, 0.1m, 0.1m, 8192, pool, id, DateTimeOffset.UnixEpoch);

    private static RouterCompletionRequest Body() => new("Say hello", 16, null, null, false, "req_test", null);
}
