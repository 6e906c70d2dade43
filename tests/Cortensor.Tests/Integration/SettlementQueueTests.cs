using Cortensor.Api.Data;
using Cortensor.Api.Metering;
using Cortensor.Tests.Fixtures;
using Microsoft.Extensions.Logging.Abstractions;
using Microsoft.Extensions.Options;
using StackExchange.Redis;

namespace Cortensor.Tests.Integration;

/// <summary>
/// The settlement queue on real Redis: what requests hand over is sent together, nothing is dropped at
/// shutdown, and work handed over after the queue stopped still runs.
/// </summary>
[Collection(InfrastructureCollection.Name)]
public class SettlementQueueTests(InfrastructureFixture infrastructure) : IAsyncLifetime
{
    private ConnectionMultiplexer _redis = null!;
    private readonly Guid _org = Guid.CreateVersion7();
    private readonly string _spool = Path.Combine(Path.GetTempPath(), "cortensor-tests", "spool-" + Guid.NewGuid().ToString("N"));

    public async Task InitializeAsync()
    {
        _redis = await ConnectionMultiplexer.ConnectAsync(infrastructure.RedisConnectionString);
        await _redis.GetDatabase().KeyDeleteAsync(UsageMeter.Stream);
    }

    public async Task DisposeAsync()
    {
        await _redis.GetDatabase().KeyDeleteAsync(UsageMeter.Stream);
        await _redis.DisposeAsync();
        if (Directory.Exists(_spool)) Directory.Delete(_spool, recursive: true);
    }

    [Fact]
    public async Task EveryRecordHandedOverIsInTheStreamOnceTheQueueHasStoppedAndLateOnesStillGo()
    {
        var spool = new UsageSpool(Options.Create(new MeteringOptions { SpoolDirectory = _spool }),
            new Microsoft.Extensions.Hosting.Internal.HostingEnvironment { ContentRootPath = _spool }, _redis, EmptyServices.Instance, NullLogger<UsageSpool>.Instance);
        var queue = new SettlementQueue(new UsageMeter(_redis, spool, NullLogger<UsageMeter>.Instance), Options.Create(new MeteringOptions()), NullLogger<SettlementQueue>.Instance);
        await queue.StartAsync(CancellationToken.None);

        // Redis holds writes for a moment, so the queue still has work in flight when it is told to stop.
        await _redis.GetDatabase().ExecuteAsync("CLIENT", "PAUSE", "500", "WRITE");
        var ids = Enumerable.Range(0, 2000).Select(_ => "evt_" + Guid.CreateVersion7().ToString("N")).ToList();
        await Task.WhenAll(Enumerable.Range(0, 8).Select(worker => Task.Run(() =>
        {
            for (var i = worker; i < ids.Count; i += 8) queue.Record(Record(ids[i]));
        })));
        await queue.StopAsync(CancellationToken.None);
        Assert.Equal(0, queue.Pending);
        Assert.Equal(ids.Count, await _redis.GetDatabase().StreamLengthAsync(UsageMeter.Stream));

        queue.Record(Record("evt_late"));
        await queue.FlushedAsync();
        Assert.Equal(ids.Count + 1, await _redis.GetDatabase().StreamLengthAsync(UsageMeter.Stream));
    }

    private UsageRecord Record(string id) => new(id, "req", _org, Guid.Empty, BillingMode.PrepaidCredits, "gpt-oss-20b", null, null, null,
        "POST", "/v1/chat/completions", 200, null, 10, 5, 0.0001m, 3, null, false, DateTimeOffset.UtcNow);
}
