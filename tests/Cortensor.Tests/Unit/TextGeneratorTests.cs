using Cortensor.RouterSim;

namespace Cortensor.Tests;

public class TextGeneratorTests
{
    [Fact]
    public void TheSamePromptAndSeedAlwaysGiveTheSameText()
    {
        var first = string.Concat(TextGenerator.Generate("hello router", 7, 40));
        var second = string.Concat(TextGenerator.Generate("hello router", 7, 40));
        Assert.Equal(first, second);
        Assert.NotEqual(first, string.Concat(TextGenerator.Generate("hello router", 8, 40)));
    }

    [Theory]
    [InlineData("a short prompt", 1)]
    [InlineData("a short prompt", 17)]
    [InlineData("Explain dedicated sessions, please!", 64)]
    public void CountingTheGeneratedTextGivesTheNumberOfTokensGenerated(string prompt, int count)
    {
        var text = string.Concat(TextGenerator.Generate(prompt, 0, count));
        Assert.Equal(count, TextGenerator.CountTokens(text));
    }
}
