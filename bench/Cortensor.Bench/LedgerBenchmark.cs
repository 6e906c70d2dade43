using System.Diagnostics;
using System.Globalization;
using Cortensor.Api.Data;
using Cortensor.Api.Inference;
using Cortensor.Api.Metering;
using Microsoft.EntityFrameworkCore;
using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.Logging.Abstractions;
using Npgsql;
using StackExchange.Redis;

namespace Cortensor.Bench;

/// <summary>Usage events per second the ledger writer commits into Postgres, in its production batch size.</summary>
public static class LedgerBenchmark
{
    public static async Task<int> RunAsync(string[] args)
    {
        var connectionString = args.SkipWhile(a => a != "--postgres").Skip(1).First();
        var total = int.Parse(args.SkipWhile(a => a != "--events").Skip(1).FirstOrDefault() ?? "200000", CultureInfo.InvariantCulture);
        var writers = int.Parse(args.SkipWhile(a => a != "--writers").Skip(1).FirstOrDefault() ?? "4", CultureInfo.InvariantCulture);
        var batchSize = int.Parse(args.SkipWhile(a => a != "--batch").Skip(1).FirstOrDefault() ?? "2000", CultureInfo.InvariantCulture);

        var options = new DbContextOptionsBuilder<PortalDbContext>().UseNpgsql(connectionString);
        PortalDbContext.Configure(options);
        await using (var db = new PortalDbContext(options.Options)) await db.Database.MigrateAsync();
        var orgs = new List<Guid>();
        await using (var db = new PortalDbContext(options.Options))
        {
            for (var i = 0; i < 50; i++)
            {
                var org = new Organization { Name = $"bench {i}", PlanId = i % 2 == 0 ? "pro" : "free" };
                db.Organizations.Add(org);
                orgs.Add(org.Id);
            }
            await db.SaveChangesAsync();
        }

        await using var dataSource = NpgsqlDataSource.Create(connectionString);
        var writer = new UsageWriter(ConnectionMultiplexer.Connect("127.0.0.1:1,abortConnect=false,connectTimeout=50"), dataSource,
            Microsoft.Extensions.Options.Options.Create(new Cortensor.Api.Metering.MeteringOptions()), NullLogger<UsageWriter>.Instance);
        var models = new[] { "gpt-oss-20b", "gpt-oss-120b", "gemma-4-26b", "qwen-3-32b" };
        var now = DateTimeOffset.UtcNow;
        var records = Enumerable.Range(0, total).Select(i => new UsageRecord(
            $"evt_{Guid.CreateVersion7():N}", $"req_{i}", orgs[i % orgs.Count], Guid.NewGuid(),
            i % 2 == 0 ? BillingMode.PrepaidCredits : BillingMode.MonthlyQuota, models[i % models.Length], "oss-20b", "router-oss20b-1", 2001,
            "POST", "/v1/chat/completions", i % 50 == 0 ? 429 : 200, i % 50 == 0 ? "rate_limit_exceeded" : null,
            i % 50 == 0 ? 0 : 23, i % 50 == 0 ? 0 : 16, i % 50 == 0 ? 0m : 0.0000087m, 3, null, false, now.AddMilliseconds(-i))).ToList();

        var clock = Stopwatch.StartNew();
        // As in production: several writers (consumers of one group) commit batches concurrently.
        await Parallel.ForEachAsync(records.Chunk(batchSize), new ParallelOptions { MaxDegreeOfParallelism = writers },
            async (batch, ct) => await writer.WriteAsync(batch, ct));
        var elapsed = clock.Elapsed;

        // Replaying everything must change nothing (idempotent by event id).
        var replay = Stopwatch.StartNew();
        foreach (var batch in records.Take(20_000).Chunk(batchSize)) await writer.WriteAsync(batch, CancellationToken.None);
        await using var count = dataSource.CreateCommand("SELECT count(*) FROM usage_events");
        var stored = (long)(await count.ExecuteScalarAsync())!;

        Console.WriteLine("| measure | value |");
        Console.WriteLine("|---|---|");
        Console.WriteLine(string.Create(CultureInfo.InvariantCulture, $"| events written | {total:N0} in batches of {batchSize}, {writers} concurrent writers |"));
        Console.WriteLine(string.Create(CultureInfo.InvariantCulture, $"| time | {elapsed.TotalSeconds:0.00} s |"));
        Console.WriteLine(string.Create(CultureInfo.InvariantCulture, $"| sustained write rate | **{total / elapsed.TotalSeconds:N0} events/s** (usage_events + request_logs + billing_ledger + usage_daily, one statement per batch) |"));
        Console.WriteLine(string.Create(CultureInfo.InvariantCulture, $"| replay of 20,000 already-written events | {replay.Elapsed.TotalSeconds:0.00} s, rows after replay {stored:N0} (expected {total:N0}) |"));
        return stored == total ? 0 : 1;
    }
}
