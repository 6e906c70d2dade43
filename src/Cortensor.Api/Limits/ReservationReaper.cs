using System.Globalization;
using System.Text.Json;
using Cortensor.Api.Infrastructure;
using Cortensor.Api.Inference;
using Cortensor.Api.Metering;
using Microsoft.Extensions.Options;
using StackExchange.Redis;

namespace Cortensor.Api.Limits;

/// <summary>
/// Settles reservations nobody will settle: those past their deadline (the hot path always ends a
/// request before it), and those of a replica that stopped signing its life (killed mid-request). The
/// request is billed what its progress says was generated (nothing if unknown) and its hold is given
/// back, through the same atomic settlement as a live request: whichever comes first wins, once.
/// Every replica runs one; they may reap the same entry, the script settles it once.
/// </summary>
public sealed partial class ReservationReaper(
    IConnectionMultiplexer redis, UsageMeter meter, AdmissionGate gate, AdmissionLeases leases, ReplicaIdentity replica, IOptions<LimitsOptions> options,
    TimeProvider clock, ILogger<ReservationReaper> log) : BackgroundService
{
    private DateTimeOffset? _connectedSince;

    protected override async Task ExecuteAsync(CancellationToken stoppingToken)
    {
        using var timer = new PeriodicTimer(TimeSpan.FromSeconds(options.Value.ReaperIntervalSeconds), clock);
        do
        {
            try
            {
                await ReapAsync(stoppingToken);
            }
            catch (Exception ex) when (Outage.IsRedis(ex, stoppingToken) || ex is JsonException)
            {
                _connectedSince = null;
                Log.Paused(log, ex);
            }
            catch (Exception ex) when (!stoppingToken.IsCancellationRequested)
            {
                _connectedSince = null;
                BackgroundLoop.Failed(log, "reservation reaper", ex);
            }
        }
        while (await timer.WaitForNextTickAsync(stoppingToken).ConfigureAwait(false));
    }

    /// <summary>One pass; returns how many reservations it settled.</summary>
    public async Task<int> ReapAsync(CancellationToken ct)
    {
        var now = clock.GetUtcNow();
        if (!redis.IsConnected) { _connectedSince = null; return 0; }
        using var work = BackgroundWork.Start("reservations.reap");
        var db = redis.GetDatabase();
        await db.HashSetAsync(LimitKeys.Replicas, replica.Id, now.ToUnixTimeSeconds());
        _connectedSince ??= now;
        while (gate.TryTakeUncertain(out var uncertain))
        {
            try
            {
                await meter.ReleaseAsync(uncertain);
            }
            catch
            {
                gate.Uncertain(uncertain); // not lost: the next pass tries again
                throw;
            }
        }

        var due = (await db.SortedSetRangeByScoreAsync(LimitKeys.Due, double.NegativeInfinity, now.ToUnixTimeSeconds(), take: 500))
            .Select(m => (Member: m.ToString(), Replica: (string?)null)).ToList();
        // A silent replica is taken for dead only once this replica has itself been connected long
        // enough that a live one would have signed in again after an outage (and replayed its spool).
        var silence = TimeSpan.FromSeconds(options.Value.ReplicaSilenceSeconds);
        if (now - _connectedSince >= silence)
        {
            foreach (var entry in await db.HashGetAllAsync(LimitKeys.Replicas))
            {
                if (entry.Name == replica.Id || now.ToUnixTimeSeconds() - (long)entry.Value < silence.TotalSeconds) continue;
                var orphans = await db.SortedSetRangeByRankAsync(LimitKeys.ReplicaDue(entry.Name!), 0, 499);
                due.AddRange(orphans.Select(m => (m.ToString(), (string?)entry.Name.ToString())));
                if (orphans.Length == 0) await db.HashDeleteAsync(LimitKeys.Replicas, entry.Name);
            }
        }

        var settled = 0;
        foreach (var (member, owner) in due.DistinctBy(d => d.Member))
        {
            ct.ThrowIfCancellationRequested();
            var parts = member.Split('|');
            var org = parts.Length == 2 && Guid.TryParseExact(parts[0], "N", out var parsed) ? parsed : Guid.Empty;
            // A lease past its deadline or of a dead replica: its money and slots go back; requests it admitted
            // that were never filed are not billed (like a reservation with no progress).
            if (org != Guid.Empty && parts[1].StartsWith(LimitKeys.LeaseMemberPrefix, StringComparison.Ordinal))
            {
                if (await leases.ReapAsync(org, parts[1][LimitKeys.LeaseMemberPrefix.Length..], member, owner)) settled++;
                continue;
            }
            var stored = org == Guid.Empty ? RedisValue.Null : await db.HashGetAsync(LimitKeys.Reservations(org), parts[1]);
            var draft = stored.IsNull ? null : JsonSerializer.Deserialize((byte[])stored!, PortalJsonContext.Default.UsageRecord);
            if (draft?.Hold is not { } hold)
            {
                // Settled meanwhile, or not ours to read: nothing to give back.
                await db.SortedSetRemoveAsync(LimitKeys.Due, member);
                if (owner is not null) await db.SortedSetRemoveAsync(LimitKeys.ReplicaDue(owner), member);
                continue;
            }
            var id = parts[1];
            var progress = (string?)await db.HashGetAsync(LimitKeys.Progress(org), id);
            var record = Bill(draft, hold, progress, now);
            if (await meter.RecordAsync(record, onlyIfHeld: true))
            {
                settled++;
                Log.Reaped(log, id, hold.Replica, record.PromptTokens, record.CompletionTokens);
            }
        }
        work?.SetTag("cortensor.settled", settled);
        if (settled == 0) work.Discard();
        return settled;
    }

    /// <summary>What an abandoned request is charged: its last reported progress, within its hold.</summary>
    private static UsageRecord Bill(UsageRecord draft, Hold hold, string? progress, DateTimeOffset now)
    {
        int prompt = 0, completion = 0;
        if (progress?.Split(',') is [var p, var c]
            && int.TryParse(p, CultureInfo.InvariantCulture, out prompt) && int.TryParse(c, CultureInfo.InvariantCulture, out completion))
        {
            prompt = Math.Clamp(prompt, 0, hold.PromptTokens);
            completion = Math.Clamp(completion, 0, hold.MaxTokens);
        }
        var cost = Pricing.Bill(null, hold, prompt, completion);
        return draft with
        {
            Status = 499, ErrorCode = "request_abandoned", PromptTokens = prompt, CompletionTokens = completion, Cost = cost,
            LatencyMs = (int)Math.Min(int.MaxValue, (now - draft.CreatedAt).TotalMilliseconds),
        };
    }

    private static partial class Log
    {
        [LoggerMessage(LogLevel.Warning, "Reaping paused")]
        public static partial void Paused(ILogger logger, Exception exception);

        [LoggerMessage(LogLevel.Warning, "Settled abandoned reservation {EventId} of replica {Replica}: billed {Prompt}+{Completion} tokens")]
        public static partial void Reaped(ILogger logger, string eventId, string replica, int prompt, int completion);
    }
}
