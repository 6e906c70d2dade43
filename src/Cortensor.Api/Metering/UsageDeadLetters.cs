using System.Diagnostics.Metrics;
using Cortensor.Api.Infrastructure;
using StackExchange.Redis;

namespace Cortensor.Api.Metering;

/// <summary>
/// Usage records the ledger could not take: unreadable entries, torn spool lines and records Postgres refused
/// even after normalisation. They are set aside in their own stream, with the error and the record exactly as
/// it was, so they never block the records behind them and an operator can decide what to do with each
/// (docs/operations.md). Nothing here trims or expires: a dead letter is money until someone has looked at it.
/// </summary>
public static class UsageDeadLetters
{
    public static readonly RedisKey Stream = "usage:dead-letters";
    private const int MaxErrorLength = 1000;

    private static readonly Meter Meter = new(CortensorTelemetry.MeterName);
    private static readonly Counter<long> Counted = Meter.CreateCounter<long>("cortensor.usage.dead_letters",
        description: "Usage records set aside in the dead-letter stream");

    /// <summary>A record set aside: <paramref name="source"/> is where it came from (a stream entry id or a spool file).</summary>
    /// <param name="Cause">What refused it, for the log (not stored).</param>
    public sealed record DeadLetter(string Source, string Error, RedisValue Record, Exception? Cause = null);

    /// <summary>Queues the XADDs on a batch or transaction (nothing is sent until it executes).</summary>
    public static Task Add(IDatabaseAsync db, DeadLetter letter, DateTimeOffset at) =>
        db.StreamAddAsync(Stream,
        [
            new NameValueEntry("source", letter.Source),
            new NameValueEntry("at", at.ToUnixTimeMilliseconds()),
            new NameValueEntry("error", LedgerText.Text(letter.Error, MaxErrorLength)),
            new NameValueEntry("record", letter.Record),
        ]);

    public static void Count(int letters, string origin)
    {
        if (letters > 0) Counted.Add(letters, new KeyValuePair<string, object?>("origin", origin));
    }

    public sealed record Entry(string Id, DateTimeOffset At, string Source, string Error, string Record);

    /// <summary>Newest first, <paramref name="limit"/> entries strictly older than <paramref name="before"/> (a stream id) if given.</summary>
    public static async Task<Entry[]> ListAsync(IDatabase db, string? before, int limit)
    {
        var entries = await db.StreamRangeAsync(Stream, minId: "-", maxId: before is null ? "+" : "(" + before, count: limit, messageOrder: Order.Descending);
        return entries.Select(e => new Entry(e.Id!, DateTimeOffset.FromUnixTimeMilliseconds((long)e["at"]), e["source"]!, e["error"]!, e["record"]!)).ToArray();
    }
}
