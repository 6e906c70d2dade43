using System.Text;
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
/// Reservations on real Redis and Postgres under faults: lost replies, lost settles, dead replicas,
/// spooled settles and month boundaries. After each case the hold is back and the counter is what
/// the usage says, and settling twice never gives back twice.
/// </summary>
[Collection(InfrastructureCollection.Name)]
public class ReservationTests(InfrastructureFixture infrastructure) : IAsyncLifetime
{
    private static readonly CatalogModel Model = new("gpt-oss-20b", "GPT-OSS 20B", "gpt-oss", true, 0.0001m, 0.0004m, 131072,
        "oss-20b", "gpt-oss-20b", DateTimeOffset.UnixEpoch);
    private readonly FakeTimeProvider _clock = new(new DateTimeOffset(2026, 11, 30, 23, 59, 50, TimeSpan.Zero));
    private ConnectionMultiplexer _redis = null!;
    private NpgsqlDataSource _postgres = null!;
    private string _spool = null!;
    private readonly Guid _org = Guid.CreateVersion7();
    // Replica names of this test only: the replicas' sign-of-life hash is shared by the whole Redis.
    private readonly string _replica = "replica-" + Guid.NewGuid().ToString("N")[..8];

    public async Task InitializeAsync()
    {
        _postgres = NpgsqlDataSource.Create(await infrastructure.CreateDatabaseAsync());
        _redis = await ConnectionMultiplexer.ConnectAsync(infrastructure.RedisConnectionString);
        _spool = Path.Combine(Path.GetTempPath(), "cortensor-tests", "spool-" + Guid.NewGuid().ToString("N"));
        await _redis.GetDatabase().KeyDeleteAsync([UsageMeter.Stream, LimitKeys.Due]);
    }

    public async Task DisposeAsync()
    {
        var db = _redis.GetDatabase();
        await db.KeyDeleteAsync([UsageMeter.Stream, LimitKeys.Due]);
        foreach (var entry in await db.HashGetAllAsync(LimitKeys.Replicas))
            if (entry.Name.ToString().StartsWith(_replica, StringComparison.Ordinal)) await db.HashDeleteAsync(LimitKeys.Replicas, entry.Name);
        await _redis.DisposeAsync();
        await _postgres.DisposeAsync();
        if (Directory.Exists(_spool)) Directory.Delete(_spool, recursive: true);
    }

    [Fact]
    public async Task SettlingTheSameReservationTwiceGivesBackOnceAndFilesOneRecord()
    {
        var (gate, meter, _) = Build();
        var db = _redis.GetDatabase();
        await db.StringSetAsync(LimitKeys.Credit(_org), Pricing.ToUnits(1m));
        var (admission, draft) = await AdmitAsync(gate, Key(BillingMode.PrepaidCredits), promptTokens: 100, maxTokens: 100);
        Assert.True(admission.Admitted);

        var used = Used(draft, admission, prompt: 100, completion: 20);
        await meter.RecordAsync(used);
        await meter.RecordAsync(used); // a spool replay or a retried settle
        Assert.Equal(Pricing.ToUnits(1m) - Pricing.ToUnits(used.Cost), (long)await db.StringGetAsync(LimitKeys.Credit(_org)));
        Assert.Equal(0, (long)await db.StringGetAsync(LimitKeys.Held(LimitKeys.Credit(_org))));
        Assert.Equal(0, await db.HashLengthAsync(LimitKeys.Reservations(_org)));
        Assert.Equal(0, await db.SortedSetLengthAsync(LimitKeys.Due));
        // Both entries carry the same event id: the ledger writer keeps one.
        var entries = await db.StreamRangeAsync(UsageMeter.Stream);
        Assert.Equal([used.EventId], entries.Select(e => ReplicaTesting.Parse(e).EventId).Distinct());
    }

    [Fact]
    public async Task AReservationWhoseReplyWasLostIsGivenBackByTheReaperAfterItsDeadline()
    {
        var (gate, meter, reaper) = Build();
        var db = _redis.GetDatabase();
        await db.StringSetAsync(LimitKeys.Credit(_org), Pricing.ToUnits(1m));
        // The admit ran in Redis, but the replica never heard back (a timeout): nobody will settle it.
        var (admission, _) = await AdmitAsync(gate, Key(BillingMode.PrepaidCredits), promptTokens: 50, maxTokens: 500);
        Assert.True(admission.Admitted);
        Assert.True((long)await db.StringGetAsync(LimitKeys.Credit(_org)) < Pricing.ToUnits(1m));

        Assert.Equal(0, await reaper.ReapAsync(CancellationToken.None)); // not due yet
        _clock.Advance(TimeSpan.FromSeconds(new LimitsOptions().ReservationSeconds + 1));
        Assert.Equal(1, await reaper.ReapAsync(CancellationToken.None));

        Assert.Equal(Pricing.ToUnits(1m), (long)await db.StringGetAsync(LimitKeys.Credit(_org)));
        Assert.Equal(0, await db.HashLengthAsync(LimitKeys.Reservations(_org)));
        var record = ReplicaTesting.Parse((await db.StreamRangeAsync(UsageMeter.Stream)).Single());
        Assert.Equal((499, "request_abandoned", 0, 0m), (record.Status, record.ErrorCode, record.PromptTokens + record.CompletionTokens, record.Cost));
        Assert.Equal(0, await reaper.ReapAsync(CancellationToken.None));
        _ = meter;
    }

    [Fact]
    public async Task AnAdmissionWhoseReplyTimedOutAfterRedisRanItHasItsHoldGivenBackAndFilesNoRecord()
    {
        var db = _redis.GetDatabase();
        await db.StringSetAsync(LimitKeys.Credit(_org), Pricing.ToUnits(1m));
        // A replica whose Redis calls give up after a second, while Redis holds writes until the replica has given up.
        await using var impatient = await ConnectionMultiplexer.ConnectAsync(infrastructure.RedisConnectionString + ",asyncTimeout=1000,syncTimeout=1000");
        var (gate, meter, reaper) = Build(redis: impatient, local: SawTheBalance());
        // The held script runs once Redis resumes: a hold nobody but this replica knows of.
        var (admission, draft) = await AdmitWhileRedisHoldsItAsync(gate, impatient);
        await ReplicaTesting.UntilRedisSettlesAsync(async () => await db.HashLengthAsync(LimitKeys.Reservations(_org)) == 1);
        Assert.True((long)await db.StringGetAsync(LimitKeys.Credit(_org)) < Pricing.ToUnits(1m));

        // The reaper runs every few seconds; a pass that finds this replica's connection not (yet) back after the timeouts
        // does nothing, and the hold is given back by the first pass that reaches Redis (a CI run once found it still held after one pass).
        await ReplicaTesting.UntilRedisSettlesAsync(async () =>
        {
            await reaper.ReapAsync(CancellationToken.None);
            return await db.HashLengthAsync(LimitKeys.Reservations(_org)) == 0;
        });
        Assert.Equal(Pricing.ToUnits(1m), (long)await db.StringGetAsync(LimitKeys.Credit(_org)));
        Assert.Equal(0, await db.StreamLengthAsync(UsageMeter.Stream)); // the request is billed by its own (local) record

        // That record settles the hold the request kept, given back already: nothing more comes back, the record is filed
        // as is (twice, as a spool replay may), and the ledger charges it once.
        var used = Used(draft, admission, prompt: 10, completion: 200);
        var (_, settler, _) = Build();
        await settler.RecordAsync(used);
        await settler.RecordAsync(used);
        Assert.Equal(Pricing.ToUnits(1m), (long)await db.StringGetAsync(LimitKeys.Credit(_org)));
        Assert.Equal([used.EventId], (await db.StreamRangeAsync(UsageMeter.Stream)).Select(e => ReplicaTesting.Parse(e).EventId).Distinct());
        Assert.Equal((1L, used.Cost, 210L), await LedgerAsync(BillingMode.PrepaidCredits));
        _ = meter;
    }

    [Fact]
    public async Task ARequestAdmittedLocallyAfterItsAdmissionTimedOutIsBilledInFullOnceWhenAnotherReplicaTookItsReplicaForDead()
    {
        var db = _redis.GetDatabase();
        await db.StringSetAsync(LimitKeys.Credit(_org), Pricing.ToUnits(1m));
        // Replica A's admission times out after Redis ran it (held by the pause until A has given up): A admits the request
        // on its own while Redis holds a reservation under the request's event id.
        await using var impatient = await ConnectionMultiplexer.ConnectAsync(infrastructure.RedisConnectionString + ",asyncTimeout=1000,syncTimeout=1000");
        var (gate, _, _) = Build("cut-off", redis: impatient, local: SawTheBalance());
        var (admission, draft) = await AdmitWhileRedisHoldsItAsync(gate, impatient);
        await ReplicaTesting.UntilRedisSettlesAsync(async () => await db.HashLengthAsync(LimitKeys.Reservations(_org)) == 1);

        // A is then cut off from Redis (its reaper never gets to give the hold back); another replica takes its silence
        // for death and settles the reservation as abandoned: nothing reported, so a 499 of no tokens under the event id.
        await db.HashSetAsync(LimitKeys.Replicas, $"{_replica}-cut-off", _clock.GetUtcNow().ToUnixTimeSeconds());
        var (_, _, survivor) = Build(replica: "survivor");
        Assert.Equal(0, await survivor.ReapAsync(CancellationToken.None));
        _clock.Advance(TimeSpan.FromSeconds(new LimitsOptions().ReplicaSilenceSeconds + 1));
        Assert.Equal(1, await survivor.ReapAsync(CancellationToken.None));
        Assert.Equal(Pricing.ToUnits(1m), (long)await db.StringGetAsync(LimitKeys.Credit(_org)));

        // The request ends on A with 10 + 300 tokens while Redis is still away: its record is spooled, and replayed twice
        // once Redis is back (a replay interrupted half-way runs again).
        var used = Used(draft, admission, prompt: 10, completion: 300);
        await using (var down = await ConnectionMultiplexer.ConnectAsync("127.0.0.1:1,abortConnect=false,connectTimeout=100"))
        using (var spool = Spool(down))
            await new UsageMeter(down, spool, NullLogger<UsageMeter>.Instance).RecordAsync(used);
        var spooled = JsonSerializer.Deserialize(File.ReadAllLines(Directory.GetFiles(_spool).Single()).Single(), PortalJsonContext.Default.UsageRecord)!;
        var (_, meter, _) = Build("cut-off");
        await meter.ReplayAsync(spooled);
        await meter.ReplayAsync(spooled);

        // Billed in full once: the reaper's record and the rest under an id of its own, the counter and the ledger alike.
        // (The reaper's record billed no tokens and makes no ledger entry: the ledger's one entry is the rest.)
        var records = (await db.StreamRangeAsync(UsageMeter.Stream)).Select(ReplicaTesting.Parse).ToList();
        Assert.Equal((1L, used.Cost, 310L), await LedgerAsync(BillingMode.PrepaidCredits));
        Assert.Equal(used.Cost, records.Sum(r => r.Cost));
        Assert.Equal(2, records.Select(r => r.EventId).Distinct().Count());
        Assert.Equal(Pricing.ToUnits(1m) - Pricing.ToUnits(used.Cost), (long)await db.StringGetAsync(LimitKeys.Credit(_org)));
    }

    [Fact]
    public async Task ARequestAdmittedLocallyAfterAnAdmissionRedisNeverRanGetsNothingBackAndIsBilledOnce()
    {
        var db = _redis.GetDatabase();
        await db.StringSetAsync(LimitKeys.Credit(_org), Pricing.ToUnits(1m));
        await using var impatient = await ConnectionMultiplexer.ConnectAsync(infrastructure.RedisConnectionString + ",asyncTimeout=1000,syncTimeout=1000");
        var client = (long)await impatient.GetDatabase().ExecuteAsync("CLIENT", "ID");
        var (gate, _, _) = Build("lost", redis: impatient, local: SawTheBalance());
        // The admission times out while Redis holds it, and its connection is gone before Redis runs it: the script never
        // ran, yet the replica cannot tell, and the request goes on with the hold it kept.
        var (admission, draft) = await AdmitWhileRedisHoldsItAsync(gate, impatient, beforeRedisRuns: () => db.ExecuteAsync("CLIENT", "KILL", "ID", client));
        // Once the replica is connected again, whatever Redis held for its old connection would have run long since.
        await ReplicaTesting.UntilRedisSettlesAsync(async () =>
        {
            try
            {
                await impatient.GetDatabase().PingAsync();
                return true;
            }
            catch (Exception ex) when (ex is RedisException or TimeoutException)
            {
                return false;
            }
        });
        Assert.Equal(0, await db.HashLengthAsync(LimitKeys.Reservations(_org)));
        Assert.Equal(Pricing.ToUnits(1m), (long)await db.StringGetAsync(LimitKeys.Credit(_org)));

        var used = Used(draft, admission, prompt: 10, completion: 300);
        var (_, meter, _) = Build("lost");
        await meter.RecordAsync(used);
        await meter.RecordAsync(used);
        Assert.Equal(Pricing.ToUnits(1m), (long)await db.StringGetAsync(LimitKeys.Credit(_org)));
        Assert.Equal(0, await db.HashLengthAsync(LimitKeys.Unbilled(LimitKeys.Credit(_org))));
        Assert.Equal([used.EventId], (await db.StreamRangeAsync(UsageMeter.Stream)).Select(e => ReplicaTesting.Parse(e).EventId).Distinct());
        Assert.Equal((1L, used.Cost, 310L), await LedgerAsync(BillingMode.PrepaidCredits));
    }

    [Fact]
    public async Task ADeadReplicasStreamIsBilledWhatItReportedAndItsHoldComesBackWithoutWaitingForTheDeadline()
    {
        var db = _redis.GetDatabase();
        await db.StringSetAsync(LimitKeys.Credit(_org), Pricing.ToUnits(1m));
        await ReapedAfterItsReplicaFellSilentAsync("replica-that-dies", BillingMode.PrepaidCredits);

        var record = ReplicaTesting.Parse((await db.StreamRangeAsync(UsageMeter.Stream)).Single());
        Assert.Equal((40, 25), (record.PromptTokens, record.CompletionTokens));
        Assert.Equal(Pricing.RoundForLedger((40 * Model.InputPricePer1K + 25 * Model.OutputPricePer1K) / 1000m), record.Cost);
        Assert.Equal(Pricing.ToUnits(1m) - Pricing.ToUnits(record.Cost), (long)await db.StringGetAsync(LimitKeys.Credit(_org)));
        Assert.Equal(0, await db.HashLengthAsync(LimitKeys.Reservations(_org)));
    }

    [Theory]
    [InlineData(BillingMode.PrepaidCredits, 40)]
    [InlineData(BillingMode.MonthlyQuota, 40)]
    // The router counted the prompt lower than the progress report (an estimate) did: the correction's tokens are what
    // the request's total adds to the reaper's, not 25 completion tokens more than it used.
    [InlineData(BillingMode.PrepaidCredits, 30)]
    [InlineData(BillingMode.MonthlyQuota, 30)]
    public async Task ARequestStillAliveWhenItsReplicaWasTakenForDeadIsBilledInFullOnce(BillingMode mode, int prompt)
    {
        var db = _redis.GetDatabase();
        var credits = mode == BillingMode.PrepaidCredits;
        var counter = credits ? LimitKeys.Credit(_org) : LimitKeys.Quota(_org, "202611");
        if (credits) await db.StringSetAsync(counter, Pricing.ToUnits(1m));
        // The replica is cut off from Redis (not dead): another one takes its silence for death and bills the progress.
        var (meter, admission, draft) = await ReapedAfterItsReplicaFellSilentAsync("cut-off", mode);

        // The request went on streaming (its progress reports write the field the reaper removed) and ended with
        // prompt + 120 tokens; its settlement arrives when Redis is back, and again twice (replays of the spool).
        meter.ReportProgress(_org, draft.EventId, prompt, 100);
        await ReplicaTesting.UntilRedisSettlesAsync(async () => await db.HashExistsAsync(LimitKeys.Progress(_org), draft.EventId));
        var used = Used(draft, admission, prompt: prompt, completion: 120);
        var total = prompt + 120;
        await meter.RecordAsync(used);
        await meter.RecordAsync(used);
        await meter.RecordAsync(used);

        // Two records and no more: the request's own record never reaches the stream beside the reaper's (the ledger
        // keeps whichever of two same-id records commits first, so a full-cost copy could replace the 499).
        var records = (await db.StreamRangeAsync(UsageMeter.Stream)).Select(ReplicaTesting.Parse).ToList();
        Assert.Equal(2, records.Count);
        var reaped = records.Single(r => r.EventId == draft.EventId);
        Assert.Equal((499, 40, 25), (reaped.Status, reaped.PromptTokens, reaped.CompletionTokens));
        var rest = records.Single(r => r.EventId != draft.EventId);
        Assert.Equal((200, (string?)null, used.RequestId), (rest.Status, rest.ErrorCode, rest.RequestId));
        Assert.Equal((Math.Max(0, prompt - 40), total - 65 - Math.Max(0, prompt - 40)), (rest.PromptTokens, rest.CompletionTokens));
        Assert.Equal(used.Cost, reaped.Cost + rest.Cost);

        // The counter holds the whole request once, and what is on its way to the ledger is the two records' charges.
        var unbilled = await db.HashGetAllAsync(LimitKeys.Unbilled(counter));
        if (credits)
        {
            Assert.Equal(Pricing.ToUnits(1m) - Pricing.ToUnits(used.Cost), (long)await db.StringGetAsync(counter));
            Assert.Equal(Pricing.ToUnits(used.Cost), unbilled.Sum(e => (long)e.Value));
        }
        else
        {
            Assert.Equal(total, (long)await db.StringGetAsync(counter));
            Assert.Equal(total, unbilled.Sum(e => (long)e.Value));
        }
        Assert.Equal(0, await db.HashLengthAsync(LimitKeys.Reservations(_org)));
        Assert.Equal("settled", (string?)await db.StringGetAsync(LimitKeys.Reaped(_org, draft.EventId)));
        Assert.False(await db.HashExistsAsync(LimitKeys.Progress(_org), draft.EventId));

        // Through the real ledger writer: both records land, the repeated one is dropped, and the counter equals the ledger.
        Assert.Equal((2L, credits ? used.Cost : 0m, (long)total), await LedgerAsync(mode));
        // The quota's counter is November's and the clock is now in December (the ledger's tokens are its count above);
        // the balance is reconciled as the reconciler would.
        if (!credits) return;
        var outcome = await new HotCounters(_redis, _postgres, _clock).ReconcileAsync(_org, mode, onlyIfMissing: false, CancellationToken.None);
        Assert.NotNull(outcome);
        Assert.Equal(outcome.Expected, outcome.Before);
        Assert.False(outcome.Changed);
    }

    [Fact]
    public async Task ARequestThatSettlesBeforeTheReaperLeavesNoNoteAndIsBilledOnce()
    {
        var (gate, meter, reaper) = Build();
        var db = _redis.GetDatabase();
        await db.StringSetAsync(LimitKeys.Credit(_org), Pricing.ToUnits(1m));
        var (admission, draft) = await AdmitAsync(gate, Key(BillingMode.PrepaidCredits), promptTokens: 40, maxTokens: 200);
        var used = Used(draft, admission, prompt: 40, completion: 120);
        await meter.RecordAsync(used);
        _clock.Advance(TimeSpan.FromSeconds(new LimitsOptions().ReservationSeconds + 1));
        Assert.Equal(0, await reaper.ReapAsync(CancellationToken.None));
        await meter.RecordAsync(used);

        Assert.Equal([used.EventId], (await db.StreamRangeAsync(UsageMeter.Stream)).Select(e => ReplicaTesting.Parse(e).EventId).Distinct());
        Assert.Equal(Pricing.ToUnits(1m) - Pricing.ToUnits(used.Cost), (long)await db.StringGetAsync(LimitKeys.Credit(_org)));
        Assert.False(await db.KeyExistsAsync(LimitKeys.Reaped(_org, used.EventId)));
    }

    [Fact]
    public async Task AQuotaRequestAdmittedBeforeMidnightOnTheLastDayRefundsIntoTheMonthItWasAdmittedIn()
    {
        var (gate, meter, _) = Build();
        var db = _redis.GetDatabase();
        var november = LimitKeys.Quota(_org, "202611");
        var december = LimitKeys.Quota(_org, "202612");
        var (admission, draft) = await AdmitAsync(gate, Key(BillingMode.MonthlyQuota), promptTokens: 100, maxTokens: 900);
        Assert.Equal(1000, (long)await db.StringGetAsync(november));

        _clock.Advance(TimeSpan.FromSeconds(20)); // settles on the 1st of December
        await meter.RecordAsync(Used(draft, admission, prompt: 100, completion: 50));

        Assert.Equal(150, (long)await db.StringGetAsync(november));
        Assert.False(await db.KeyExistsAsync(december));
        Assert.Equal("202611", LimitKeys.Period(ReplicaTesting.Parse((await db.StreamRangeAsync(UsageMeter.Stream)).Single()).CreatedAt));
        await db.KeyDeleteAsync([november, LimitKeys.Held(november)]);
    }

    [Fact]
    public async Task ASettleThatFindsRedisGoneIsSpooledAndSettlesOnceWhenReplayed()
    {
        var (gate, _, _) = Build();
        var db = _redis.GetDatabase();
        await db.StringSetAsync(LimitKeys.Credit(_org), Pricing.ToUnits(1m));
        var (admission, draft) = await AdmitAsync(gate, Key(BillingMode.PrepaidCredits), promptTokens: 10, maxTokens: 100);
        var used = Used(draft, admission, prompt: 10, completion: 30);

        // This replica's Redis is gone at settle time: the record and its reservation go to the spool.
        await using (var down = await ConnectionMultiplexer.ConnectAsync("127.0.0.1:1,abortConnect=false,connectTimeout=100"))
        using (var spool = Spool(down))
        {
            var offline = new UsageMeter(down, spool, NullLogger<UsageMeter>.Instance);
            await offline.RecordAsync(used);
        } // the replica is gone: its spool file is unlocked
        Assert.Equal(1, await db.HashLengthAsync(LimitKeys.Reservations(_org)));
        var line = File.ReadAllLines(Directory.GetFiles(_spool).Single()).Single();

        var (_, meter, _) = Build();
        var spooled = JsonSerializer.Deserialize(line, PortalJsonContext.Default.UsageRecord)!;
        Assert.NotNull(spooled.Hold);
        await meter.ReplayAsync(spooled);
        await meter.ReplayAsync(spooled);
        Assert.Equal(Pricing.ToUnits(1m) - Pricing.ToUnits(used.Cost), (long)await db.StringGetAsync(LimitKeys.Credit(_org)));
        Assert.Equal(0, await db.HashLengthAsync(LimitKeys.Reservations(_org)));
    }

    [Fact]
    public async Task AnOrganisationsConcurrencyAndPerMinuteLimitsAreSharedByAllItsKeys()
    {
        var (gate, _, _) = Build();
        await _redis.GetDatabase().StringSetAsync(LimitKeys.Credit(_org), Pricing.ToUnits(100m));
        var key = Key(BillingMode.PrepaidCredits) with { OrganizationRequestsPerMinute = 5, MaxConcurrentRequests = 3 };
        var verdicts = new List<AdmissionVerdict>();
        // Three keys of one organisation, each well within its own limit.
        for (var i = 0; i < 6; i++)
            verdicts.Add((await AdmitAsync(gate, key with { KeyId = Guid.CreateVersion7() }, 10, 10)).Admission.Verdict);
        Assert.Equal([AdmissionVerdict.Admitted, AdmissionVerdict.Admitted, AdmissionVerdict.Admitted,
            AdmissionVerdict.TooManyConcurrent, AdmissionVerdict.TooManyConcurrent, AdmissionVerdict.TooManyConcurrent], verdicts);
    }

    [Fact]
    public async Task AMinuteWhoseRequestsAreSpentIsRefusedBeforeAdmissionUntilItEndsOrItsLimitChanges()
    {
        var (gate, _, _) = Build();
        await _redis.GetDatabase().StringSetAsync(LimitKeys.Credit(_org), Pricing.ToUnits(100m));
        var key = Key(BillingMode.PrepaidCredits) with { RequestsPerMinute = 2 };
        Assert.Null(gate.SpentWindow(key));
        Assert.True((await AdmitAsync(gate, key, 10, 10)).Admission.Admitted);
        Assert.True((await AdmitAsync(gate, key, 10, 10)).Admission.Admitted);
        Assert.Null(gate.SpentWindow(key));
        Assert.Equal(AdmissionVerdict.KeyRequestsExhausted, (await AdmitAsync(gate, key, 10, 10)).Admission.Verdict);

        var spent = gate.SpentWindow(key);
        Assert.Equal(AdmissionVerdict.KeyRequestsExhausted, spent?.Verdict);
        Assert.Equal(TimeSpan.FromSeconds(10), spent!.Reset); // the clock stands at :50 of its minute
        Assert.Equal(2, spent.RequestLimit);
        Assert.Null(gate.SpentWindow(key with { KeyId = Guid.CreateVersion7() })); // another key of the organisation
        Assert.Null(gate.SpentWindow(key with { RequestsPerMinute = 3 }));          // the limit was raised: admission decides
        Assert.Equal(AdmissionVerdict.KeyRequestsExhausted, (await AdmitAsync(gate, key, 10, 10)).Admission.Verdict);

        // A token refusal depends on the request's size: a smaller one may fit, so it is never refused early.
        var tokens = Key(BillingMode.PrepaidCredits) with { TokensPerMinute = 100 };
        Assert.Equal(AdmissionVerdict.KeyTokensExhausted, (await AdmitAsync(gate, tokens, 100, 100)).Admission.Verdict);
        Assert.Null(gate.SpentWindow(tokens));
        Assert.True((await AdmitAsync(gate, tokens, 10, 10)).Admission.Admitted);

        // The organisation's requests, spent through one key, are spent for all of its keys.
        var org = Guid.CreateVersion7();
        await _redis.GetDatabase().StringSetAsync(LimitKeys.Credit(org), Pricing.ToUnits(100m));
        var first = Key(BillingMode.PrepaidCredits) with { OrganizationId = org, OrganizationRequestsPerMinute = 1 };
        Assert.True((await AdmitAsync(gate, first, 10, 10)).Admission.Admitted);
        Assert.Equal(AdmissionVerdict.OrganizationRequestsExhausted, (await AdmitAsync(gate, first, 10, 10)).Admission.Verdict);
        Assert.Equal(AdmissionVerdict.OrganizationRequestsExhausted, gate.SpentWindow(first with { KeyId = Guid.CreateVersion7() })?.Verdict);

        _clock.Advance(TimeSpan.FromSeconds(10));
        Assert.Null(gate.SpentWindow(key));
        Assert.Null(gate.SpentWindow(first));
        Assert.True((await AdmitAsync(gate, key, 10, 10)).Admission.Admitted);
    }

    [Fact]
    public void WhileRedisIsAwayOnlyOrganisationsWithAKnownPositiveBalanceSpendAndNoMoreThanTheAllowanceOrTheBalance()
    {
        var local = new LocalAdmission(_clock);
        var key = Key(BillingMode.PrepaidCredits);
        Admission Admit(long amount) => local.Admit(key, 1, TimeSpan.FromSeconds(30), 100, amount, credits: true);

        Assert.Equal(AdmissionVerdict.OutageAllowanceSpent, Admit(1).Verdict);       // never seen: nothing
        local.Remember(_org, Pricing.ToUnits(0.20m));
        Assert.True(Admit(Pricing.ToUnits(0.15m)).Admitted);
        Assert.Equal(AdmissionVerdict.OutageAllowanceSpent, Admit(Pricing.ToUnits(0.10m)).Verdict); // past the known $0.20
        local.Remember(_org, Pricing.ToUnits(500m));
        Assert.True(Admit(Pricing.ToUnits(0.30m)).Admitted);
        Assert.Equal(AdmissionVerdict.OutageAllowanceSpent, Admit(Pricing.ToUnits(0.10m)).Verdict); // past the $0.50 hourly allowance
        local.Remember(_org, 0);
        _clock.Advance(TimeSpan.FromHours(1));
        Assert.Equal(AdmissionVerdict.OutageAllowanceSpent, Admit(1).Verdict);       // known, but empty
    }

    [Fact]
    public void AnOutageThatCrossesTheHourDoesNotLetTheLastKnownBalanceBeSpentTwice()
    {
        var local = new LocalAdmission(_clock);
        var key = Key(BillingMode.PrepaidCredits);
        Admission Admit(long amount) => local.Admit(key, 1, TimeSpan.FromSeconds(30), 100, amount, credits: true);

        local.Remember(_org, Pricing.ToUnits(0.20m));   // seen at 23:59:50, then Redis goes away
        Assert.True(Admit(Pricing.ToUnits(0.15m)).Admitted);
        _clock.Advance(TimeSpan.FromSeconds(20));       // a new hour: its $0.50 allowance is fresh, the known $0.20 is not
        Assert.Equal(AdmissionVerdict.OutageAllowanceSpent, Admit(Pricing.ToUnits(0.10m)).Verdict);
        Assert.True(Admit(Pricing.ToUnits(0.05m)).Admitted);
        Assert.Equal(AdmissionVerdict.OutageAllowanceSpent, Admit(1).Verdict);

        local.Remember(_org, Pricing.ToUnits(0.20m));   // Redis answered again: a balance seen anew may be spent
        Assert.True(Admit(Pricing.ToUnits(0.10m)).Admitted);
    }

    /// <summary>
    /// An admission on <paramref name="impatient"/> (a short timeout) while Redis holds every write: it times out and the
    /// request is admitted locally; Redis then runs what it held (after <paramref name="beforeRedisRuns"/>).
    /// </summary>
    private async Task<(Admission Admission, UsageRecord Draft)> AdmitWhileRedisHoldsItAsync(AdmissionGate gate, IConnectionMultiplexer impatient,
        Func<Task>? beforeRedisRuns = null)
    {
        await using var pause = await RedisPause.WritesAsync(infrastructure.RedisConnectionString);
        // The client library takes a connection that has timed out and read nothing for over four timeouts for dead, and
        // closes it, and Redis drops what it held for it: read just before, that is five seconds after the admission.
        await impatient.GetDatabase().PingAsync();
        var (admission, draft) = await AdmitAsync(gate, Key(BillingMode.PrepaidCredits), promptTokens: 10, maxTokens: 1000);
        Assert.True(admission is { Local: true, Admitted: true });
        if (beforeRedisRuns is not null) await beforeRedisRuns();
        await pause.ResumeAsync();
        return (admission, draft);
    }

    /// <summary>Local admission on a replica that saw the organisation's $1 a moment ago: it admits while Redis is away.</summary>
    private LocalAdmission SawTheBalance()
    {
        var local = new LocalAdmission(_clock);
        local.Remember(_org, Pricing.ToUnits(1m));
        return local;
    }

    /// <summary>
    /// Writes the whole stream into the ledger through a real <see cref="UsageWriter"/> (the organisation created first,
    /// with a $1 grant on credits); returns the organisation's usage entries, what they debited and their tokens.
    /// </summary>
    private async Task<(long Entries, decimal Debited, long Tokens)> LedgerAsync(BillingMode mode)
    {
        var credits = mode == BillingMode.PrepaidCredits;
        await using (var command = _postgres.CreateCommand(
            """
            WITH org AS (INSERT INTO organizations (id, name, status, plan_id, created_at) VALUES ($1, 'cut off', 'Active', $2, now()) RETURNING id)
            INSERT INTO billing_ledger (organization_id, kind, amount, tokens, reference, created_at) SELECT id, 'Grant', 1, 0, 'grant-' || id, now() FROM org WHERE $3
            """))
        {
            command.Parameters.Add(new NpgsqlParameter { Value = _org });
            command.Parameters.Add(new NpgsqlParameter { Value = credits ? "pro" : "free" });
            command.Parameters.Add(new NpgsqlParameter { Value = credits });
            await command.ExecuteNonQueryAsync();
        }
        var db = _redis.GetDatabase();
        var writer = new UsageWriter(_redis, _postgres, Options.Create(new MeteringOptions()), NullLogger<UsageWriter>.Instance);
        await writer.StartAsync(CancellationToken.None);
        try
        {
            // The writer deletes each entry once the ledger has it (a duplicate the ledger dropped too), and the pending
            // charges it carried with it.
            await ReplicaTesting.UntilRedisSettlesAsync(async () => await db.StreamLengthAsync(UsageMeter.Stream) == 0);
        }
        finally
        {
            await writer.StopAsync(CancellationToken.None);
        }
        await using var ledger = _postgres.CreateCommand(
            "SELECT count(*), coalesce(sum(-amount), 0), coalesce(sum(tokens), 0) FROM billing_ledger WHERE organization_id = $1 AND kind = 'Usage'");
        ledger.Parameters.Add(new NpgsqlParameter { Value = _org });
        await using var row = await ledger.ExecuteReaderAsync();
        Assert.True(await row.ReadAsync());
        return (row.GetInt64(0), row.GetDecimal(1), row.GetInt64(2));
    }

    /// <summary>
    /// A stream admitted on <paramref name="replica"/> reports 40 + 25 tokens, then the replica falls silent: another replica,
    /// connected long enough to trust that silence means death, settles it as abandoned.
    /// </summary>
    private async Task<(UsageMeter Meter, Admission Admission, UsageRecord Draft)> ReapedAfterItsReplicaFellSilentAsync(string replica, BillingMode mode)
    {
        var (gate, meter, _) = Build(replica);
        var db = _redis.GetDatabase();
        var (admission, draft) = await AdmitAsync(gate, Key(mode), promptTokens: 40, maxTokens: 200);
        meter.ReportProgress(_org, draft.EventId, 40, 25);
        await db.HashSetAsync(LimitKeys.Replicas, $"{_replica}-{replica}", _clock.GetUtcNow().ToUnixTimeSeconds());
        await ReplicaTesting.UntilRedisSettlesAsync(async () => (await db.HashGetAsync(LimitKeys.Progress(_org), draft.EventId)).HasValue);

        var (_, _, survivor) = Build(replica: "survivor");
        Assert.Equal(0, await survivor.ReapAsync(CancellationToken.None));
        _clock.Advance(TimeSpan.FromSeconds(new LimitsOptions().ReplicaSilenceSeconds + 1));
        Assert.Equal(1, await survivor.ReapAsync(CancellationToken.None));
        return (meter, admission, draft);
    }

    private (AdmissionGate Gate, UsageMeter Meter, ReservationReaper Reaper) Build(string? replica = null, IConnectionMultiplexer? redis = null,
        LocalAdmission? local = null)
    {
        replica = replica is null ? _replica : $"{_replica}-{replica}";
        var mux = redis ?? _redis;
        var identity = ReplicaTesting.Identity(replica);
        var options = Options.Create(new LimitsOptions());
        var counters = new HotCounters(mux, _postgres, _clock);
        var meter = new UsageMeter(mux, Spool(mux), NullLogger<UsageMeter>.Instance);
        // Streamed drafts (as AdmitAsync files them) always take the exact path: leases are LeaseTests' subject.
        var leases = new AdmissionLeases(mux, new SettlementQueue(meter, Options.Create(new MeteringOptions()), NullLogger<SettlementQueue>.Instance), Spool(mux), identity, options, _clock,
            NullLogger<AdmissionLeases>.Instance);
        var gate = new AdmissionGate(mux, counters, local ?? new LocalAdmission(_clock), leases, identity, options, _clock, NullLogger<AdmissionGate>.Instance);
        var reaper = new ReservationReaper(mux, meter, gate, leases, identity, options, _clock, NullLogger<ReservationReaper>.Instance);
        return (gate, meter, reaper);
    }

    private UsageSpool Spool(IConnectionMultiplexer redis) => new(
        Options.Create(new MeteringOptions { SpoolDirectory = _spool }),
        new Microsoft.Extensions.Hosting.Internal.HostingEnvironment { ContentRootPath = _spool }, redis, EmptyServices.Instance, NullLogger<UsageSpool>.Instance);

    private KeySnapshot Key(BillingMode mode) => new(Guid.CreateVersion7(), _org, ApiKeyStatus.Active, null, OrganizationStatus.Active,
        mode == BillingMode.PrepaidCredits ? "pro" : "free", mode, ["gpt-oss-20b"], 1000, 1_000_000,
        mode == BillingMode.MonthlyQuota ? 1_000_000 : null, 1000, 1_000_000, 100);

    private async Task<(Admission Admission, UsageRecord Draft)> AdmitAsync(AdmissionGate gate, KeySnapshot key, int promptTokens, int maxTokens)
    {
        var draft = new UsageRecord("evt_" + Guid.CreateVersion7().ToString("N"), "req", key.OrganizationId, key.KeyId, key.BillingMode,
            Model.Id, Model.PoolId, null, null, "POST", "/v1/chat/completions", 499, "request_abandoned", 0, 0, 0m, 0, null, true, _clock.GetUtcNow());
        var admission = await gate.AdmitAsync(key, Model, draft, promptTokens, maxTokens, CancellationToken.None);
        return (admission, draft with { Hold = admission.Hold });
    }

    private static UsageRecord Used(UsageRecord draft, Admission admission, int prompt, int completion) => draft with
    {
        Status = 200, ErrorCode = null, PromptTokens = prompt, CompletionTokens = completion, Hold = admission.Hold,
        Cost = Pricing.RoundForLedger(Pricing.Cost(Model, prompt, completion)),
    };


}

/// <summary>A service provider with nothing in it: the spool replays through a meter the tests call directly.</summary>
internal sealed class EmptyServices : IServiceProvider
{
    public static readonly EmptyServices Instance = new();
    public object? GetService(Type serviceType) => null;
}
