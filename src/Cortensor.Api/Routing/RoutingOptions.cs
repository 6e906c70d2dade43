namespace Cortensor.Api.Routing;

/// <summary>Settings of section <c>Routing</c>.</summary>
public sealed class RoutingOptions
{
    /// <summary>Bearer token the router nodes expect.</summary>
    public string RouterToken { get; set; } = "";
    public int ProbeIntervalMs { get; set; } = 2000;
    public int ProbeTimeoutMs { get; set; } = 1000;
    /// <summary>Until the router's response headers (first token when streaming).</summary>
    public int UpstreamTimeoutMs { get; set; } = 60_000;
    /// <summary>Longest silence between two streamed chunks.</summary>
    public int StreamIdleTimeoutMs { get; set; } = 30_000;
    public double BreakerFailureRatio { get; set; } = 0.5;
    public int BreakerMinimumThroughput { get; set; } = 4;
    public int BreakDurationMs { get; set; } = 5000;
    public int NoCapacityRetryAfterSeconds { get; set; } = 5;
    /// <summary>How fast a router's latency estimate forgets, between answers, what its last answers took.</summary>
    public int LatencyHalfLifeMs { get; set; } = 1000;
}
