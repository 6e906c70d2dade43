using Cortensor.Contracts;
using Cortensor.RouterSim;

namespace Cortensor.Tests;

public class TextGeneratorTests
{
    [Fact]
    public void TheSamePromptSessionAndSeedAlwaysGiveTheSameText()
    {
        var first = TextGenerator.Generate(ModelTokenizer.GptOss, "hello router", 2001, 7, 400).Text;
        Assert.Equal(first, TextGenerator.Generate(ModelTokenizer.GptOss, "hello router", 2001, 7, 400).Text);
        Assert.NotEqual(first, TextGenerator.Generate(ModelTokenizer.GptOss, "hello router", 2002, 7, 400).Text);
    }

    [Fact]
    public void TheAnswerSaysItIsSimulatedAndEchoesTheLastUserTurnWithoutTemplateMarkup()
    {
        var harmony = "<|start|>system<|message|>Be terse.<|end|><|start|>user<|message|>What is a dedicated session?<|end|><|start|>assistant";
        var text = TextGenerator.Generate(ModelTokenizer.GptOss, harmony, 2001, 0, 400).Text;
        Assert.Contains("simulated Cortensor router", text);
        Assert.Contains("\"What is a dedicated session?\"", text);
        Assert.DoesNotContain("<|", text);
        Assert.DoesNotContain("Be terse", text);

        var gemma = TextGenerator.Echo("<start_of_turn>user\nName the pools<end_of_turn>\n<start_of_turn>model\n");
        Assert.Equal("Name the pools", gemma);
        var chatMl = TextGenerator.Echo("<|im_start|>user\nHow fast is it?<|im_end|>\n<|im_start|>assistant\n");
        Assert.Equal("How fast is it?", chatMl);
        Assert.EndsWith(" ...", TextGenerator.Echo(string.Join(' ', Enumerable.Repeat("word", 40))));
    }

    [Theory]
    [InlineData("gpt-oss", "a short prompt", 1)]
    [InlineData("gpt-oss", "a short prompt", 17)]
    [InlineData("gemma", "Explain dedicated sessions, please!", 9)]
    [InlineData("qwen", "¿Qué es una sesión dedicada? 专用会话", 23)]
    public void MaxTokensCutsOnATokenBoundaryAndTheReportedCountIsTheTokenizersCountOfTheText(string family, string prompt, int max)
    {
        var tokenizer = ModelTokenizer.ForFamily(family);
        var answer = TextGenerator.Generate(tokenizer, prompt, 1, 0, max);
        Assert.True(answer.Truncated);
        Assert.Equal(max, answer.Tokens);
        Assert.Equal(tokenizer.Count(answer.Text), answer.Tokens);
        Assert.Equal(answer.Text, string.Concat(answer.Pieces));
        Assert.Equal(max, answer.Pieces.Count);
    }

    [Fact]
    public void AnAnswerUnderMaxTokensIsWholeAndEndsAsASentence()
    {
        var answer = TextGenerator.Generate(ModelTokenizer.GptOss, "hi", 1, 0, 1000);
        Assert.False(answer.Truncated);
        Assert.EndsWith(".", answer.Text);
        Assert.Equal(ModelTokenizer.GptOss.Count(answer.Text), answer.Tokens);
    }

    [Theory]
    [InlineData("hello router", "You asked: \"hello router\". ")]
    [InlineData("What is a session?", "You asked: \"What is a session?\" ")]
    public void TheEchoedQuestionEndsItsSentenceBeforeTheNextBegins(string prompt, string expected)
    {
        var text = TextGenerator.Compose(prompt, 1, 0);
        Assert.Contains(expected, text);
        Assert.Matches(@"^[A-Z][^<>|]*[.!?]$", text);
    }
}
