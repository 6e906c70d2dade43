using Microsoft.Extensions.Diagnostics.HealthChecks;
using StackExchange.Redis;

namespace Cortensor.Api.Metering;

/// <summary>
/// The usage pipeline in /health: how much usage waits for the ledger and for how long, and how much was
/// set aside. Degraded, never Unhealthy: a replica whose ledger lags still serves and loses nothing, so the
/// platform must not pull it; operators are paged by the alert rules instead.
/// </summary>
public sealed class UsagePipelineHealthCheck(IConnectionMultiplexer redis) : IHealthCheck
{
    public const long BacklogBound = 500_000;
    public static readonly TimeSpan AgeBound = TimeSpan.FromMinutes(5);

    public async Task<HealthCheckResult> CheckHealthAsync(HealthCheckContext context, CancellationToken cancellationToken = default)
    {
        if (!redis.IsConnected) return HealthCheckResult.Degraded("Redis is unreachable: usage goes to the local spool until it is back.");
        try
        {
            // The health service's timeout cancels the token; the reads themselves are bounded by the client's own.
            return await MeasureAsync(redis.GetDatabase()).WaitAsync(cancellationToken);
        }
        catch (Exception ex) when (ex is RedisException or TimeoutException)
        {
            // Connected but not answering (a slow or paused Redis): said in the Portal's words, without the client's message
            // (it names the server), and as Degraded whatever the registration's failure status. Redis's own check reports Redis.
            return HealthCheckResult.Degraded("Redis did not answer the usage pipeline's reads: usage goes to the local spool if it stays away.");
        }
    }

    private static async Task<HealthCheckResult> MeasureAsync(IDatabase db)
    {
        var backlog = await db.StreamLengthAsync(UsageMeter.Stream);
        var oldest = backlog == 0 ? [] : await db.StreamRangeAsync(UsageMeter.Stream, "-", "+", 1);
        var age = oldest.Length == 0 ? TimeSpan.Zero
            : DateTimeOffset.UtcNow - DateTimeOffset.FromUnixTimeMilliseconds(long.Parse(oldest[0].Id.ToString().Split('-')[0], System.Globalization.CultureInfo.InvariantCulture));
        var deadLetters = await db.StreamLengthAsync(UsageDeadLetters.Stream);
        var data = new Dictionary<string, object> { ["backlog"] = backlog, ["oldest_age_seconds"] = (long)age.TotalSeconds, ["dead_letters"] = deadLetters };
        var problems = new List<string>();
        if (backlog > BacklogBound) problems.Add($"{backlog} usage events wait for the ledger");
        if (age > AgeBound) problems.Add($"the oldest usage event has waited {age.TotalSeconds:0} s");
        // Dead letters never expire, so they are reported, not held against the replica: the alert rules page on new ones.
        var setAside = deadLetters == 0 ? "" : $"; {deadLetters} record(s) set aside (GET /admin/usage/dead-letters)";
        return problems.Count == 0
            ? HealthCheckResult.Healthy($"{backlog} usage event(s) waiting, the oldest {age.TotalSeconds:0} s{setAside}", data)
            : HealthCheckResult.Degraded(string.Join("; ", problems), data: data);
    }
}
