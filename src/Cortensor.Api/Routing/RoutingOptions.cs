namespace Cortensor.Api.Routing;

/// <summary>Settings of section <c>Routing</c>.</summary>
public sealed class RoutingOptions
{
    /// <summary>Bearer token the router nodes expect.</summary>
    public string RouterToken { get; set; } = "";
    public int ProbeIntervalMs { get; set; } = 2000;
    public int ProbeTimeoutMs { get; set; } = 1000;
    /// <summary>A model's <c>timeout</c> when its row leaves it unset: what public clients send (60-360 s).</summary>
    public int DefaultTimeoutSeconds { get; set; } = 180;
    /// <summary>A model's <c>precommit_timeout</c> when unset: the 90 s public clients send.</summary>
    public int DefaultPrecommitTimeoutSeconds { get; set; } = 90;
    /// <summary>Added to the network's own timeouts before the Portal gives up: the router reports its timeout itself first.</summary>
    public int DeadlineGraceSeconds { get; set; } = 10;
    /// <summary>
    /// When set, caps the wait for the first token (the whole answer unstreamed) below what the model's
    /// timeouts allow; tests use it to see a 504 in seconds. Unset in production.
    /// </summary>
    public int? UpstreamTimeoutMs { get; set; }
    /// <summary>When set, caps the silence allowed between two streamed events (otherwise the model's <c>timeout</c>).</summary>
    public int? StreamIdleTimeoutMs { get; set; }
    public double BreakerFailureRatio { get; set; } = 0.5;
    public int BreakerMinimumThroughput { get; set; } = 4;
    public int BreakDurationMs { get; set; } = 5000;
    public int NoCapacityRetryAfterSeconds { get; set; } = 5;
    /// <summary>
    /// The most bytes of one unstreamed router answer the Portal reads (16 MB: far above the longest answer a model's
    /// token limit allows). A router sending more is treated as a cut answer and another is tried, instead of the
    /// Api holding whatever a faulty or hostile router sends.
    /// </summary>
    public int MaxAnswerBytes { get; set; } = 16 * 1024 * 1024;
    /// <summary>How fast a router's latency estimate forgets, between answers, what its last answers took.</summary>
    public int LatencyHalfLifeMs { get; set; } = 1000;
}
