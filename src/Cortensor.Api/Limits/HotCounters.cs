using Cortensor.Api.Data;
using Npgsql;
using StackExchange.Redis;
using Cortensor.Api.Infrastructure;

namespace Cortensor.Api.Limits;

/// <summary>
/// The hot-path counters (credit balances, monthly token use) and the ledger they must equal. A
/// counter should always be: the ledger, less what open reservations hold, less charges settled but
/// not yet written (credits; plus them for quota). Admission leases are holds too: their unspent money
/// is in the held figure, and a charge filed from a lease moves from held to pending. Redis gives those three at one instant; Postgres
/// gives the ledger and which of the unwritten charges it already has, in one statement. The result
/// is set only if no admission, settlement or grant moved the organisation in between, so a busy
/// organisation is corrected too, whenever its counters hold still for a moment. A grant (top-up, admin grant or
/// clawback) is noted in Redis before its ledger commit and applied after it (<see cref="GrantAsync"/>); the comparison
/// strikes the noted grants the ledger already has, so a grant committed between the snapshot and the ledger read is
/// counted by the comparison or by its own apply, never by both.
/// </summary>
public sealed partial class HotCounters(IConnectionMultiplexer redis, NpgsqlDataSource postgres, TimeProvider clock, ILogger<HotCounters>? log = null)
{
    public const int QuotaTtlSeconds = 40 * 24 * 3600;

    /// <param name="PostponedWith">Set when the counter was not compared: this many charges were pending for the ledger.</param>
    public sealed record Outcome(bool Changed, long? Before, long Expected, long? PostponedWith = null);

    /// <summary>Brings one organisation's current counter to the ledger's figure; with <paramref name="onlyIfMissing"/>, only loads a missing one.</summary>
    /// <param name="maxPending">
    /// Postpones the comparison while more charges than this wait for the ledger (the writers are behind, or Postgres
    /// is away): reading them all would hold Redis, and every request, for as long as it takes.
    /// </param>
    public async Task<Outcome?> ReconcileAsync(Guid org, BillingMode mode, bool onlyIfMissing, CancellationToken ct, int maxPending = int.MaxValue)
    {
        var grantsKey = (RedisKey)LimitKeys.PendingGrants(org);
        var db = redis.GetDatabase();
        var now = clock.GetUtcNow();
        var credits = mode == BillingMode.PrepaidCredits;
        var counter = LimitKeys.Counter(org, credits, now);
        var snapshot = (RedisResult[])(await db.ScriptEvaluateAsync(AdmissionScripts.Snapshot, new
        {
            counter = (RedisKey)counter, heldKey = (RedisKey)LimitKeys.Held(counter), version = (RedisKey)LimitKeys.Version(org),
            unbilled = (RedisKey)LimitKeys.Unbilled(counter), maxPending, grants = grantsKey, credits = credits ? "1" : "0",
        }))!;
        if (AfterSnapshot is not null) await AfterSnapshot();
        var current = snapshot[0].ToString() is { Length: > 0 } c ? long.Parse(c, System.Globalization.CultureInfo.InvariantCulture) : (long?)null;
        if (onlyIfMissing && current is not null) return null;
        // A credit balance Redis never loaded is loaded on first use, not here.
        if (!onlyIfMissing && credits && current is null) return null;
        if ((long)snapshot[4] > maxPending) return new Outcome(false, current, current ?? 0, (long)snapshot[4]);
        var held = (long)snapshot[1];
        var seen = snapshot[2].ToString();
        var pairs = (RedisResult[])snapshot[3]!;
        var unbilled = new Dictionary<string, long>(pairs.Length / 2);
        for (var i = 0; i + 1 < pairs.Length; i += 2) unbilled[pairs[i].ToString()] = (long)pairs[i + 1];
        var grants = ((RedisResult[])snapshot[5]!).Select(g => g.ToString()).ToArray();

        // One statement, so one snapshot of the ledger. The balance and the month's tokens come from the ledger's totals
        // (kept by the database with every insert), not from summing an organisation's ledger, which grows without end;
        // the pending charges and noted grants are looked up by their unique index.
        const string pendingWritten =
            "(SELECT coalesce(array_agg(reference), '{}') FROM billing_ledger WHERE kind = 'Usage' AND reference = ANY($2) AND organization_id = $1)";
        // Each kind named: an equality on both columns of the (kind, reference) index, where "kind <> 'Usage'" would walk the
        // organisation's whole ledger. Without noted grants nothing is looked up.
        var grantsWritten = grants.Length == 0 ? "'{}'::text[]"
            : "(SELECT coalesce(array_agg(reference), '{}') FROM billing_ledger WHERE kind IN ('Grant', 'TopUp', 'Adjustment') AND reference = ANY($3) AND organization_id = $1)";
        await using var command = postgres.CreateCommand(credits
            ? $"SELECT (SELECT coalesce(sum(amount), 0) FROM ledger_totals WHERE organization_id = $1), 0::bigint, {pendingWritten}, {grantsWritten}"
            : $"SELECT 0::numeric, (SELECT coalesce(sum(usage_tokens), 0)::bigint FROM ledger_totals WHERE organization_id = $1 AND month = $3), {pendingWritten}, '{{}}'::text[]");
        command.Parameters.Add(new NpgsqlParameter { Value = org });
        command.Parameters.Add(new NpgsqlParameter { Value = unbilled.Keys.ToArray() });
        if (!credits) command.Parameters.Add(new NpgsqlParameter { Value = new DateOnly(now.Year, now.Month, 1) });
        else if (grants.Length > 0) command.Parameters.Add(new NpgsqlParameter { Value = grants });
        decimal balance;
        long tokens;
        string[] written;
        string[] grantsInLedger;
        // Disposed once, here: the data source's connection goes back to the pool with the reader, and a
        // second dispose would reach a connection another request already holds.
        await using (var reader = await command.ExecuteReaderAsync(ct))
        {
            await reader.ReadAsync(ct);
            (balance, tokens, written, grantsInLedger) =
                (reader.GetDecimal(0), reader.GetInt64(1), reader.GetFieldValue<string[]>(2), reader.GetFieldValue<string[]>(3));
        }

        var pending = unbilled.Sum(u => u.Value) - written.Sum(id => unbilled.GetValueOrDefault(id));
        var expected = credits ? Pricing.ToUnits(balance) - held - pending : tokens + held + pending;
        var changed = false;
        // A noted grant the ledger has is in the expected figure but not yet in the counter (its apply has not run): it is
        // struck with the set, even when the figures agree, or its apply would add it again.
        if (current != expected || grantsInLedger.Length > 0)
        {
            changed = (long)await db.ScriptEvaluateAsync(AdmissionScripts.CompareAndSet, new
            {
                counter = (RedisKey)counter, version = (RedisKey)LimitKeys.Version(org), seen, value = expected,
                ttl = credits ? 0 : QuotaTtlSeconds, onlyIfMissing = onlyIfMissing ? "1" : "0",
                grants = grantsKey, written = string.Join('\n', grantsInLedger),
            }) == 1;
        }
        // Charges the ledger has are no longer pending: forget them (harmless if the writer already did).
        if (written.Length > 0) await db.HashDeleteAsync(LimitKeys.Unbilled(counter), written.Select(w => (RedisValue)w).ToArray());
        return new Outcome(changed, current, expected);
    }

    /// <summary>
    /// Forgets pending charges the ledger already has, a page at a time, looking at no more than <paramref name="limit"/>
    /// of them. The writers forget what they commit; this is for charges they could not name (filed by an older
    /// version, or re-driven from the dead letters) when there are too many to reconcile. Every Redis call reads or
    /// deletes one page, so requests are served in between. Returns how many were forgotten.
    /// </summary>
    public async Task<long> ForgetWrittenAsync(Guid org, BillingMode mode, int limit, CancellationToken ct)
    {
        const int pageSize = 1000;
        var db = redis.GetDatabase();
        RedisKey pending = LimitKeys.Unbilled(LimitKeys.Counter(org, mode == BillingMode.PrepaidCredits, clock.GetUtcNow()));
        var (forgotten, looked) = (0L, 0);
        var page = new List<string>(pageSize);
        await foreach (var charge in db.HashScanAsync(pending, pageSize: pageSize).WithCancellation(ct))
        {
            page.Add(charge.Name!);
            if (page.Count < pageSize) continue;
            forgotten += await ForgetAsync(page);
            looked += page.Count;
            page.Clear();
            if (looked >= limit) return forgotten;
        }
        return forgotten + await ForgetAsync(page);

        async Task<long> ForgetAsync(List<string> charges)
        {
            if (charges.Count == 0) return 0;
            await using var command = postgres.CreateCommand(
                "SELECT reference FROM billing_ledger WHERE kind = 'Usage' AND reference = ANY($1) AND organization_id = $2");
            command.Parameters.Add(new NpgsqlParameter { Value = charges.ToArray() });
            command.Parameters.Add(new NpgsqlParameter { Value = org });
            var written = new List<RedisValue>(charges.Count);
            await using (var reader = await command.ExecuteReaderAsync(ct))
                while (await reader.ReadAsync(ct)) written.Add(reader.GetString(0));
            return written.Count == 0 ? 0 : await db.HashDeleteAsync(pending, written.ToArray());
        }
    }

    /// <summary>
    /// Runs between the snapshot and the ledger read of <see cref="ReconcileAsync"/>: a test's way to commit a grant at
    /// exactly that moment.
    /// </summary>
    internal Func<Task>? AfterSnapshot { get; init; }

    /// <summary>
    /// Grants (positive) or claws back (negative) credit around <paramref name="commit"/>, the caller's ledger commit
    /// (false: the ledger already had <paramref name="reference"/>, e.g. a Stripe event delivered twice at once), so
    /// that the hot balance takes it once: noted in Redis first, applied after the commit, and folded in by
    /// reconciliation instead if the ledger has it before the apply runs. Never throws for Redis: a grant Redis did not
    /// take is in the ledger, and a caller told otherwise would make it again (an operator retrying a 500, Stripe
    /// redelivering); the reconciler brings the balance to the ledger within a pass. A commit that throws has its note
    /// struck: were the commit made after all (its reply lost), the hot balance lacks it until that pass.
    /// </summary>
    /// <returns>Whether <paramref name="commit"/> made the grant.</returns>
    public async Task<bool> GrantAsync(Guid org, string reference, decimal usd, Func<Task<bool>> commit)
    {
        var db = redis.GetDatabase();
        RedisKey grants = LimitKeys.PendingGrants(org), version = LimitKeys.Version(org);
        var amount = Pricing.ToUnits(usd);
        // This call's own note: a second delivery of the same reference notes it again, and neither may apply or strike the other's.
        var note = $"{amount}|{Guid.NewGuid():N}";
        await RedisOrLogAsync(() => db.ScriptEvaluateAsync(AdmissionScripts.PendGrant, new { grants, version, reference, note }));
        bool committed;
        try
        {
            committed = await commit();
        }
        catch (Exception)
        {
            await RedisOrLogAsync(() => db.ScriptEvaluateAsync(AdmissionScripts.DropGrant, new { grants, reference, note }));
            throw;
        }
        // Not committed here means another caller committed it: its apply (or reconciliation, which strikes the note
        // once it sees the ledger has it) counts it; striking the note here could drop that caller's note before its apply.
        if (committed)
            await RedisOrLogAsync(() => db.ScriptEvaluateAsync(AdmissionScripts.ApplyGrant, new { grants, version, reference, note, amount, counter = (RedisKey)LimitKeys.Credit(org) }));
        return committed;

        async Task RedisOrLogAsync(Func<Task> call)
        {
            try
            {
                await call();
            }
            catch (Exception ex) when (Outage.IsRedis(ex))
            {
                if (log is not null) CreditNotMoved(log, org, usd, reference, ex);
            }
        }
    }

    [LoggerMessage(LogLevel.Warning, "A grant of {Amount} USD to organization {Organization} ({Reference}) may not reach its hot balance at once (Redis did not answer); reconciliation brings the balance to the ledger")]
    private static partial void CreditNotMoved(ILogger logger, Guid organization, decimal amount, string reference, Exception exception);

    /// <summary>The hot-path balance in USD, or null when Redis has not loaded it.</summary>
    public async Task<decimal?> HotBalanceAsync(Guid org)
    {
        var db = redis.GetDatabase();
        var value = await db.StringGetAsync(LimitKeys.Credit(org));
        if (value.IsNull) return null;
        // Money leased to replicas but not spent is still the organisation's.
        var credit = LimitKeys.Credit(org);
        var leases = (await db.HashGetAllAsync(LimitKeys.Leases(org))).ToDictionary(e => e.Name.ToString(), e => e.Value);
        var leased = leases.Where(e => e.Key.EndsWith(".m", StringComparison.Ordinal)
                && leases.GetValueOrDefault(e.Key[..^2] + ".counter") == credit)
            .Sum(e => (long)e.Value);
        return Pricing.FromUnits((long)value + leased);
    }
}
