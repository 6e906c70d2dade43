using Polly;
using Polly.CircuitBreaker;

namespace Cortensor.Api.Routing;

/// <summary>
/// What this replica knows about one router: its load from us, a latency average, the active
/// probe's verdict, and a circuit breaker that ejects it after repeated failures.
/// </summary>
public sealed class RouterState
{
    private int _inFlight;
    private long _completed, _failed;
    private double _latencyEwmaMs = 20;
    private uint _sessionCursor;
    private readonly CircuitBreakerStateProvider _circuit = new();

    public RouterState(string id, RoutingOptions options)
    {
        Id = id;
        Breaker = new ResiliencePipelineBuilder<HttpResponseMessage>()
            .AddCircuitBreaker(new CircuitBreakerStrategyOptions<HttpResponseMessage>
            {
                FailureRatio = options.BreakerFailureRatio,
                MinimumThroughput = options.BreakerMinimumThroughput,
                SamplingDuration = TimeSpan.FromSeconds(10),
                BreakDuration = TimeSpan.FromMilliseconds(options.BreakDurationMs),
                ShouldHandle = new PredicateBuilder<HttpResponseMessage>()
                    .Handle<HttpRequestException>()
                    .Handle<TimeoutRejectedOrUpstreamTimeout>()
                    .HandleResult(r => (int)r.StatusCode >= 500),
                StateProvider = _circuit,
            })
            .Build();
    }

    public string Id { get; }
    public ResiliencePipeline<HttpResponseMessage> Breaker { get; }
    public bool ProbeHealthy { get; set; } = true;
    public DateTimeOffset? LastProbeAt { get; set; }
    public long ReportedLoad { get; set; }
    /// <summary>Connected miners as the router last reported them; null when it does not say.</summary>
    public long? ReportedMiners { get; set; }
    public int InFlight => Volatile.Read(ref _inFlight);
    public long Completed => Interlocked.Read(ref _completed);
    public long Failed => Interlocked.Read(ref _failed);
    public double LatencyMs => Volatile.Read(ref _latencyEwmaMs);
    public CircuitState Circuit => _circuit.CircuitState;
    public bool Available => ProbeHealthy && _circuit.CircuitState is CircuitState.Closed or CircuitState.HalfOpen;

    /// <summary>Lower is better: outstanding work times typical latency (power-of-two-choices score).</summary>
    public double Score => (InFlight + 1) * LatencyMs;

    public long NextSession(IReadOnlyList<long> sessions) =>
        sessions[(int)(Interlocked.Increment(ref _sessionCursor) % (uint)sessions.Count)];

    public void Start() => Interlocked.Increment(ref _inFlight);

    /// <summary>The request ended without a verdict on the router (the client went away): only its load comes off.</summary>
    public void Release() => Interlocked.Decrement(ref _inFlight);

    public void Finish(bool success, double elapsedMs)
    {
        Interlocked.Decrement(ref _inFlight);
        if (success) Interlocked.Increment(ref _completed); else Interlocked.Increment(ref _failed);
        if (success)
        {
            // An exponentially weighted average: recent latency matters most, one outlier little.
            var old = Volatile.Read(ref _latencyEwmaMs);
            Volatile.Write(ref _latencyEwmaMs, old * 0.8 + Math.Max(0.1, elapsedMs) * 0.2);
        }
    }
}

/// <summary>Raised inside the breaker when a router does not answer in time, so timeouts count as failures.</summary>
public sealed class TimeoutRejectedOrUpstreamTimeout(string router) : Exception($"router {router} timed out");
