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
/// Drains the usage stream into Postgres in batches, off the hot path. One statement per batch
/// inserts the usage events, the request log, the ledger debits and the daily roll-up, each only for
/// events not seen before, so a batch retried after a crash or an outage lands exactly once.
/// Entries are acknowledged only after the commit; a dead writer's pending entries are claimed.
/// </summary>
public sealed class UsageWriter(IConnectionMultiplexer redis, NpgsqlDataSource postgres, IConfiguration configuration, ILogger<UsageWriter> log, int index = 0) : BackgroundService
{
    public const string Group = "ledger-writers";
    private const int BatchSize = 2000;
    /// <summary>How long another writer's entries stay unacknowledged before they are taken over.</summary>
    private readonly TimeSpan _claimIdle = TimeSpan.FromSeconds(configuration.GetValue("Metering:ClaimIdleSeconds", 30.0));
    private readonly string _consumer = $"{Environment.MachineName}-{Environment.ProcessId}-{index}";

    private static readonly Meter Meter = new(CortensorTelemetry.MeterName);
    private static readonly Counter<long> Written = Meter.CreateCounter<long>("cortensor.usage.written", description: "Usage events committed to Postgres");
    private static readonly Histogram<double> Lag = Meter.CreateHistogram<double>("cortensor.usage.write_lag", "s", "Time from request end to ledger commit");
    private long _backlog;

    public UsageWriter Observe()
    {
        if (index == 0)
            Meter.CreateObservableGauge("cortensor.usage.backlog", () => Interlocked.Read(ref _backlog), description: "Usage events waiting in the buffer");
        return this;
    }

    protected override async Task ExecuteAsync(CancellationToken stoppingToken)
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
                    Interlocked.Exchange(ref _backlog, await db.StreamLengthAsync(UsageMeter.Stream));
                    await Task.Delay(TimeSpan.FromMilliseconds(50), stoppingToken);
                    continue;
                }

                var records = Parse(entries);
                await WriteAsync(records, stoppingToken);
                var ids = entries.Select(e => e.Id).ToArray();
                await db.StreamAcknowledgeAsync(UsageMeter.Stream, Group, ids);
                await db.StreamDeleteAsync(UsageMeter.Stream, ids);
                Written.Add(records.Count);
                var now = DateTimeOffset.UtcNow;
                foreach (var r in records) Lag.Record((now - r.CreatedAt).TotalSeconds);
                delay = TimeSpan.FromMilliseconds(100);
            }
            catch (OperationCanceledException) when (stoppingToken.IsCancellationRequested)
            {
                return;
            }
            catch (Exception ex) when (ex is RedisException or TimeoutException or NpgsqlException or InvalidOperationException)
            {
                // Entries stay pending; they are retried here or claimed by another writer.
                log.LogWarning("Usage write paused ({Error}); retrying in {Delay}", ex.Message, delay);
                await Task.Delay(delay, stoppingToken).ContinueWith(_ => { }, TaskScheduler.Default);
                delay = TimeSpan.FromTicks(Math.Min(delay.Ticks * 2, TimeSpan.FromSeconds(5).Ticks));
                ownPendingDone = false;
                groupReady = false; // Redis may have come back empty (no persistence): recreate the group

            }
        }
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

    private List<UsageRecord> Parse(StreamEntry[] entries)
    {
        var records = new List<UsageRecord>(entries.Length);
        foreach (var entry in entries)
        {
            var value = entry[UsageMeter.Field];
            try
            {
                if (!value.IsNull && JsonSerializer.Deserialize((byte[])value!, PortalJsonContext.Default.UsageRecord) is { } record)
                    records.Add(record);
            }
            catch (JsonException ex)
            {
                // A record nobody can read would block the stream forever; it is logged whole for an operator.
                log.LogError(ex, "Unreadable usage record {Id}: {Payload}", entry.Id, value.ToString());
            }
        }
        return records;
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
        await command.ExecuteNonQueryAsync(ct);
    }

    private static void Add<T>(NpgsqlCommand command, string name, NpgsqlDbType type, IEnumerable<T> values) =>
        command.Parameters.Add(new NpgsqlParameter(name, NpgsqlDbType.Array | type) { Value = values.ToArray() });

    private const string Sql = """
        WITH batch AS (
            SELECT * FROM unnest(@event_id, @request_id, @org, @key, @credits, @model, @pool, @router, @session, @method, @path,
                                 @status, @error_code, @prompt, @completion, @cost, @latency, @ttft, @streamed, @created, @task)
                AS b(event_id, request_id, org, key, credits, model, pool, router, session, method, path,
                     status, error_code, prompt, completion, cost, latency, ttft, streamed, created, task)
        ),
        inserted AS (
            INSERT INTO usage_events (event_id, request_id, organization_id, api_key_id, model_id, pool_id, router_id, session_id,
                                      status, prompt_tokens, completion_tokens, cost, latency_ms, time_to_first_token_ms, streamed, created_at, task_id)
            SELECT event_id, request_id, org, key, model, pool, router, session, status, prompt, completion, cost, latency, ttft, streamed, created, task
            FROM batch
            ON CONFLICT (event_id) DO NOTHING
            RETURNING event_id
        ),
        fresh AS (
            SELECT b.* FROM batch b JOIN inserted i USING (event_id)
        ),
        logged AS (
            INSERT INTO request_logs (event_id, request_id, organization_id, api_key_id, model_id, method, path, status, error_code, latency_ms, created_at, task_id)
            SELECT event_id, request_id, org, key, model, method, path, status, error_code, latency, created, task FROM fresh
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
