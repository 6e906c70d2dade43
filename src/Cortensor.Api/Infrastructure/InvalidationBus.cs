using StackExchange.Redis;

namespace Cortensor.Api.Infrastructure;

/// <summary>
/// Tells every Api replica that durable state changed (catalog, a key, an org) over Redis pub/sub,
/// so in-process snapshots are dropped within milliseconds instead of waiting for their expiry.
/// </summary>
public sealed class InvalidationBus(IConnectionMultiplexer redis, ILogger<InvalidationBus> log)
{
    public static readonly RedisChannel Channel = RedisChannel.Literal("cortensor:invalidate");

    public async Task PublishAsync(string topic)
    {
        try
        {
            await redis.GetSubscriber().PublishAsync(Channel, topic);
        }
        catch (Exception ex) when (Outage.IsRedis(ex))
        {
            // The periodic refresh still converges every replica; the change itself is already durable.
            log.LogWarning(ex, "Could not broadcast invalidation {Topic}; replicas converge on their next refresh", topic);
        }
    }

    public Task SubscribeAsync(Action<string> onMessage) =>
        redis.GetSubscriber().SubscribeAsync(Channel, (_, value) => onMessage(value.ToString()));
}
