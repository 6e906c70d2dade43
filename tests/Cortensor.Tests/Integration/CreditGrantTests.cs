using Cortensor.Api.Data;
using Cortensor.Api.Limits;
using Cortensor.Tests.Fixtures;
using Microsoft.Extensions.Time.Testing;
using Npgsql;
using StackExchange.Redis;

namespace Cortensor.Tests.Integration;

/// <summary>
/// Credit grants (Stripe top-ups, admin grants and clawbacks) on real Redis and Postgres, committed at the worst moments
/// for the hot balance: between a reconciliation's snapshot and its ledger read, while an admission loads a missing
/// balance, and with the granting replica stopping between its steps. The balance must take each grant exactly once.
/// </summary>
[Collection(InfrastructureCollection.Name)]
public class CreditGrantTests(InfrastructureFixture infrastructure) : IAsyncLifetime
{
    private static readonly long Opening = Pricing.ToUnits(10m);
    private readonly FakeTimeProvider _clock = new(new DateTimeOffset(2026, 11, 15, 12, 0, 0, TimeSpan.Zero));
    private readonly Guid _org = Guid.CreateVersion7();
    private ConnectionMultiplexer _redis = null!;
    private NpgsqlDataSource _postgres = null!;

    private IDatabase Redis => _redis.GetDatabase();

    public async Task InitializeAsync()
    {
        _postgres = NpgsqlDataSource.Create(await infrastructure.CreateDatabaseAsync());
        _redis = await ConnectionMultiplexer.ConnectAsync(infrastructure.RedisConnectionString);
        await using (var command = _postgres.CreateCommand(
            "INSERT INTO organizations (id, name, status, plan_id, created_at) VALUES ($1, 'grants', 'Active', 'pro', now())"))
        {
            command.Parameters.Add(new NpgsqlParameter { Value = _org });
            await command.ExecuteNonQueryAsync();
        }
        await CommitAsync("opening", 10m);
        await Redis.StringSetAsync(LimitKeys.Credit(_org), Opening);
    }

    public async Task DisposeAsync()
    {
        await Redis.KeyDeleteAsync([LimitKeys.Credit(_org), LimitKeys.PendingGrants(_org), LimitKeys.Version(_org)]);
        await _redis.DisposeAsync();
        await _postgres.DisposeAsync();
    }

    [Fact]
    public async Task AGrantCommittedBetweenTheReconcilersSnapshotAndItsLedgerReadIsCountedOnce()
    {
        var outcome = await GrantDuringReconciliationAsync(5m, onlyIfMissing: false);

        Assert.True(outcome.Changed);
        Assert.Equal(Opening + Pricing.ToUnits(5m), await BalanceAsync());
        Assert.Equal(0, await Redis.HashLengthAsync(LimitKeys.PendingGrants(_org)));
    }

    [Fact]
    public async Task AGrantCommittedWhileAnAdmissionLoadsTheMissingBalanceIsCountedOnce()
    {
        await Redis.KeyDeleteAsync(LimitKeys.Credit(_org));

        var outcome = await GrantDuringReconciliationAsync(5m, onlyIfMissing: true);

        Assert.True(outcome.Changed);
        Assert.Equal(Opening + Pricing.ToUnits(5m), await BalanceAsync());
    }

    [Fact]
    public async Task AClawbackCommittedBetweenTheReconcilersSnapshotAndItsLedgerReadIsTakenOnce()
    {
        await GrantDuringReconciliationAsync(-4m, onlyIfMissing: false);

        Assert.Equal(Opening - Pricing.ToUnits(4m), await BalanceAsync());
    }

    [Fact]
    public async Task AGrantCommittedBeforeTheSnapshotButAppliedAfterTheComparisonIsCountedOnce()
    {
        var committed = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        var reconciled = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        var grant = Counters().GrantAsync(_org, "late-apply", 5m, async () =>
        {
            await CommitAsync("late-apply", 5m);
            committed.SetResult();
            await reconciled.Task;
            return true;
        });
        await committed.Task;
        await Counters().ReconcileAsync(_org, BillingMode.PrepaidCredits, onlyIfMissing: false, CancellationToken.None);
        reconciled.SetResult();
        Assert.True(await grant);

        Assert.Equal(Opening + Pricing.ToUnits(5m), await BalanceAsync());
    }

    [Fact]
    public async Task AGrantWhoseReplicaStoppedAfterTheCommitIsAddedByTheNextReconciliationAndNeverAgain()
    {
        // The replica noted the grant and committed it, then stopped before applying it.
        await NoteAsync("stopped-after-commit", 5m);
        await CommitAsync("stopped-after-commit", 5m);
        Assert.Equal(Opening, await BalanceAsync());

        var outcome = await Counters().ReconcileAsync(_org, BillingMode.PrepaidCredits, onlyIfMissing: false, CancellationToken.None);
        Assert.True(outcome!.Changed);
        Assert.Equal(Opening + Pricing.ToUnits(5m), await BalanceAsync());

        // Its apply, arriving late after all (a slow Redis reply), finds nothing noted and adds nothing.
        await ApplyAsync("stopped-after-commit", 5m);
        Assert.Equal(Opening + Pricing.ToUnits(5m), await BalanceAsync());
    }

    [Fact]
    public async Task AGrantWhoseReplicaStoppedBeforeTheCommitChangesNothingUntilStripeRedeliversIt()
    {
        await NoteAsync("cs_redelivered", 5m);

        var outcome = await Counters().ReconcileAsync(_org, BillingMode.PrepaidCredits, onlyIfMissing: false, CancellationToken.None);
        Assert.False(outcome!.Changed);
        Assert.Equal(Opening, await BalanceAsync());

        Assert.True(await Counters().GrantAsync(_org, "cs_redelivered", 5m, async () =>
        {
            await CommitAsync("cs_redelivered", 5m);
            return true;
        }));
        Assert.Equal(Opening + Pricing.ToUnits(5m), await BalanceAsync());
        Assert.Equal(0, await Redis.HashLengthAsync(LimitKeys.PendingGrants(_org)));
    }

    [Fact]
    public async Task AGrantWhoseCommitFailsLeavesTheBalanceAsItWasAndNothingNoted()
    {
        await Assert.ThrowsAsync<TimeoutException>(() => Counters().GrantAsync(_org, "failed", 5m, () => throw new TimeoutException()));

        Assert.Equal(Opening, await BalanceAsync());
        Assert.Equal(0, await Redis.HashLengthAsync(LimitKeys.PendingGrants(_org)));
    }

    [Fact]
    public async Task AStripeEventDeliveredTwiceAtOnceIsCountedOnce()
    {
        Assert.True(await Counters().GrantAsync(_org, "cs_twice", 5m, async () =>
        {
            await CommitAsync("cs_twice", 5m);
            return true;
        }));
        // The second delivery noted the session again, then found the ledger already had it.
        Assert.False(await Counters().GrantAsync(_org, "cs_twice", 5m, () => Task.FromResult(false)));
        Assert.Equal(Opening + Pricing.ToUnits(5m), await BalanceAsync());

        var outcome = await Counters().ReconcileAsync(_org, BillingMode.PrepaidCredits, onlyIfMissing: false, CancellationToken.None);
        Assert.Equal(outcome!.Expected, outcome.Before);
        Assert.Equal(Opening + Pricing.ToUnits(5m), await BalanceAsync());
        Assert.Equal(0, await Redis.HashLengthAsync(LimitKeys.PendingGrants(_org)));
    }

    [Fact]
    public async Task AGrantNotedAndCommittedAfterTheReconcilersSnapshotButAppliedAfterItIsCountedOnce()
    {
        // The snapshot cannot see the note, so it cannot strike it: the note's move of the version must refuse the comparison.
        var committed = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        var reconciled = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        Task<bool>? grant = null;
        var reconciler = new HotCounters(_redis, _postgres, _clock)
        {
            AfterSnapshot = async () =>
            {
                grant = Counters().GrantAsync(_org, "after-snapshot", 5m, async () =>
                {
                    await CommitAsync("after-snapshot", 5m);
                    committed.SetResult();
                    await reconciled.Task;
                    return true;
                });
                await committed.Task;
            },
        };
        var outcome = await reconciler.ReconcileAsync(_org, BillingMode.PrepaidCredits, onlyIfMissing: false, CancellationToken.None);
        reconciled.SetResult();
        Assert.True(await grant!);
        Assert.False(outcome!.Changed);
        Assert.Equal(Opening + Pricing.ToUnits(5m), await BalanceAsync());

        await Counters().ReconcileAsync(_org, BillingMode.PrepaidCredits, onlyIfMissing: false, CancellationToken.None);
        Assert.Equal(Opening + Pricing.ToUnits(5m), await BalanceAsync());
    }

    [Fact]
    public async Task ASecondDeliveryNotedAfterReconciliationFoldedInTheFirstDoesNotLetTheFirstApplyTwice()
    {
        var reconciled = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        var committed = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        var first = Counters().GrantAsync(_org, "cs_raced", 5m, async () =>
        {
            await CommitAsync("cs_raced", 5m);
            committed.SetResult();
            await reconciled.Task;
            return true;
        });
        await committed.Task;
        // Reconciliation folds the committed grant in and strikes its note; then Stripe's second delivery (which passed the
        // paid check before the first committed) notes the session again and finds the ledger has it.
        Assert.True((await Counters().ReconcileAsync(_org, BillingMode.PrepaidCredits, onlyIfMissing: false, CancellationToken.None))!.Changed);
        Assert.False(await Counters().GrantAsync(_org, "cs_raced", 5m, () => Task.FromResult(false)));
        reconciled.SetResult();
        Assert.True(await first);
        Assert.Equal(Opening + Pricing.ToUnits(5m), await BalanceAsync());

        await Counters().ReconcileAsync(_org, BillingMode.PrepaidCredits, onlyIfMissing: false, CancellationToken.None);
        Assert.Equal(Opening + Pricing.ToUnits(5m), await BalanceAsync());
        Assert.Equal(0, await Redis.HashLengthAsync(LimitKeys.PendingGrants(_org)));
    }

    [Fact]
    public async Task AGrantMadeWhileRedisIsAwayIsCommittedAndReachesTheBalanceAtTheNextReconciliation()
    {
        await using var away = await ConnectionMultiplexer.ConnectAsync("127.0.0.1:1,abortConnect=false,connectTimeout=200,syncTimeout=200,asyncTimeout=200");

        Assert.True(await new HotCounters(away, _postgres, _clock).GrantAsync(_org, "redis-away", 5m, async () =>
        {
            await CommitAsync("redis-away", 5m);
            return true;
        }));
        Assert.Equal(Opening, await BalanceAsync());

        await Counters().ReconcileAsync(_org, BillingMode.PrepaidCredits, onlyIfMissing: false, CancellationToken.None);
        Assert.Equal(Opening + Pricing.ToUnits(5m), await BalanceAsync());
    }

    /// <summary>
    /// Commits a grant exactly between a reconciliation's Redis snapshot and its ledger read, and applies it after the
    /// comparison: the interleaving in which the comparison and the apply could both count it.
    /// </summary>
    private async Task<HotCounters.Outcome> GrantDuringReconciliationAsync(decimal usd, bool onlyIfMissing)
    {
        var noted = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        var snapshotTaken = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        var committed = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        var reconciled = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        var grant = Counters().GrantAsync(_org, "during", usd, async () =>
        {
            noted.SetResult();
            await snapshotTaken.Task;
            await CommitAsync("during", usd);
            committed.SetResult();
            await reconciled.Task;
            return true;
        });
        await noted.Task;
        var reconciler = new HotCounters(_redis, _postgres, _clock)
        {
            AfterSnapshot = async () =>
            {
                snapshotTaken.SetResult();
                await committed.Task;
            },
        };
        var outcome = await reconciler.ReconcileAsync(_org, BillingMode.PrepaidCredits, onlyIfMissing, CancellationToken.None);
        reconciled.SetResult();
        Assert.True(await grant);
        return outcome!;
    }

    private HotCounters Counters() => new(_redis, _postgres, _clock);

    private async Task<long> BalanceAsync() => (long)await Redis.StringGetAsync(LimitKeys.Credit(_org));

    /// <summary>The note a replica that stopped part-way left: as GrantAsync writes it, with this test's own nonce.</summary>
    private static string Note(decimal usd) => $"{Pricing.ToUnits(usd)}|stopped";

    private Task NoteAsync(string reference, decimal usd) => Redis.ScriptEvaluateAsync(AdmissionScripts.PendGrant, new
    {
        grants = (RedisKey)LimitKeys.PendingGrants(_org), version = (RedisKey)LimitKeys.Version(_org), reference, note = Note(usd),
    });

    private Task ApplyAsync(string reference, decimal usd) => Redis.ScriptEvaluateAsync(AdmissionScripts.ApplyGrant, new
    {
        grants = (RedisKey)LimitKeys.PendingGrants(_org), version = (RedisKey)LimitKeys.Version(_org), reference, note = Note(usd),
        amount = Pricing.ToUnits(usd), counter = (RedisKey)LimitKeys.Credit(_org),
    });

    private async Task CommitAsync(string reference, decimal usd)
    {
        await using var command = _postgres.CreateCommand(
            "INSERT INTO billing_ledger (organization_id, kind, amount, tokens, reference, created_at) VALUES ($1, $2, $3, 0, $4, now())");
        command.Parameters.Add(new NpgsqlParameter { Value = _org });
        command.Parameters.Add(new NpgsqlParameter { Value = usd >= 0 ? "Grant" : "Adjustment" });
        command.Parameters.Add(new NpgsqlParameter { Value = usd });
        command.Parameters.Add(new NpgsqlParameter { Value = reference });
        await command.ExecuteNonQueryAsync();
    }
}
