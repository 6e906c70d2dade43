using Microsoft.EntityFrameworkCore;
using Microsoft.EntityFrameworkCore.Storage;
using Npgsql;
using StackExchange.Redis;

namespace Cortensor.Api.Infrastructure;

/// <summary>
/// What counts as Redis or Postgres being away, in one place. StackExchange.Redis fails the commands of a socket it has
/// just found dead (a pause of about 9 s) with a TaskCanceledException that no token of ours asked for, and EF Core
/// wraps Postgres's failures in a RetryLimitExceededException once its retries are spent (about a minute down). Taken
/// for bugs, either stopped a background loop and with it the whole process, dropped a settlement that should have been
/// spooled, or answered a request 500 where it should have been admitted by this replica alone.
/// </summary>
public static class Outage
{
    /// <summary>Redis is away (or too slow); <paramref name="ct"/> is the caller's own token, whose cancellation is not an outage.</summary>
    public static bool IsRedis(Exception ex, CancellationToken ct = default) =>
        ex is RedisException or TimeoutException || (ex is OperationCanceledException && !ct.IsCancellationRequested)
        // The socket's reader completed under a command as the library dropped a dead connection (System.IO.Pipelines').
        || (ex is InvalidOperationException && ex.StackTrace?.Contains("StackExchange.Redis.", StringComparison.Ordinal) == true);

    /// <summary>Postgres is away (or too slow); <paramref name="ct"/> is the caller's own token.</summary>
    public static bool IsPostgres(Exception ex, CancellationToken ct = default) =>
        ex is NpgsqlException or TimeoutException or RetryLimitExceededException
        || ex is DbUpdateException { InnerException: NpgsqlException }
        || (ex is OperationCanceledException && !ct.IsCancellationRequested);
}

/// <summary>
/// The last line of every background loop: an exception no catch foresaw is logged and the loop goes on at its next
/// turn. Left to escape, it stopped the host (the default BackgroundServiceExceptionBehavior), and every customer got
/// "connection refused" until someone restarted the process.
/// </summary>
public static partial class BackgroundLoop
{
    [LoggerMessage(EventId = 9100, Level = LogLevel.Error, Message = "The background loop {Loop} failed; it goes on at its next turn")]
    public static partial void Failed(ILogger logger, string loop, Exception exception);
}
