using Polly;
using Polly.CircuitBreaker;

namespace Cortensor.Api.Routing;

/// <summary>
/// What this replica knows about one router: its load from us, a latency estimate, the active
/// probe's verdict, and a circuit breaker that ejects it after repeated failures.
/// </summary>
/// <remarks>
/// The latency estimate must not keep a router out for good. It moved only when a request completed,
/// so one slow (cold-start) answer made a router lose every comparison, it got no more requests, and
/// its estimate never came back down. Now one answer can move the estimate at most by
/// <see cref="MaxStepFactor"/>, and between answers the estimate decays (half-life
/// <see cref="RoutingOptions.LatencyHalfLifeMs"/>) towards the round trip the health probe measures
/// every few seconds: an idle router soon looks as good as the probe says and gets traffic again,
/// and that traffic measures it anew.
/// </remarks>
public sealed class RouterState
{
    /// <summary>One answer counts at most this many times the current estimate (a cold start is not the norm).</summary>
    public const double MaxStepFactor = 4;
    private const double Weight = 0.2;

    private int _inFlight;
    private long _completed, _failed, _picked;
    private readonly Lock _latencyLock = new();
    private double _latencyEwmaMs = 20, _probeLatencyMs = 20;
    private long _latencyAt;
    private long _breakEndsAt = long.MaxValue;
    private uint _sessionCursor;
    private readonly CircuitBreakerStateProvider _circuit = new();
    private readonly TimeProvider _clock;
    private readonly double _halfLifeTicks;

    public RouterState(string id, RoutingOptions options, TimeProvider? clock = null)
    {
        Id = id;
        _clock = clock ?? TimeProvider.System;
        _latencyAt = _clock.GetTimestamp();
        _halfLifeTicks = Math.Max(1, options.LatencyHalfLifeMs) / 1000.0 * _clock.TimestampFrequency;
        Breaker = new ResiliencePipelineBuilder<HttpResponseMessage> { TimeProvider = _clock }
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
                OnOpened = args =>
                {
                    Volatile.Write(ref _breakEndsAt, _clock.GetTimestamp() + (long)(args.BreakDuration.TotalSeconds * _clock.TimestampFrequency));
                    return default;
                },
                // Polly runs OnOpened after the circuit is open: until then the break's end must not be a past one.
                OnClosed = _ => { Volatile.Write(ref _breakEndsAt, long.MaxValue); return default; },
                OnHalfOpened = _ => { Volatile.Write(ref _breakEndsAt, long.MaxValue); return default; },
            })
            .Build();
    }

    public string Id { get; }
    public ResiliencePipeline<HttpResponseMessage> Breaker { get; }
    public bool ProbeHealthy { get; set; } = true;
    /// <summary>Probes in a row that got no answer at all (only the health probe writes it).</summary>
    public int ProbeTimeoutsInARow { get; set; }
    public DateTimeOffset? LastProbeAt { get; set; }
    public long ReportedLoad { get; set; }
    /// <summary>Connected miners as the router last reported them; null when it does not say.</summary>
    public long? ReportedMiners { get; set; }
    public int InFlight => Volatile.Read(ref _inFlight);
    public long Completed => Interlocked.Read(ref _completed);
    public long Failed => Interlocked.Read(ref _failed);
    /// <summary>Times the balancer chose this router (each attempt, retries included).</summary>
    public long Picked => Interlocked.Read(ref _picked);
    /// <summary>The last health probe's round trip.</summary>
    public double ProbeLatencyMs { get { lock (_latencyLock) return _probeLatencyMs; } }

    /// <summary>The latency estimate now: the last average, decayed towards the probe's round trip since.</summary>
    public double LatencyMs
    {
        get
        {
            lock (_latencyLock) return Decayed(_clock.GetTimestamp());
        }
    }
    public CircuitState Circuit => _circuit.CircuitState;

    /// <summary>
    /// Probe healthy, and its circuit closed, or open with its break over. Polly moves an open circuit to half-open only
    /// when a call is made through it, so a balancer that skipped every open circuit would never make that call: a router
    /// whose circuit opened once stayed out of this replica's rotation for good, however well it answered its probes
    /// afterwards. Once the break is over, the next request picked for it is the trial. While the trial runs (half-open)
    /// Polly refuses every other call, so the router is not offered to them: they go to the pool's other routers, and a
    /// pool whose only router is on trial counts as having none (a model's fallbacks serve). A request that still meets a
    /// refusal (picked in the instant the trial began) is moved to another router without losing its retry (RouterForwarder).
    /// </summary>
    public bool Available => ProbeHealthy && _circuit.CircuitState switch
    {
        CircuitState.Closed => true,
        CircuitState.Open => _clock.GetTimestamp() >= Volatile.Read(ref _breakEndsAt),
        _ => false,
    };

    /// <summary>Lower is better: outstanding work times typical latency (power-of-two-choices score).</summary>
    public double Score => (InFlight + 1) * LatencyMs;

    public long NextSession(IReadOnlyList<long> sessions) =>
        sessions[(int)(Interlocked.Increment(ref _sessionCursor) % (uint)sessions.Count)];

    public void Start()
    {
        Interlocked.Increment(ref _inFlight);
        Interlocked.Increment(ref _picked);
    }

    /// <summary>The request ended without a verdict on the router (the client went away): only its load comes off.</summary>
    public void Release() => Interlocked.Decrement(ref _inFlight);

    public void Finish(bool success, double elapsedMs)
    {
        Interlocked.Decrement(ref _inFlight);
        if (success) Interlocked.Increment(ref _completed); else Interlocked.Increment(ref _failed);
        if (!success) return;
        lock (_latencyLock)
        {
            // An exponentially weighted average: recent latency matters most, one outlier little.
            var now = _clock.GetTimestamp();
            var current = Decayed(now);
            var sample = Math.Min(Math.Max(0.1, elapsedMs), current * MaxStepFactor);
            _latencyEwmaMs = current * (1 - Weight) + sample * Weight;
            _latencyAt = now;
        }
    }

    /// <summary>A successful health probe: its round trip is where an idle router's estimate decays to.</summary>
    public void ObserveProbe(double roundTripMs)
    {
        lock (_latencyLock)
        {
            var now = _clock.GetTimestamp();
            _latencyEwmaMs = Decayed(now);
            _latencyAt = now;
            _probeLatencyMs = Math.Max(0.1, roundTripMs);
        }
    }

    private double Decayed(long now)
    {
        var elapsed = now - _latencyAt;
        if (elapsed <= 0) return _latencyEwmaMs;
        return _probeLatencyMs + (_latencyEwmaMs - _probeLatencyMs) * Math.Pow(0.5, elapsed / _halfLifeTicks);
    }
}

/// <summary>Raised inside the breaker when a router does not answer in time, so timeouts count as failures.</summary>
public sealed class TimeoutRejectedOrUpstreamTimeout(string router) : Exception($"router {router} timed out");
