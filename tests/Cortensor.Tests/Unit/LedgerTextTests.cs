using Cortensor.Api.Metering;

namespace Cortensor.Tests.Unit;

public sealed class LedgerTextTests
{
    // Long enough that the check runs over whole vectors and a tail, with the odd character at the start, in the
    // middle and as the very last one.
    private static readonly string LongId = string.Concat(Enumerable.Repeat("Az09-_.:/", 9));

    [Fact]
    public void AnIdentifierOfAllowedCharactersIsKeptAsTheSameString()
    {
        Assert.Same(LongId, LedgerText.Identifier(LongId, 200));
        Assert.True(LedgerText.IsIdentifier(LongId));
    }

    [Theory]
    [InlineData(0)]
    [InlineData(40)]
    [InlineData(80)]
    public void EveryCharacterOutsideTheIdentifierSetBecomesAnUnderscoreWhereverItIs(int at)
    {
        foreach (var odd in new[] { ' ', '\0', 'é', '\u0130', '\uD800', '+', '@', '\u212A' })
        {
            var value = LongId.Remove(at, 1).Insert(at, odd.ToString());

            var stored = LedgerText.Identifier(value, 200);

            Assert.False(LedgerText.IsIdentifier(value));
            Assert.Equal(LongId.Remove(at, 1).Insert(at, "_"), stored);
        }
    }

    [Fact]
    public void AnIdentifierIsCutToItsLongestLength()
    {
        Assert.Equal(LongId[..10], LedgerText.Identifier(LongId, 10));
    }

    [Fact]
    public void CleanTextWithPairedSurrogatesIsKeptAsTheSameString()
    {
        var text = string.Concat(Enumerable.Repeat("héllo 👋 wörld ", 8));

        Assert.Same(text, LedgerText.Text(text, 1000));
    }

    [Theory]
    [InlineData(0)]
    [InlineData(37)]
    [InlineData(99)]
    [InlineData(100)]
    public void NulAndLoneSurrogatesAreRemovedFromTextWhereverTheyAre(int at)
    {
        var clean = new string('a', 100);
        foreach (var odd in new[] { "\0", "\uD83D", "\uDC4B" })
        {
            var text = clean.Insert(at, odd);

            Assert.Equal(clean, LedgerText.Text(text, 1000));
        }
    }

    [Fact]
    public void TextIsCutWithoutSplittingASurrogatePair()
    {
        var text = new string('a', 9) + "👋" + "b";

        Assert.Equal(new string('a', 9), LedgerText.Text(text, 10));
        Assert.Equal(text[..11], LedgerText.Text(text, 11));
    }
}
