using Microsoft.Extensions.Options;
using System.Diagnostics;
using System.Diagnostics.Metrics;
using System.Text.Json;
using Cortensor.Api.Data;
using Cortensor.Api.Infrastructure;
using Cortensor.Api.Inference;
using Npgsql;
using NpgsqlTypes;
using StackExchange.Redis;

namespace Cortensor.Api.Metering;

/// <summary>
/// Called after a batch of usage is committed to the ledger and before its entries are acknowledged. A hook that
/// throws leaves the entries pending: the batch is written again (idempotently) and the hook called again, so it
/// must be idempotent too.
/// </summary>
public interface IUsageCommitted
{
    Task CommittedAsync(IReadOnlyList<UsageRecord> records, CancellationToken ct);
}

/// <summary>
/// Drains the usage stream into Postgres in batches, off the hot path. One statement per batch
/// inserts the usage events, the request log, the ledger debits and the daily roll-up, each only for
/// events not seen before, so a batch retried after a crash or an outage lands exactly once.
/// Entries are acknowledged only after the commit; a dead writer's pending entries are claimed.
/// A record the database refuses is found by splitting the batch and set aside as a dead letter
/// (<see cref="UsageDeadLetters"/>): one bad record never holds back the others.
/// </summary>
public sealed partial class UsageWriter(IConnectionMultiplexer redis, NpgsqlDataSource postgres, IOptions<MeteringOptions> options, ILogger<UsageWriter> log,
    int index = 0, IUsageCommitted? committed = null) : BackgroundService
{
    public const string Group = "ledger-writers";
    private const int BatchSize = 2000;
    /// <summary>A batch below this is light load, and the writer lingers before its next read.</summary>
    private const int SmallBatch = 500;
    private readonly TimeSpan _linger = TimeSpan.FromMilliseconds(options.Value.WriterLingerMilliseconds);
    /// <summary>How long another writer's entries stay unacknowledged before they are taken over.</summary>
    private readonly TimeSpan _claimIdle = TimeSpan.FromSeconds(options.Value.ClaimIdleSeconds);
    private readonly string _consumer = $"{Environment.MachineName}-{Environment.ProcessId}-{index}";

    private static readonly Meter Meter = new(CortensorTelemetry.MeterName);
    private static readonly Counter<long> Written = Meter.CreateCounter<long>("cortensor.usage.written", description: "Usage events committed to Postgres");
    private static readonly Counter<long> Failures = Meter.CreateCounter<long>("cortensor.usage.write_failures", description: "Usage batches that failed to commit (retried, or split to find a refused record)");
    private static readonly Histogram<double> Lag = Meter.CreateHistogram<double>("cortensor.usage.write_lag", "s", "Time from request end to ledger commit");
    private long _backlog, _pending, _oldestAgeMs;

    public UsageWriter Observe()
    {
        if (index == 0)
        {
            Meter.CreateObservableGauge("cortensor.usage.backlog", () => Interlocked.Read(ref _backlog), description: "Usage events in the buffer, not yet in the ledger");
            Meter.CreateObservableGauge("cortensor.usage.pending", () => Interlocked.Read(ref _pending), description: "Usage events read by a writer and not yet acknowledged");
            Meter.CreateObservableGauge("cortensor.usage.oldest_age", () => Interlocked.Read(ref _oldestAgeMs) / 1000.0, "s",
                "Age of the oldest usage event not yet in the ledger: the write lag, also while the writers are stalled");
        }
        return this;
    }

    protected override Task ExecuteAsync(CancellationToken stoppingToken) =>
        index == 0 ? Task.WhenAll(DrainAsync(stoppingToken), ObserveBacklogAsync(stoppingToken)) : DrainAsync(stoppingToken);

    private async Task DrainAsync(CancellationToken stoppingToken)
    {
        var delay = TimeSpan.FromMilliseconds(100);
        var lastClaim = Stopwatch.GetTimestamp();
        var ownPendingDone = false;
        var groupReady = false;
        while (!stoppingToken.IsCancellationRequested)
        {
            try
            {
                if (!groupReady) groupReady = await EnsureGroupAsync();
                var db = redis.GetDatabase();
                StreamEntry[] entries;
                if (!ownPendingDone)
                {
                    // After a restart, this consumer's unacknowledged entries come first.
                    entries = await db.StreamReadGroupAsync(UsageMeter.Stream, Group, _consumer, "0", BatchSize);
                    ownPendingDone = entries.Length == 0;
                }
                else if (Stopwatch.GetElapsedTime(lastClaim) > _claimIdle / 3)
                {
                    lastClaim = Stopwatch.GetTimestamp();
                    var claimed = await db.StreamAutoClaimAsync(UsageMeter.Stream, Group, _consumer, (long)_claimIdle.TotalMilliseconds, "0-0", BatchSize);
                    entries = claimed.ClaimedEntries;
                }
                else
                {
                    entries = await db.StreamReadGroupAsync(UsageMeter.Stream, Group, _consumer, ">", BatchSize);
                }

                if (entries.Length == 0)
                {
                    await Task.Delay(TimeSpan.FromMilliseconds(50), stoppingToken);
                    continue;
                }

                using (var work = BackgroundWork.Start("usage.write"))
                {
                    work?.SetTag("cortensor.entries", entries.Length);
                    await ProcessAsync(db, entries, stoppingToken);
                }
                delay = TimeSpan.FromMilliseconds(100);
                // Under light load every read finds a request or two, and each becomes a commit (a WAL flush) taking
                // CPU from the requests themselves; waiting a moment turns them into one. A backlog is read at once.
                if (entries.Length < SmallBatch && _linger > TimeSpan.Zero) await Task.Delay(_linger, stoppingToken);
            }
            catch (OperationCanceledException) when (stoppingToken.IsCancellationRequested)
            {
                return;
            }
            catch (Exception ex) when (!stoppingToken.IsCancellationRequested)
            {
                // An outage, not a bad record (those are set aside below): entries stay pending; they are retried
                // here or claimed by another writer. Anything unexpected is retried too: a writer that stops stops billing.
                var outage = ex is RedisException or TimeoutException or NpgsqlException or OperationCanceledException;
                Failures.Add(1, new KeyValuePair<string, object?>("reason", outage ? "unavailable" : "error"));
                if (outage) Log.WritePaused(log, delay, ex);
                else Log.WriteFailed(log, delay, ex);
                await Task.Delay(delay, stoppingToken).ContinueWith(_ => { }, TaskScheduler.Default);
                delay = TimeSpan.FromTicks(Math.Min(delay.Ticks * 2, TimeSpan.FromSeconds(5).Ticks));
                ownPendingDone = false;
                groupReady = false; // Redis may have come back empty (no persistence): recreate the group
            }
        }
    }

    /// <summary>
    /// One batch: parse and normalise, commit what the ledger takes, set aside what it refuses, then acknowledge
    /// and delete every entry, forget the committed charges and record the dead letters in one Redis transaction.
    /// </summary>
    private async Task ProcessAsync(IDatabase db, StreamEntry[] entries, CancellationToken ct)
    {
        var dead = new List<UsageDeadLetters.DeadLetter>();
        var good = new List<(RedisValue Id, UsageRecord Record)>(entries.Length);
        var pendingIn = new Dictionary<string, RedisKey>(entries.Length);
        foreach (var entry in entries)
        {
            // An entry deleted while pending comes back as an id without fields: nothing to write, only to acknowledge.
            if (entry.IsNull || entry.Values is not { Length: > 0 }) continue;
            var value = entry[UsageMeter.Field];
            if (Read(value, out var record, out var error) is { } why)
            {
                // Without the usage field, the entry's fields are what an operator gets to see.
                var kept = value.IsNull ? (RedisValue)string.Join('\n', entry.Values.Select(v => $"{v.Name}={v.Value}")) : value;
                dead.Add(new(entry.Id!, error is null ? why : $"{why}: {error.Message}", kept, error));
            }
            else
            {
                good.Add((entry.Id, record!));
                if (entry[UsageMeter.PendingField] is { IsNullOrEmpty: false } pendingKey) pendingIn[record!.EventId] = (string)pendingKey!;
            }
        }

        var written = await CommitAsync(good, dead, ct);
        if (written.Count > 0 && committed is not null) await committed.CommittedAsync(written, ct);

        var ids = entries.Select(e => e.Id).ToArray();
        var transaction = db.CreateTransaction();
        var now = DateTimeOffset.UtcNow;
        foreach (var letter in dead) _ = UsageDeadLetters.Add(transaction, letter, now);
        // Charges the ledger now has are no longer pending. Left for reconciliation to forget, they piled up to a
        // minute of requests per organisation, and reading them held Redis (and every request) for up to 0.7 s.
        foreach (var charges in written.Where(r => pendingIn.ContainsKey(r.EventId)).GroupBy(r => pendingIn[r.EventId]))
            _ = transaction.HashDeleteAsync(charges.Key, charges.Select(r => (RedisValue)r.EventId).Distinct().ToArray());
        _ = transaction.StreamAcknowledgeAsync(UsageMeter.Stream, Group, ids);
        _ = transaction.StreamDeleteAsync(UsageMeter.Stream, ids);
        // A transaction: a dead letter is never recorded without its entry leaving the stream, nor the reverse.
        if (!await transaction.ExecuteAsync()) throw new RedisException("Usage acknowledgement transaction was not applied");

        // Logged once, when set aside for good (a batch retried after an outage would otherwise log it again).
        foreach (var letter in dead) Log.DeadLetter(log, letter.Source, letter.Error, letter.Cause);
        UsageDeadLetters.Count(dead.Count, "writer");
        Written.Add(written.Count);
        foreach (var r in written) Lag.Record((now - r.CreatedAt).TotalSeconds);
    }

    /// <summary>Why an entry can't be written (null when it can), with the record normalised for the ledger.</summary>
    private static string? Read(RedisValue value, out UsageRecord? record, out Exception? error)
    {
        (record, error) = (null, null);
        if (value.IsNull) return "entry has no usage record";
        try
        {
            record = JsonSerializer.Deserialize((byte[])value!, PortalJsonContext.Default.UsageRecord);
        }
        catch (Exception ex) when (ex is JsonException or InvalidOperationException or ArgumentException or NotSupportedException)
        {
            error = ex;
            return "unreadable usage record";
        }
        if (record is null) return "entry has no usage record";
        record = record.Normalised();
        return Refusal(record);
    }

    /// <summary>Values normalisation cannot repair: without an event id a record can't be written exactly once, and a negative amount would credit.</summary>
    private static string? Refusal(UsageRecord r) =>
        r.EventId.Length == 0 ? "usage record without an event id"
        : r.PromptTokens < 0 || r.CompletionTokens < 0 || r.Cost < 0 ? "usage record with a negative amount"
        : r.LatencyMs < 0 || r.TimeToFirstTokenMs < 0 || r.Status is < 100 or > 999 ? "usage record with an impossible status or timing"
        : null;

    /// <summary>
    /// Writes the records; when Postgres refuses the batch for its data (not for an outage), splits it in halves until
    /// the refused records stand alone, commits the rest and adds the refused ones to <paramref name="dead"/>.
    /// Returns the records now in the ledger.
    /// </summary>
    private async Task<List<UsageRecord>> CommitAsync(List<(RedisValue Id, UsageRecord Record)> batch, List<UsageDeadLetters.DeadLetter> dead, CancellationToken ct)
    {
        var written = new List<UsageRecord>(batch.Count);
        var parts = new Stack<List<(RedisValue Id, UsageRecord Record)>>();
        parts.Push(batch);
        while (parts.TryPop(out var part))
        {
            if (part.Count == 0) continue;
            try
            {
                await WriteAsync(part.Select(p => p.Record).ToList(), ct);
                written.AddRange(part.Select(p => p.Record));
            }
            catch (Exception ex) when (IsRefusal(ex))
            {
                Failures.Add(1, new KeyValuePair<string, object?>("reason", "refused"));
                if (part.Count == 1)
                {
                    var (id, record) = part[0];
                    var reason = ex is PostgresException pg ? $"{pg.SqlState}: {pg.MessageText}" : $"{ex.GetType().Name}: {ex.Message}";
                    dead.Add(new(id!, reason, UsageMeter.Payload(record), ex));
                    continue;
                }
                var half = part.Count / 2;
                parts.Push(part[half..]);
                parts.Push(part[..half]);
            }
        }
        return written;
    }

    /// <summary>
    /// Refused for what is in it: data exceptions (22), integrity violations (23), program limits (54, e.g. a value too
    /// large to index). Everything else (connections, timeouts, shutdown, serialisation failures, deadlocks) is an outage.
    /// The driver refusing text it cannot encode (an ArgumentException) is a refusal too. Errors every record would hit
    /// (a missing column, a type mismatch: classes 42 and the driver's cast errors) are not: they wait for a fix.
    /// </summary>
    internal static bool IsRefusal(Exception ex) => ex switch
    {
        PostgresException pg => pg.SqlState.Length == 5 && pg.SqlState[..2] is "22" or "23" or "54",
        ArgumentException => true,
        _ => false,
    };

    /// <summary>Keeps the backlog gauges current whatever the writers are doing, stalled included.</summary>
    private async Task ObserveBacklogAsync(CancellationToken stoppingToken)
    {
        using var timer = new PeriodicTimer(TimeSpan.FromSeconds(1));
        do
        {
            try
            {
                var db = redis.GetDatabase();
                Interlocked.Exchange(ref _backlog, await db.StreamLengthAsync(UsageMeter.Stream));
                // Entries leave the stream when written, so the first one is the oldest not yet in the ledger.
                var first = await db.StreamRangeAsync(UsageMeter.Stream, "-", "+", count: 1);
                Interlocked.Exchange(ref _oldestAgeMs, first.Length == 0 ? 0 : Math.Max(0, DateTimeOffset.UtcNow.ToUnixTimeMilliseconds() - IdTime(first[0].Id)));
                if (await db.KeyExistsAsync(UsageMeter.Stream))
                {
                    var groups = await db.StreamGroupInfoAsync(UsageMeter.Stream);
                    Interlocked.Exchange(ref _pending, groups.FirstOrDefault(g => g.Name == Group).PendingMessageCount);
                }
            }
            catch (Exception ex) when (Outage.IsRedis(ex, stoppingToken))
            {
                // The gauges keep their last values; the write loop reports the outage.
            }
            catch (Exception ex) when (!stoppingToken.IsCancellationRequested)
            {
                BackgroundLoop.Failed(log, "usage backlog gauges", ex);
            }
        }
        while (await timer.WaitForNextTickAsync(stoppingToken).AsTask().ContinueWith(t => !t.IsCanceled && t.Result, TaskScheduler.Default));
    }

    private static long IdTime(RedisValue id)
    {
        var text = id.ToString();
        var dash = text.IndexOf('-');
        return long.TryParse(dash < 0 ? text : text[..dash], out var ms) ? ms : DateTimeOffset.UtcNow.ToUnixTimeMilliseconds();
    }

    private async Task<bool> EnsureGroupAsync()
    {
        try
        {
            await redis.GetDatabase().StreamCreateConsumerGroupAsync(UsageMeter.Stream, Group, "0-0", createStream: true);
        }
        catch (RedisServerException ex) when (ex.Message.Contains("BUSYGROUP", StringComparison.Ordinal))
        {
        }
        return true;
    }

    private static partial class Log
    {
        [LoggerMessage(Level = LogLevel.Warning, Message = "Usage write paused; retrying in {Delay}")]
        public static partial void WritePaused(ILogger logger, TimeSpan delay, Exception exception);

        [LoggerMessage(Level = LogLevel.Error, Message = "Usage write failed unexpectedly; retrying in {Delay}")]
        public static partial void WriteFailed(ILogger logger, TimeSpan delay, Exception exception);

        [LoggerMessage(Level = LogLevel.Error, Message = "Usage entry {EntryId} set aside as a dead letter: {Reason}")]
        public static partial void DeadLetter(ILogger logger, string entryId, string reason, Exception? exception);
    }

    public async Task WriteAsync(IReadOnlyList<UsageRecord> records, CancellationToken ct)
    {
        if (records.Count == 0) return;
        // A batch may repeat an event (spool replay); the first occurrence wins.
        var batch = records.DistinctBy(r => r.EventId).ToList();
        await using var connection = await postgres.OpenConnectionAsync(ct);
        await using var command = new NpgsqlCommand(Sql, connection);
        Add(command, "event_id", NpgsqlDbType.Text, batch.Select(r => r.EventId));
        Add(command, "request_id", NpgsqlDbType.Text, batch.Select(r => r.RequestId));
        Add(command, "org", NpgsqlDbType.Uuid, batch.Select(r => r.OrganizationId));
        Add(command, "key", NpgsqlDbType.Uuid, batch.Select(r => r.ApiKeyId));
        Add(command, "credits", NpgsqlDbType.Boolean, batch.Select(r => r.BillingMode == BillingMode.PrepaidCredits));
        Add(command, "model", NpgsqlDbType.Text, batch.Select(r => r.ModelId));
        Add(command, "pool", NpgsqlDbType.Text, batch.Select(r => r.PoolId));
        Add(command, "router", NpgsqlDbType.Text, batch.Select(r => r.RouterId));
        Add(command, "session", NpgsqlDbType.Bigint, batch.Select(r => r.SessionId));
        Add(command, "method", NpgsqlDbType.Text, batch.Select(r => r.Method));
        Add(command, "path", NpgsqlDbType.Text, batch.Select(r => r.Path));
        Add(command, "status", NpgsqlDbType.Integer, batch.Select(r => r.Status));
        Add(command, "error_code", NpgsqlDbType.Text, batch.Select(r => r.ErrorCode));
        Add(command, "prompt", NpgsqlDbType.Integer, batch.Select(r => r.PromptTokens));
        Add(command, "completion", NpgsqlDbType.Integer, batch.Select(r => r.CompletionTokens));
        Add(command, "cost", NpgsqlDbType.Numeric, batch.Select(r => r.Cost));
        Add(command, "latency", NpgsqlDbType.Integer, batch.Select(r => r.LatencyMs));
        Add(command, "ttft", NpgsqlDbType.Integer, batch.Select(r => r.TimeToFirstTokenMs));
        Add(command, "streamed", NpgsqlDbType.Boolean, batch.Select(r => r.Streamed));
        Add(command, "created", NpgsqlDbType.TimestampTz, batch.Select(r => r.CreatedAt.UtcDateTime));
        Add(command, "task", NpgsqlDbType.Text, batch.Select(r => r.TaskId));
        Add(command, "trace", NpgsqlDbType.Text, batch.Select(r => r.TraceId));
        // Prepared once per pooled connection (Npgsql keeps it): the statement is parsed and planned once there,
        // not for every batch. That was a tenth of Postgres's time for a batch of a hundred.
        await command.PrepareAsync(ct);
        await command.ExecuteNonQueryAsync(ct);
    }

    private static void Add<T>(NpgsqlCommand command, string name, NpgsqlDbType type, IEnumerable<T> values) =>
        command.Parameters.Add(new NpgsqlParameter(name, NpgsqlDbType.Array | type) { Value = values.ToArray() });

    private const string Sql = """
        WITH batch AS (
            SELECT * FROM unnest(@event_id, @request_id, @org, @key, @credits, @model, @pool, @router, @session, @method, @path,
                                 @status, @error_code, @prompt, @completion, @cost, @latency, @ttft, @streamed, @created, @task, @trace)
                AS b(event_id, request_id, org, key, credits, model, pool, router, session, method, path,
                     status, error_code, prompt, completion, cost, latency, ttft, streamed, created, task, trace)
        ),
        inserted AS (
            INSERT INTO usage_events (event_id, request_id, organization_id, api_key_id, model_id, pool_id, router_id, session_id,
                                      status, prompt_tokens, completion_tokens, cost, latency_ms, time_to_first_token_ms, streamed, created_at, task_id, trace_id)
            SELECT event_id, request_id, org, key, model, pool, router, session, status, prompt, completion, cost, latency, ttft, streamed, created, task, trace
            FROM batch
            ON CONFLICT (event_id) DO NOTHING
            RETURNING event_id
        ),
        fresh AS (
            SELECT b.* FROM batch b JOIN inserted i USING (event_id)
        ),
        logged AS (
            INSERT INTO request_logs (event_id, request_id, organization_id, api_key_id, model_id, method, path, status, error_code, latency_ms, created_at, task_id, trace_id)
            SELECT event_id, request_id, org, key, model, method, path, status, error_code, latency, created, task, trace FROM fresh
            ON CONFLICT (event_id) DO NOTHING
        ),
        ledger AS (
            -- Credits pay per token; quota plans are debited nothing, but their tokens are on the ledger too.
            INSERT INTO billing_ledger (organization_id, kind, amount, tokens, reference, description, created_at)
            SELECT org, 'Usage', CASE WHEN credits THEN -cost ELSE 0 END, prompt + completion, event_id, model, created
            FROM fresh WHERE prompt + completion > 0
            ON CONFLICT (kind, reference) DO NOTHING
        )
        INSERT INTO usage_daily (organization_id, api_key_id, model_id, day, requests, errors, prompt_tokens, completion_tokens, cost)
        SELECT org, key, model, (created AT TIME ZONE 'UTC')::date, count(*), count(*) FILTER (WHERE status >= 400),
               sum(prompt), sum(completion), sum(cost)
        FROM fresh
        GROUP BY org, key, model, (created AT TIME ZONE 'UTC')::date
        -- One lock order for every writer, so concurrent batches cannot deadlock on the same rows.
        ORDER BY 1, 4, 2, 3
        ON CONFLICT (organization_id, day, api_key_id, model_id) DO UPDATE SET
            requests = usage_daily.requests + excluded.requests,
            errors = usage_daily.errors + excluded.errors,
            prompt_tokens = usage_daily.prompt_tokens + excluded.prompt_tokens,
            completion_tokens = usage_daily.completion_tokens + excluded.completion_tokens,
            cost = usage_daily.cost + excluded.cost
        """;
}
