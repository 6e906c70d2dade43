using System.Collections.Concurrent;
using System.Diagnostics;
using System.Globalization;
using System.Text;
using Cortensor.Api.Catalog;
using Cortensor.Api.Data;
using Cortensor.Api.Infrastructure;
using Cortensor.Api.Keys;
using Cortensor.Api.Metering;
using Microsoft.Extensions.Options;
using StackExchange.Redis;

namespace Cortensor.Api.Limits;

/// <summary>
/// Admission without a Redis round trip for busy keys: this replica leases a slice of a key's and its
/// organisation's per-minute requests and tokens, of the organisation's concurrency and of its credit or
/// quota (<see cref="LeaseScripts.Grant"/>, pre-debited in Redis like that many admissions), admits
/// locally while the slice lasts, tops it up in the background before it runs out, and gives back what
/// it did not use when the minute's window rolls, when the key goes idle, on shutdown, or (a dead
/// replica) through the reaper. The shared totals can never be exceeded and money is never spent beyond
/// what was debited; what a replica holds unused is the published bound on early refusals elsewhere
/// (docs/operations.md, "Admission leases"). Small balances, small limits, streams, and keys that need
/// the exact per-request reservation stay on <see cref="AdmissionGate"/>'s exact path.
/// </summary>
public sealed partial class AdmissionLeases(
    IConnectionMultiplexer redis, SettlementQueue queue, UsageSpool spool, ReplicaIdentity replica,
    IOptions<LimitsOptions> options, TimeProvider clock, ILogger<AdmissionLeases> log) : BackgroundService
{
    private const int WindowSeconds = 60;
    private static readonly System.Diagnostics.Metrics.Meter Meter = new(CortensorTelemetry.MeterName);
    private static readonly System.Diagnostics.Metrics.Counter<long> Leased = Meter.CreateCounter<long>("cortensor.admission.leased",
        "{request}", "Requests admitted from this replica's lease, without a Redis round trip");
    private static readonly System.Diagnostics.Metrics.Counter<long> Slices = Meter.CreateCounter<long>("cortensor.admission.lease_slices",
        "{slice}", "Slices of limits and money taken from Redis ahead of need");
    private readonly ConcurrentDictionary<Guid, KeyState> _keys = new();
    // The grant's answer for a top-up of a lease no longer in Redis.
    private const int LeaseGone = 100;
    private readonly ConcurrentQueue<Lease> _retired = new();
    private volatile bool _stopping;

    /// <summary>
    /// Admits from this replica's lease of the key when it has room; null sends the request down the
    /// exact path (and, for a key busy enough, starts taking a lease for the next ones).
    /// </summary>
    public Admission? TryAdmit(KeySnapshot key, CatalogModel model, bool streamed, string counter, long window, TimeSpan reset, int tokens, long amount)
    {
        var o = options.Value;
        // Streams keep their per-request reservation: a replica killed mid-stream is billed from its progress.
        if (!o.Leasing || streamed || _stopping || NeedsExactPath(key)) return null;
        var state = _keys.GetOrAdd(key.KeyId, static _ => new KeyState());
        lock (state)
        {
            var lease = state.Current;
            var rolled = false;
            if (lease is not null && (lease.Window != window || lease.Counter != counter))
            {
                // The minute rolled: the key was busy, so the next minute's lease is taken at once.
                Retire(state, returnUnused: false);
                (lease, rolled) = (null, true);
            }
            if (lease is { Requests: >= 1 } && lease.Tokens >= tokens && lease.Money >= amount && lease.InFlight < lease.Slots)
            {
                lease.Requests--;
                lease.Tokens -= tokens;
                lease.Money -= amount;
                lease.InFlight++;
                lease.LastUse = Stopwatch.GetTimestamp();
                if (Low(lease, amount)) Take(state, key, model, counter, window, tokens, amount);
                var credits = key.BillingMode == BillingMode.PrepaidCredits;
                Leased.Add(1);
                return new Admission(AdmissionVerdict.Admitted, reset, window,
                    key.RequestsPerMinute, lease.SharedKeyRequests - lease.Requests, key.TokensPerMinute, lease.SharedKeyTokens - lease.Tokens,
                    key.OrganizationRequestsPerMinute, lease.SharedOrgRequests - lease.Requests, key.OrganizationTokensPerMinute, lease.SharedOrgTokens - lease.Tokens,
                    key.MaxConcurrentRequests, tokens, amount, credits ? lease.SharedBalance + lease.Money : lease.SharedBalance - lease.Money, Hold: null, Local: false)
                {
                    Lease = new LeaseTicket(this, state, lease, tokens, amount, credits),
                };
            }
            if (state.DemandWindow != window) (state.DemandWindow, state.Demand) = (window, 0);
            state.Demand++;
            // A lease is topped up only for what it lacks; without one, a key busy enough gets one.
            if (lease is null ? state.Demand >= o.LeaseAfterRequests || rolled : Low(lease, amount) || lease.InFlight >= lease.Slots)
                Take(state, key, model, counter, window, tokens, amount);
            return null;
        }
    }

    /// <summary>A quarter of a slice left, or not enough money for 16 more requests like this one: time to top up.</summary>
    private static bool Low(Lease lease, long amount) =>
        lease.Requests < lease.RequestSlice / 4 || lease.Tokens < lease.TokenSlice / 4 || lease.Money < Math.Max(lease.MoneySlice / 4, 16 * amount);

    /// <summary>Keys the exact path must decide one request at a time: a key with a per-key budget, once keys carry one.</summary>
    private static bool NeedsExactPath(KeySnapshot key) => key.NeedsExactAdmission;

    /// <summary>Takes (or tops up) the key's lease in the background, once at a time; sizes from the key's limits.</summary>
    private void Take(KeyState state, KeySnapshot key, CatalogModel model, string counter, long window, int tokens, long amount)
    {
        if (state.Taking || state.RefusedWindow == window) return;
        var o = options.Value;
        var requests = Math.Min(Math.Min(key.RequestsPerMinute, key.OrganizationRequestsPerMinute) / o.LeaseShare, o.LeaseMaxRequests);
        var tokenSlice = Math.Min(Math.Min((long)key.TokensPerMinute, key.OrganizationTokensPerMinute) / o.LeaseShare, o.LeaseMaxTokens);
        var existing = state.Current is { } current && current.Window == window && current.Counter == counter ? current : null;
        var slotSlice = Math.Min(key.MaxConcurrentRequests / o.LeaseShare, o.LeaseMaxConcurrency);
        // A top-up adds slots only when every slot is in use, up to the largest lease.
        var slots = existing is null ? slotSlice
            : existing.InFlight >= existing.Slots ? Math.Max(0, Math.Min(slotSlice, o.LeaseMaxConcurrency - existing.Slots)) : 0;
        // Too small to be worth a slice (a few requests a minute, a tiny concurrency): the exact path is exact.
        if (requests < 8 || tokenSlice < 8L * tokens || (existing is null && slots < 2))
        {
            state.RefusedWindow = window;
            return;
        }
        // A top-up takes a slice only of what the lease lacks (money running short is topped up alone): a slice of a window
        // the lease does not need would be held from the organisation's other keys, and with a small balance, whose money
        // slices are small and often topped up, such slices used up the minute's requests before the money was spent.
        var (requestSlice, tokenSliceSize) = (requests, tokenSlice);
        var takeMoney = true;
        if (existing is not null)
        {
            if (existing.Requests >= existing.RequestSlice / 4) requests = 0;
            if (existing.Tokens >= existing.TokenSlice / 4) tokenSlice = 0;
            // Likewise the money: each slice is a twentieth of the balance left, and topping it up for slots or requests
            // alone held a twentieth more each time, until a busy lease held most of a balance it would never spend.
            takeMoney = existing.Money < Math.Max(existing.MoneySlice / 4, 16 * amount);
            // Nothing short (all the slots a lease may have are in use): nothing to ask Redis for.
            if (requests == 0 && tokenSlice == 0 && slots == 0 && !takeMoney) return;
        }
        state.Taking = true;
        var credits = key.BillingMode == BillingMode.PrepaidCredits;
        var id = existing?.Id ?? Guid.NewGuid().ToString("N")[..16];
        _ = Task.Run(async () =>
        {
            try
            {
                var deadline = (window + 1) * WindowSeconds + o.ReservationSeconds;
                var r = (RedisResult[])(await redis.GetDatabase().ScriptEvaluateAsync(LeaseScripts.Grant, new
                {
                    keyRequests = (RedisKey)LimitKeys.KeyRequests(key.KeyId, window),
                    keyTokens = (RedisKey)LimitKeys.KeyTokens(key.KeyId, window),
                    orgRequests = (RedisKey)LimitKeys.OrgRequests(key.OrganizationId, window),
                    orgTokens = (RedisKey)LimitKeys.OrgTokens(key.OrganizationId, window),
                    reservations = (RedisKey)LimitKeys.Reservations(key.OrganizationId),
                    leasedSlots = (RedisKey)LimitKeys.LeasedSlots(key.OrganizationId),
                    leases = (RedisKey)LimitKeys.Leases(key.OrganizationId),
                    counter = (RedisKey)counter,
                    held = (RedisKey)LimitKeys.Held(counter),
                    version = (RedisKey)LimitKeys.Version(key.OrganizationId),
                    due = (RedisKey)LimitKeys.Due,
                    replicaDue = (RedisKey)LimitKeys.ReplicaDue(replica.Id),
                    keyRequestLimit = key.RequestsPerMinute,
                    keyTokenLimit = key.TokensPerMinute,
                    orgRequestLimit = key.OrganizationRequestsPerMinute,
                    orgTokenLimit = key.OrganizationTokensPerMinute,
                    concurrency = key.MaxConcurrentRequests,
                    requests,
                    tokens = tokenSlice,
                    slots,
                    credits = credits ? "1" : "0",
                    takeMoney = takeMoney ? "1" : "0",
                    topUp = existing is null ? "0" : "1",
                    maxMoney = credits ? Pricing.ToUnits(o.LeaseUsd) : o.LeaseQuotaTokens,
                    minMoney = 16 * amount,
                    share = o.LeaseShare,
                    quota = key.MonthlyTokenQuota ?? 0,
                    quotaTtl = HotCounters.QuotaTtlSeconds,
                    ttl = WindowSeconds * 2,
                    id,
                    deadline,
                    dueMember = LimitKeys.LeaseMember(key.OrganizationId, id),
                    replica = replica.Id,
                }))!;
                var verdict = (int)(long)r[0];
                lock (state)
                {
                    if (verdict == LeaseGone)
                    {
                        // The reaper gave this lease back: it admits no more; what it admitted is filed against the counter.
                        if (state.Current is { } gone && gone.Id == id) Retire(state, returnUnused: false);
                        return;
                    }
                    if (verdict != 0)
                    {
                        // No room for a whole slice (or no balance loaded yet): this window stays exact.
                        if (verdict != (int)AdmissionVerdict.BalanceNotLoaded) state.RefusedWindow = window;
                        return;
                    }
                    Slices.Add(1);
                    var lease = state.Current is { } c && c.Id == id ? c : null;
                    if (lease is null && existing is not null)
                    {
                        // A top-up of a lease retired meanwhile: a close sent after this grant gives the top-up back
                        // with the rest; if the lease's close went first, the top-up is given back now.
                        if (Volatile.Read(ref existing.Closing) == 1)
                            queue.Enqueue(() => CloseAsync(new Lease(id, key.OrganizationId, key.KeyId, window, counter, credits) { Retired = true }));
                        return;
                    }
                    if (lease is null)
                    {
                        if (state.Current is not null) Retire(state, returnUnused: false);
                        lease = state.Current = new Lease(id, key.OrganizationId, key.KeyId, window, counter, credits) { LastUse = Stopwatch.GetTimestamp() };
                        if (_stopping) Retire(state, returnUnused: true);
                    }
                    lease.Requests += requests;
                    lease.Tokens += tokenSlice;
                    lease.Money += (long)r[6];
                    lease.Slots += (int)(long)r[7];
                    (lease.RequestSlice, lease.TokenSlice) = (requestSlice, tokenSliceSize);
                    if (takeMoney) lease.MoneySlice = (long)r[6];
                    (lease.SharedKeyRequests, lease.SharedKeyTokens, lease.SharedBalance, lease.SharedOrgRequests, lease.SharedOrgTokens) =
                        ((long)r[1], (long)r[2], (long)r[3], (long)r[4], (long)r[5]);
                }
            }
            catch (Exception ex) when (Outage.IsRedis(ex))
            {
                // Not retried within this minute: while Redis is away the exact path decides (and says why).
                lock (state) state.RefusedWindow = window;
                Log.TakeFailed(log, ex);
                // A timeout says nothing of what Redis did: the grant may run yet (a paused or slow Redis runs it
                // later). A new lease nobody here knows of would hold its slice of the balance until the reaper's
                // deadline, so it is given back as soon as Redis answers; closing a lease never granted does nothing.
                // (A top-up of a known lease goes back with that lease's close.)
                if (existing is null)
                    CloseLater(new Lease(id, key.OrganizationId, key.KeyId, window, counter, credits)
                    {
                        Retired = true, ReturnUnused = true, Requests = requests, Tokens = tokenSlice,
                    });
            }
            finally
            {
                lock (state) state.Taking = false;
            }
        });
    }

    /// <summary>The current lease stops admitting; it is given back once its last request has been filed.</summary>
    private void Retire(KeyState state, bool returnUnused)
    {
        if (state.Current is not { } lease) return;
        state.Current = null;
        lease.Retired = true;
        lease.ReturnUnused = returnUnused;
        if (lease.InFlight == 0) CloseLater(lease);
        else _retired.Enqueue(lease);
    }

    private void CloseLater(Lease lease)
    {
        if (Interlocked.Exchange(ref lease.Closing, 1) == 1) return;
        queue.Enqueue(() => CloseAsync(lease));
    }

    private async Task CloseAsync(Lease lease)
    {
        try
        {
            await redis.GetDatabase().ScriptEvaluateAsync(LeaseScripts.Close, new
            {
                leases = (RedisKey)LimitKeys.Leases(lease.Organization),
                counter = (RedisKey)lease.Counter,
                heldKey = (RedisKey)LimitKeys.Held(lease.Counter),
                leasedSlots = (RedisKey)LimitKeys.LeasedSlots(lease.Organization),
                version = (RedisKey)LimitKeys.Version(lease.Organization),
                due = (RedisKey)LimitKeys.Due,
                replicaDue = (RedisKey)LimitKeys.ReplicaDue(replica.Id),
                keyRequests = (RedisKey)LimitKeys.KeyRequests(lease.Key, lease.Window),
                keyTokens = (RedisKey)LimitKeys.KeyTokens(lease.Key, lease.Window),
                orgRequests = (RedisKey)LimitKeys.OrgRequests(lease.Organization, lease.Window),
                orgTokens = (RedisKey)LimitKeys.OrgTokens(lease.Organization, lease.Window),
                id = lease.Id,
                dueMember = LimitKeys.LeaseMember(lease.Organization, lease.Id),
                credits = lease.Credits ? "1" : "0",
                unusedRequests = lease.ReturnUnused ? Math.Max(0, lease.Requests) : 0,
                unusedTokens = lease.ReturnUnused ? Math.Max(0, lease.Tokens) : 0,
            });
        }
        catch (Exception ex) when (Outage.IsRedis(ex) || ex is ObjectDisposedException)
        {
            // Still held in Redis: the next sweep tries again; should this replica die first, the reaper gives it back.
            Log.CloseFailed(log, lease.Id, ex);
            Volatile.Write(ref lease.Closing, 0);
            _retired.Enqueue(lease);
        }
    }

    /// <summary>The reaper's call: gives back a lease nobody will (past its deadline, or its replica is gone).</summary>
    public async Task<bool> ReapAsync(Guid org, string id, string member, string? owner)
    {
        var db = redis.GetDatabase();
        var fields = await db.HashGetAsync(LimitKeys.Leases(org), [id + ".counter", id + ".replica"]);
        if (fields[0].IsNull)
        {
            await db.SortedSetRemoveAsync(LimitKeys.Due, member);
            if (owner is not null) await db.SortedSetRemoveAsync(LimitKeys.ReplicaDue(owner), member);
            return false;
        }
        var counter = fields[0].ToString();
        var holder = fields[1].IsNull ? owner ?? "" : fields[1].ToString();
        var closed = (long)await db.ScriptEvaluateAsync(LeaseScripts.Close, new
        {
            leases = (RedisKey)LimitKeys.Leases(org),
            counter = (RedisKey)counter,
            heldKey = (RedisKey)LimitKeys.Held(counter),
            leasedSlots = (RedisKey)LimitKeys.LeasedSlots(org),
            version = (RedisKey)LimitKeys.Version(org),
            due = (RedisKey)LimitKeys.Due,
            replicaDue = (RedisKey)LimitKeys.ReplicaDue(holder),
            keyRequests = (RedisKey)"", keyTokens = (RedisKey)"", orgRequests = (RedisKey)"", orgTokens = (RedisKey)"",
            id,
            dueMember = member,
            credits = counter.StartsWith("credit:", StringComparison.Ordinal) ? "1" : "0",
            unusedRequests = 0,
            unusedTokens = 0,
        }) == 1;
        if (closed) Log.Reaped(log, id, holder);
        return closed;
    }

    /// <summary>A request admitted from a lease has ended: its unused share returns to the lease, its record is filed.</summary>
    internal void Complete(KeyState state, Lease lease, int reservedTokens, long amount, long charge, UsageRecord record)
    {
        bool close;
        lock (state)
        {
            lease.InFlight--;
            lease.Money += amount - charge;
            if (!lease.Retired) lease.Tokens += reservedTokens - (record.PromptTokens + record.CompletionTokens);
            close = lease.Retired && lease.InFlight == 0;
        }
        var filing = new Filing(record.EventId, charge, UsageMeter.Payload(record));
        bool first;
        lock (lease.Unfiled)
        {
            lease.Unfiled.Add(filing);
            first = lease.Unfiled.Count == 1;
        }
        // The first request to end queues the lease's filing; those ending before the queue runs it join it, and are
        // filed in the same call. A lease is closed only after the filings queued before it (the queue runs in order).
        if (first) queue.Enqueue(() => FileAsync(lease), "settle");
        if (close) CloseLater(lease);
    }

    private async Task FileAsync(Lease lease)
    {
        Filing[] filings;
        lock (lease.Unfiled)
        {
            filings = [.. lease.Unfiled];
            lease.Unfiled.Clear();
        }
        // At most MaxFilingsPerCall a call: Redis serves nothing else while a script runs, so a backlog (Redis slow,
        // then back) is filed in calls of a bounded length, all sent at once and in order.
        var calls = new List<(Filing[] Filings, Task Call)>();
        try
        {
            if (!redis.IsConnected) throw new RedisConnectionException(ConnectionFailureType.UnableToConnect, "Redis is disconnected");
            var db = redis.GetDatabase();
            foreach (var chunk in filings.Chunk(MaxFilingsPerCall))
            {
                var total = chunk.Sum(f => f.Charge);
                calls.Add((chunk, db.ScriptEvaluateAsync(LeaseScripts.File, new
                {
                    leases = lease.LeasesKey,
                    counter = (RedisKey)lease.Counter,
                    heldKey = lease.HeldKey,
                    unbilled = lease.UnbilledKey,
                    version = lease.VersionKey,
                    stream = UsageMeter.Stream,
                    lease = lease.Id,
                    total,
                    negativeTotal = -total,
                    credits = lease.Credits ? "1" : "0",
                    field = UsageMeter.Field,
                    pendingField = UsageMeter.PendingField,
                    charges = Filing.Pack(chunk),
                })));
            }
        }
        catch (Exception ex) when (Outage.IsRedis(ex) || ex is ObjectDisposedException)
        {
            await SpoolAsync(filings.Skip(calls.Sum(c => c.Filings.Length)), ex);
        }
        foreach (var (chunk, call) in calls)
        {
            try
            {
                await call;
            }
            catch (Exception ex) when (Outage.IsRedis(ex) || ex is ObjectDisposedException)
            {
                await SpoolAsync(chunk, ex);
            }
        }
    }

    /// <summary>
    /// The records are kept on disk and filed when Redis is back; until then the lease still holds their charges, and
    /// reconciliation brings the hot balance to the ledger once the records are written.
    /// </summary>
    private async Task SpoolAsync(IEnumerable<Filing> filings, Exception ex)
    {
        foreach (var filing in filings)
        {
            Log.Spooling(log, filing.EventId, ex);
            await spool.AppendAsync(filing.Payload);
        }
    }

    /// <summary>The most requests one filing call carries (a few µs of Redis each).</summary>
    private const int MaxFilingsPerCall = 256;

    /// <summary>A request admitted from a lease, ended and waiting to be filed with the others of its lease.</summary>
    internal sealed record Filing(string EventId, long Charge, byte[] Payload)
    {
        /// <summary>Each filing's event id, charge and record, each followed by a zero byte, as <see cref="LeaseScripts.File"/> reads them.</summary>
        /// <remarks>Measured first and written once into an array of exactly that size: the script call takes a <c>byte[]</c>,
        /// and a growing buffer copied out at the end allocated every record twice.</remarks>
        public static byte[] Pack(IReadOnlyList<Filing> filings)
        {
            Span<byte> digits = stackalloc byte[20];
            var size = 0;
            foreach (var f in filings)
                size += Encoding.UTF8.GetByteCount(f.EventId) + Digits(f.Charge, digits).Length + f.Payload.Length + 3;
            var packed = new byte[size];
            var at = 0;
            foreach (var f in filings)
            {
                at += Encoding.UTF8.GetBytes(f.EventId, packed.AsSpan(at));
                packed[at++] = 0;
                var charge = Digits(f.Charge, digits);
                charge.CopyTo(packed.AsSpan(at));
                at += charge.Length;
                packed[at++] = 0;
                f.Payload.CopyTo(packed, at);
                at += f.Payload.Length;
                packed[at++] = 0;
            }
            return packed;
        }

        private static ReadOnlySpan<byte> Digits(long charge, Span<byte> digits) =>
            charge.TryFormat(digits, out var written, default, CultureInfo.InvariantCulture) ? digits[..written] : throw new UnreachableException();
    }

    /// <summary>Every second: leases idle for <see cref="LimitsOptions.LeaseIdleSeconds"/> are given back, retired ones once done.</summary>
    protected override async Task ExecuteAsync(CancellationToken stoppingToken)
    {
        using var timer = new PeriodicTimer(TimeSpan.FromSeconds(1), clock);
        while (await timer.WaitForNextTickAsync(stoppingToken).ConfigureAwait(false))
        {
            try
            {
                Sweep(idle: TimeSpan.FromSeconds(options.Value.LeaseIdleSeconds));
            }
            catch (Exception ex) when (!stoppingToken.IsCancellationRequested)
            {
                BackgroundLoop.Failed(log, "lease sweep", ex);
            }
        }
    }

    /// <summary>Whether no slice is being taken for the key now (tests wait on it rather than on time).</summary>
    internal bool IsSettled(Guid keyId)
    {
        if (!_keys.TryGetValue(keyId, out var state)) return true;
        lock (state) return !state.Taking;
    }

    /// <summary>Gives back idle leases (with their unused requests and tokens) and retired leases with nothing in flight.</summary>
    public void Sweep(TimeSpan idle)
    {
        var window = clock.GetUtcNow().ToUnixTimeSeconds() / WindowSeconds;
        foreach (var state in _keys.Values)
        {
            lock (state)
            {
                if (state.Current is { } lease && (lease.Window != window || Stopwatch.GetElapsedTime(lease.LastUse) >= idle))
                    Retire(state, returnUnused: lease.Window == window);
            }
        }
        for (var n = _retired.Count; n > 0 && _retired.TryDequeue(out var retired); n--)
        {
            if (Volatile.Read(ref retired.InFlight) == 0) CloseLater(retired);
            else _retired.Enqueue(retired);
        }
    }

    /// <summary>On shutdown every lease is given back once the requests it admitted have been filed.</summary>
    public override async Task StopAsync(CancellationToken cancellationToken)
    {
        _stopping = true;
        await base.StopAsync(cancellationToken);
        var deadline = Stopwatch.GetTimestamp();
        while (true)
        {
            Sweep(TimeSpan.Zero);
            if (_retired.IsEmpty || Stopwatch.GetElapsedTime(deadline) > TimeSpan.FromSeconds(10) || cancellationToken.IsCancellationRequested) break;
            await Task.Delay(50, CancellationToken.None);
        }
        await queue.FlushAsync();
    }

    /// <summary>What one replica knows of a key: its current lease and how busy the key is.</summary>
    internal sealed class KeyState
    {
        public Lease? Current;
        public long DemandWindow, Demand, RefusedWindow = -1;
        public bool Taking;
    }

    internal sealed class Lease(string id, Guid organization, Guid key, long window, string counter, bool credits)
    {
        public string Id { get; } = id;
        public Guid Organization { get; } = organization;
        public Guid Key { get; } = key;
        public long Window { get; } = window;
        public string Counter { get; } = counter;
        public bool Credits { get; } = credits;
        // Named once per lease, not once per filed request.
        public RedisKey LeasesKey { get; } = LimitKeys.Leases(organization);
        public RedisKey HeldKey { get; } = LimitKeys.Held(counter);
        public RedisKey UnbilledKey { get; } = LimitKeys.Unbilled(counter);
        public RedisKey VersionKey { get; } = LimitKeys.Version(organization);
        public long Requests, Tokens, Money, RequestSlice, TokenSlice, MoneySlice;
        public int Slots, InFlight, Closing;
        public long SharedKeyRequests, SharedKeyTokens, SharedBalance, SharedOrgRequests, SharedOrgTokens;
        public long LastUse;
        public bool Retired, ReturnUnused;
        /// <summary>Requests that ended and are not filed yet (<see cref="FileAsync"/>); locked on itself.</summary>
        public readonly List<Filing> Unfiled = [];
    }

    private static partial class Log
    {
        [LoggerMessage(LogLevel.Warning, "Could not take an admission lease; the exact path admits meanwhile")]
        public static partial void TakeFailed(ILogger logger, Exception exception);

        [LoggerMessage(LogLevel.Warning, "Could not give back admission lease {LeaseId}; retrying")]
        public static partial void CloseFailed(ILogger logger, string leaseId, Exception exception);

        [LoggerMessage(LogLevel.Warning, "Gave back admission lease {LeaseId} of replica {Replica}")]
        public static partial void Reaped(ILogger logger, string leaseId, string replica);

        [LoggerMessage(LogLevel.Warning, "Usage buffer unavailable; spooling {EventId} to disk")]
        public static partial void Spooling(ILogger logger, string eventId, Exception exception);
    }
}

/// <summary>A request admitted from a lease: completing it returns its unused share and files its usage.</summary>
public sealed class LeaseTicket
{
    private readonly AdmissionLeases _leases;
    private readonly AdmissionLeases.KeyState _state;
    private readonly AdmissionLeases.Lease _lease;
    private readonly int _tokens;
    private int _completed;

    internal LeaseTicket(AdmissionLeases leases, AdmissionLeases.KeyState state, AdmissionLeases.Lease lease, int tokens, long amount, bool credits)
    {
        (_leases, _state, _lease, _tokens, Amount, Credits) = (leases, state, lease, tokens, amount, credits);
    }

    /// <summary>What was taken from the lease for this request: credit units or quota tokens.</summary>
    public long Amount { get; }
    public bool Credits { get; }

    /// <summary>What the usage costs, never more than was taken (like <see cref="Hold.Charge"/>).</summary>
    public long Charge(int promptTokens, int completionTokens, decimal cost) =>
        Math.Min(Amount, Credits ? Pricing.ToUnits(cost) : promptTokens + completionTokens);

    /// <summary>Once per request (later calls do nothing).</summary>
    public void Complete(UsageRecord record)
    {
        if (Interlocked.Exchange(ref _completed, 1) == 1) return;
        _leases.Complete(_state, _lease, _tokens, Amount, Charge(record.PromptTokens, record.CompletionTokens, record.Cost), record);
    }
}
