using Cortensor.Api.Data;
using Cortensor.Api.Idempotency;
using Cortensor.Api.Keys;

namespace Cortensor.Tests.Unit;

/// <summary>Replays cost no money but a Redis read each: a key, and an organisation across all its keys, get at most their requests per minute of them.</summary>
public sealed class ReplayLimiterTests
{
    [Fact]
    public void AKeyReplaysAtMostItsRequestsPerMinute()
    {
        using var replays = new ReplayLimiter();
        var key = Key(Guid.CreateVersion7(), keyPerMinute: 3, organizationPerMinute: 100);
        Assert.All(Enumerable.Range(0, 3), _ => Assert.Null(replays.Refuse(key)));
        Assert.InRange(replays.Refuse(key)!.Value, 1, 60);
    }

    [Fact]
    public void TheKeysOfAnOrganisationTogetherReplayAtMostItsRequestsPerMinute()
    {
        using var replays = new ReplayLimiter();
        var organization = Guid.CreateVersion7();
        var keys = Enumerable.Range(0, 5).Select(_ => Key(organization, keyPerMinute: 10, organizationPerMinute: 4)).ToList();
        Assert.All(keys.Take(4), key => Assert.Null(replays.Refuse(key)));
        Assert.NotNull(replays.Refuse(keys[4]));
        // Another organisation is not held back by this one.
        Assert.Null(replays.Refuse(Key(Guid.CreateVersion7(), keyPerMinute: 10, organizationPerMinute: 4)));
    }

    private static KeySnapshot Key(Guid organization, int keyPerMinute, int organizationPerMinute) =>
        new(Guid.CreateVersion7(), organization, ApiKeyStatus.Active, null, OrganizationStatus.Active, "pro", BillingMode.PrepaidCredits,
            ["m"], keyPerMinute, 1_000_000, null, organizationPerMinute, 1_000_000, 8);
}
