namespace Cortensor.Api.Limits;

/// <summary>Settings of section <c>Limits</c>.</summary>
public sealed class LimitsOptions
{
    /// <summary>
    /// How long an admitted request may hold its reservation. The hot path ends every request
    /// before it (whatever the router does); past it, the reaper settles what the request left.
    /// </summary>
    public int ReservationSeconds { get; set; } = 900;
    /// <summary>A replica silent this long is taken for dead: its reservations are settled early.</summary>
    public int ReplicaSilenceSeconds { get; set; } = 30;
    public int ReaperIntervalSeconds { get; set; } = 5;
}
