using Cortensor.Contracts;

namespace Cortensor.Tests.Unit;

public class ModelTokenizerTests
{
    [Fact]
    public void HarmonyControlTokensCountAsOneTokenEachForGptOss()
    {
        // <|start|> user <|message|> Hello <|end|> <|start|> assistant
        Assert.Equal(7, ModelTokenizer.GptOss.Count("<|start|>user<|message|>Hello<|end|><|start|>assistant"));
    }

    [Fact]
    public void GptOssCountsAreExactAndFamiliesWithoutATokenizerAreBoundedByTheirBytes()
    {
        var text = "Grüße, 世界! 🚀🚀 " + new string('!', 400);
        Assert.True(ModelTokenizer.GptOss.IsExact);
        Assert.Equal(ModelTokenizer.GptOss.Count(text), ModelTokenizer.GptOss.Ceiling(text));
        Assert.False(ModelTokenizer.ForFamily("qwen").IsExact);
        Assert.Equal(System.Text.Encoding.UTF8.GetByteCount(text) + 1, ModelTokenizer.ForFamily("qwen").Ceiling(text));
        Assert.InRange(ModelTokenizer.ForFamily("gemma").Count(text), 1, ModelTokenizer.ForFamily("gemma").Ceiling(text));
    }

    [Fact]
    public void PunctuationHeavyPromptsTakeFarMoreTokensThanFourCharactersEach()
    {
        // The old estimate (characters / 4) reserved a quarter of what this prompt is billed.
        var prompt = string.Concat(Enumerable.Repeat("!?", 2000));
        Assert.True(ModelTokenizer.GptOss.Count(prompt) > prompt.Length / 4);
    }
}
