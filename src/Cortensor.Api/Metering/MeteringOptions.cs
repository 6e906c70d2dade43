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
    /// <summary>Where usage waits while Redis is away; empty: a folder under the content root.</summary>
    public string? SpoolDirectory { get; set; }
}
