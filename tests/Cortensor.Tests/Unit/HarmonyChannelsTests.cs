using Cortensor.Api.Inference;

namespace Cortensor.Tests.Unit;

/// <summary>
/// A gpt-oss answer as raw-prompt engines return it: the customer is shown its final channel (and its calls, for the
/// tool reader), however the stream cuts it into pieces, and each shown character is traced back to where it was generated.
/// </summary>
public class HarmonyChannelsTests
{
    private const string Reasoning = "<|channel|>analysis<|message|>The user wants a greeting. <|channel|> is a token; keep it short.<|end|>";

    public static TheoryData<string, string> Answers() => new()
    {
        { Reasoning + "<|start|>assistant<|channel|>final<|message|>Hello there!", "Hello there!" },
        { Reasoning + "<|start|>assistant<|channel|>final<|message|>Hello there!<|return|>", "Hello there!" },
        { "  \n" + Reasoning + "<|start|>assistant<|channel|>final<|message|>a <|b and 1<2", "a <|b and 1<2" },
        { "<|channel|>final<|message|>Only the answer", "Only the answer" },
        { "<|message|>No channel at all", "No channel at all" },
        { Reasoning + "<|start|>assistant<|channel|>commentary<|message|>A preamble to no one.<|end|><|start|>assistant<|channel|>final<|message|>Done", "Done" },
        { Reasoning + "<|start|>assistant<|channel|>final<|message|>One.<|end|><|start|>assistant<|channel|>final<|message|> Two.", "One. Two." },
        { Reasoning + "<|start|>assistant<|channel|>final <|constrain|>json<|message|>{\"a\":1}", "{\"a\":1}" },
        { "<|channel|>analysis<|message|>Cut off while still thinking", "" },
        { "<|channel|>analysis<|message|>Thinking<|end|><|start|>assistant<|chan", "" },
        { "Plain text, as a router that strips the channels sends it: <|channel|>final stays.", "Plain text, as a router that strips the channels sends it: <|channel|>final stays." },
        { "  leading spaces are kept", "  leading spaces are kept" },
        { "<|end|> closes a message; an answer may open with it.", "<|end|> closes a message; an answer may open with it." },
        { "<|channel|>final<|message|>A<|end|>" + new string('x', 2000) + "<|message|>B", "A" + new string('x', 2000) + "<|message|>B" },
        { Reasoning + "<|start|>assistant<|channel|>analysis to=python<|message|>print(secret)<|end|><|start|>assistant<|channel|>final<|message|>42", "42" },
        { new string(' ', 3) + "<|channel|>final<|message|>spaced", "spaced" },
        { new string(' ', 2000) + "<|channel|>final<|message|>x", new string(' ', 2000) + "<|channel|>final<|message|>x" },
        { "<", "<" },
        { "", "" },
    };

    [Theory, MemberData(nameof(Answers))]
    public void TheFinalChannelIsShownWholeOrInAnyPieces(string generated, string shown)
    {
        Assert.Equal(shown, HarmonyChannels.Shown(HarmonyChannels.For("gpt-oss"), generated));
        var random = new Random(generated.Length);
        for (var round = 0; round < 50; round++)
        {
            var channels = HarmonyChannels.For("gpt-oss")!;
            var text = new System.Text.StringBuilder();
            for (var at = 0; at < generated.Length;)
            {
                var piece = Math.Min(random.Next(1, 12), generated.Length - at);
                text.Append(channels.Push(generated.Substring(at, piece)));
                at += piece;
            }
            text.Append(channels.Flush());
            Assert.Equal(shown, text.ToString());
            AssertTracedBack(channels, generated, shown);
        }
    }

    [Fact]
    public void ACallAfterTheReasoningIsPassedOnAsWrittenForTheToolReader()
    {
        var call = "<|start|>assistant<|channel|>commentary to=functions.get_weather <|constrain|>json<|message|>{\"city\":\"Paris\"}";
        var shown = HarmonyChannels.Shown(HarmonyChannels.For("gpt-oss"), Reasoning + call);
        Assert.DoesNotContain("analysis", shown);
        Assert.Equal([("get_weather", "{\"city\":\"Paris\"}")], ModelOutput.HarmonyCalls(shown));
    }

    [Fact]
    public void OtherFamiliesAreShownAsGenerated()
    {
        Assert.Null(HarmonyChannels.For("qwen"));
        Assert.Equal(Reasoning, HarmonyChannels.Shown(null, Reasoning));
        Assert.Equal(7, HarmonyChannels.GeneratedIndex(null, 7));
    }

    [Fact]
    public void AHeaderThatNeverEndsIsShownAsTextRatherThanHeldForEver()
    {
        var generated = "<|" + new string('x', 5000);
        var channels = HarmonyChannels.For("gpt-oss")!;
        var shown = channels.Push(generated) + channels.Flush();
        Assert.Equal(generated, shown);
    }

    /// <summary>
    /// The end of each shown prefix is right after its last character as generated (where a stop sequence found in what
    /// is shown is billed to), never past the hidden text that follows it.
    /// </summary>
    private static void AssertTracedBack(HarmonyChannels channels, string generated, string shown)
    {
        for (var i = 0; i < shown.Length; i++)
            Assert.Equal(shown[i], generated[HarmonyChannels.GeneratedIndex(channels, i + 1) - 1]);
    }
}
