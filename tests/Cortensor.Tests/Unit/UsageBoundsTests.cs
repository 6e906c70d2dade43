using Cortensor.Api.Inference;
using Cortensor.Contracts;
using Microsoft.Extensions.Logging.Abstractions;

namespace Cortensor.Tests.Unit;

public class UsageBoundsTests
{
    private static readonly UsageBounds.Prompt GptOss = new(ModelTokenizer.GptOss, "<|start|>user<|message|>Hello there<|end|><|start|>assistant");
    private static readonly UsageBounds.Prompt Qwen = new(ModelTokenizer.ForFamily("qwen"), "<|im_start|>user\n你好，世界！🚀<|im_end|>\n<|im_start|>assistant\n");

    [Theory]
    [InlineData(-50, -7)]
    [InlineData(int.MaxValue, 1000)]
    [InlineData(0, 0)]
    public void ARoutersCountsOutsideTheBoundsAreClampedSoNoRequestIsCreditedOrOvercharged(int prompt, int completion)
    {
        var (billedPrompt, billedCompletion) = UsageBounds.Bound(GptOss, prompt, completion, 0, maxTokens: 100, "router-x", NullLogger.Instance);
        // gpt-oss prompts are counted exactly by the Portal: the router cannot move that figure.
        Assert.Equal(ModelTokenizer.GptOss.Count("<|start|>user<|message|>Hello there<|end|><|start|>assistant"), billedPrompt);
        Assert.InRange(billedCompletion, 0, 100);
    }

    [Fact]
    public void AFamilyWithoutATokenizerIsBilledWhatTheRouterSaysWithinTheByteBound()
    {
        Assert.Equal(12, UsageBounds.Bound(Qwen, 12, 5, 0, 50, "r", NullLogger.Instance).Prompt);
        Assert.Equal(Qwen.Ceiling, UsageBounds.Bound(Qwen, 1_000_000, 5, 0, 50, "r", NullLogger.Instance).Prompt);
        Assert.Equal(Qwen.Floor, UsageBounds.Bound(Qwen, -3, 5, 0, 50, "r", NullLogger.Instance).Prompt);
    }

    [Fact]
    public void WithoutARouterReportTheGeneratedTextIsCountedAndTheEstimateStandsForThePrompt()
    {
        var (prompt, completion) = UsageBounds.Bound(Qwen, null, null, countedCompletion: 9, maxTokens: 50, "r", NullLogger.Instance);
        Assert.Equal(Qwen.Estimate, prompt);
        Assert.Equal(9, completion);
        Assert.Equal(50, UsageBounds.Bound(Qwen, null, null, countedCompletion: 80, maxTokens: 50, "r", NullLogger.Instance).Completion);
    }
}
