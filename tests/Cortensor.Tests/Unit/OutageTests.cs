using Cortensor.Api.Infrastructure;
using Microsoft.EntityFrameworkCore.Storage;
using StackExchange.Redis;

namespace Cortensor.Tests.Unit;

/// <summary>What the Api takes for Redis or Postgres being away, and what it takes for its own caller going away.</summary>
public class OutageTests
{
    [Fact]
    public void ACancellationNobodyAskedForIsAnOutageAndTheCallersOwnIsNot()
    {
        // What StackExchange.Redis throws for the commands of a socket it has found dead.
        Assert.True(Outage.IsRedis(new TaskCanceledException()));
        Assert.True(Outage.IsRedis(new RedisConnectionException(ConnectionFailureType.SocketFailure, "gone")));
        Assert.True(Outage.IsRedis(new RedisTimeoutException("slow", CommandStatus.Sent)));
        using var callerLeft = new CancellationTokenSource();
        callerLeft.Cancel();
        Assert.False(Outage.IsRedis(new TaskCanceledException(), callerLeft.Token));
        Assert.False(Outage.IsRedis(new InvalidOperationException("a bug")));
    }

    [Fact]
    public void EfCoresRetriesRunningOutIsAPostgresOutage()
    {
        Assert.True(Outage.IsPostgres(new RetryLimitExceededException("six retries", new Npgsql.NpgsqlException("refused"))));
        Assert.True(Outage.IsPostgres(new Npgsql.NpgsqlException("refused")));
        Assert.False(Outage.IsPostgres(new ArgumentException("a bug")));
    }
}
