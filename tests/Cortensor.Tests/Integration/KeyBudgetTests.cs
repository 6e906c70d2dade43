using Cortensor.Api.Catalog;
using Cortensor.Api.Data;
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
/// Key budgets in the admission and settle scripts on real Redis: what would pass the budget is refused,
/// concurrency cannot overspend it, unused amounts go back to the period they were taken from (by the
/// request or the reaper), and a new period starts from nothing.
/// </summary>
[Collection(InfrastructureCollection.Name)]
public class KeyBudgetTests(InfrastructureFixture infrastructure) : IAsyncLifetime
{
    private static readonly CatalogModel Model = new("gpt-oss-20b", "GPT-OSS 20B", "gpt-oss", true, 0.0001m, 0.0004m, 131072,
        "oss-20b", "gpt-oss-20b", DateTimeOffset.UnixEpoch);
    // Ten seconds before the end of a day, a week (Sunday) and a month.
    private readonly FakeTimeProvider _clock = new(new DateTimeOffset(2026, 11, 29, 23, 59, 50, TimeSpan.Zero));
    private ConnectionMultiplexer _redis = null!;
    private NpgsqlDataSource _postgres = null!;
    private readonly Guid _org = Guid.CreateVersion7();
    private readonly string _replica = "replica-" + Guid.NewGuid().ToString("N")[..8];

    public async Task InitializeAsync()
    {
        _postgres = NpgsqlDataSource.Create(await infrastructure.CreateDatabaseAsync());
        _redis = await ConnectionMultiplexer.ConnectAsync(infrastructure.RedisConnectionString);
        await _redis.GetDatabase().StringSetAsync(LimitKeys.Credit(_org), Pricing.ToUnits(100m));
    }

    public async Task DisposeAsync()
    {
        var db = _redis.GetDatabase();
        await db.HashDeleteAsync(LimitKeys.Replicas, _replica);
        // Reservations left open on purpose must not be reaped by another test's clock.
        foreach (var member in await db.SortedSetRangeByRankAsync(LimitKeys.Due))
            if (member.ToString().StartsWith(_org.ToString("N"), StringComparison.Ordinal)) await db.SortedSetRemoveAsync(LimitKeys.Due, member);
        await db.KeyDeleteAsync([LimitKeys.Reservations(_org), LimitKeys.ReplicaDue(_replica)]);
        await _redis.DisposeAsync();
        await _postgres.DisposeAsync();
    }

    [Fact]
    public async Task ConcurrentAdmissionsNeverReserveMoreThanTheKeysBudgetAndAnswer402NamingTheKey()
    {
        var (gate, meter, _) = Build();
        var key = Key(new KeyBudget(0.01m, null, KeyBudgetPeriod.Day));
        // Each request may cost up to 100 * 0.0001 / 1000 + 100 * 0.0004 / 1000 = $0.00005: 200 fit in $0.01.
        var attempts = await Task.WhenAll(Enumerable.Range(0, 300).Select(_ => AdmitAsync(gate, key, 100, 100)));
        Assert.Equal(200, attempts.Count(a => a.Admission.Admitted));
        var refused = attempts.First(a => !a.Admission.Admitted).Admission;
        Assert.Equal(AdmissionVerdict.KeyBudgetExhausted, refused.Verdict);
        var error = Refusals.For(refused, BillingMode.PrepaidCredits, null)!;
        Assert.Equal((402, "key_budget_exceeded"), (error.Status, error.Code));
        Assert.Contains(key.KeyId.ToString(), error.Message);
        Assert.Contains("'budget key'", error.Message);
        Assert.Contains("$0.01 daily budget", error.Message);
        Assert.Contains("2026-11-30T00:00:00Z", error.Message);

        // Each used a fifth of what it held: four fifths of every hold come back to the budget.
        await Task.WhenAll(attempts.Where(a => a.Admission.Admitted).Select(a => meter.RecordAsync(Used(a.Draft, 20, 20))));
        var state = await key.Budget!.StateAsync(_redis.GetDatabase(), _org, key.KeyId, _clock.GetUtcNow());
        Assert.Equal(200 * Pricing.Bill(Model, attempts[0].Draft.Hold, 20, 20), state.SpentUsd);
        Assert.Equal(200 * 40, state.SpentTokens);
        Assert.Equal(0.01m - state.SpentUsd, state.RemainingUsd);
        Assert.True((await AdmitAsync(gate, key, 100, 100)).Admission.Admitted);
    }

    [Fact]
    public async Task ATokenBudgetCountsPromptAndMaxTokensAndANewPeriodStartsFromNothing()
    {
        var (gate, _, _) = Build();
        var key = Key(new KeyBudget(null, 1000, KeyBudgetPeriod.Day));
        Assert.True((await AdmitAsync(gate, key, 100, 500)).Admission.Admitted);
        var refused = (await AdmitAsync(gate, key, 100, 500)).Admission;
        Assert.Equal(AdmissionVerdict.KeyBudgetExhausted, refused.Verdict);
        Assert.Contains("600 of its 1000 daily tokens", Refusals.For(refused, BillingMode.PrepaidCredits, null)!.Message);
        Assert.True((await AdmitAsync(gate, key, 100, 300)).Admission.Admitted); // exactly 1000

        _clock.Advance(TimeSpan.FromSeconds(10)); // midnight: a new day
        Assert.True((await AdmitAsync(gate, key, 100, 500)).Admission.Admitted);
        var state = await key.Budget!.StateAsync(_redis.GetDatabase(), _org, key.KeyId, _clock.GetUtcNow());
        Assert.Equal((600L, 400L, new DateTimeOffset(2026, 12, 1, 0, 0, 0, TimeSpan.Zero)), (state.SpentTokens, state.RemainingTokens!.Value, state.ResetsAt));
    }

    [Fact]
    public async Task ARequestAdmittedBeforeThePeriodEndsGivesBackToThePeriodItWasTakenFrom()
    {
        var (gate, meter, _) = Build();
        var key = Key(new KeyBudget(1m, 10_000, KeyBudgetPeriod.Week));
        var (admission, draft) = await AdmitAsync(gate, key, 100, 1000);
        Assert.True(admission.Admitted);
        var week = KeyBudget.Counter(_org, key.KeyId, key.Budget!.PeriodAt(_clock.GetUtcNow()).Name);

        _clock.Advance(TimeSpan.FromMinutes(1)); // Monday: a new week
        var used = Used(draft, 50, 10);
        await meter.RecordAsync(used);

        var db = _redis.GetDatabase();
        Assert.Equal(Pricing.ToUnits(used.Cost), (long)await db.HashGetAsync(week, "u"));
        Assert.Equal(60, (long)await db.HashGetAsync(week, "t"));
        var now = await key.Budget.StateAsync(db, _org, key.KeyId, _clock.GetUtcNow());
        Assert.Equal((0m, 0L), (now.SpentUsd, now.SpentTokens));
    }

    [Fact]
    public async Task AnAbandonedReservationIsGivenBackToTheBudgetByTheReaper()
    {
        var (gate, _, reaper) = Build();
        var key = Key(new KeyBudget(0.001m, null, KeyBudgetPeriod.Month));
        Assert.True((await AdmitAsync(gate, key, 100, 2000)).Admission.Admitted);
        Assert.Equal(AdmissionVerdict.KeyBudgetExhausted, (await AdmitAsync(gate, key, 100, 2000)).Admission.Verdict);

        _clock.Advance(TimeSpan.FromSeconds(new LimitsOptions().ReservationSeconds + 1));
        Assert.True(await reaper.ReapAsync(CancellationToken.None) >= 1);
        var (name, _, _) = key.Budget!.PeriodAt(_clock.GetUtcNow().AddDays(-1));
        Assert.Equal(0, (long)await _redis.GetDatabase().HashGetAsync(KeyBudget.Counter(_org, key.KeyId, name), "u"));
    }

    [Fact]
    public void AKeyWithABudgetIsNotAdmittedByOneReplicaAlone()
    {
        var local = new LocalAdmission(_clock);
        local.Remember(_org, Pricing.ToUnits(10m));
        Assert.True(local.Admit(Key(null), 1, TimeSpan.FromSeconds(30), 100, 1, credits: true).Admitted);
        Assert.Equal(AdmissionVerdict.BillingUnavailable,
            local.Admit(Key(new KeyBudget(5m, null, KeyBudgetPeriod.Day)), 1, TimeSpan.FromSeconds(30), 100, 1, credits: true).Verdict);
    }

    [Theory]
    [InlineData("2026-11-29T23:59:59Z", KeyBudgetPeriod.Day, "d20261129", "2026-11-30T00:00:00Z")]
    [InlineData("2026-11-29T23:59:59Z", KeyBudgetPeriod.Week, "w20261123", "2026-11-30T00:00:00Z")]
    [InlineData("2026-11-30T00:00:00Z", KeyBudgetPeriod.Week, "w20261130", "2026-12-07T00:00:00Z")]
    [InlineData("2026-12-31T12:00:00Z", KeyBudgetPeriod.Month, "m202612", "2027-01-01T00:00:00Z")]
    public void BudgetPeriodsAreUtcDaysIsoWeeksAndMonths(string at, KeyBudgetPeriod period, string name, string end)
    {
        var p = new KeyBudget(1m, null, period).PeriodAt(DateTimeOffset.Parse(at, System.Globalization.CultureInfo.InvariantCulture));
        Assert.Equal((name, DateTimeOffset.Parse(end, System.Globalization.CultureInfo.InvariantCulture)), (p.Name, p.End));
    }

    private (AdmissionGate Gate, UsageMeter Meter, ReservationReaper Reaper) Build()
    {
        var identity = ReplicaTesting.Identity(_replica);
        var options = Options.Create(new LimitsOptions());
        var counters = new HotCounters(_redis, _postgres, _clock);
        var spool = new UsageSpool(Options.Create(new MeteringOptions { SpoolDirectory = Path.Combine(Path.GetTempPath(), "cortensor-tests", "spool-" + _replica) }),
            new Microsoft.Extensions.Hosting.Internal.HostingEnvironment { ContentRootPath = Path.GetTempPath() }, _redis, EmptyServices.Instance,
            NullLogger<UsageSpool>.Instance);
        var meter = new UsageMeter(_redis, spool, NullLogger<UsageMeter>.Instance);
        // Leasing is on (the default): a key with a budget must still be decided one request at a time.
        var leases = new AdmissionLeases(_redis, new SettlementQueue(meter, Options.Create(new MeteringOptions()), NullLogger<SettlementQueue>.Instance), spool, identity, options, _clock,
            NullLogger<AdmissionLeases>.Instance);
        var gate = new AdmissionGate(_redis, counters, new LocalAdmission(_clock), leases, identity, options, _clock, NullLogger<AdmissionGate>.Instance);
        return (gate, meter, new ReservationReaper(_redis, meter, gate, leases, identity, options, _clock, NullLogger<ReservationReaper>.Instance));
    }

    private KeySnapshot Key(KeyBudget? budget) => new(Guid.CreateVersion7(), _org, ApiKeyStatus.Active, null, OrganizationStatus.Active,
        "pro", BillingMode.PrepaidCredits, ["gpt-oss-20b"], 100_000, 100_000_000, null, 100_000, 100_000_000, 1000, budget, "budget key");

    /// <summary>A busy key without a budget would be admitted from a lease after a few requests; one with a budget never is.</summary>
    [Fact]
    public async Task AKeyWithABudgetIsNeverAdmittedFromALeaseHoweverBusy()
    {
        var (gate, _, _) = Build();
        var key = Key(new KeyBudget(100m, null, KeyBudgetPeriod.Month));
        for (var i = 0; i < 40; i++)
        {
            var (admission, _) = await AdmitAsync(gate, key, 10, 10, streamed: false);
            Assert.True(admission.Admitted);
            Assert.Null(admission.Lease);
            Assert.NotNull(admission.Hold);
            Assert.NotNull(admission.Hold!.KeyBudget);
        }
    }

    [Fact]
    public async Task ARequestThatArrivedBeforeMidnightAndWasAdmittedAfterCountsInTheDayItArrivedAndIsBookedIn()
    {
        var (gate, _, _) = Build();
        var key = Key(new KeyBudget(1m, null, KeyBudgetPeriod.Day));
        var arrived = _clock.GetUtcNow(); // 23:59:50 on the 29th
        var draft = new UsageRecord("evt_" + Guid.CreateVersion7().ToString("N"), "req", key.OrganizationId, key.KeyId, key.BillingMode,
            Model.Id, Model.PoolId, null, null, "POST", "/v1/chat/completions", 499, "request_abandoned", 0, 0, 0m, 0, null, true, arrived);
        _clock.Advance(TimeSpan.FromSeconds(20)); // its body took until after midnight
        var admission = await gate.AdmitAsync(key, Model, draft, 100, 100, CancellationToken.None);

        Assert.True(admission.Admitted);
        var (day, _, _) = key.Budget!.PeriodAt(arrived);
        Assert.Equal(KeyBudget.Counter(_org, key.KeyId, day), admission.Hold!.KeyBudget);
        Assert.True((long)await _redis.GetDatabase().HashGetAsync(KeyBudget.Counter(_org, key.KeyId, day), KeyBudget.UnitsField) > 0);
    }

    private async Task<(Admission Admission, UsageRecord Draft)> AdmitAsync(AdmissionGate gate, KeySnapshot key, int promptTokens, int maxTokens,
        bool streamed = true)
    {
        var draft = new UsageRecord("evt_" + Guid.CreateVersion7().ToString("N"), "req", key.OrganizationId, key.KeyId, key.BillingMode,
            Model.Id, Model.PoolId, null, null, "POST", "/v1/chat/completions", 499, "request_abandoned", 0, 0, 0m, 0, null, streamed, _clock.GetUtcNow());
        var admission = await gate.AdmitAsync(key, Model, draft, promptTokens, maxTokens, CancellationToken.None);
        return (admission, draft with { Hold = admission.Hold });
    }

    private static UsageRecord Used(UsageRecord draft, int prompt, int completion) => draft with
    {
        Status = 200, ErrorCode = null, PromptTokens = prompt, CompletionTokens = completion,
        Cost = Pricing.Bill(Model, draft.Hold, prompt, completion),
    };
}
