using System.Text.Json;
using Cortensor.Api.Data;
using Cortensor.Api.Infrastructure;
using Cortensor.Api.Inference;
using Cortensor.Api.Limits;
using Cortensor.Api.Metering;
using Cortensor.Tests.Fixtures;
using Microsoft.EntityFrameworkCore;
using Microsoft.EntityFrameworkCore.Infrastructure;
using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Logging.Abstractions;
using Microsoft.Extensions.Options;
using Npgsql;
using StackExchange.Redis;

namespace Cortensor.Tests.Integration;

/// <summary>The usage pipeline on real Redis and Postgres: exactly once, whatever dies.</summary>
[Collection(InfrastructureCollection.Name)]
public class UsagePipelineTests(InfrastructureFixture infrastructure) : IAsyncLifetime
{
    private string _connectionString = null!;
    private ConnectionMultiplexer _redis = null!;
    private NpgsqlDataSource _postgres = null!;
    private Guid _org;

    public async Task InitializeAsync()
    {
        _connectionString = await infrastructure.CreateDatabaseAsync();
        _postgres = NpgsqlDataSource.Create(_connectionString);
        _redis = await ConnectionMultiplexer.ConnectAsync(infrastructure.RedisConnectionString);
        await _redis.GetDatabase().KeyDeleteAsync(UsageMeter.Stream);
        await using var db = Context();
        var org = new Organization { Name = "pipeline", PlanId = "pro" };
        db.Organizations.Add(org);
        await db.SaveChangesAsync();
        _org = org.Id;
    }

    public async Task DisposeAsync()
    {
        await _redis.GetDatabase().KeyDeleteAsync(UsageMeter.Stream);
        await _redis.DisposeAsync();
        await _postgres.DisposeAsync();
    }

    [Fact]
    public async Task AWriterThatDiesMidBatchLeavesItsEntriesToAnotherAndEachLandsOnce()
    {
        var records = Records(500);
        var db = _redis.GetDatabase();
        foreach (var r in records)
            await db.StreamAddAsync(UsageMeter.Stream, UsageMeter.Field, JsonSerializer.SerializeToUtf8Bytes(r, PortalJsonContext.Default.UsageRecord));
        await db.StreamCreateConsumerGroupAsync(UsageMeter.Stream, UsageWriter.Group, "0-0");
        // A writer takes 200 entries and is killed before it commits or acknowledges anything.
        var taken = await db.StreamReadGroupAsync(UsageMeter.Stream, UsageWriter.Group, "killed-writer", ">", 200);
        Assert.Equal(200, taken.Length);

        var writer = Writer(claimIdleSeconds: 1);
        await writer.StartAsync(CancellationToken.None);
        try
        {
            await WaitForAsync(async () => await CountAsync("usage_events") == 500 && await db.StreamLengthAsync(UsageMeter.Stream) == 0);
        }
        finally
        {
            await writer.StopAsync(CancellationToken.None);
        }

        Assert.Equal(500, await CountAsync("usage_events"));
        Assert.Equal(500, await CountAsync("request_logs"));
        Assert.Equal(records.Count(r => r.PromptTokens + r.CompletionTokens > 0), await CountAsync("billing_ledger"));
        var pending = await db.StreamPendingAsync(UsageMeter.Stream, UsageWriter.Group);
        Assert.Equal(0, pending.PendingMessageCount);
    }

    [Fact]
    public async Task WritingTheSameEventsAgainChangesNothing()
    {
        var writer = Writer();
        var records = Records(300);
        await writer.WriteAsync(records, CancellationToken.None);
        var ledger = await LedgerSumAsync();
        var daily = await ScalarAsync<long>("SELECT sum(requests) FROM usage_daily");

        await writer.WriteAsync(records.Take(150).Concat(records.Take(10)).ToList(), CancellationToken.None);

        Assert.Equal(300, await CountAsync("usage_events"));
        Assert.Equal(ledger, await LedgerSumAsync());
        Assert.Equal(daily, await ScalarAsync<long>("SELECT sum(requests) FROM usage_daily"));
        Assert.Equal(300, daily);
        // Debits are exactly the costs: the ledger never rounds differently from the usage.
        Assert.Equal(-records.Where(r => r.BillingMode == BillingMode.PrepaidCredits).Sum(r => r.Cost), ledger);
    }

    [Fact]
    public async Task UsageWaitsInTheStreamWhilePostgresIsUnreachableAndLandsAfter()
    {
        var db = _redis.GetDatabase();
        var records = Records(120);
        foreach (var r in records)
            await db.StreamAddAsync(UsageMeter.Stream, UsageMeter.Field, JsonSerializer.SerializeToUtf8Bytes(r, PortalJsonContext.Default.UsageRecord));

        // A writer pointed at a Postgres that does not answer keeps everything pending.
        await using var down = NpgsqlDataSource.Create(_connectionString.Replace($"Port={infrastructure.Postgres.Port}", $"Port={LocalServer.FreePort()}") + ";Timeout=1");
        var failures = new CountingLogger<UsageWriter>();
        var failing = new UsageWriter(_redis, down, Config(1), failures, index: 7);
        await failing.StartAsync(CancellationToken.None);
        try
        {
            // Proof that the writer did its part: it took every entry (pending in its group, unacknowledged)
            // and its write failed at least twice (a first attempt and a retry).
            await Eventually.WaitUntilAsync(async () =>
            {
                try
                {
                    return (await db.StreamPendingAsync(UsageMeter.Stream, UsageWriter.Group)).PendingMessageCount == 120 && failures.Warnings >= 2;
                }
                catch (RedisServerException ex) when (ex.Message.StartsWith("NOGROUP", StringComparison.Ordinal))
                {
                    return false; // the writer has not created its consumer group yet
                }
            }, TimeSpan.FromSeconds(30), "the writer did not read the backlog and fail to write it");
        }
        finally
        {
            await failing.StopAsync(CancellationToken.None);
        }
        Assert.Equal(0, await CountAsync("usage_events"));
        Assert.Equal(120, await db.StreamLengthAsync(UsageMeter.Stream));
        Assert.Equal(120, (await db.StreamPendingAsync(UsageMeter.Stream, UsageWriter.Group)).PendingMessageCount);

        // Postgres back (a healthy writer): the backlog drains, each event once.
        var writer = Writer(claimIdleSeconds: 1);
        await writer.StartAsync(CancellationToken.None);
        try
        {
            await WaitForAsync(async () => await CountAsync("usage_events") == 120 && await db.StreamLengthAsync(UsageMeter.Stream) == 0);
        }
        finally
        {
            await writer.StopAsync(CancellationToken.None);
        }
        Assert.Equal(120, await CountAsync("usage_events"));
    }

    [Fact]
    public async Task TheReconcilerCorrectsADriftedBalanceCountingWhatOpenReservationsHold()
    {
        await using (var ctx = Context())
        {
            ctx.BillingLedger.Add(new BillingLedgerEntry { OrganizationId = _org, Kind = LedgerEntryKind.Grant, Amount = 2.5m, Reference = "grant-1" });
            await ctx.SaveChangesAsync();
        }
        var db = _redis.GetDatabase();
        var credit = LimitKeys.Credit(_org);
        // $0.40 is held by a request in flight; the counter drifted $0.50 above the ledger's $2.50 - $0.40.
        await db.StringSetAsync(LimitKeys.Held(credit), Pricing.ToUnits(0.4m));
        await db.StringSetAsync(credit, Pricing.ToUnits(2.6m));

        var services = new ServiceCollection()
            .AddDbContext<PortalDbContext>(o => { o.UseNpgsql(_connectionString); PortalDbContext.Configure(o); })
            .BuildServiceProvider();
        var reconciler = new LedgerReconciler(new HotCounters(_redis, _postgres, TimeProvider.System), services.GetRequiredService<IServiceScopeFactory>(),
            Config(30), NullLogger<LedgerReconciler>.Instance);

        Assert.Equal(1, await reconciler.ReconcileAsync(CancellationToken.None));
        Assert.Equal(Pricing.ToUnits(2.1m), (long)await db.StringGetAsync(credit));
        Assert.Equal(0, await reconciler.ReconcileAsync(CancellationToken.None));
        await db.KeyDeleteAsync([credit, LimitKeys.Held(credit), LimitKeys.Version(_org)]);
    }

    [Fact]
    public async Task TooManyPendingChargesAreForgottenAPageAtATimeWhereTheLedgerHasThemAndTheBalanceIsThenCorrected()
    {
        await using (var ctx = Context())
        {
            ctx.BillingLedger.Add(new BillingLedgerEntry { OrganizationId = _org, Kind = LedgerEntryKind.Grant, Amount = 5m, Reference = "grant-pending" });
            await ctx.SaveChangesAsync();
        }
        // 2,500 charges in the ledger but still listed as pending (as an older version left them), and one on its way.
        var written = Records(2500).Select(r => r with { BillingMode = BillingMode.PrepaidCredits, PromptTokens = 20, CompletionTokens = 10, Cost = 0.00001m }).ToList();
        await Writer().WriteAsync(written, CancellationToken.None);
        var db = _redis.GetDatabase();
        var credit = LimitKeys.Credit(_org);
        var pending = LimitKeys.Unbilled(credit);
        await db.HashSetAsync(pending, written.Select(r => new HashEntry(r.EventId, Pricing.ToUnits(r.Cost))).Append(new HashEntry("evt_on_its_way", 3)).ToArray());
        // The counter drifted $1 above the ledger's $5 - $0.025, less the charge on its way.
        var expected = Pricing.ToUnits(5m - 0.025m) - 3;
        await db.StringSetAsync(credit, expected + Pricing.ToUnits(1m));

        var services = new ServiceCollection()
            .AddDbContext<PortalDbContext>(o => { o.UseNpgsql(_connectionString); PortalDbContext.Configure(o); })
            .BuildServiceProvider();
        var options = Options.Create(new MeteringOptions { ReconcileMaxPendingCharges = 1000 });
        var reconciler = new LedgerReconciler(new HotCounters(_redis, _postgres, TimeProvider.System), services.GetRequiredService<IServiceScopeFactory>(),
            options, NullLogger<LedgerReconciler>.Instance);
        try
        {
            Assert.Equal(1, await reconciler.ReconcileAsync(CancellationToken.None));
            Assert.Equal(expected, (long)await db.StringGetAsync(credit));
            var left = await db.HashGetAllAsync(pending);
            Assert.Equal("evt_on_its_way", Assert.Single(left).Name.ToString());
        }
        finally
        {
            await db.KeyDeleteAsync([credit, pending, LimitKeys.Version(_org)]);
        }
    }

    [Fact]
    public async Task ReconciliationPostponesAnOrganisationWithMoreChargesOnTheirWayThanItMayReadAtOnce()
    {
        var db = _redis.GetDatabase();
        var credit = LimitKeys.Credit(_org);
        var pending = LimitKeys.Unbilled(credit);
        // None of these is in the ledger yet (the writers are behind): nothing can be forgotten, and the counter is left alone.
        await db.HashSetAsync(pending, Enumerable.Range(0, 50).Select(i => new HashEntry($"evt_behind_{i}", 1)).ToArray());
        await db.StringSetAsync(credit, 12345);
        try
        {
            var outcome = await new HotCounters(_redis, _postgres, TimeProvider.System)
                .ReconcileAsync(_org, BillingMode.PrepaidCredits, onlyIfMissing: false, CancellationToken.None, maxPending: 49);
            Assert.NotNull(outcome);
            Assert.Equal(50, outcome.PostponedWith);
            Assert.False(outcome.Changed);
            Assert.Equal(0, await new HotCounters(_redis, _postgres, TimeProvider.System).ForgetWrittenAsync(_org, BillingMode.PrepaidCredits, 1000, CancellationToken.None));
            Assert.Equal(12345, (long)await db.StringGetAsync(credit));
            Assert.Equal(50, await db.HashLengthAsync(pending));
        }
        finally
        {
            await db.KeyDeleteAsync([credit, pending, LimitKeys.Version(_org)]);
        }
    }

    [Fact]
    public async Task TheLedgerTotalsEqualTheLedgerWhoeverWritesItAndTheLedgerRefusesToBeChanged()
    {
        // Four writers at once with overlapping batches (as two replicas' writers and a spool replay), over two months,
        // and a grant written through EF.
        var records = Records(800).Select((r, i) => i % 4 == 0 ? r with { CreatedAt = r.CreatedAt.AddMonths(-1) } : r).ToList();
        await Task.WhenAll(Enumerable.Range(0, 4).Select(w => Writer().WriteAsync(records.Skip(w * 150).Take(350).ToList(), CancellationToken.None)));
        await using (var ctx = Context())
        {
            ctx.BillingLedger.Add(new BillingLedgerEntry { OrganizationId = _org, Kind = LedgerEntryKind.Grant, Amount = 7.25m, Reference = "grant-totals" });
            await ctx.SaveChangesAsync();
        }

        var expected = await RowsAsync(LedgerByMonth);
        Assert.Equal(2, expected.Count);
        Assert.Equal(expected, await RowsAsync(Totals));
        var totals = await Cortensor.Api.ControlPlane.Balances.ReadAsync(_postgres, _org, DateTimeOffset.UtcNow, countEvents: true, CancellationToken.None);
        Assert.Equal(await LedgerSumAsync(), totals.Balance);
        Assert.Equal(await CountAsync("usage_events"), totals.UsageEvents);

        // Corrections are new entries: the database refuses to change or remove one.
        foreach (var change in new[] { "UPDATE billing_ledger SET amount = 0", "DELETE FROM billing_ledger", "TRUNCATE billing_ledger" })
        {
            var refused = await Assert.ThrowsAsync<PostgresException>(() => ScalarAsync<long>(change));
            Assert.Equal(PostgresErrorCodes.RestrictViolation, refused.SqlState);
        }
        Assert.Equal(expected, await RowsAsync(LedgerByMonth));
    }

    [Fact]
    public async Task TheLedgerTotalsMigrationCountsTheLedgerItFinds()
    {
        await using var ctx = Context();
        var migrator = ctx.GetService<Microsoft.EntityFrameworkCore.Migrations.IMigrator>();
        var migrations = ctx.Database.GetMigrations().ToList();
        var totals = migrations.Single(m => m.EndsWith("_LedgerTotals", StringComparison.Ordinal));
        await migrator.MigrateAsync(migrations[migrations.IndexOf(totals) - 1]);
        await Writer().WriteAsync(Records(200), CancellationToken.None);

        await migrator.MigrateAsync();

        Assert.Equal(await RowsAsync(LedgerByMonth), await RowsAsync(Totals));
        Assert.NotEmpty(await RowsAsync("SELECT organization_id FROM ledger_totals"));
    }

    /// <summary>The ledger summed row by row, per organisation and month: what <c>ledger_totals</c> must hold.</summary>
    private const string LedgerByMonth = """
        SELECT organization_id, date_trunc('month', created_at AT TIME ZONE 'UTC')::date, sum(amount),
               coalesce(sum(tokens) FILTER (WHERE kind = 'Usage'), 0), count(*) FILTER (WHERE kind = 'Usage')
        FROM billing_ledger GROUP BY 1, 2
        """;

    private const string Totals = "SELECT organization_id, month, amount, usage_tokens, usage_entries FROM ledger_totals";

    /// <summary>A query's rows as text, sorted: compared whole.</summary>
    private async Task<List<string>> RowsAsync(string sql)
    {
        await using var command = _postgres.CreateCommand(sql);
        await using var reader = await command.ExecuteReaderAsync();
        var rows = new List<string>();
        while (await reader.ReadAsync())
            rows.Add(string.Join('|', Enumerable.Range(0, reader.FieldCount).Select(i => Convert.ToString(reader.GetValue(i), System.Globalization.CultureInfo.InvariantCulture))));
        rows.Sort(StringComparer.Ordinal);
        return rows;
    }

    private List<UsageRecord> Records(int count)
    {
        var now = DateTimeOffset.UtcNow;
        return Enumerable.Range(0, count).Select(i => new UsageRecord(
            $"evt_{Guid.CreateVersion7():N}", $"req_{i}", _org, Guid.NewGuid(), i % 3 == 0 ? BillingMode.MonthlyQuota : BillingMode.PrepaidCredits,
            "gpt-oss-20b", "oss-20b", "router-oss20b-1", 2001, "POST", "/v1/chat/completions",
            i % 10 == 0 ? 429 : 200, i % 10 == 0 ? "rate_limit_exceeded" : null,
            i % 10 == 0 ? 0 : 20 + i % 7, i % 10 == 0 ? 0 : 10 + i % 5,
            i % 10 == 0 ? 0m : Pricing.RoundForLedger(((20 + i % 7) * 0.0001m + (10 + i % 5) * 0.0004m) / 1000m),
            5, null, false, now.AddMilliseconds(-i))).ToList();
    }

    private UsageWriter Writer(double claimIdleSeconds = 30) =>
        new(_redis, _postgres, Config(claimIdleSeconds), NullLogger<UsageWriter>.Instance);

    private static IOptions<MeteringOptions> Config(double claimIdleSeconds) => Options.Create(new MeteringOptions { ClaimIdleSeconds = claimIdleSeconds });

    private PortalDbContext Context()
    {
        var options = new DbContextOptionsBuilder<PortalDbContext>().UseNpgsql(_connectionString);
        PortalDbContext.Configure(options);
        return new PortalDbContext(options.Options);
    }

    private Task<long> CountAsync(string table) => ScalarAsync<long>($"SELECT count(*) FROM {table}");

    private async Task<decimal> LedgerSumAsync() => await ScalarAsync<decimal?>("SELECT sum(amount) FROM billing_ledger") ?? 0m;

    private async Task<T> ScalarAsync<T>(string sql)
    {
        await using var command = _postgres.CreateCommand(sql);
        var value = await command.ExecuteScalarAsync();
        return value is DBNull or null ? default! : (T)Convert.ChangeType(value, Nullable.GetUnderlyingType(typeof(T)) ?? typeof(T), System.Globalization.CultureInfo.InvariantCulture);
    }

    private static Task WaitForAsync(Func<Task<bool>> condition) =>
        Eventually.WaitUntilAsync(condition, TimeSpan.FromSeconds(30), "the usage did not land", TimeSpan.FromMilliseconds(200));

    /// <summary>Counts what a component logs at Warning and above: here, the writer's failed attempts.</summary>
    private sealed class CountingLogger<T> : ILogger<T>
    {
        private int _warnings;
        public int Warnings => Volatile.Read(ref _warnings);
        public IDisposable? BeginScope<TState>(TState state) where TState : notnull => null;
        public bool IsEnabled(LogLevel logLevel) => true;
        public void Log<TState>(LogLevel logLevel, EventId eventId, TState state, Exception? exception, Func<TState, Exception?, string> formatter)
        {
            if (logLevel >= LogLevel.Warning) Interlocked.Increment(ref _warnings);
        }
    }
}
