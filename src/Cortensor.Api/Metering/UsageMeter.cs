using System.Diagnostics.Metrics;
using System.Text.Json;
using Cortensor.Api.Infrastructure;
using Cortensor.Api.Inference;
using StackExchange.Redis;

namespace Cortensor.Api.Metering;

/// <summary>
/// The hot path's end: one XADD of the usage record to a Redis Stream (append-only persistence on),
/// from which <see cref="UsageWriter"/> batches into Postgres. If Redis cannot take it, the record goes
/// to a local spool file that is replayed into the stream once Redis is back; nothing is dropped.
/// </summary>
public sealed class UsageMeter(IConnectionMultiplexer redis, UsageSpool spool, ILogger<UsageMeter> log)
{
    public static readonly RedisKey Stream = "usage:events";
    public const string Field = "e";
    private static readonly Meter Meter = new(CortensorTelemetry.MeterName);
    private static readonly Counter<long> Recorded = Meter.CreateCounter<long>("cortensor.usage.recorded", description: "Usage records handed to the buffer");
    private static readonly Counter<long> Spooled = Meter.CreateCounter<long>("cortensor.usage.spooled", description: "Usage records spooled to disk while Redis was unavailable");

    /// <param name="via">A batch to ride along with (one round trip with the settlement), or null.</param>
    public async Task RecordAsync(UsageRecord record, IDatabaseAsync? via = null)
    {
        var payload = Payload(record);
        try
        {
            if (!redis.IsConnected) throw new RedisConnectionException(ConnectionFailureType.UnableToConnect, "Redis is disconnected");
            await (via ?? redis.GetDatabase()).StreamAddAsync(Stream, Field, payload);
            Recorded.Add(1);
        }
        catch (Exception ex) when (ex is RedisException or TimeoutException or ObjectDisposedException)
        {
            log.LogWarning("Usage buffer unavailable ({Error}); spooling {EventId} to disk", ex.Message, record.EventId);
            await spool.AppendAsync(payload);
            Spooled.Add(1);
        }
    }

    /// <summary>What goes into the stream (and the spool): the normalised record, so every value in it is storable.</summary>
    public static byte[] Payload(UsageRecord record) =>
        JsonSerializer.SerializeToUtf8Bytes(record.Normalised(), PortalJsonContext.Default.UsageRecord);
}
