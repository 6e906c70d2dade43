using System.Diagnostics;
using System.Diagnostics.Metrics;
using Cortensor.Api.Infrastructure;

namespace Cortensor.Api.Routing;

/// <summary>
/// The time one request spent waiting on routers, every attempt included: from handing the request to the
/// connection until the router's whole answer was read (its first text, for a stream) or the attempt failed.
/// What is left of the request's time is the Portal's own (<c>cortensor.request.overhead</c>): when a request is
/// slow, it tells an operator whether to look at the routers or at the Portal.
/// </summary>
public sealed class RouterWait
{
    private static readonly Meter Meter = new(CortensorTelemetry.MeterName);

    // Seconds, from a router on the same network (well under a millisecond) to a long generation.
    internal static readonly IReadOnlyList<double> Buckets =
        [0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300];

    private static readonly Histogram<double> Durations = Meter.CreateHistogram("cortensor.router.duration", "s",
        "Time waiting on a router for one attempt: sending the request until its whole answer (a stream's first text) or the failure, by pool, router and outcome",
        advice: new InstrumentAdvice<double> { HistogramBucketBoundaries = Buckets });

    public TimeSpan Total { get; private set; }

    /// <summary>Routers tried: none when the request was refused or no router was free.</summary>
    public int Attempts { get; private set; }

    /// <summary>One attempt on <paramref name="router"/>, started at <paramref name="startedAt"/> (a <see cref="Stopwatch"/> timestamp), ended now.</summary>
    public void Attempted(string pool, string router, long startedAt, bool answered)
    {
        var spent = Stopwatch.GetElapsedTime(startedAt);
        Total += spent;
        Attempts++;
        Durations.Record(spent.TotalSeconds, new("pool", pool), new("router", router), new("outcome", answered ? "answer" : "failed"));
    }
}
