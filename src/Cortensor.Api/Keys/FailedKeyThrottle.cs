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

    public FailedKeyThrottle(IOptions<KeyCheckOptions> options)
    {
        var limit = options.Value.FailedAuthenticationsPerMinute;
        _failures = PartitionedRateLimiter.Create<string, string>(client => RateLimitPartition.GetFixedWindowLimiter(client,
            _ => new FixedWindowRateLimiterOptions { PermitLimit = limit, Window = Window, QueueLimit = 0, AutoReplenishment = true }));
    }

    public bool IsThrottled(string client) => _failures.GetStatistics(client) is { CurrentAvailablePermits: <= 0 };

    public void RecordFailure(string client)
    {
        using var _ = _failures.AttemptAcquire(client);
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
