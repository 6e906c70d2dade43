using Cortensor.Api.Infrastructure;
using Microsoft.Extensions.Time.Testing;

namespace Cortensor.Tests.Unit;

public sealed class SortableIdTests
{
    [Fact]
    public void AnIdIsAVersion7UuidCarryingTheMillisecondItWasMadeIn()
    {
        var clock = new FakeTimeProvider(DateTimeOffset.Parse("2026-11-29T01:02:03.456Z"));

        var id = SortableId.NewGuid(clock);

        Assert.Equal(7, id.Version);
        Assert.Equal(0b10, id.Variant >> 2); // RFC 9562's variant: the top two bits 10
        var hex = id.ToString("N");
        Assert.Equal(clock.GetUtcNow().ToUnixTimeMilliseconds(), Convert.ToInt64(hex[..12], 16));
    }

    [Fact]
    public void IdsMadeInLaterMillisecondsSortAfterEarlierOnesAndNoTwoAreAlike()
    {
        var clock = new FakeTimeProvider(DateTimeOffset.Parse("2026-11-29T01:02:03Z"));
        var ids = new List<string>();
        for (var ms = 0; ms < 200; ms++, clock.Advance(TimeSpan.FromMilliseconds(1)))
            for (var i = 0; i < 500; i++)
                ids.Add(SortableId.NewGuid(clock).ToString("N"));

        Assert.Equal(ids.Count, ids.Distinct().Count());
        for (var i = 500; i < ids.Count; i += 500)
            Assert.True(string.CompareOrdinal(ids[i - 1], ids[i]) < 0, $"{ids[i - 1]} was made a millisecond before {ids[i]}");
    }

    [Fact]
    public void APrefixedIdIsThePrefixAndThirtyTwoLowercaseHexDigitsOfAVersion7Uuid()
    {
        var id = SortableId.New("evt_");

        Assert.Matches("^evt_[0-9a-f]{32}$", id);
        Assert.Equal(7, Guid.ParseExact(id[4..], "N").Version);
        var madeAt = DateTimeOffset.FromUnixTimeMilliseconds(Convert.ToInt64(id[4..16], 16));
        Assert.InRange(madeAt, DateTimeOffset.UtcNow.AddMinutes(-1), DateTimeOffset.UtcNow.AddMinutes(1));
    }
}
