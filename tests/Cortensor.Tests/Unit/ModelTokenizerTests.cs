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
    public void AStretchATemplateWritesIsCountedOnceAndCountsAsTheEncoderCountedIt()
    {
        // As long as gpt-oss's system message with tools (289 characters): a long prompt's stretches that long are looked up.
        const string stretch = "You are a test model, trained for nothing in particular.\nKnowledge cutoff: 2024-06\nCurrent date: 2026-11-29\n\n" +
            "Reasoning: medium\n\n# Valid channels: analysis, commentary, final. Channel must be included for every message.\n" +
            "Calls to these tools must go to the commentary channel: 'functions'.";
        Assert.InRange(stretch.Length, ModelTokenizer.LongestRun, 400);
        var prompt = $"<|start|>system<|message|>{stretch}<|end|><|start|>user<|message|>Hello<|end|><|start|>assistant";
        var plain = ModelTokenizer.NewGptOss();
        var counted = plain.Count(prompt);
        var stretchAlone = plain.Count(stretch);

        // Told a count of its own, the tokenizer uses it wherever that stretch stands: a known stretch is not counted again,
        // in a short prompt and in a long one whose long stretches are looked up elsewhere.
        var told = ModelTokenizer.NewGptOss();
        told.Know(stretch, new TokenCount(1_000, 0));
        Assert.Equal(counted - stretchAlone + 1_000, told.Count(prompt));
        var longPrompt = prompt + string.Concat(Enumerable.Repeat("<|start|>user<|message|>" + new string('w', 300) + "<|end|>", 4));
        Assert.Equal(plain.Count(longPrompt) - stretchAlone + 1_000, told.Measure(longPrompt, new NoCounts()).Count);
        // Other text of the same length is counted, not taken for it.
        var other = string.Concat(Enumerable.Repeat("a, ", stretch.Length / 3 + 1))[..stretch.Length];
        Assert.Equal(plain.Count(prompt.Replace(stretch, other)), told.Count(prompt.Replace(stretch, other)));

        // Told the stretch itself, it counts it as the encoder does: the count of a prompt does not change.
        var learnt = ModelTokenizer.NewGptOss();
        learnt.Know(stretch);
        Assert.True(learnt.Knows(stretch));
        Assert.False(learnt.Knows(stretch[..^1] + "?"));
        Assert.Equal(counted, learnt.Count(prompt));
    }

    /// <summary>A count cache that knows nothing, so that a long prompt's long stretches are looked up (and missed).</summary>
    private sealed class NoCounts : ITokenCountCache
    {
        public bool TryGet(ReadOnlySpan<char> text, out TokenCount count)
        {
            count = default;
            return false;
        }

        public void Add(ReadOnlySpan<char> text, TokenCount count) { }
    }

    [Fact]
    public void GptOssCountsAreExactAndFamiliesWithoutATokenizerAreBoundedByTheirBytes()
    {
        var text = "Grüße, 世界! 🚀🚀 " + new string('!', 200);
        Assert.True(ModelTokenizer.GptOss.IsExact);
        var count = ModelTokenizer.GptOss.Count(text);
        Assert.Equal(new TokenBounds(count, count, count), ModelTokenizer.GptOss.Bounds(text));
        Assert.False(ModelTokenizer.ForFamily("qwen").IsExact);
        Assert.Equal(System.Text.Encoding.UTF8.GetByteCount(text) + 1, ModelTokenizer.ForFamily("qwen").Bounds(text).Ceiling);
        Assert.InRange(ModelTokenizer.ForFamily("gemma").Count(text), 1, ModelTokenizer.ForFamily("gemma").Bounds(text).Ceiling);
    }

    /// <summary>Runs no pre-tokenizer breaks: letters, symbols, whitespace, CJK and emoji, each a megabyte of UTF-8 or so.</summary>
    public static TheoryData<string> UnbrokenRuns() => new()
    {
        new string('x', 1_000_000), new string('!', 1_000_000), "a" + new string(' ', 1_000_000) + "b",
        string.Concat(Enumerable.Repeat("é中", 250_000)), string.Concat(Enumerable.Repeat("🚀", 250_000)),
    };

    // The timeout only tells a hang from an answer: before the cut, encoding one such run took hours (64,000 characters
    // took 1.1 s and the time grows with the square of the length); now it takes about a tenth of a second.
    [Theory(Timeout = 60_000), MemberData(nameof(UnbrokenRuns))]
    public async Task AMegabyteWithNoBreakInItIsCountedWithinItsBounds(string text)
    {
        var (count, cuts) = await Task.Run(() => ModelTokenizer.GptOss.Measure(text));
        Assert.True(cuts >= text.Length / (ModelTokenizer.LongestRun + 1) - 1, $"{cuts} cuts");
        var bounds = ModelTokenizer.GptOss.Bounds(text);
        Assert.Equal(count, bounds.Count);
        Assert.InRange(count, bounds.Floor, bounds.Ceiling);
        Assert.InRange(count, 1, System.Text.Encoding.UTF8.GetByteCount(text));
    }

    [Theory]
    [InlineData("abcdefghijklmnopqrstuvwxyz", 1)]
    [InlineData("aaaaab", 2)]
    [InlineData("!@#$%^&*()_+-=[]{};':\",./<>?", 3)]
    [InlineData("中文字符测试日本語한국어", 4)]
    [InlineData("🚀😀👍", 5)]
    [InlineData(" \t\n", 6)]
    public void ARunCutIntoPartsIsCountedWithinTheSlackOfItsWholeCount(string alphabet, int seed)
    {
        // Runs short enough for the encoder to take whole in milliseconds, so the two counts can be compared.
        var letters = System.Globalization.StringInfo.GetTextElementEnumerator(alphabet);
        var elements = new List<string>();
        while (letters.MoveNext()) elements.Add(letters.GetTextElement());
        var random = new Random(seed);
        for (var sample = 0; sample < 20; sample++)
        {
            var text = "Hello, " + string.Concat(Enumerable.Range(0, random.Next(300, 2_500)).Select(_ => elements[random.Next(elements.Count)])) + " end.";
            var (count, cuts) = ModelTokenizer.GptOss.Measure(text);
            var whole = Whole.Value.CountTokens(text);
            Assert.True(cuts > 0, "the run is longer than a piece, so it is cut");
            Assert.InRange(whole, count - cuts * ModelTokenizer.SlackPerCut, count + cuts * ModelTokenizer.SlackPerCut);
            var bounds = ModelTokenizer.GptOss.Bounds(text);
            Assert.InRange(whole, bounds.Floor, bounds.Ceiling);
        }
    }

    /// <summary>The encoder itself, counting a text whole (these texts hold no harmony control tokens, so o200k counts them alike).</summary>
    private static readonly Lazy<Microsoft.ML.Tokenizers.Tokenizer> Whole = new(() => Microsoft.ML.Tokenizers.TiktokenTokenizer.CreateForEncoding("o200k_base"));

    [Fact]
    public void ARunThatTouchesAControlTokenIsNeverCutInsideIt()
    {
        // 252 letters, then <|end|> where the 257th character of the old run fell: the run stops at the control token, as
        // the encoder's own split does, so nothing is cut and the count is the whole text's.
        var letters = new string('x', 252);
        var text = $"{letters}<|end|>{letters}<|start|>assistant<|message|>{letters}";
        var (count, cuts) = ModelTokenizer.GptOss.Measure(text);
        Assert.Equal((WholeHarmony.Value.CountTokens(text), 0), (count, cuts));

        var random = new Random(5);
        string[] controls = ["<|end|>", "<|start|>", "<|message|>", "<|channel|>", "<|call|>", "<|return|>", "<|constrain|>"];
        for (var sample = 0; sample < 200; sample++)
        {
            var built = new System.Text.StringBuilder();
            for (var part = random.Next(2, 8); part > 0; part--)
                built.Append(random.Next(3) == 0 ? "<|" : "").Append(new string("x!é"[random.Next(3)], random.Next(1, 700))).Append(controls[random.Next(controls.Length)]);
            var sampled = built.ToString();
            var whole = WholeHarmony.Value.CountTokens(sampled);
            var bounds = ModelTokenizer.GptOss.Bounds(sampled);
            Assert.InRange(whole, bounds.Floor, bounds.Ceiling);
        }
    }

    [Theory]
    [InlineData("<|endoftext|>")]
    [InlineData("<|endofprompt|>")]
    public void TheEncodersOwnSpecialTokensEndARunAsTheHarmonyTokensDo(string special)
    {
        // A raw prompt may hold them, and the encoder takes each as one token wherever it is: a cut inside one would
        // count its halves as several ordinary tokens.
        Assert.Equal(1, ModelTokenizer.GptOss.Count(special));
        var text = new string('x', 250) + special + new string('y', 250);
        Assert.Equal(new TokenCount(WholeHarmony.Value.CountTokens(text), 0), ModelTokenizer.GptOss.Measure(text));
        Assert.Equal(0, ModelTokenizer.ByteBound.Measure(text).Cuts);
    }

    [Fact]
    public void AControlTokenIsOneTokenHoweverManyOtherWordsTheReplicaHasCountedBefore()
    {
        // The encoder knows its special tokens only through its cache of the 8,192 pieces it met last: after 30,000 words
        // it had never seen, it counted <|channel|> as 5 tokens and <|endoftext|> as 7. A busy replica meets that many in
        // minutes, so an exact count must not hand control tokens to it.
        const string prompt = "<|start|>user<|message|>What is the ledger?<|end|><|start|>assistant<|channel|>final<|message|>";
        var before = ModelTokenizer.GptOss.Measure(prompt);
        var random = new Random(8192);
        for (var i = 0; i < 30_000; i++)
            ModelTokenizer.GptOss.Count(" " + new string([.. Enumerable.Range(0, 9).Select(_ => (char)('a' + random.Next(26)))]));

        Assert.Equal(before, ModelTokenizer.GptOss.Measure(prompt));
        Assert.Equal(WholeHarmony.Value.CountTokens(prompt), before.Count);
        foreach (var control in new[] { "<|channel|>", "<|call|>", "<|constrain|>", "<|return|>", "<|startoftext|>", "<|endoftext|>", "<|endofprompt|>" })
            Assert.Equal(1, ModelTokenizer.GptOss.Count(control));
    }

    /// <summary>
    /// The encoder with the harmony control tokens, counting a text whole. It knows them only while its cache of recent
    /// pieces holds them (see the test above), which the few hundred distinct pieces the tests give it never overflow.
    /// </summary>
    internal static readonly Lazy<Microsoft.ML.Tokenizers.Tokenizer> WholeHarmony = new(() => Microsoft.ML.Tokenizers.TiktokenTokenizer.CreateForEncoding("o200k_base",
        new Dictionary<string, int>
        {
            ["<|startoftext|>"] = 199998, ["<|return|>"] = 200002, ["<|constrain|>"] = 200003, ["<|channel|>"] = 200005,
            ["<|start|>"] = 200006, ["<|end|>"] = 200007, ["<|message|>"] = 200008, ["<|call|>"] = 200012,
        }));

    [Fact]
    public void PunctuationHeavyPromptsTakeFarMoreTokensThanFourCharactersEach()
    {
        // The old estimate (characters / 4) reserved a quarter of what this prompt is billed.
        var prompt = string.Concat(Enumerable.Repeat("!?", 2000));
        Assert.True(ModelTokenizer.GptOss.Count(prompt) > prompt.Length / 4);
    }
}
