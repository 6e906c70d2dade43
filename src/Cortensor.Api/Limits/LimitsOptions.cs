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

    /// <summary>Busy keys are admitted from leases taken ahead of need (<see cref="AdmissionLeases"/>); false: every request is exact.</summary>
    public bool Leasing { get; set; } = true;
    /// <summary>A lease takes at most 1/LeaseShare of a per-minute limit, of the concurrency and of the balance or quota left.</summary>
    public int LeaseShare { get; set; } = 20;
    public int LeaseMaxRequests { get; set; } = 1_000;
    public long LeaseMaxTokens { get; set; } = 1_000_000;
    public int LeaseMaxConcurrency { get; set; } = 256;
    /// <summary>The most money one lease takes from a prepaid balance (USD).</summary>
    public decimal LeaseUsd { get; set; } = 1.00m;
    /// <summary>The most tokens one lease takes from a monthly quota.</summary>
    public long LeaseQuotaTokens { get; set; } = 200_000;
    /// <summary>Exact admissions of a key within a minute on one replica before that replica takes a lease for it.</summary>
    public int LeaseAfterRequests { get; set; } = 8;
    /// <summary>A lease unused this long is given back (with its unused requests and tokens).</summary>
    public int LeaseIdleSeconds { get; set; } = 2;
}
