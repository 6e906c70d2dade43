using System.Threading.RateLimiting;
using Cortensor.Api.Keys;

namespace Cortensor.Api.Idempotency;

/// <summary>
/// Replays are not billed and take nothing from the shared limits, but each reads up to a megabyte from Redis and sends up
/// to 8 MB: a key could pull that as fast as it can ask, a 60 KB request at a time. Each server answers a key at most its
/// requests-per-minute of replays a minute (the key's own limit, else its plan's), and an organisation its own; the body is
/// read from Redis only for a replay that is answered. Counted by each server rather than in
/// Redis: a replay costs no money, so the bound (servers × the limit) need not be exact, and replays stay off the shared
/// counters every request waits on.
/// </summary>
public sealed class ReplayLimiter : IDisposable
{
    // A limit changed on the key is a partition of its own, so the new limit applies from its next replay. The organisation's
    // limit is counted too, so its many keys replay no more together than it may request. The key is asked first: asked
    // second, one key could use up the organisation's replays; asked first, a replay the organisation refuses still counts
    // against the key (fixed windows give nothing back), which only shortens a key's replays while its organisation is at its limit.
    private readonly PartitionedRateLimiter<KeySnapshot> _keys =
        PartitionedRateLimiter.Create<KeySnapshot, (Guid, int)>(key => PerMinute((key.KeyId, Math.Min(key.RequestsPerMinute, key.OrganizationRequestsPerMinute))));
    private readonly PartitionedRateLimiter<KeySnapshot> _organizations =
        PartitionedRateLimiter.Create<KeySnapshot, (Guid, int)>(key => PerMinute((key.OrganizationId, key.OrganizationRequestsPerMinute)));
    private readonly PartitionedRateLimiter<KeySnapshot> _limiter;

    public ReplayLimiter() => _limiter = PartitionedRateLimiter.CreateChained(_keys, _organizations);

    private static RateLimitPartition<(Guid, int)> PerMinute((Guid Id, int Limit) partition)
    {
        var perMinute = Math.Max(1, partition.Limit);
        return RateLimitPartition.GetFixedWindowLimiter((partition.Id, perMinute), _ => new FixedWindowRateLimiterOptions
        {
            PermitLimit = perMinute, Window = TimeSpan.FromMinutes(1), QueueLimit = 0, AutoReplenishment = true,
        });
    }

    /// <summary>Null when the replay may be answered; else the seconds until the refusing window starts again.</summary>
    public int? Refuse(KeySnapshot key)
    {
        using var lease = _limiter.AttemptAcquire(key);
        if (lease.IsAcquired) return null;
        return lease.TryGetMetadata(MetadataName.RetryAfter, out var after) ? Math.Max(1, (int)Math.Ceiling(after.TotalSeconds)) : 60;
    }

    // The chain does not dispose the limiters it chains (each runs a replenishment timer).
    public void Dispose()
    {
        _limiter.Dispose();
        _keys.Dispose();
        _organizations.Dispose();
    }
}
