namespace Cortensor.Api.Metering;

/// <summary>Settings of section <c>Metering</c>.</summary>
public sealed class MeteringOptions
{
    public const string Section = "Metering";
    /// <summary>Ledger writers per replica; every replica's writers share one consumer group.</summary>
    public int Writers { get; set; } = 2;
    /// <summary>How long a writer's unacknowledged entries wait before another writer takes them.</summary>
    public double ClaimIdleSeconds { get; set; } = 30;
    public int ReconcileSeconds { get; set; } = 60;
    /// <summary>
    /// An organisation with more charges than this on their way to the ledger is reconciled on a later pass: reading
    /// them blocks Redis for as long as it takes (about 2.5 ms per thousand), and the writers forget them as they commit.
    /// </summary>
    public int ReconcileMaxPendingCharges { get; set; } = 5_000;
    /// <summary>
    /// How long the settlement queue gathers requests' settlements before sending them together (0: at once). It widens
    /// by this much what a replica killed outright leaves to the reaper: reservations settled from the progress the
    /// replica reported, leases given back whole with their last requests unbilled (docs/operations.md).
    /// </summary>
    public double SettleLingerMilliseconds { get; set; } = 1;
    /// <summary>
    /// How long a writer waits after a small batch before reading again (0: at once), so that under light load the
    /// ledger takes a few larger transactions rather than one commit for every request or two. Adds at most this to the
    /// write lag; a writer that reads a large batch (a backlog) does not wait.
    /// </summary>
    public double WriterLingerMilliseconds { get; set; } = 50;
    /// <summary>Where usage waits while Redis is away; empty: a folder under the content root.</summary>
    public string? SpoolDirectory { get; set; }
}
