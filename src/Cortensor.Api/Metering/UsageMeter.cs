using System.Diagnostics.Metrics;
using System.Text.Json;
using Cortensor.Api.Infrastructure;
using Cortensor.Api.Inference;
using Cortensor.Api.Limits;
using StackExchange.Redis;

namespace Cortensor.Api.Metering;

/// <summary>
/// The hot path's end. A record that settles a reservation goes through one atomic script that gives
/// back what the request did not use and appends the record to the Redis Stream `usage:events`
/// (exactly once per reservation, whoever settles first); any other record is appended as is.
/// <see cref="UsageWriter"/> batches the stream into Postgres. If Redis cannot take it, the record
/// (with its reservation) goes to the local spool and is settled the same way once Redis is back.
/// </summary>
public sealed partial class UsageMeter(IConnectionMultiplexer redis, UsageSpool spool, ILogger<UsageMeter> log)
{
    public static readonly RedisKey Stream = "usage:events";
    public const string Field = "e";
    /// <summary>
    /// The entry's second field, when its charge is pending for the ledger: the key of the pending charges
    /// (<c>unbilled:…</c>) that holds it, for the writer to forget the charge once the ledger has it.
    /// </summary>
    public const string PendingField = "u";
    private static readonly Meter Meter = new(CortensorTelemetry.MeterName);
    private static readonly Counter<long> Recorded = Meter.CreateCounter<long>("cortensor.usage.recorded", description: "Usage records handed to the buffer");
    private static readonly Counter<long> Spooled = Meter.CreateCounter<long>("cortensor.usage.spooled", description: "Usage records spooled to disk while Redis was unavailable");

    /// <param name="onlyIfHeld">The reaper's call: add the record only if its reservation is still open.</param>
    /// <returns>False only when <paramref name="onlyIfHeld"/> found the reservation already settled.</returns>
    public async Task<bool> RecordAsync(UsageRecord record, bool onlyIfHeld = false)
    {
        var payload = Payload(record);
        // The request's "settle" span is the settlement queue's; a background settlement (the reaper) makes none.
        try
        {
            if (!redis.IsConnected) throw new RedisConnectionException(ConnectionFailureType.UnableToConnect, "Redis is disconnected");
            await SendAsync(record, payload, onlyIfHeld);
            Recorded.Add(1);
            return true;
        }
        catch (Exception ex) when (ex is RedisException or TimeoutException or ObjectDisposedException)
        {
            if (onlyIfHeld) throw;
            Log.Spooling(log, record.EventId, ex);
            await spool.AppendAsync(payload);
            Spooled.Add(1);
            return true;
        }
    }

    /// <summary>
    /// Gives back a hold that may or may not exist (its admission timed out after Redis may have run
    /// it) without filing a record: the request was admitted, and is billed, on this replica alone.
    /// </summary>
    public async Task ReleaseAsync(UsageRecord draft)
    {
        var released = draft with { PromptTokens = 0, CompletionTokens = 0, Cost = 0m };
        await SendAsync(released, Payload(released), onlyIfHeld: true, release: true);
    }

    /// <summary>Tokens streamed so far, for the reaper should this replica die mid-request (best effort, never waited on).</summary>
    public void ReportProgress(Guid org, string eventId, int promptTokens, int completionTokens)
    {
        if (!redis.IsConnected) return;
        redis.GetDatabase().HashSet(LimitKeys.Progress(org), eventId, $"{promptTokens},{completionTokens}", flags: CommandFlags.FireAndForget);
    }

    /// <summary>Replays a spooled record: its reservation, if any, is settled now (once).</summary>
    public Task ReplayAsync(UsageRecord record) => SendAsync(record, Payload(record), onlyIfHeld: false);

    /// <summary>What goes into the stream (and the spool): the normalised record, so every value in it is storable.</summary>
    public static byte[] Payload(UsageRecord record) =>
        JsonSerializer.SerializeToUtf8Bytes(record.Normalised(), PortalJsonContext.Default.UsageRecord);

    private async Task<bool> SendAsync(UsageRecord record, byte[] payload, bool onlyIfHeld, bool release = false)
    {
        var db = redis.GetDatabase();
        if (record.Hold is not { } hold)
        {
            await db.StreamAddAsync(Stream, Field, payload);
            return true;
        }
        var actual = hold.Charge(record.PromptTokens, record.CompletionTokens, record.Cost);
        var result = await db.ScriptEvaluateAsync(AdmissionScripts.Settle, new
        {
            reservations = (RedisKey)LimitKeys.Reservations(record.OrganizationId),
            progress = (RedisKey)LimitKeys.Progress(record.OrganizationId),
            due = (RedisKey)LimitKeys.Due,
            replicaDue = (RedisKey)LimitKeys.ReplicaDue(hold.Replica),
            counter = (RedisKey)hold.Counter,
            heldKey = (RedisKey)LimitKeys.Held(hold.Counter),
            unbilled = (RedisKey)LimitKeys.Unbilled(hold.Counter),
            version = (RedisKey)LimitKeys.Version(record.OrganizationId),
            keyTokens = (RedisKey)LimitKeys.KeyTokens(record.ApiKeyId, hold.Window),
            orgTokens = (RedisKey)LimitKeys.OrgTokens(record.OrganizationId, hold.Window),
            stream = Stream,
            id = record.EventId,
            dueMember = LimitKeys.DueMember(record.OrganizationId, record.EventId),
            amount = hold.Amount,
            actual,
            credits = hold.Credits ? "1" : "0",
            tokenDelta = record.PromptTokens + record.CompletionTokens - hold.Tokens,
            onlyIfHeld = onlyIfHeld ? "1" : "0",
            budgeted = hold.KeyBudget is null ? "0" : "1",
            keyBudget = (RedisKey)(hold.KeyBudget ?? "kbudget:none"),
            budgetUnits = hold.BudgetUnits,
            // The same figure as the ledger's: the record's cost, in credit units (never above what was held).
            budgetActual = Math.Min(hold.BudgetUnits, Pricing.ToUnits(record.Cost)),
            file = release ? "0" : "1",
            field = Field,
            pendingField = PendingField,
            payload,
        });
        return (long)result == 1 || !onlyIfHeld;
    }

    private static partial class Log
    {
        [LoggerMessage(LogLevel.Warning, "Usage buffer unavailable; spooling {EventId} to disk")]
        public static partial void Spooling(ILogger logger, string eventId, Exception exception);
    }
}
