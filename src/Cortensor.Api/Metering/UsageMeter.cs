using System.Diagnostics.Metrics;
using System.Globalization;
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
        catch (Exception ex) when (Outage.IsRedis(ex) || ex is ObjectDisposedException)
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
            reaped = (RedisKey)LimitKeys.Reaped(record.OrganizationId, record.EventId),
            // Noted only by the reaper's settlement (what it billed), for a late settlement of a request that was alive.
            reapedTokens = onlyIfHeld && !release ? string.Create(CultureInfo.InvariantCulture, $"{record.PromptTokens},{record.CompletionTokens}") : "",
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
        if (result.Resp2Type == ResultType.BulkString)
        {
            await SettleLateAsync(db, record, hold, actual, (string)result!);
            return true;
        }
        return (long)result == 1 || !onlyIfHeld;
    }

    /// <summary>
    /// The reaper settled this request's reservation as abandoned, billing <paramref name="note"/>'s tokens, while the
    /// request went on (its replica cut off from Redis, or past its deadline): the rest of what it used is billed now,
    /// as a correction record of its own (the reaper's record holds the request's event id in the ledger).
    /// </summary>
    private async Task SettleLateAsync(IDatabase db, UsageRecord record, Hold hold, long actual, string note)
    {
        int reapedPrompt = 0, reapedCompletion = 0;
        if (note.Split(',') is [var p, var c])
        {
            _ = int.TryParse(p, CultureInfo.InvariantCulture, out reapedPrompt);
            _ = int.TryParse(c, CultureInfo.InvariantCulture, out reapedCompletion);
        }
        var reapedCost = hold.Bill(reapedPrompt, reapedCompletion);
        var extra = Math.Max(0, actual - hold.Charge(reapedPrompt, reapedCompletion, reapedCost));
        var budgetExtra = Math.Max(0, Math.Min(hold.BudgetUnits, Pricing.ToUnits(record.Cost)) - Math.Min(hold.BudgetUnits, Pricing.ToUnits(reapedCost)));
        // The correction's tokens are the difference in the request's total (never below nothing): the ledger's token sum,
        // a quota's counter and a key budget's tokens then agree. Split per field, a prompt the router counted lower than
        // the progress report did would add completion tokens the request never used.
        var tokensExtra = Math.Max(0, record.PromptTokens + record.CompletionTokens - reapedPrompt - reapedCompletion);
        var promptExtra = Math.Clamp(record.PromptTokens - reapedPrompt, 0, tokensExtra);
        var correction = record with
        {
            EventId = SortableId.New("evt_"),
            PromptTokens = promptExtra,
            CompletionTokens = tokensExtra - promptExtra,
            // On credits the ledger debits exactly what the counter loses; a quota's cost is for the record only.
            Cost = hold.Credits ? Pricing.FromUnits(extra) : Math.Max(0m, record.Cost - reapedCost),
            Hold = null,
        };
        var filed = await db.ScriptEvaluateAsync(AdmissionScripts.SettleLate, new
        {
            reaped = (RedisKey)LimitKeys.Reaped(record.OrganizationId, record.EventId),
            id = record.EventId,
            note,
            counter = (RedisKey)hold.Counter,
            credits = hold.Credits ? "1" : "0",
            extra,
            budgeted = hold.KeyBudget is null ? "0" : "1",
            keyBudget = (RedisKey)(hold.KeyBudget ?? "kbudget:none"),
            budgetExtra,
            tokensExtra,
            unbilled = (RedisKey)LimitKeys.Unbilled(hold.Counter),
            version = (RedisKey)LimitKeys.Version(record.OrganizationId),
            correction = correction.EventId,
            stream = Stream,
            field = Field,
            pendingField = PendingField,
            payload = Payload(correction),
        });
        if ((long)filed == 1) Log.SettledLate(log, record.EventId, correction.EventId, correction.PromptTokens, correction.CompletionTokens);
    }

    private static partial class Log
    {
        [LoggerMessage(LogLevel.Warning, "Usage buffer unavailable; spooling {EventId} to disk")]
        public static partial void Spooling(ILogger logger, string eventId, Exception exception);

        [LoggerMessage(LogLevel.Warning, "Request {EventId} ended after the reaper settled it as abandoned; billed the rest ({Prompt}+{Completion} tokens) as {CorrectionId}")]
        public static partial void SettledLate(ILogger logger, string eventId, string correctionId, int prompt, int completion);
    }
}
