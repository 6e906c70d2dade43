using System.Text.Json;
using Cortensor.Api.Catalog;
using Cortensor.Api.Data;
using Cortensor.Api.Infrastructure;
using Cortensor.Api.Inference;
using Cortensor.Api.Keys;
using Cortensor.Api.Limits;
using Cortensor.Api.Metering;
using Cortensor.Tests.Fixtures;
using Microsoft.Extensions.Logging.Abstractions;
using Microsoft.Extensions.Options;
using Microsoft.Extensions.Time.Testing;
using Npgsql;
using StackExchange.Redis;

namespace Cortensor.Tests.Integration;

/// <summary>
/// Admission leases on real Redis: a busy key is admitted without a round trip from a slice taken ahead
/// of need, the shared totals and the balance are never exceeded whatever the replicas do, what a lease
/// did not use comes back (idle, shutdown, a dead replica through the reaper), and small limits or
/// balances stay on the exact per-request path.
/// </summary>
[Collection(InfrastructureCollection.Name)]
public class AdmissionLeaseTests(InfrastructureFixture infrastructure) : IAsyncLifetime
{
    private static readonly CatalogModel Model = new("gpt-oss-20b", "GPT-OSS 20B", "gpt-oss", true, 0.0001m, 0.0004m, 131072,
        "oss-20b", "gpt-oss-20b", DateTimeOffset.UnixEpoch);
    // Mid-minute, so no window rolls while a test runs.
    private readonly FakeTimeProvider _clock = new(new DateTimeOffset(2026, 11, 27, 12, 0, 20, TimeSpan.Zero));
    private ConnectionMultiplexer _redis = null!;
    private NpgsqlDataSource _postgres = null!;
    private string _spool = null!;
    private readonly Guid _org = Guid.CreateVersion7();
    private readonly string _replica = "replica-" + Guid.NewGuid().ToString("N")[..8];
    private readonly List<Replica> _replicas = [];

    public async Task InitializeAsync()
    {
        _postgres = NpgsqlDataSource.Create(await infrastructure.CreateDatabaseAsync());
        _redis = await ConnectionMultiplexer.ConnectAsync(infrastructure.RedisConnectionString);
        _spool = Path.Combine(Path.GetTempPath(), "cortensor-tests", "spool-" + Guid.NewGuid().ToString("N"));
        await _redis.GetDatabase().KeyDeleteAsync([UsageMeter.Stream, LimitKeys.Due]);
    }

    public async Task DisposeAsync()
    {
        foreach (var r in _replicas) await r.Queue.StopAsync(CancellationToken.None);
        var db = _redis.GetDatabase();
        await db.KeyDeleteAsync([UsageMeter.Stream, LimitKeys.Due]);
        foreach (var entry in await db.HashGetAllAsync(LimitKeys.Replicas))
            if (entry.Name.ToString().StartsWith(_replica, StringComparison.Ordinal)) await db.HashDeleteAsync(LimitKeys.Replicas, entry.Name);
        await _redis.DisposeAsync();
        await _postgres.DisposeAsync();
        if (Directory.Exists(_spool)) Directory.Delete(_spool, recursive: true);
    }

    [Fact]
    public async Task ABusyKeyIsAdmittedFromItsLeaseWithoutReservationsAndWhatTheLeaseDidNotUseComesBack()
    {
        var replica = await StartAsync("a");
        var db = _redis.GetDatabase();
        await db.StringSetAsync(LimitKeys.Credit(_org), Pricing.ToUnits(10m));
        var key = Key(requestsPerMinute: 1000);
        var window = _clock.GetUtcNow().ToUnixTimeSeconds() / 60;

        // The first requests are exact (reservations) and make the key busy enough for a lease.
        var charged = 0L;
        for (var i = 0; i < new LimitsOptions().LeaseAfterRequests; i++) charged += await AdmitAndCompleteAsync(replica, key, 100, 100, 80);
        await ReplicaTesting.UntilRedisSettlesAsync(async () => await db.HashLengthAsync(LimitKeys.Leases(_org)) > 0);
        var leased = 0;
        for (var i = 0; i < 20; i++)
        {
            var (admission, draft) = await AdmitAsync(replica, key, 100, 100);
            Assert.True(admission.Admitted);
            if (admission.Lease is null) { charged += Complete(replica, admission, draft, 100, 80); continue; }
            leased++;
            Assert.Null(admission.Hold);
            charged += Complete(replica, admission, draft, 100, 80);
        }
        Assert.True(leased >= 15, $"only {leased} of 20 requests came from the lease");
        await replica.Queue.FlushedAsync(); // the exact requests' settlements leave through the queue
        Assert.Equal(0, await db.HashLengthAsync(LimitKeys.Reservations(_org)));

        replica.Leases.Sweep(TimeSpan.Zero); // idle: given back
        await replica.Queue.FlushedAsync();
        await ReplicaTesting.UntilRedisSettlesAsync(async () => await db.HashLengthAsync(LimitKeys.Leases(_org)) == 0);
        Assert.Equal(Pricing.ToUnits(10m) - charged, (long)await db.StringGetAsync(LimitKeys.Credit(_org)));
        Assert.Equal(0, (long)await db.StringGetAsync(LimitKeys.Held(LimitKeys.Credit(_org))));
        Assert.Equal(0, (long)await db.StringGetAsync(LimitKeys.LeasedSlots(_org)));
        // Unused requests and tokens went back to the shared windows: they count exactly what was admitted.
        Assert.Equal(28, (long)await db.StringGetAsync(LimitKeys.KeyRequests(key.KeyId, window)));
        Assert.Equal(28, (long)await db.StringGetAsync(LimitKeys.OrgRequests(_org, window)));
        Assert.Equal(28 * 180, (long)await db.StringGetAsync(LimitKeys.KeyTokens(key.KeyId, window)));
        var records = (await db.StreamRangeAsync(UsageMeter.Stream)).Select(ReplicaTesting.Parse).Where(r => r.OrganizationId == _org).ToList();
        Assert.Equal(28, records.Select(r => r.EventId).Distinct().Count());
        Assert.Equal(charged, records.Sum(r => Pricing.ToUnits(r.Cost)));
        // Each charge is pending for the ledger until the writer has it, as for reservations.
        Assert.Equal(charged, (await db.HashGetAllAsync(LimitKeys.Unbilled(LimitKeys.Credit(_org)))).Sum(e => (long)e.Value));
    }

    [Fact]
    public async Task EveryChargeLeavesThePendingChargesWhenTheWriterCommitsItAndTheBalanceStillEqualsTheLedger()
    {
        await using (var command = _postgres.CreateCommand(
            """
            WITH org AS (INSERT INTO organizations (id, name, status, plan_id, created_at) VALUES ($1, 'leases', 'Active', 'pro', now()) RETURNING id)
            INSERT INTO billing_ledger (organization_id, kind, amount, tokens, reference, created_at) SELECT id, 'Grant', 10, 0, 'grant-leases', now() FROM org
            """))
        {
            command.Parameters.Add(new NpgsqlParameter { Value = _org });
            await command.ExecuteNonQueryAsync();
        }
        var replica = await StartAsync("a");
        var db = _redis.GetDatabase();
        await db.StringSetAsync(LimitKeys.Credit(_org), Pricing.ToUnits(10m));
        var key = Key(requestsPerMinute: 1000);
        // Charges filed both ways: settled reservations first, then from a lease once the key is busy.
        var requests = await AdmitUntilLeasedAsync(replica, key, completion: 80);
        await replica.Queue.FlushedAsync();
        var pending = LimitKeys.Unbilled(LimitKeys.Credit(_org));
        Assert.Equal(requests, await db.HashLengthAsync(pending));

        var writer = new UsageWriter(_redis, _postgres, Options.Create(new MeteringOptions()), NullLogger<UsageWriter>.Instance);
        await writer.StartAsync(CancellationToken.None);
        try
        {
            // No reconciliation runs here: the writer alone forgets what the ledger now has.
            await ReplicaTesting.UntilRedisSettlesAsync(async () => await db.HashLengthAsync(pending) == 0);
        }
        finally
        {
            await writer.StopAsync(CancellationToken.None);
        }
        await using (var count = _postgres.CreateCommand("SELECT count(*) FROM billing_ledger WHERE organization_id = $1 AND kind = 'Usage'"))
        {
            count.Parameters.Add(new NpgsqlParameter { Value = _org });
            Assert.Equal((long)requests, (long)(await count.ExecuteScalarAsync())!);
        }
        // The counter, less what the lease still holds, is the ledger's balance: nothing to correct.
        var outcome = await new HotCounters(_redis, _postgres, _clock).ReconcileAsync(_org, BillingMode.PrepaidCredits, onlyIfMissing: false, CancellationToken.None);
        Assert.NotNull(outcome);
        Assert.Equal(outcome.Expected, outcome.Before);
        Assert.False(outcome.Changed);
    }

    [Fact]
    public async Task RequestsOfOneLeaseThatEndTogetherAreFiledInFewerCallsThanRequestsAndEachRecordOnceWithItsCharge()
    {
        var replica = await StartAsync("a");
        var db = _redis.GetDatabase();
        await db.StringSetAsync(LimitKeys.Credit(_org), Pricing.ToUnits(10m));
        var key = Key(requestsPerMinute: 1000);
        await AdmitUntilLeasedAsync(replica, key, completion: 80);
        // Requests in flight together on the lease, all ending at once (as under load).
        var inFlight = await AdmitInFlightFromLeaseAsync(replica, key);
        await replica.Queue.FlushedAsync();
        var pending = LimitKeys.Unbilled(LimitKeys.Credit(_org));
        var (pendingBefore, streamBefore) = (await db.HashLengthAsync(pending), await db.StreamLengthAsync(UsageMeter.Stream));
        var versionBefore = (long)await db.StringGetAsync(LimitKeys.Version(_org));

        var charges = inFlight.Select((r, i) => (r.Draft.EventId, Charge: Complete(replica, r.Admission, r.Draft, 100, 10 + i))).ToList();
        await replica.Queue.FlushedAsync();

        // Every record is in the stream once and every charge is pending under its event id.
        var filed = (await db.StreamRangeAsync(UsageMeter.Stream)).Select(ReplicaTesting.Parse).Where(r => charges.Any(c => c.EventId == r.EventId)).ToList();
        Assert.Equal(charges.Select(c => c.EventId).Order(), filed.Select(r => r.EventId).Order());
        Assert.Equal(streamBefore + charges.Count, await db.StreamLengthAsync(UsageMeter.Stream));
        Assert.Equal(pendingBefore + charges.Count, await db.HashLengthAsync(pending));
        foreach (var (eventId, charge) in charges) Assert.Equal(charge, (long)await db.HashGetAsync(pending, eventId));
        // Each filing call marks the organisation's counters changed once: fewer marks than requests is fewer calls.
        var calls = (long)await db.StringGetAsync(LimitKeys.Version(_org)) - versionBefore;
        Assert.InRange(calls, 1, charges.Count - 1);
    }

    [Fact]
    public async Task RequestsOfOneLeaseFiledWhileRedisDoesNotAnswerAreEveryOneKeptInTheSpool()
    {
        // This replica's Redis calls give up after 300 ms; Redis holds writes until the filing call has given up.
        await using var impatient = await ConnectionMultiplexer.ConnectAsync(infrastructure.RedisConnectionString + ",asyncTimeout=300,syncTimeout=300");
        var replica = await StartAsync("a", impatient);
        var db = _redis.GetDatabase();
        await db.StringSetAsync(LimitKeys.Credit(_org), Pricing.ToUnits(10m));
        var key = Key(requestsPerMinute: 1000);
        await AdmitUntilLeasedAsync(replica, key, completion: 80);
        var inFlight = await AdmitInFlightFromLeaseAsync(replica, key);
        await replica.Queue.FlushedAsync();

        await using (await RedisPause.WritesAsync(infrastructure.RedisConnectionString))
        {
            foreach (var (admission, draft) in inFlight) Complete(replica, admission, draft, 100, 10);
            await replica.Queue.FlushedAsync();
        }

        // The filing call timed out: every one of its records is on disk, to be replayed (the writer keeps each event once).
        replica.Spool.Dispose(); // the replica is gone: its spool file is unlocked
        var spooled = Directory.EnumerateFiles(_spool, "*", SearchOption.AllDirectories)
            .SelectMany(File.ReadAllLines).Where(l => l.Length > 0)
            .Select(l => JsonSerializer.Deserialize(l, PortalJsonContext.Default.UsageRecord)!.EventId).ToList();
        Assert.Equal(inFlight.Select(r => r.Draft.EventId).Order(), spooled.Order());
    }

    [Fact]
    public async Task TwoReplicasLeasingFromOneSmallBalanceNeverSpendMoreThanIt()
    {
        var a = await StartAsync("a");
        var b = await StartAsync("b");
        var db = _redis.GetDatabase();
        var balance = Pricing.ToUnits(0.03m); // room for leases of $0.0015 (30 requests) and for 600 requests in all
        await db.StringSetAsync(LimitKeys.Credit(_org), balance);
        var key = Key(requestsPerMinute: 100_000);
        var charged = 0L;
        var (admitted, fromLeases, refusedInARow) = (0, 0, 0);
        for (var i = 0; i < 5000 && refusedInARow < 50; i++)
        {
            var replica = i % 2 == 0 ? a : b;
            var (admission, draft) = await AdmitAsync(replica, key, 100, 100);
            if (!admission.Admitted)
            {
                Assert.Equal(AdmissionVerdict.InsufficientFunds, admission.Verdict);
                refusedInARow++;
                continue;
            }
            refusedInARow = 0;
            admitted++;
            if (admission.Lease is not null) fromLeases++;
            charged += Complete(replica, admission, draft, 100, 100); // the whole reservation is used
            Assert.True((long)await db.StringGetAsync(LimitKeys.Credit(_org)) >= 0);
        }
        Assert.True(fromLeases > 0, "no request came from a lease");
        foreach (var r in new[] { a, b }) { r.Leases.Sweep(TimeSpan.Zero); await r.Queue.FlushedAsync(); }
        await ReplicaTesting.UntilRedisSettlesAsync(async () => await db.HashLengthAsync(LimitKeys.Leases(_org)) == 0);

        Assert.True(charged <= balance, $"charged {charged} of a balance of {balance}");
        Assert.Equal(balance - charged, (long)await db.StringGetAsync(LimitKeys.Credit(_org)));
        Assert.Equal(0, (long)await db.StringGetAsync(LimitKeys.Held(LimitKeys.Credit(_org))));
        // Nothing worth more than a few requests was left stranded: the balance ran out, it was not held back by leases
        // (each lease can end with less than one request's reservation in it).
        Assert.True(balance - charged < 3 * Pricing.ToUnits(Pricing.Cost(Model, 100, 100)), $"{balance - charged} left unspent");
        Assert.Equal(admitted, (await db.StreamRangeAsync(UsageMeter.Stream)).Select(ReplicaTesting.Parse).Count(r => r.OrganizationId == _org));
    }

    [Fact]
    public async Task ADeadReplicasLeaseIsGivenBackByTheReaperAndItsUnfiledRequestsCostNothing()
    {
        var dying = await StartAsync("dying");
        var db = _redis.GetDatabase();
        await db.StringSetAsync(LimitKeys.Credit(_org), Pricing.ToUnits(10m));
        var key = Key(requestsPerMinute: 1000);
        var charged = 0L;
        for (var i = 0; i < new LimitsOptions().LeaseAfterRequests; i++) charged += await AdmitAndCompleteAsync(dying, key, 100, 100, 50);
        await ReplicaTesting.UntilRedisSettlesAsync(async () => await db.HashLengthAsync(LimitKeys.Leases(_org)) > 0);
        // One request admitted from the lease is in flight when the replica dies (and any exact one before it).
        var exactInFlight = 0;
        await ReplicaTesting.UntilRedisSettlesAsync(async () =>
        {
            var fromLease = (await AdmitAsync(dying, key, 100, 100)).Admission.Lease is not null;
            if (!fromLease) exactInFlight++;
            return fromLease;
        });
        Assert.True((long)await db.StringGetAsync(LimitKeys.Credit(_org)) < Pricing.ToUnits(10m) - charged);
        // The requests it completed left its queue before it died: a settlement still queued would be the
        // reaper's too, and whether it is depends on how fast the queue ran.
        await dying.Queue.FlushedAsync();
        await db.HashSetAsync(LimitKeys.Replicas, dying.Id, _clock.GetUtcNow().ToUnixTimeSeconds());

        var survivor = await StartAsync("survivor");
        Assert.Equal(0, await survivor.Reaper.ReapAsync(CancellationToken.None));
        _clock.Advance(TimeSpan.FromSeconds(new LimitsOptions().ReplicaSilenceSeconds + 1));
        Assert.Equal(1 + exactInFlight, await survivor.Reaper.ReapAsync(CancellationToken.None));

        Assert.Equal(0, await db.HashLengthAsync(LimitKeys.Leases(_org)));
        Assert.Equal(Pricing.ToUnits(10m) - charged, (long)await db.StringGetAsync(LimitKeys.Credit(_org)));
        Assert.Equal(0, (long)await db.StringGetAsync(LimitKeys.Held(LimitKeys.Credit(_org))));
        Assert.Equal(0, (long)await db.StringGetAsync(LimitKeys.LeasedSlots(_org)));
        Assert.Equal(0, await survivor.Reaper.ReapAsync(CancellationToken.None));
    }

    /// <summary>
    /// A replica silent long enough to be taken for dead, yet alive: the reaper gives its lease back, and the replica goes
    /// on admitting from what it holds locally. Its top-up must not bring the lease back in Redis without its money (the
    /// charges filed against it then left nothing); every charge is taken from the balance once.
    /// </summary>
    [Fact]
    public async Task ALeaseTheReaperGaveBackIsNotBroughtBackByATopUpAndEveryChargeIsTakenFromTheBalance()
    {
        var silent = await StartAsync("silent");
        var db = _redis.GetDatabase();
        var (key, charged) = await LeasingKeyAsync(silent, requestsPerMinute: 200, completion: 50); // slices of 10 requests
        await silent.Queue.FlushedAsync();
        await db.HashSetAsync(LimitKeys.Replicas, silent.Id, _clock.GetUtcNow().ToUnixTimeSeconds());

        var survivor = await StartAsync("survivor");
        await survivor.Reaper.ReapAsync(CancellationToken.None);
        _clock.Advance(TimeSpan.FromSeconds(new LimitsOptions().ReplicaSilenceSeconds + 1));
        Assert.True(await survivor.Reaper.ReapAsync(CancellationToken.None) >= 1);
        Assert.Equal(0, await db.HashLengthAsync(LimitKeys.Leases(_org)));

        // The silent replica goes on: its local slice runs low, it tops up, then (the lease gone) admits exactly.
        var leased = 0;
        for (var i = 0; i < 15; i++)
        {
            var (admission, draft) = await AdmitAsync(silent, key, 100, 100);
            Assert.True(admission.Admitted, admission.Verdict.ToString());
            if (admission.Lease is not null) leased++;
            charged += Complete(silent, admission, draft, 100, 50);
            await ReplicaTesting.UntilRedisSettlesAsync(() => Task.FromResult(silent.Leases.IsSettled(key.KeyId)));
        }
        Assert.True(leased >= 5, $"only {leased} requests came from the local slice");
        silent.Leases.Sweep(TimeSpan.Zero);
        await silent.Queue.FlushedAsync();
        await ReplicaTesting.UntilRedisSettlesAsync(async () => await db.HashLengthAsync(LimitKeys.Leases(_org)) == 0
            && (long)await db.StringGetAsync(LimitKeys.Held(LimitKeys.Credit(_org))) == 0);
        Assert.Equal(Pricing.ToUnits(10m) - charged, (long)await db.StringGetAsync(LimitKeys.Credit(_org)));
    }

    /// <summary>
    /// A top-up takes only what the lease is short of: requests running low take requests, not another twentieth of the
    /// balance (each top-up did, until a busy lease held most of a balance it would never spend).
    /// </summary>
    [Fact]
    public async Task ALeaseShortOfRequestsTakesRequestsAndNotMoreMoney()
    {
        var replica = await StartAsync("a");
        var db = _redis.GetDatabase();
        var (key, _) = await LeasingKeyAsync(replica, requestsPerMinute: 200); // slices of 10 requests; the money slice is $0.50
        var window = _clock.GetUtcNow().ToUnixTimeSeconds() / 60;
        await replica.Queue.FlushedAsync();
        var balance = (long)await db.StringGetAsync(LimitKeys.Credit(_org));
        var requests = (long)await db.StringGetAsync(LimitKeys.OrgRequests(_org, window));

        var leased = 0;
        for (var i = 0; i < 12; i++)
        {
            var (admission, draft) = await AdmitAsync(replica, key, 100, 100);
            Assert.True(admission.Admitted);
            if (admission.Lease is not null) leased++;
            Complete(replica, admission, draft, 100, 10);
            await ReplicaTesting.UntilRedisSettlesAsync(() => Task.FromResult(replica.Leases.IsSettled(key.KeyId)));
        }
        await replica.Queue.FlushedAsync();
        Assert.Equal(12, leased); // topped up with requests before they ran out
        Assert.Equal(requests + 10, (long)await db.StringGetAsync(LimitKeys.OrgRequests(_org, window)));
        Assert.Equal(balance, (long)await db.StringGetAsync(LimitKeys.Credit(_org))); // no money taken: the lease had plenty
    }

    [Fact]
    public async Task ALeaseWhoseGrantTimedOutButRanLaterIsGivenBackOnceRedisAnswers()
    {
        // The replica waits a second for Redis; Redis holds writes for longer, then runs them: the grant the replica
        // gave up on takes its slice of the balance all the same.
        await using var impatient = await ConnectionMultiplexer.ConnectAsync(infrastructure.RedisConnectionString + ",asyncTimeout=1000,syncTimeout=1000");
        var replica = await StartAsync("impatient", impatient);
        var db = _redis.GetDatabase();
        await db.StringSetAsync(LimitKeys.Credit(_org), Pricing.ToUnits(10m));
        var key = Key(requestsPerMinute: 1000);
        var charged = 0L;
        for (var i = 0; i < new LimitsOptions().LeaseAfterRequests - 1; i++) charged += await AdmitAndCompleteAsync(replica, key, 100, 100, 50);

        // Nothing of the loop's left in flight on the test's own connection while Redis holds writes.
        await replica.Queue.FlushedAsync();
        // Held until the replica has given up on both, and then let go.
        Admission admission;
        await using (await RedisPause.WritesAsync(infrastructure.RedisConnectionString))
        {
            // Read just before: a connection that timed out having read nothing for over four timeouts is closed as dead,
            // and Redis drops what it held for it.
            await impatient.GetDatabase().PingAsync();
            // This admission asks for the key's first lease; both the grant and the admission's own script time out.
            (admission, _) = await AdmitAsync(replica, key, 100, 100);
            await ReplicaTesting.UntilRedisSettlesAsync(() => Task.FromResult(replica.Leases.IsSettled(key.KeyId)));
        }
        Assert.True(admission.Local);
        Assert.Null(admission.Lease);
        // What was held ran once Redis resumed (a connection closed as dead would have had it dropped, proving nothing).
        await ReplicaTesting.UntilRedisSettlesAsync(async () => await db.HashLengthAsync(LimitKeys.Reservations(_org)) == 1);
        // Once Redis has run the grant. The replica gives back what it may have been granted, and the reaper settles the
        // admission whose outcome it did not learn (admitted locally meanwhile, it charged nothing).
        await ReplicaTesting.UntilRedisSettlesAsync(async () =>
        {
            replica.Leases.Sweep(TimeSpan.FromMinutes(1));
            await replica.Queue.FlushedAsync();
            await replica.Reaper.ReapAsync(CancellationToken.None);
            return await db.HashLengthAsync(LimitKeys.Leases(_org)) == 0 && await db.HashLengthAsync(LimitKeys.Reservations(_org)) == 0;
        });
        Assert.Equal(Pricing.ToUnits(10m) - charged, (long)await db.StringGetAsync(LimitKeys.Credit(_org)));
        Assert.Equal(0, (long)await db.StringGetAsync(LimitKeys.Held(LimitKeys.Credit(_org))));
        Assert.Equal(0, (long)await db.StringGetAsync(LimitKeys.LeasedSlots(_org)));
    }

    [Fact]
    public async Task WhenTheMinuteRollsABusyKeysNextLeaseIsTakenAtOnceAndTheOldOneGivenBack()
    {
        var replica = await StartAsync("a");
        var db = _redis.GetDatabase();
        await db.StringSetAsync(LimitKeys.Credit(_org), Pricing.ToUnits(10m));
        var key = Key(requestsPerMinute: 1000);
        var charged = 0L;
        for (var i = 0; i < new LimitsOptions().LeaseAfterRequests; i++) charged += await AdmitAndCompleteAsync(replica, key, 100, 100, 50);
        await ReplicaTesting.UntilRedisSettlesAsync(async () =>
        {
            var (admission, draft) = await AdmitAsync(replica, key, 100, 100);
            charged += Complete(replica, admission, draft, 100, 50);
            return admission.Lease is not null;
        });

        _clock.Advance(TimeSpan.FromSeconds(60));
        var exactInNewMinute = 0;
        await ReplicaTesting.UntilRedisSettlesAsync(async () =>
        {
            var (admission, draft) = await AdmitAsync(replica, key, 100, 100);
            charged += Complete(replica, admission, draft, 100, 50);
            if (admission.Lease is null) exactInNewMinute++;
            return admission.Lease is not null;
        });
        Assert.True(exactInNewMinute < new LimitsOptions().LeaseAfterRequests, $"{exactInNewMinute} exact admissions before the new minute's lease");

        replica.Leases.Sweep(TimeSpan.Zero);
        await replica.Queue.FlushedAsync();
        await ReplicaTesting.UntilRedisSettlesAsync(async () => await db.HashLengthAsync(LimitKeys.Leases(_org)) == 0);
        Assert.Equal(Pricing.ToUnits(10m) - charged, (long)await db.StringGetAsync(LimitKeys.Credit(_org)));
        Assert.Equal(0, (long)await db.StringGetAsync(LimitKeys.Held(LimitKeys.Credit(_org))));
    }

    [Fact]
    public async Task AQuotaKeyLeasesTokensOfItsMonthAndTheCounterEndsAtWhatWasUsed()
    {
        var replica = await StartAsync("a");
        var db = _redis.GetDatabase();
        var quota = LimitKeys.Quota(_org, LimitKeys.Period(_clock.GetUtcNow()));
        var key = new KeySnapshot(Guid.CreateVersion7(), _org, ApiKeyStatus.Active, null, OrganizationStatus.Active,
            "quota", BillingMode.MonthlyQuota, ["gpt-oss-20b"], 1000, 100_000_000, 1_000_000, 1000, 100_000_000, 256);
        var requests = await AdmitUntilLeasedAsync(replica, key, completion: 30);
        Assert.True((long)await db.StringGetAsync(quota) >= requests * 130 + 16 * 200); // the lease's tokens are counted as used while held

        replica.Leases.Sweep(TimeSpan.Zero);
        await replica.Queue.FlushedAsync();
        await ReplicaTesting.UntilRedisSettlesAsync(async () => await db.HashLengthAsync(LimitKeys.Leases(_org)) == 0);
        Assert.Equal(requests * 130, (long)await db.StringGetAsync(quota));
        Assert.Equal(0, (long)await db.StringGetAsync(LimitKeys.Held(quota)));
        Assert.Equal(requests * 130, (await db.HashGetAllAsync(LimitKeys.Unbilled(quota))).Sum(e => (long)e.Value));
    }

    [Fact]
    public async Task AKeyWithASmallLimitOrASmallBalanceStaysOnTheExactPath()
    {
        var replica = await StartAsync("a");
        var db = _redis.GetDatabase();
        await db.StringSetAsync(LimitKeys.Credit(_org), Pricing.ToUnits(10m));
        var small = Key(requestsPerMinute: 60); // a slice would be 3 requests
        for (var i = 0; i < 30; i++) await AdmitAndCompleteAsync(replica, small, 100, 100, 10);
        await replica.Queue.FlushedAsync();
        Assert.Equal(0, await db.HashLengthAsync(LimitKeys.Leases(_org)));

        await db.StringSetAsync(LimitKeys.Credit(_org), Pricing.ToUnits(0.005m)); // 1/20 of it is less than 16 requests
        var big = Key(requestsPerMinute: 100_000);
        for (var i = 0; i < 30; i++) await AdmitAndCompleteAsync(replica, big, 100, 100, 10);
        await replica.Queue.FlushedAsync();
        Assert.Equal(0, await db.HashLengthAsync(LimitKeys.Leases(_org)));
    }

    /// <summary>
    /// Thirty keys of one organisation, busy at once, each with a lease of a twentieth of the organisation's minute:
    /// together they once held all of it, and the organisation's other requests were refused with most of it unused.
    /// Leases stop at three quarters of the window, so every request within the limit is admitted.
    /// </summary>
    [Fact]
    public async Task ManyBusyKeysOfOneOrganisationLeaseAtMostThreeQuartersOfItsMinuteAndEveryRequestWithinTheLimitIsAdmitted()
    {
        var replica = await StartAsync("a");
        var db = _redis.GetDatabase();
        await db.StringSetAsync(LimitKeys.Credit(_org), Pricing.ToUnits(10m));
        var window = _clock.GetUtcNow().ToUnixTimeSeconds() / 60;
        var keys = Enumerable.Range(0, 30).Select(_ => Key(requestsPerMinute: 1000)).ToList();
        foreach (var key in keys)
        {
            for (var i = 0; i < 10; i++) await AdmitAndCompleteAsync(replica, key, 100, 100, 10);
            // The key's lease, if it asked for one, is granted or refused before the next key starts.
            await ReplicaTesting.UntilRedisSettlesAsync(() => Task.FromResult(replica.Leases.IsSettled(key.KeyId)));
        }
        var held = (long)await db.StringGetAsync(LimitKeys.OrgRequests(_org, window));
        Assert.InRange(held, 300, 1000);
        // Slices of 50 within three quarters of 1,000: at most 15 leases (the keys after them were admitted one at a time).
        Assert.InRange(await db.HashLengthAsync(LimitKeys.Leases(_org)) / 4, 1, 15);

        replica.Leases.Sweep(TimeSpan.Zero); // idle: given back
        await replica.Queue.FlushedAsync();
        await ReplicaTesting.UntilRedisSettlesAsync(async () => await db.HashLengthAsync(LimitKeys.Leases(_org)) == 0);
        Assert.Equal(300, (long)await db.StringGetAsync(LimitKeys.OrgRequests(_org, window)));
    }

    /// <summary>
    /// A refusal because the organisation's minute is spent is repeated without asking Redis only until idle leases would
    /// have given their unused slices back; then admission is asked again, and what they gave back is admitted.
    /// </summary>
    [Fact]
    public async Task ASpentMinuteIsAskedAgainOnceIdleLeasesHaveGivenTheirSlicesBack()
    {
        var replica = await StartAsync("a");
        var db = _redis.GetDatabase();
        await LeasingKeyAsync(replica, requestsPerMinute: 200); // slices of 10 requests

        var other = Key(requestsPerMinute: 200);
        Admission refused;
        while (true)
        {
            var (admission, draft) = await AdmitAsync(replica, other, 100, 100);
            if (!admission.Admitted) { refused = admission; break; }
            Complete(replica, admission, draft, 100, 10);
        }
        Assert.Equal(AdmissionVerdict.OrganizationRequestsExhausted, refused.Verdict);
        // The client is told to come back when the leases may have given back, not at the minute's end (40 s away).
        var retry = new LimitsOptions().LeaseIdleSeconds + 2;
        Assert.Equal(retry, Refusals.For(refused, BillingMode.PrepaidCredits, null)!.RetryAfterSeconds);
        Assert.InRange(Refusals.For(replica.Gate.SpentWindow(other)!, BillingMode.PrepaidCredits, null)!.RetryAfterSeconds!.Value, 1, retry);
        // A request of the same burst that reached Redis before the refusal was remembered is told the same.
        var sameBurst = (await AdmitAsync(replica, other, 100, 100)).Admission;
        Assert.False(sameBurst.Admitted);
        Assert.InRange(Refusals.For(sameBurst, BillingMode.PrepaidCredits, null)!.RetryAfterSeconds!.Value, 1, retry);
        // After those seconds one request is let through to ask again; still refused (the lease is still in use), the
        // window is taken as spent, and Retry-After says its end, so a client does not spend its retries every 4 s on a
        // full minute.
        _clock.Advance(TimeSpan.FromSeconds(retry));
        Assert.Null(replica.Gate.SpentWindow(other));
        Assert.NotNull(replica.Gate.SpentWindow(other)); // the others wait on its answer
        var again = (await AdmitAsync(replica, other, 100, 100)).Admission;
        Assert.False(again.Admitted);
        Assert.True(Refusals.For(again, BillingMode.PrepaidCredits, null)!.RetryAfterSeconds > retry);

        replica.Leases.Sweep(TimeSpan.Zero); // the busy key's lease goes idle and gives back what it did not use
        await replica.Queue.FlushedAsync();
        await ReplicaTesting.UntilRedisSettlesAsync(async () => await db.HashLengthAsync(LimitKeys.Leases(_org)) == 0);
        Assert.NotNull(replica.Gate.SpentWindow(other)); // still remembered: a client retrying in a loop costs a lookup
        _clock.Advance(TimeSpan.FromSeconds(new LimitsOptions().LeaseIdleSeconds + 2));
        Assert.Null(replica.Gate.SpentWindow(other));
        Assert.True((await AdmitAsync(replica, other, 100, 100)).Admission.Admitted);
    }

    private sealed record Replica(string Id, AdmissionGate Gate, AdmissionLeases Leases, SettlementQueue Queue, UsageMeter Meter, ReservationReaper Reaper,
        UsageSpool Spool);

    /// <param name="leaseRedis">The connection the replica's admission and leases use (the others use the test's own).</param>
    private async Task<Replica> StartAsync(string name, IConnectionMultiplexer? leaseRedis = null)
    {
        leaseRedis ??= _redis;
        var id = $"{_replica}-{name}";
        var identity = ReplicaTesting.Identity(id);
        var options = Options.Create(new LimitsOptions());
        var spool = new UsageSpool(Options.Create(new MeteringOptions { SpoolDirectory = _spool }),
            new Microsoft.Extensions.Hosting.Internal.HostingEnvironment { ContentRootPath = _spool }, _redis, EmptyServices.Instance, NullLogger<UsageSpool>.Instance);
        var meter = new UsageMeter(_redis, spool, NullLogger<UsageMeter>.Instance);
        var queue = new SettlementQueue(meter, Options.Create(new MeteringOptions()), NullLogger<SettlementQueue>.Instance);
        await queue.StartAsync(CancellationToken.None);
        var leases = new AdmissionLeases(leaseRedis, queue, spool, identity, options, _clock, NullLogger<AdmissionLeases>.Instance);
        var gate = new AdmissionGate(leaseRedis, new HotCounters(leaseRedis, _postgres, _clock), new LocalAdmission(_clock), leases, identity, options, _clock,
            NullLogger<AdmissionGate>.Instance);
        var reaper = new ReservationReaper(_redis, meter, gate, leases, identity, options, _clock, NullLogger<ReservationReaper>.Instance);
        var replica = new Replica(id, gate, leases, queue, meter, reaper, spool);
        _replicas.Add(replica);
        return replica;
    }

    /// <summary>
    /// A key of the organisation, given $10 of credit, made busy enough on <paramref name="replica"/> to hold a lease; and
    /// what its exact requests before the lease were charged.
    /// </summary>
    private async Task<(KeySnapshot Key, long Charged)> LeasingKeyAsync(Replica replica, int requestsPerMinute, int completion = 10)
    {
        var db = _redis.GetDatabase();
        await db.StringSetAsync(LimitKeys.Credit(_org), Pricing.ToUnits(10m));
        var key = Key(requestsPerMinute);
        var charged = 0L;
        for (var i = 0; i < new LimitsOptions().LeaseAfterRequests; i++) charged += await AdmitAndCompleteAsync(replica, key, 100, 100, completion);
        await ReplicaTesting.UntilRedisSettlesAsync(async () => await db.HashLengthAsync(LimitKeys.Leases(_org)) > 0);
        return (key, charged);
    }

    private KeySnapshot Key(int requestsPerMinute) => new(Guid.CreateVersion7(), _org, ApiKeyStatus.Active, null, OrganizationStatus.Active,
        "pro", BillingMode.PrepaidCredits, ["gpt-oss-20b"], requestsPerMinute, 100_000_000, null, requestsPerMinute, 100_000_000, 256);

    private async Task<(Admission Admission, UsageRecord Draft)> AdmitAsync(Replica replica, KeySnapshot key, int promptTokens, int maxTokens)
    {
        var draft = new UsageRecord("evt_" + Guid.CreateVersion7().ToString("N"), "req", key.OrganizationId, key.KeyId, key.BillingMode,
            Model.Id, Model.PoolId, null, null, "POST", "/v1/chat/completions", 499, "request_abandoned", 0, 0, 0m, 0, null, false, _clock.GetUtcNow());
        var admission = await replica.Gate.AdmitAsync(key, Model, draft, promptTokens, maxTokens, CancellationToken.None);
        return (admission, draft with { Hold = admission.Hold });
    }

    private async Task<long> AdmitAndCompleteAsync(Replica replica, KeySnapshot key, int promptTokens, int maxTokens, int completion)
    {
        var (admission, draft) = await AdmitAsync(replica, key, promptTokens, maxTokens);
        Assert.True(admission.Admitted, admission.Verdict.ToString());
        return Complete(replica, admission, draft, promptTokens, completion);
    }

    /// <summary>Admits and completes requests of 100 prompt tokens until ten came from a lease; returns how many there were.</summary>
    private async Task<int> AdmitUntilLeasedAsync(Replica replica, KeySnapshot key, int completion)
    {
        var (leased, requests) = (0, 0);
        while (leased < 10)
        {
            Assert.True(++requests < 200, "no request came from a lease");
            var (admission, draft) = await AdmitAsync(replica, key, 100, 100);
            Assert.True(admission.Admitted, admission.Verdict.ToString());
            if (admission.Lease is not null) leased++;
            Complete(replica, admission, draft, 100, completion);
        }
        return requests;
    }

    /// <summary>Ten requests admitted from the key's lease and not ended yet (a lease holds a dozen concurrency slots here).</summary>
    private async Task<List<(Admission Admission, UsageRecord Draft)>> AdmitInFlightFromLeaseAsync(Replica replica, KeySnapshot key)
    {
        var inFlight = new List<(Admission Admission, UsageRecord Draft)>();
        while (inFlight.Count < 10)
        {
            var (admission, draft) = await AdmitAsync(replica, key, 100, 100);
            Assert.True(admission.Admitted && admission.Lease is not null, $"request {inFlight.Count + 1} was not admitted from the lease");
            inFlight.Add((admission, draft));
        }
        return inFlight;
    }

    /// <summary>As the usage tracker ends a request: the lease files it, or the queue settles its reservation. Returns the charge.</summary>
    private static long Complete(Replica replica, Admission admission, UsageRecord draft, int prompt, int completion)
    {
        var cost = Pricing.RoundForLedger(Pricing.Cost(Model, prompt, completion));
        if (admission.Lease is { } lease) cost = Pricing.FromUnits(lease.Charge(prompt, completion, cost));
        if (admission.Hold is { } hold) cost = Pricing.FromUnits(hold.Charge(prompt, completion, cost));
        var used = draft with { Status = 200, ErrorCode = null, PromptTokens = prompt, CompletionTokens = completion, Cost = cost };
        if (admission.Lease is { } ticket) ticket.Complete(used);
        else replica.Queue.Record(used);
        return Pricing.ToUnits(cost);
    }


}
