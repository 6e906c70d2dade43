using System.Collections.Concurrent;
using System.Net;
using System.Net.Sockets;
using System.Threading.RateLimiting;
using Microsoft.Extensions.Options;

namespace Cortensor.Api.Keys;

/// <summary>Settings of section <c>Keys</c>.</summary>
public sealed class KeyCheckOptions
{
    public const string Section = "Keys";
    /// <summary>Unknown or malformed keys one client address may present per minute (per replica) before it is throttled.</summary>
    public int FailedAuthenticationsPerMinute { get; set; } = 20;
}

/// <summary>
/// Failed /v1 authentications per client address (an IPv6 client by its /64). A throttled address gets 429
/// for every key that is not already cached, so spraying made-up keys costs no Postgres query and
/// enumerating is pointless; keys already known (memory or Redis) keep working for a shared address.
/// Counted per replica, in memory: the check costs nothing on the hot path, and N replicas allow at most
/// N times the limit. System.Threading.RateLimiting does the windowing and drops idle addresses.
/// </summary>
public sealed class FailedKeyThrottle : IDisposable
{
    public static readonly TimeSpan Window = TimeSpan.FromMinutes(1);
    private readonly PartitionedRateLimiter<string> _failures;
    private readonly TimeProvider _clock;
    /// <summary>
    /// Addresses past their limit, until when. Every request reads it, so it is a lock-free dictionary
    /// lookup; the rate limiter (which takes a lock) is only touched when a key fails.
    /// </summary>
    private readonly ConcurrentDictionary<string, DateTimeOffset> _throttledUntil = new(StringComparer.Ordinal);
    private long _recorded;

    public FailedKeyThrottle(IOptions<KeyCheckOptions> options, TimeProvider clock)
    {
        _clock = clock;
        var limit = options.Value.FailedAuthenticationsPerMinute;
        _failures = PartitionedRateLimiter.Create<string, string>(client => RateLimitPartition.GetFixedWindowLimiter(client,
            _ => new FixedWindowRateLimiterOptions { PermitLimit = limit, Window = Window, QueueLimit = 0, AutoReplenishment = true }));
    }

    /// <summary>Whether <paramref name="client"/> is throttled, and for how many more seconds.</summary>
    public bool IsThrottled(string client, out int retryAfterSeconds)
    {
        retryAfterSeconds = 0;
        if (!_throttledUntil.TryGetValue(client, out var until)) return false;
        var left = until - _clock.GetUtcNow();
        if (left <= TimeSpan.Zero) return false;
        retryAfterSeconds = Math.Max(1, (int)Math.Ceiling(left.TotalSeconds));
        return true;
    }

    public void RecordFailure(string client)
    {
        using var lease = _failures.AttemptAcquire(client);
        var now = _clock.GetUtcNow();
        // The failure that used the last permit throttles already: the next unknown key is not looked up.
        if (!lease.IsAcquired)
            _throttledUntil[client] = now + (lease.TryGetMetadata(MetadataName.RetryAfter, out var retryAfter) ? retryAfter : Window);
        else if (_failures.GetStatistics(client) is { CurrentAvailablePermits: <= 0 })
            _throttledUntil[client] = now + Window;
        // Now and then, forget addresses whose throttle has run out (enumerating takes no lock).
        if (Interlocked.Increment(ref _recorded) % 1024 == 0)
            foreach (var (address, until) in _throttledUntil)
                if (until <= now) _throttledUntil.TryRemove(address, out _);
    }

    public static string ClientOf(HttpContext http)
    {
        var address = http.Connection.RemoteIpAddress;
        if (address is null) return "unknown";
        if (address.IsIPv4MappedToIPv6) address = address.MapToIPv4();
        if (address.AddressFamily != AddressFamily.InterNetworkV6) return address.ToString();
        // One IPv6 subscriber usually holds a whole /64: count the prefix, not each address.
        var bytes = address.GetAddressBytes();
        Array.Clear(bytes, 8, 8);
        return new IPAddress(bytes) + "/64";
    }

    public void Dispose() => _failures.Dispose();
}
