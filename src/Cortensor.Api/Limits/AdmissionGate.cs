using System.Text.Json;
using Cortensor.Api.Catalog;
using Cortensor.Api.Data;
using Cortensor.Api.Inference;
using Cortensor.Api.Infrastructure;
using Cortensor.Api.Keys;
using Cortensor.Api.Metering;
using Microsoft.Extensions.Options;
using StackExchange.Redis;

namespace Cortensor.Api.Limits;

/// <summary>
/// Steps 4 and 5 of the hot path in one atomic Redis script, one round trip: the key's and the
/// organisation's requests and tokens per minute (fixed one-minute windows shared by every
/// replica), the organisation's concurrent requests, then its monthly token quota or prepaid credit,
/// reserved for the worst case (the prompt's token ceiling plus max_tokens) and recorded as a
/// reservation with a deadline. Settlement is <see cref="UsageMeter"/>'s, by the reservation's id.
/// When Redis is unreachable, <see cref="LocalAdmission"/> decides alone, within a published bound.
/// </summary>
public sealed partial class AdmissionGate(
    IConnectionMultiplexer redis, HotCounters counters, LocalAdmission local, AdmissionLeases leases, ReplicaIdentity replica,
    IOptions<LimitsOptions> options, TimeProvider clock, ILogger<AdmissionGate> log)
{
    private const int WindowSeconds = 60;
    private readonly System.Collections.Concurrent.ConcurrentQueue<UsageRecord> _uncertain = new();

    /// <summary>Admissions whose reply was lost: Redis may hold their reservation although the request went on locally.</summary>
    public bool TryTakeUncertain(out UsageRecord draft) => _uncertain.TryDequeue(out draft!);

    public void Uncertain(UsageRecord draft) => _uncertain.Enqueue(draft);

    // Request-per-minute windows this replica was told are spent, by key id or organisation id, until when (unix seconds)
    // the refusal is repeated without asking, and whether one request has since been let through to ask again (see SpentWindow).
    private readonly System.Collections.Concurrent.ConcurrentDictionary<Guid, SpentEntry> _spent = new();
    private readonly record struct SpentEntry(Admission Refusal, long Until, bool Asking);
    private const int MostSpentRemembered = 10_000;

    /// <summary>
    /// The refusal for a key whose requests for this minute (its own, or its organisation's) this replica already saw
    /// spent; null otherwise. Asked before the request's body is read: a client retrying in a loop with megabyte prompts
    /// costs a lookup rather than a parse and a token count each time. The windows are fixed minutes and their counts only
    /// grow, but for what leases give back: a lease holds a slice of the window ahead of need, and gives its unused part
    /// back once idle. So with leasing on, a refusal is repeated only until an idle lease would have given its slice back
    /// (<see cref="LimitsOptions.LeaseIdleSeconds"/> and the sweep's second), then admission is asked again: repeated for
    /// the rest of the minute, it refused an organisation's every key while most of its limit lay unused.
    /// </summary>
    public Admission? SpentWindow(KeySnapshot key)
    {
        var now = clock.GetUtcNow().ToUnixTimeSeconds();
        var window = now / WindowSeconds;
        foreach (var (id, spentLimit) in (ReadOnlySpan<(Guid, int)>)[(key.KeyId, key.RequestsPerMinute), (key.OrganizationId, key.OrganizationRequestsPerMinute)])
        {
            if (!_spent.TryGetValue(id, out var entry)) continue;
            var spent = entry.Refusal;
            var limit = spent.Verdict == AdmissionVerdict.KeyRequestsExhausted ? spent.KeyRequestLimit : spent.OrganizationRequestLimit;
            // A new minute or a limit changed since (a plan or the key's settings): ask admission again.
            if (spent.Window != window || limit != spentLimit)
            {
                _spent.TryRemove(new KeyValuePair<Guid, SpentEntry>(id, entry));
                continue;
            }
            // Leases may have given slices back: one request asks again; the others wait on its answer for another second.
            if (now >= entry.Until && _spent.TryUpdate(id, new SpentEntry(spent, now + 1, Asking: true), entry)) continue;
            return spent with
            {
                Reset = TimeSpan.FromSeconds((window + 1) * WindowSeconds - now),
                RetryAfter = spent.RetryAfter is null ? null : TimeSpan.FromSeconds(Math.Max(1, entry.Until - now)),
            };
        }
        return null;
    }

    public async Task<Admission> AdmitAsync(KeySnapshot key, CatalogModel model, UsageRecord draft, int promptTokens, int maxTokens, CancellationToken ct)
    {
        var admission = await DecideAsync(key, model, draft, promptTokens, maxTokens, ct);
        if (admission.Admitted && admission.Lease is null && !admission.Local)
        {
            // Redis admitted it: the minute was not spent after all (leases gave slices back), and what was remembered goes.
            // (An admission from this replica's own lease says nothing of the shared window.) Lock-free when absent.
            if (_spent.TryGetValue(key.KeyId, out var keySpent)) _spent.TryRemove(new KeyValuePair<Guid, SpentEntry>(key.KeyId, keySpent));
            if (_spent.TryGetValue(key.OrganizationId, out var orgSpent)) _spent.TryRemove(new KeyValuePair<Guid, SpentEntry>(key.OrganizationId, orgSpent));
        }
        var spentId = admission.Verdict switch
        {
            AdmissionVerdict.KeyRequestsExhausted => key.KeyId,
            AdmissionVerdict.OrganizationRequestsExhausted => key.OrganizationId,
            _ => (Guid?)null,
        };
        if (spentId is { } id)
        {
            var now = clock.GetUtcNow().ToUnixTimeSeconds();
            var o = options.Value;
            // The first refusal of a window on this replica says to come back when idle leases may have given their slices
            // back, and so does every refusal of the same burst (requests that reached Redis before the first was
            // remembered). Refused again when one request is let through to ask again, the window is taken as spent and
            // Retry-After says its end (an SDK retrying twice at 4 s would otherwise give up on a minute that was simply full).
            var remembered = _spent.TryGetValue(id, out var before) && before.Refusal.Window == admission.Window;
            if (o.Leasing && remembered && !before.Asking && now < before.Until)
                return admission with { RetryAfter = TimeSpan.FromSeconds(Math.Max(1, before.Until - now)) };
            if (o.Leasing && !remembered) admission = admission with { RetryAfter = TimeSpan.FromSeconds(o.LeaseIdleSeconds + 2) };
            if (_spent.Count >= MostSpentRemembered)
                foreach (var (stale, old) in _spent)
                    if (old.Refusal.Window != admission.Window || now >= old.Until) _spent.TryRemove(new KeyValuePair<Guid, SpentEntry>(stale, old));
            _spent[id] = new SpentEntry(admission, o.Leasing ? now + o.LeaseIdleSeconds + 2 : long.MaxValue, Asking: false);
        }
        return admission;
    }

    private async Task<Admission> DecideAsync(KeySnapshot key, CatalogModel model, UsageRecord draft, int promptTokens, int maxTokens, CancellationToken ct)
    {
        var now = clock.GetUtcNow();
        var window = now.ToUnixTimeSeconds() / WindowSeconds;
        var reset = TimeSpan.FromSeconds((window + 1) * WindowSeconds - now.ToUnixTimeSeconds());
        var tokens = promptTokens + maxTokens;
        var credits = key.BillingMode == BillingMode.PrepaidCredits;
        long amount = credits ? Pricing.ToUnits(Pricing.Cost(model, promptTokens, maxTokens)) : tokens;
        // The quota month is the request's (its record's time, which the ledger books it under): a request that arrived
        // at 23:59:59 is counted, refunded and booked in that month, even if its body finished arriving after midnight.
        var counter = LimitKeys.Counter(key.OrganizationId, credits, draft.CreatedAt);
        // The key budget's period likewise: a refund goes back to the period it was taken from, the one its record names.
        var budget = key.Budget;
        var (budgetPeriod, _, budgetEnd) = budget?.PeriodAt(draft.CreatedAt) ?? default;
        var budgetCounter = budget is null ? null : KeyBudget.Counter(key.OrganizationId, key.KeyId, budgetPeriod);
        // A busy key is admitted from this replica's lease, without a round trip (AdmissionLeases).
        if (leases.TryAdmit(key, model, draft.Streamed, counter, window, reset, tokens, amount) is { } leased) return leased;
        var hold = new Hold(counter, key.BillingMode, amount, tokens, window, promptTokens, maxTokens,
            model.InputPricePer1K, model.OutputPricePer1K, now.AddSeconds(options.Value.ReservationSeconds), replica.Id);
        if (budgetCounter is not null) hold = hold with { KeyBudget = budgetCounter, BudgetUnits = hold.CostCeiling };

        try
        {
            if (!redis.IsConnected) throw new RedisConnectionException(ConnectionFailureType.UnableToConnect, "Redis is disconnected");
            for (var attempt = 0; ; attempt++)
            {
                var r = (RedisResult[])(await redis.GetDatabase().ScriptEvaluateAsync(AdmissionScripts.Admit, new
                {
                    keyRequests = (RedisKey)LimitKeys.KeyRequests(key.KeyId, window),
                    keyTokens = (RedisKey)LimitKeys.KeyTokens(key.KeyId, window),
                    orgRequests = (RedisKey)LimitKeys.OrgRequests(key.OrganizationId, window),
                    orgTokens = (RedisKey)LimitKeys.OrgTokens(key.OrganizationId, window),
                    reservations = (RedisKey)LimitKeys.Reservations(key.OrganizationId),
                    leasedSlots = (RedisKey)LimitKeys.LeasedSlots(key.OrganizationId),
                    counter = (RedisKey)counter,
                    held = (RedisKey)LimitKeys.Held(counter),
                    version = (RedisKey)LimitKeys.Version(key.OrganizationId),
                    due = (RedisKey)LimitKeys.Due,
                    replicaDue = (RedisKey)LimitKeys.ReplicaDue(hold.Replica),
                    keyRequestLimit = key.RequestsPerMinute,
                    keyTokenLimit = key.TokensPerMinute,
                    orgRequestLimit = key.OrganizationRequestsPerMinute,
                    orgTokenLimit = key.OrganizationTokensPerMinute,
                    concurrency = key.MaxConcurrentRequests,
                    cost = tokens,
                    credits = credits ? "1" : "0",
                    amount,
                    quota = key.MonthlyTokenQuota ?? 0,
                    quotaTtl = HotCounters.QuotaTtlSeconds,
                    ttl = WindowSeconds * 2,
                    id = draft.EventId,
                    hold = JsonSerializer.Serialize(draft with { Hold = hold }, PortalJsonContext.Default.UsageRecord),
                    deadline = hold.Deadline.ToUnixTimeSeconds(),
                    dueMember = LimitKeys.DueMember(key.OrganizationId, draft.EventId),
                    budgeted = budget is null ? "0" : "1",
                    keyBudget = (RedisKey)(budgetCounter ?? KeyBudget.Counter(key.OrganizationId, key.KeyId, "none")),
                    budgetUnits = hold.BudgetUnits,
                    budgetUnitLimit = budget?.UsdUnits ?? -1,
                    budgetTokenLimit = budget?.Tokens ?? -1,
                    budgetTtl = budget is null ? 0 : KeyBudget.CounterTtlSeconds(now, budgetEnd),
                }))!;
                var verdict = (AdmissionVerdict)(int)(long)r[0];
                if (verdict == AdmissionVerdict.BalanceNotLoaded && attempt == 0)
                {
                    await counters.ReconcileAsync(key.OrganizationId, key.BillingMode, onlyIfMissing: true, ct);
                    continue;
                }
                var balance = (long)r[3];
                var admitted = verdict == AdmissionVerdict.Admitted;
                var overBudget = verdict == AdmissionVerdict.KeyBudgetExhausted
                    ? new KeyBudgetRefusal(key.KeyId, key.KeyName, budget!, Pricing.FromUnits(balance), (long)r[6],
                        Pricing.FromUnits(hold.BudgetUnits), tokens, budgetEnd)
                    : null;
                if (overBudget is not null) balance = 0;
                if (admitted || verdict == AdmissionVerdict.InsufficientFunds)
                    local.Remember(key.OrganizationId, credits ? balance : (key.MonthlyTokenQuota ?? 0) - balance);
                return new Admission(verdict, reset, window, key.RequestsPerMinute, (long)r[1], key.TokensPerMinute, (long)r[2],
                    key.OrganizationRequestsPerMinute, (long)r[4], key.OrganizationTokensPerMinute, (long)r[5], key.MaxConcurrentRequests,
                    tokens, amount, balance, admitted ? hold : null, Local: false, overBudget);
            }
        }
        catch (Exception ex) when (Outage.IsRedis(ex, ct))
        {
            Log.SharedLimitsUnavailable(log, ex);
            var admitted = local.Admit(key, window, reset, tokens, amount, credits);
            // A connection that never opened ran nothing: the request is billed by its own record alone.
            if (ex is RedisConnectionException { FailureType: ConnectionFailureType.UnableToConnect }) return admitted;
            // The script may have run before the reply was lost: this replica's reaper gives that hold back as soon as
            // Redis answers. An admitted request also keeps the hold, to settle it like any other. Should another replica
            // take this one's silence for death first, its reaper files a record under this request's event id; a plain
            // record of the request would then be dropped by the ledger (same id), leaving it unbilled, where settling the
            // hold finds the reaper's note and bills the rest under an id of its own. A hold that was never created, or was
            // already given back, settles as nothing to give back and files the record as is, for the ledger to charge.
            Uncertain(draft with { Hold = hold });
            return admitted.Admitted ? admitted with { Hold = hold } : admitted;
        }
        catch (Exception ex) when (ex is Npgsql.NpgsqlException or InvalidOperationException)
        {
            Log.BalanceUnavailable(log, ex);
            return new Admission(AdmissionVerdict.BillingUnavailable, reset, window, key.RequestsPerMinute, 0, key.TokensPerMinute, 0,
                key.OrganizationRequestsPerMinute, 0, key.OrganizationTokensPerMinute, 0, key.MaxConcurrentRequests, 0, amount, 0, null, false);
        }
    }

    private static partial class Log
    {
        [LoggerMessage(LogLevel.Warning, "Shared limits unavailable; enforcing per replica")]
        public static partial void SharedLimitsUnavailable(ILogger logger, Exception exception);

        [LoggerMessage(LogLevel.Warning, "Credit balance could not be loaded")]
        public static partial void BalanceUnavailable(ILogger logger, Exception exception);
    }
}
