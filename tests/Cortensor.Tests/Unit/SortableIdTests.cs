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
    public async Task IdsMadeOnManyThreadsAtOnceInTheSameMillisecondAreAllDifferent()
    {
        // Each thread draws its random bits from its own buffer: no two threads, and no two refills, may hand out the same.
        var clock = new FakeTimeProvider(DateTimeOffset.Parse("2026-11-29T01:02:03Z"));
        using var start = new Barrier(8);
        var perThread = await Task.WhenAll(Enumerable.Range(0, 8).Select(_ => Task.Factory.StartNew(() =>
        {
            start.SignalAndWait();
            return Enumerable.Range(0, 5_000).Select(_ => SortableId.NewGuid(clock)).ToArray();
        }, TaskCreationOptions.LongRunning)));

        var all = perThread.SelectMany(ids => ids).ToArray();
        Assert.Equal(40_000, all.Length);
        Assert.Equal(all.Length, all.Distinct().Count());
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
