namespace Cortensor.Api.Infrastructure;

/// <summary>
/// Which Api process holds a reservation: the replica's name (<see cref="ReplicaId"/>) and this process,
/// so a replica restarted under the same name is never taken for the one that died.
/// </summary>
public class ReplicaIdentity(IConfiguration configuration)
{
    public virtual string Id { get; } = $"{ReplicaId.Resolve(configuration)}-{Environment.ProcessId}";
}
