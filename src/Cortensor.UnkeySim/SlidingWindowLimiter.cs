namespace Cortensor.UnkeySim;

/// <summary>
/// Unkey's rate-limit algorithm: a sliding window approximated from the current fixed window and the one before it,
/// weighted by how much of the previous window still overlaps the sliding one. One instance counts every
/// namespace and identifier (key rate limits use the key id as their identifier).
/// </summary>
public sealed class SlidingWindowLimiter(TimeProvider clock)
{
    private readonly Lock _gate = new();
    private readonly Dictionary<(string Scope, long Duration, long Window), long> _counts = [];

    public sealed record Outcome(bool Success, long Limit, long Remaining, long ResetAt);

    public Outcome Take(string scope, long limit, long duration, long cost)
    {
        var now = clock.GetUtcNow().ToUnixTimeMilliseconds();
        var window = now / duration;
        var elapsed = (double)(now - window * duration) / duration;
        lock (_gate)
        {
            var current = _counts.GetValueOrDefault((scope, duration, window));
            var previous = _counts.GetValueOrDefault((scope, duration, window - 1));
            var used = current + (long)Math.Floor(previous * (1 - elapsed));
            var success = used + cost <= limit;
            if (success && cost > 0)
            {
                _counts[(scope, duration, window)] = current + cost;
                used += cost;
                if (_counts.Count > 100_000) Sweep(now);
            }
            return new Outcome(success, limit, Math.Max(0, limit - used), (window + 1) * duration);
        }
    }

    /// <summary>Forgets windows that can no longer weigh on any answer.</summary>
    private void Sweep(long now)
    {
        foreach (var stale in _counts.Keys.Where(k => (k.Window + 2) * k.Duration <= now).ToList()) _counts.Remove(stale);
    }
}
