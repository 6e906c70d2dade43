using System.Text;
using System.Text.RegularExpressions;
using Cortensor.Api.Inference;

namespace Cortensor.Tests.Unit;

/// <summary>
/// A model's answer is read in time proportional to its length, whatever it repeats: a prompt can ask a model for any
/// text, so the answer is as much the customer's input as the request. The readers give what the regexes they replaced
/// gave (those regexes are kept here as the specification) on random answers made of the formats' own pieces.
/// </summary>
public class ModelAnswerReadingTests
{
    private const string ClockTool = """{"type":"function","function":{"name":"read_clock","description":"The time now"}}""";
    private static readonly InferenceRequest Tools = ToolCallingTests.Request($$$"""{"model":"m","messages":[{"role":"user","content":"x"}],"tools":[{{{ClockTool}}}]}""");

    private static readonly Regex HarmonyCallRegex = new(
        @"to=functions\.(?<name>[A-Za-z0-9_\-]+)[^<]*(?:<\|channel\|>[^<]*)?(?:<\|constrain\|>[^<]*)?<\|message\|>(?<args>.*?)(?:<\|call\|>|<\|end\|>|<\|return\|>|$)",
        RegexOptions.Singleline);

    private static readonly Regex HermesCallRegex = new(@"<tool_call>\s*(?<json>.*?)\s*(?:</tool_call>|$)", RegexOptions.Singleline);

    private static string RandomAnswer(Random random, string[] pieces)
    {
        var text = new StringBuilder();
        for (var i = random.Next(1, 40); i > 0; i--) text.Append(pieces[random.Next(pieces.Length)]);
        return text.ToString();
    }

    [Fact]
    public void HarmonyCallsAreFoundWhereTheHarmonyPatternFindsThem()
    {
        string[] pieces =
        [
            "to=functions.", "read_clock", "get-weather_2", " ", "x", "<", "|", "\n", "{\"a\":1}", "commentary", "json",
            "<|channel|>", "<|constrain|>", "<|message|>", "<|call|>", "<|end|>", "<|return|>", "<|start|>assistant", "to=",
        ];
        var random = new Random(14);
        var withCalls = 0;
        for (var sample = 0; sample < 20_000; sample++)
        {
            var text = RandomAnswer(random, pieces);
            var expected = HarmonyCallRegex.Matches(text).Select(m => (m.Groups["name"].Value, m.Groups["args"].Value)).ToList();
            Assert.Equal(expected, ModelOutput.HarmonyCalls(text));
            if (expected.Count > 0) withCalls++;
        }
        Assert.True(withCalls > 500, $"only {withCalls} samples had a call");
    }

    [Fact]
    public void HermesCallsAreReadAsTheHermesPatternReadsThem()
    {
        string[] pieces = ["<tool_call>", "</tool_call>", " ", "\n", "\t", "{\"name\":\"read_clock\",\"arguments\":{}}", "{", "}", "x", "<", "tool_call>"];
        var random = new Random(17);
        for (var sample = 0; sample < 5_000; sample++)
        {
            var text = RandomAnswer(random, pieces);
            var expected = HermesCallRegex.Matches(text).Select(m => m.Groups["json"].Value).ToList();
            var answer = ModelOutput.Interpret("qwen", text, Tools, AnswerCut.None);
            if (expected.Count == 0)
            {
                Assert.Equal(text, answer.Content);
                continue;
            }
            Assert.Equal(expected.All(IsCall), answer.Error is null);
            if (answer.Error is null) Assert.Equal(expected.Count, answer.Calls!.Length);
        }

        static bool IsCall(string json)
        {
            try { return System.Text.Json.JsonDocument.Parse(json).RootElement is { ValueKind: System.Text.Json.JsonValueKind.Object } o && o.TryGetProperty("name", out _); }
            catch (System.Text.Json.JsonException) { return false; }
        }
    }

    // The timeouts only tell a hang from an answer: the regex took 5.8 s for 160,000 characters of this, and the time
    // grew with the square of the length (about a quarter of an hour for these two megabytes); now it is milliseconds.
    [Fact(Timeout = 60_000)]
    public async Task AnAnswerRepeatingARecipientWithoutAMessageIsReadAsTextInOnePass()
    {
        var text = string.Concat(Enumerable.Repeat("to=functions.read_clock ", 90_000));
        var answer = await Task.Run(() => ModelOutput.Interpret("gpt-oss", text, Tools, AnswerCut.None));
        Assert.Equal(text, answer.Content);
        Assert.Null(answer.Calls);

        var called = text + "<|channel|>commentary <|constrain|>json<|message|>{}<|call|>";
        Assert.Equal("read_clock", Assert.Single(await Task.Run(() => ModelOutput.HarmonyCalls(called))).Name);
    }

    [Fact(Timeout = 60_000)]
    public async Task AStreamedCallOfMegabytesInOneCharacterPiecesIsHeldInOnePass()
    {
        var call = "<tool_call>\n{\"name\": \"read_clock\", \"arguments\": {\"note\": \"" + new string('x', 2_000_000) + "\"}}\n</tool_call>";
        var stream = new StructuredStream("qwen", Tools);
        var finished = await Task.Run(() =>
        {
            foreach (var c in call) Assert.Equal("", stream.Push(c.ToString()));
            return stream.Finish(AnswerCut.None);
        });
        Assert.Equal("read_clock", Assert.Single(finished!.Calls!).Function.Name);
    }

    [Theory(Timeout = 60_000)]
    [InlineData("qwen", "<tool_cal \n\t ", "<tool_call>{\"name\": \"read_clock\", \"arguments\": {}}</tool_call>")]
    [InlineData("gpt-oss", "<|start|>assistant<|channel|>commentary to=func \n ", "<|channel|>commentary to=functions.read_clock <|message|>{}")]
    public async Task MegabytesOfTextThatKeepsAlmostOpeningACallAreStreamedInOnePassAndTheCallAfterThemIsRead(string family, string almost, string call)
    {
        var text = "Well:" + string.Concat(Enumerable.Repeat(almost + "x", 2_000_000 / almost.Length));
        var stream = new StructuredStream(family, Tools);
        var (sent, finished) = await Task.Run(() =>
        {
            var sent = new StringBuilder();
            foreach (var c in text + call) sent.Append(stream.Push(c.ToString()));
            return (sent.ToString(), stream.Finish(AnswerCut.None));
        });
        Assert.Equal(text, sent);
        Assert.Equal("read_clock", Assert.Single(finished!.Calls!).Function.Name);
    }

    [Fact(Timeout = 60_000)]
    public async Task WhitespaceBeforeAnAnswerIsHeldUntilTheFirstWordAndThenPassedOnWithIt()
    {
        var stream = new StructuredStream("qwen", Tools);
        var sent = await Task.Run(() =>
        {
            for (var i = 0; i < 1_000_000; i++) Assert.Equal("", stream.Push(i % 2 == 0 ? " " : "\n"));
            return stream.Push("Hello");
        });
        Assert.Equal(1_000_005, sent.Length);
        Assert.Equal(" world", stream.Push(" world"));
        Assert.Null(stream.Finish(AnswerCut.None));
    }

    [Theory]
    [InlineData("gpt-oss")]
    [InlineData("qwen")]
    [InlineData("gemma")]
    public void AStreamPassesOrHoldsTheSameTextInWhateverPiecesItArrives(string family)
    {
        string[] answers =
        [
            "Hello there", "  \n Hello", "<tool_call>{\"name\":\"read_clock\",\"arguments\":{}}</tool_call>", "<tool", "<to be or not",
            "to=functions.read_clock<|message|>{}<|call|>", "<|channel|>commentary to=functions.read_clock <|message|>{}", "<|chan", "to=func tion",
            "{\"name\":\"read_clock\",\"parameters\":{}}", "[1, 2]", "```json\n{}\n```", "``not code", "  {", "\t",
        ];
        var random = new Random(family.Length);
        foreach (var answer in answers)
            for (var split = 0; split < 50; split++)
            {
                var stream = new StructuredStream(family, Tools);
                var sent = new StringBuilder();
                for (var at = 0; at < answer.Length;)
                {
                    var length = Math.Min(answer.Length - at, random.Next(1, 6));
                    sent.Append(stream.Push(answer.Substring(at, length)));
                    at += length;
                }
                var held = stream.Finish(AnswerCut.None);
                if (ModelOutput.CallsMayFollowText(family))
                {
                    // Text went out up to what could begin a call, and the rest was read at the end: together, the whole answer.
                    var whole = ModelOutput.Interpret(family, answer, Tools, AnswerCut.None);
                    Assert.Equal((whole.Content ?? "", whole.Calls?.Length), (sent + held?.Content, held?.Calls?.Length));
                    continue;
                }
                // Either all of it went out as text, or none did and it was read whole at the end.
                Assert.True(held is null ? sent.ToString() == answer : sent.Length == 0, $"{family}: '{answer}' sent '{sent}'");
                Assert.Equal(Opens(family, answer), held is not null);
            }

        // What the stream did before: hold while the text after leading whitespace could still be, or is, a call's start.
        static bool Opens(string family, string answer)
        {
            var start = answer.TrimStart();
            return start.Length == 0 || ModelOutput.CallOpeners(family).Any(o => o.StartsWith(start, StringComparison.Ordinal) || start.StartsWith(o, StringComparison.Ordinal));
        }
    }
}
