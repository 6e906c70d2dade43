using Microsoft.Extensions.Logging;
using Microsoft.Extensions.DependencyInjection;
using System.Diagnostics.Metrics;
using System.Text;
using System.Text.Json;
using Cortensor.Api.Data;
using Cortensor.Api.Infrastructure;
using Cortensor.Api.Inference;
using Cortensor.Api.Limits;
using Cortensor.Api.Metering;
using Cortensor.Tests.Fixtures;
using Microsoft.EntityFrameworkCore;
using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.Hosting.Internal;
using Microsoft.Extensions.Logging.Abstractions;
using Npgsql;
using StackExchange.Redis;

namespace Cortensor.Tests.Integration;

/// <summary>
/// Poison for the ledger on real Redis and Postgres: no value, refused record, torn spool line or second spool owner
/// stops the records after it, loses one, or writes one twice. Every case ends on the same invariants.
/// </summary>
[Collection(InfrastructureCollection.Name)]
public sealed class UsageDeadLetterTests(InfrastructureFixture infrastructure) : IAsyncLifetime, IDisposable
{
    private static readonly string[] StoredStrings = ["event_id", "request_id", "model_id", "pool_id", "router_id", "method", "path", "error_code"];
    private string _connectionString = null!;
    private ConnectionMultiplexer _redis = null!;
    private NpgsqlDataSource _postgres = null!;
    private Guid _org;
    private readonly string _spoolDirectory = Path.Combine(Path.GetTempPath(), "cortensor-tests", "spool-" + Guid.NewGuid().ToString("N"));
    private readonly MeterListener _listener = new();
    private long _deadLettersCounted;

    public async Task InitializeAsync()
    {
        _connectionString = await infrastructure.CreateDatabaseAsync();
        _postgres = NpgsqlDataSource.Create(_connectionString);
        _redis = await ConnectionMultiplexer.ConnectAsync(infrastructure.RedisConnectionString);
        await _redis.GetDatabase().KeyDeleteAsync([UsageMeter.Stream, UsageDeadLetters.Stream]);
        await using var db = Context();
        var org = new Organization { Name = "poison", PlanId = "pro" };
        db.Organizations.Add(org);
        await db.SaveChangesAsync();
        _org = org.Id;

        _listener.InstrumentPublished = (instrument, listener) =>
        {
            if (instrument.Name == "cortensor.usage.dead_letters") listener.EnableMeasurementEvents(instrument);
        };
        _listener.SetMeasurementEventCallback<long>((_, value, _, _) => Interlocked.Add(ref _deadLettersCounted, value));
        _listener.Start();
    }

    public async Task DisposeAsync()
    {
        await _redis.GetDatabase().KeyDeleteAsync([UsageMeter.Stream, UsageDeadLetters.Stream]);
        await _redis.DisposeAsync();
        await _postgres.DisposeAsync();
        try { Directory.Delete(_spoolDirectory, recursive: true); } catch (DirectoryNotFoundException) { }
    }

    public void Dispose() => _listener.Dispose();

    [Fact]
    public async Task NulLoneSurrogatesAndHugeValuesInEveryStoredFieldAreNormalisedOrSetAsideAndTheRecordsAfterThemLand()
    {
        var db = _redis.GetDatabase();
        var good = Records(40);
        var expected = new List<string>(good.Select(r => r.EventId));
        var setAside = new List<RedisValue>();
        // Raw JSON as a foreign or older producer could have buffered it. NUL and huge values are normalised by the
        // writer; a lone surrogate makes the JSON unreadable to System.Text.Json, so that entry becomes a dead letter.
        var poisons = new (string Name, Func<string, string> Apply, bool Lands)[]
        {
            ("nul", v => v + "\\u0000x", true),
            ("20k characters", v => v + new string('x', 20_000), true),
            ("lone high surrogate", v => v + "\\ud800x", false),
            ("lone low surrogate", v => "\\udc00" + v, false),
        };
        var i = 0;
        foreach (var field in StoredStrings)
            foreach (var (_, poison, lands) in poisons)
            {
                await Add(db, good[i++ % good.Count]);
                var record = Records(1)[0];
                var json = Encoding.UTF8.GetString(Payload(record));
                var value = field switch
                {
                    "event_id" => record.EventId, "request_id" => record.RequestId, "model_id" => record.ModelId,
                    "pool_id" => record.PoolId!, "router_id" => record.RouterId!, "method" => record.Method,
                    "path" => record.Path, _ => "rate_limit_exceeded",
                };
                json = field == "error_code"
                    ? json.Replace("\"status\":", $"\"error_code\":\"{poison(value)}\",\"status\":")
                    : json.Replace($"\"{field}\":\"{value}\"", $"\"{field}\":\"{poison(value)}\"");
                Assert.Contains(poison(value), json);
                var id = await db.StreamAddAsync(UsageMeter.Stream, UsageMeter.Field, json);
                if (!lands) setAside.Add(id);
                else expected.Add(field == "event_id" ? LedgerText.Identifier(JsonDocument.Parse(json).RootElement.GetProperty("event_id").GetString(), 40) : record.EventId);
            }
        // The hot path normalises before it buffers, so a record it makes can always be serialised and stored.
        var meter = new UsageMeter(_redis, Spool(), NullLogger<UsageMeter>.Instance);
        var hot = Records(1)[0] with { ModelId = "gpt-oss\0-20b\ud800", Path = "/v1/chat/completions\udc00" + new string('é', 20_000), ErrorCode = "not_found\0" };
        await meter.RecordAsync(hot);
        expected.Add(hot.EventId);
        foreach (var r in good.Skip(i)) await Add(db, r);

        await DrainAsync();

        await AssertLandedOnceAsync(expected);
        Assert.Equal(expected.Count, await CountAsync("usage_events"));
        var letters = await UsageDeadLetters.ListAsync(db, null, 100);
        Assert.Equal(setAside.Select(id => id.ToString()).Order(), letters.Select(l => l.Source).Order());
        Assert.All(letters, l => Assert.StartsWith("unreadable usage record", l.Error));
        Assert.Equal(setAside.Count, Interlocked.Read(ref _deadLettersCounted));
        Assert.Equal("gpt-oss_-20b_", await ScalarAsync<string>($"SELECT model_id FROM usage_events WHERE event_id = '{hot.EventId}'"));
        Assert.Equal("not_found_", await ScalarAsync<string>($"SELECT error_code FROM request_logs WHERE event_id = '{hot.EventId}'"));
        Assert.Equal(2048, await ScalarAsync<int>($"SELECT length(path) FROM request_logs WHERE event_id = '{hot.EventId}'"));
        Assert.Equal(0, await ScalarAsync<long>("SELECT count(*) FROM request_logs WHERE length(request_id) > 128 OR length(path) > 2048 OR length(method) > 16 OR length(model_id) > 64"));
    }

    [Fact]
    public async Task ARecordTheLedgerRefusesIsSetAsideCountedAndListedWhileTheOthersLand()
    {
        var db = _redis.GetDatabase();
        var good = Records(300);
        // An organisation the ledger does not know: the debit's foreign key refuses it (23503), whatever the batch.
        var refused = Records(3).Select(r => r with { OrganizationId = Guid.NewGuid(), PromptTokens = 5, Cost = 0.001m, Status = 200, ErrorCode = null }).ToList();
        var negative = Records(1)[0] with { Cost = -5m, PromptTokens = 5 };
        var entries = new List<(string Kind, RedisValue Id)>();
        for (var i = 0; i < good.Count; i++)
        {
            if (i is 0 or 150 or 299) entries.Add(("refused", await Add(db, refused[entries.Count(e => e.Kind == "refused")])));
            if (i == 100) entries.Add(("unreadable", await db.StreamAddAsync(UsageMeter.Stream, UsageMeter.Field, "{\"event_id\":\"evt_torn\",\"request_")));
            if (i == 200) entries.Add(("negative", await Add(db, negative)));
            if (i == 250) entries.Add(("no record", await db.StreamAddAsync(UsageMeter.Stream, "other", "x")));
            await Add(db, good[i]);
        }

        await DrainAsync();

        await AssertLandedOnceAsync(good.Select(r => r.EventId).ToList());
        Assert.Equal(good.Count, await CountAsync("usage_events"));
        Assert.Equal(good.Count, await CountAsync("request_logs"));
        Assert.Equal(0, await ScalarAsync<long>($"SELECT count(*) FROM usage_events WHERE event_id IN ('{string.Join("','", refused.Select(r => r.EventId).Append(negative.EventId))}')"));

        var letters = await UsageDeadLetters.ListAsync(db, before: null, limit: 100);
        Assert.Equal(entries.Count, letters.Length);
        Assert.Equal(entries.Count, Interlocked.Read(ref _deadLettersCounted));
        foreach (var (kind, id) in entries)
        {
            var letter = Assert.Single(letters, l => l.Source == id.ToString());
            switch (kind)
            {
                case "refused": Assert.StartsWith("23503", letter.Error); Assert.Contains("evt_", letter.Record); break;
                case "unreadable": Assert.StartsWith("unreadable usage record", letter.Error); Assert.Equal("{\"event_id\":\"evt_torn\",\"request_", letter.Record); break;
                case "negative": Assert.Contains("negative", letter.Error); Assert.Contains(negative.EventId, letter.Record); break;
                default: Assert.Contains("no usage record", letter.Error); break;
            }
        }
        // Paged newest first: two pages of three, the second strictly older than the first.
        var first = await UsageDeadLetters.ListAsync(db, before: null, limit: 3);
        var second = await UsageDeadLetters.ListAsync(db, before: first[^1].Id, limit: 3);
        Assert.Equal(letters.Select(l => l.Id), first.Concat(second).Select(l => l.Id));
    }

    [Fact]
    public async Task TornSpoolLinesBecomeDeadLettersAndLoseNothingElse()
    {
        Directory.CreateDirectory(_spoolDirectory);
        var records = Records(6);
        // A replica that died mid-write: two whole records, a line that is not a record, one more record, half a line.
        var orphan = Path.Combine(_spoolDirectory, "usage-deadhost-4242.jsonl");
        var half = Payload(records[4]).AsSpan(0, 30).ToArray();
        await File.WriteAllBytesAsync(orphan, [.. Line(records[0]), .. Line(records[1]), .. "{\"event_id\":\n"u8, .. Line(records[2]), .. half]);
        // This process's own spool inherited a torn tail: the next record must not be glued to it.
        var spool = Spool();
        await File.WriteAllBytesAsync(spool.FilePath, [.. Line(records[3]), .. Payload(records[5]).AsSpan(0, 12)]);
        await spool.AppendAsync(Payload(records[4]));

        Assert.Equal(8, await spool.ReplayAllAsync());
        await DrainAsync();

        await AssertLandedOnceAsync(records.Take(5).Select(r => r.EventId).ToList());
        Assert.Equal(5, await CountAsync("usage_events"));
        var letters = await UsageDeadLetters.ListAsync(_redis.GetDatabase(), null, 10);
        Assert.Equal(3, letters.Length);
        Assert.Equal(3, Interlocked.Read(ref _deadLettersCounted));
        Assert.Contains(letters, l => l.Error.StartsWith("torn spool line") && l.Record == Encoding.UTF8.GetString(half));
        Assert.Contains(letters, l => l.Record == Encoding.UTF8.GetString(Payload(records[5]).AsSpan(0, 12)));
        Assert.False(File.Exists(orphan));
        Assert.Equal(0, new FileInfo(spool.FilePath).Length);
        spool.Dispose();
    }

    [Fact]
    public async Task TwoSpoolOwnersCannotReplayTheSameFile()
    {
        var records = Records(200);
        var owner = Spool();
        foreach (var r in records.Take(20)) await owner.AppendAsync(Payload(r));
        // While its owner lives, nobody else may write or replay its file.
        var other = Spool();
        Assert.Equal(0, await other.ReplayAllAsync());
        await Assert.ThrowsAnyAsync<IOException>(() => other.AppendAsync(Payload(records[20])));
        Assert.Equal(0, await _redis.GetDatabase().StreamLengthAsync(UsageMeter.Stream));

        // Its owner dies; two survivors race to replay it and an orphan of 180 records: each line is replayed once.
        owner.Dispose();
        var orphan = Path.Combine(_spoolDirectory, "usage-deadhost-77.jsonl");
        await File.WriteAllBytesAsync(orphan, records.Skip(20).SelectMany(Line).ToArray());
        var third = Spool();
        var replayed = await Task.WhenAll(Task.Run(other.ReplayAllAsync), Task.Run(third.ReplayAllAsync));
        Assert.Equal(200, replayed.Sum());
        Assert.Equal(200, await _redis.GetDatabase().StreamLengthAsync(UsageMeter.Stream));
        Assert.Empty(Directory.EnumerateFiles(_spoolDirectory));

        await DrainAsync();
        await AssertLandedOnceAsync(records.Select(r => r.EventId).ToList());
        Assert.Equal(0, Interlocked.Read(ref _deadLettersCounted));
        other.Dispose();
        third.Dispose();
    }

    [Fact]
    public async Task TheCommittedHookSeesEachBatchBeforeItIsAcknowledgedAndAFailingHookOnlyDelaysIt()
    {
        var db = _redis.GetDatabase();
        var records = Records(50);
        foreach (var r in records) await Add(db, r);
        var hook = new FlakyHook(db);
        var writer = new UsageWriter(_redis, _postgres, new ConfigurationBuilder().Build(), NullLogger<UsageWriter>.Instance, 0, hook);
        await writer.StartAsync(CancellationToken.None);
        try
        {
            await WaitForAsync(async () => await db.StreamLengthAsync(UsageMeter.Stream) == 0);
        }
        finally
        {
            await writer.StopAsync(CancellationToken.None);
        }
        Assert.True(hook.Calls >= 2); // the first call failed, the batch was written again and the hook called again
        Assert.Equal(records.Select(r => r.EventId).Order(), hook.Seen.Distinct().Order());
        Assert.All(hook.PendingAtCall, pending => Assert.True(pending > 0));
        await AssertLandedOnceAsync(records.Select(r => r.EventId).ToList());
        Assert.Equal(0, (await db.StreamPendingAsync(UsageMeter.Stream, UsageWriter.Group)).PendingMessageCount);
    }

    private sealed class FlakyHook(IDatabase db) : IUsageCommitted
    {
        public int Calls;
        public readonly List<string> Seen = [];
        public readonly List<long> PendingAtCall = [];

        public async Task CommittedAsync(IReadOnlyList<UsageRecord> records, CancellationToken ct)
        {
            PendingAtCall.Add((await db.StreamPendingAsync(UsageMeter.Stream, UsageWriter.Group)).PendingMessageCount);
            if (Interlocked.Increment(ref Calls) == 1) throw new InvalidOperationException("hook down once");
            Seen.AddRange(records.Select(r => r.EventId));
        }
    }

    /// <summary>Two writers drain the stream; then the invariants: nothing pending, nothing left in the stream.</summary>
    private async Task DrainAsync()
    {
        var db = _redis.GetDatabase();
        var writers = new[] { Writer(0), Writer(1) };
        foreach (var w in writers) await w.StartAsync(CancellationToken.None);
        try
        {
            await WaitForAsync(async () => await db.StreamLengthAsync(UsageMeter.Stream) == 0);
        }
        finally
        {
            foreach (var w in writers) await w.StopAsync(CancellationToken.None);
        }
        var pending = await db.StreamPendingAsync(UsageMeter.Stream, UsageWriter.Group);
        Assert.Equal(0, pending.PendingMessageCount);
    }

    private async Task AssertLandedOnceAsync(IReadOnlyList<string> eventIds)
    {
        await using var command = _postgres.CreateCommand(
            "SELECT count(*), count(DISTINCT event_id) FROM usage_events WHERE event_id = ANY(@ids)");
        command.Parameters.AddWithValue("ids", eventIds.ToArray());
        await using var reader = await command.ExecuteReaderAsync();
        await reader.ReadAsync();
        Assert.Equal(eventIds.Distinct().Count(), reader.GetInt64(1));
        Assert.Equal(eventIds.Distinct().Count(), reader.GetInt64(0));
        Assert.Equal(eventIds.Count, eventIds.Distinct().Count());
    }

    private static Task<RedisValue> Add(IDatabase db, UsageRecord r) => db.StreamAddAsync(UsageMeter.Stream, UsageMeter.Field, Payload(r));

    private static byte[] Payload(UsageRecord r) => JsonSerializer.SerializeToUtf8Bytes(r, PortalJsonContext.Default.UsageRecord);

    private static byte[] Line(UsageRecord r) => [.. Payload(r), (byte)'\n'];

    private List<UsageRecord> Records(int count)
    {
        var now = DateTimeOffset.UtcNow;
        return Enumerable.Range(0, count).Select(i => new UsageRecord(
            $"evt_{Guid.CreateVersion7():N}", $"req_{Guid.NewGuid():N}", _org, Guid.NewGuid(), BillingMode.PrepaidCredits,
            "gpt-oss-20b", "oss-20b", "router-oss20b-1", 2001, "POST", "/v1/chat/completions",
            200, null, 20 + i % 7, 10 + i % 5, Pricing.RoundForLedger(((20 + i % 7) * 0.0001m + (10 + i % 5) * 0.0004m) / 1000m),
            5, null, false, now.AddMilliseconds(-i))).ToList();
    }

    private UsageSpool Spool()
    {
        // The spool replays through the meter, as in the Api: one container holds both.
        var services = new ServiceCollection()
            .AddSingleton<IConfiguration>(new ConfigurationBuilder().AddInMemoryCollection(new Dictionary<string, string?> { ["Metering:SpoolDirectory"] = _spoolDirectory }).Build())
            .AddSingleton<IHostEnvironment>(new HostingEnvironment { ContentRootPath = _spoolDirectory })
            .AddSingleton<IConnectionMultiplexer>(_redis)
            .AddSingleton(typeof(ILogger<>), typeof(NullLogger<>))
            .AddSingleton<UsageSpool>()
            .AddSingleton<UsageMeter>()
            .BuildServiceProvider();
        return services.GetRequiredService<UsageSpool>();
    }

    private UsageWriter Writer(int index) => new(_redis, _postgres, new ConfigurationBuilder()
        .AddInMemoryCollection(new Dictionary<string, string?> { ["Metering:ClaimIdleSeconds"] = "1" }).Build(), NullLogger<UsageWriter>.Instance, index);

    private PortalDbContext Context()
    {
        var options = new DbContextOptionsBuilder<PortalDbContext>().UseNpgsql(_connectionString);
        PortalDbContext.Configure(options);
        return new PortalDbContext(options.Options);
    }

    private Task<long> CountAsync(string table) => ScalarAsync<long>($"SELECT count(*) FROM {table}");

    private async Task<T> ScalarAsync<T>(string sql)
    {
        await using var command = _postgres.CreateCommand(sql);
        return (T)(await command.ExecuteScalarAsync())!;
    }

    private static async Task WaitForAsync(Func<Task<bool>> condition)
    {
        var deadline = DateTime.UtcNow.AddSeconds(30);
        while (DateTime.UtcNow < deadline)
        {
            if (await condition()) return;
            await Task.Delay(100);
        }
        Assert.Fail("condition not reached in 30 s");
    }
}
