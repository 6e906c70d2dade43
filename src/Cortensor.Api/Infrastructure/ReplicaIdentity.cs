namespace Cortensor.Api.Infrastructure;

/// <summary>Which Api replica this process is: stable for its life, unique across replicas and restarts.</summary>
public class ReplicaIdentity
{
    public virtual string Id { get; } = $"{Environment.MachineName}-{Environment.ProcessId}-{Guid.NewGuid().ToString("N")[..6]}";
}
