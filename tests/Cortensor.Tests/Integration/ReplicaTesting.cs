using System.Text.Json;
using Cortensor.Api.Infrastructure;
using Cortensor.Api.Metering;
using Cortensor.Tests.Fixtures;
using Microsoft.Extensions.Configuration;
using StackExchange.Redis;

namespace Cortensor.Tests.Integration;

/// <summary>What the tests that run several Api replicas' limits against one Redis share.</summary>
internal static class ReplicaTesting
{
    /// <summary>A replica's identity, named so each simulated replica files under its own id.</summary>
    public static ReplicaIdentity Identity(string id) => new NamedReplica(id);

    /// <summary>The usage record a stream entry carries.</summary>
    public static UsageRecord Parse(StreamEntry entry) =>
        JsonSerializer.Deserialize((byte[])entry[UsageMeter.Field]!, PortalJsonContext.Default.UsageRecord)!;

    /// <summary>Waits for a replica's Redis state to settle. 30 s: these conditions hold in milliseconds, and a CI
    /// machine under load has needed more than 10.</summary>
    public static Task UntilRedisSettlesAsync(Func<Task<bool>> condition) =>
        Eventually.WaitUntilAsync(condition, TimeSpan.FromSeconds(30), "the replica's Redis state did not settle", TimeSpan.FromMilliseconds(20));

    /// <summary>Waits until everything handed to <paramref name="queue"/> has been sent or spooled; fails after 30 s (a
    /// flush that gave up in silence left the test reading a half-filed state).</summary>
    public static async Task FlushedAsync(this SettlementQueue queue) =>
        Assert.True(await queue.FlushAsync(TimeSpan.FromSeconds(30)), $"{queue.Pending} settlements were still unsent after 30 s");

    private sealed class NamedReplica(string id) : ReplicaIdentity(new ConfigurationBuilder().Build())
    {
        public override string Id => id;
    }
}
