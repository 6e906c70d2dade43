using System.Text;
using Cortensor.Api.Inference;
using Cortensor.Contracts;
using Cortensor.Tests.Fixtures;
using Microsoft.Extensions.Options;

namespace Cortensor.Tests.Unit;

public class PromptCountsTests
{
    /// <summary>Pieces prompts are made of, chosen for where a count could go wrong at a message body's edges.</summary>
    private static readonly string[] Pieces =
    [
        "The quick brown fox jumps over the lazy dog. ", "  ", "\n", "\n\n", " \t ", "1234567", "3.14159", "é", "中文字符",
        "🚀", "👍🏽", "<", "|", "<|", "</div>", "<b>bold</b>", "'s ", "don't", "\u200D", "x", "!?", "   indented", "tab\tbed",
    ];

    private static string Body(Random random)
    {
        var body = new StringBuilder();
        var length = random.Next(4) switch { 0 => random.Next(0, 40), 1 => random.Next(200, 320), _ => random.Next(256, 3_000) };
        while (body.Length < length)
            body.Append(random.Next(8) == 0 ? new string("x! é"[random.Next(4)], random.Next(1, 700)) : Pieces[random.Next(Pieces.Length)]);
        return body.ToString();
    }

    private static List<PromptMessage> Conversation(Random random)
    {
        string[] roles = ["system", "developer", "user", "assistant", "user"];
        var messages = new List<PromptMessage>();
        for (var i = random.Next(1, 7); i > 0; i--)
            messages.Add(random.Next(6) == 0
                ? new PromptMessage("tool", Body(random)) { Name = "lookup", ToolCallId = "call_1" }
                : new PromptMessage(roles[random.Next(roles.Length)], Body(random)));
        return messages;
    }

    [Fact]
    public void APromptCountedWithTheCacheHasTheTokenizersOwnCountAndCutsOnItsFirstTurnAndEveryTurnAfter()
    {
        var random = new Random(14);
        var known = new CountingCache();
        var comparedWhole = 0;
        for (var sample = 0; sample < 300; sample++)
        {
            var conversation = Conversation(random);
            for (var turn = 0; turn < 3; turn++)
            {
                var text = PromptTemplates.Render("gpt-oss", conversation);
                var whole = ModelTokenizer.GptOss.Measure(text);
                // Without a cut, the count is a fresh encoder's own for the whole text.
                if (whole.Cuts == 0)
                {
                    Assert.Equal(ModelTokenizerTests.WholeHarmony.Value.CountTokens(text), whole.Count);
                    comparedWhole++;
                }
                Assert.Equal(whole, ModelTokenizer.GptOss.Measure(text, known));
                Assert.Equal(new TokenBounds(whole.Count - whole.Cuts * ModelTokenizer.SlackPerCut, whole.Count,
                    whole.Count + whole.Cuts * ModelTokenizer.SlackPerCut), ModelTokenizer.GptOss.Bounds(text, known));
                conversation.Add(new PromptMessage(turn % 2 == 0 ? "assistant" : "user", Body(random)));
            }
        }
        // The counts above came from the cache, not only from counting again: a test that never hit it would prove nothing.
        Assert.True(known.Hits > 1_000, $"{known.Hits} hits, {known.Misses} misses");
        Assert.True(known.Misses > 300, $"{known.Hits} hits, {known.Misses} misses");
        Assert.True(comparedWhole >= 20, $"{comparedWhole} prompts compared with the encoder's count of the whole");
    }

    [Fact]
    public void ARawPromptIsCountedTheSameWithTheCacheWhereverItsControlTokensAndLookalikesFall()
    {
        // The text dialect's prompt is the client's own: control tokens anywhere (first, last, back to back), and
        // lookalikes that are not control tokens ("<|end", "<|x|>", "<|startoftext"), none of them neutralised.
        string[] controls = ["<|start|>", "<|end|>", "<|message|>", "<|channel|>", "<|call|>", "<|return|>", "<|constrain|>", "<|startoftext|>", "<|endoftext|>", "<|endofprompt|>"];
        string[] lookalikes = ["<|end", "<|x|>", "<|start", "|>", "<||>", "<|<|end|>", "<<|message|>"];
        var random = new Random(21);
        var known = new CountingCache();
        var comparedWhole = 0;
        for (var sample = 0; sample < 300; sample++)
        {
            var text = new StringBuilder();
            for (var part = random.Next(1, 12); part > 0; part--)
                text.Append(random.Next(5) switch
                {
                    0 => controls[random.Next(controls.Length)],
                    1 => lookalikes[random.Next(lookalikes.Length)],
                    2 => controls[random.Next(controls.Length)] + controls[random.Next(controls.Length)],
                    _ => Body(random),
                });
            var raw = text.ToString();
            var whole = ModelTokenizer.GptOss.Measure(raw);
            // Without a cut, the count is the encoder's own, special tokens and all.
            if (whole.Cuts == 0)
            {
                Assert.Equal(ModelTokenizerTests.WholeHarmony.Value.CountTokens(raw), whole.Count);
                comparedWhole++;
            }
            Assert.Equal(whole, ModelTokenizer.GptOss.Measure(raw, known));
            Assert.Equal(ModelTokenizer.GptOss.Measure(raw), ModelTokenizer.GptOss.Measure(raw, known));
        }
        Assert.True(known.Hits > 100, $"{known.Hits} hits, {known.Misses} misses");
        Assert.True(comparedWhole > 50, $"{comparedWhole} prompts compared with the encoder's count of the whole");

        // At the edges: stretches of 255, 256 and 257 characters, prompts of 1,023 and 1,024, a prompt with no control
        // token at all, and long stretches first and last.
        foreach (var stretch in new[] { 255, 256, 257 })
            foreach (var total in new[] { 1_023, 1_024, 1_025, 4_000 })
            {
                var body = Body(new Random(stretch + total));
                var filler = string.Concat(Enumerable.Repeat(body + " and so on", 100))[..stretch];
                var parts = new StringBuilder();
                while (parts.Length < total) parts.Append(filler).Append(controls[parts.Length % controls.Length]);
                foreach (var raw in new[] { parts.ToString()[..total], parts.ToString()[^total..], new string('x', total), body + string.Concat(Enumerable.Repeat("word ", total / 5)) })
                {
                    Assert.Equal(ModelTokenizer.GptOss.Measure(raw), ModelTokenizer.GptOss.Measure(raw, known));
                    Assert.Equal(ModelTokenizer.GptOss.Measure(raw), ModelTokenizer.GptOss.Measure(raw, known));
                }
            }
    }

    [Fact]
    public void TheLongStretchesOfALongPromptAndTheShortStretchesOfAnyPromptAreLookedUpAndNoneInBetween()
    {
        var known = new CountingCache();
        var body = string.Concat(Enumerable.Repeat("A body long enough to be worth looking up. ", 25));
        var medium = string.Concat(Enumerable.Repeat("Neither short nor long. ", 5));
        var text = $"<|start|>system<|message|>{medium}<|end|><|start|>user<|message|>{body}<|end|><|start|>assistant";
        Assert.Equal(ModelTokenizer.GptOss.Measure(text), ModelTokenizer.GptOss.Measure(text, known));
        Assert.Equal(["system", "user", body, "assistant"], known.Texts);
        // A short prompt's long stretch is counted whole (looking it up would cost what counting it does); its short ones
        // are looked up as anywhere else.
        var shortPrompt = new CountingCache();
        ModelTokenizer.GptOss.Measure("<|start|>user<|message|>" + new string('y', 300) + "<|end|>", shortPrompt);
        Assert.Equal(["user"], shortPrompt.Texts);
    }

    [Fact]
    public void AShortStretchIsFoundWithTheEncodersOwnCountWhileTheOrganisationsSetFillsFromManyRequestsAtOnce()
    {
        // Many more distinct short texts than a set holds, joined by control tokens into prompts; every prompt counted twice
        // in a row from up to eight threads at once, each time with a request's own scope, as the hot path does. The set
        // fills while other requests look it up, and then takes no more.
        string[][] alphabets = [["a", "b", "e", "i", "x", " "], ["Ä", "ß", "é", "中", "文", "🚀", " "], ["{", "}", "\"", ":", ",", "0", "7", " "],
            ["to=functions.", "read_file", "commentary", " json", "<", "|", " "]];
        string[] controls = ["<|start|>", "<|message|>", "<|end|>", "<|channel|>", "<|constrain|>", "<|call|>"];
        var random = new Random(64);
        string Short(int i)
        {
            var pieces = alphabets[i % alphabets.Length];
            var length = random.Next(1, ModelTokenizer.ShortStretch + 1);
            var text = new StringBuilder();
            while (text.Length < length) text.Append(pieces[random.Next(pieces.Length)]);
            return text.Length <= ModelTokenizer.ShortStretch ? text.ToString() : text.ToString(0, ModelTokenizer.ShortStretch - 1);
        }
        var prompts = Enumerable.Range(0, 3_000).Select(i => string.Concat(Enumerable.Range(0, random.Next(1, 6))
            .Select(j => Short(i + j) + controls[random.Next(controls.Length)]))).ToArray();
        var expected = prompts.Select(p => ModelTokenizer.GptOss.Measure(p)).ToArray();
        using var counts = Counts(megabytes: 8);
        var organization = Guid.NewGuid();

        var wrong = new System.Collections.Concurrent.ConcurrentBag<string>();
        var hits = 0;
        Parallel.For(0, prompts.Length * 2, new ParallelOptions { MaxDegreeOfParallelism = 8 }, i =>
        {
            var scope = new HitCounting(counts.For(organization, ModelTokenizer.GptOss)!);
            if (ModelTokenizer.GptOss.Measure(prompts[i / 2], scope) != expected[i / 2]) wrong.Add(prompts[i / 2]);
            Interlocked.Add(ref hits, scope.Hits);
        });

        Assert.Empty(wrong);
        // Compared above were counts found, not only counted again: a set that never kept anything would prove nothing.
        Assert.True(hits >= PromptCounts.ShortCounts.Most, $"{hits} stretches found");
        // The counts compared above are the encoder's own, stretch by stretch.
        var reference = Microsoft.ML.Tokenizers.TiktokenTokenizer.CreateForEncoding("o200k_base");
        var stretches = prompts.SelectMany(p => p.Split(controls, StringSplitOptions.RemoveEmptyEntries)).Distinct().ToArray();
        Assert.True(stretches.Length > PromptCounts.ShortCounts.Most * 8, $"{stretches.Length} distinct stretches");
        foreach (var prompt in prompts.Take(300))
            Assert.Equal(prompt.Split(controls, StringSplitOptions.RemoveEmptyEntries).Sum(t => reference.CountTokens(t))
                + controls.Sum(c => (prompt.Length - prompt.Replace(c, "").Length) / c.Length), expected[Array.IndexOf(prompts, prompt)].Count);
    }

    [Fact]
    public void AnOrganisationsShortStretchesAreFoundAgainOnlyByItAndWithTheSameTokenizer()
    {
        using var counts = Counts(megabytes: 1);
        var (first, second) = (Guid.NewGuid(), Guid.NewGuid());
        const string secret = "transfer 900 to account 42";
        ModelTokenizer.GptOss.Measure($"<|start|>user<|message|>{secret}<|end|>", counts.For(first, ModelTokenizer.GptOss));

        Assert.True(counts.For(first, ModelTokenizer.GptOss)!.TryGet(secret, out var found));
        Assert.Equal(ModelTokenizer.GptOss.Measure(secret), found);
        Assert.False(counts.For(second, ModelTokenizer.GptOss)!.TryGet(secret, out _));
        Assert.False(counts.For(first, ModelTokenizer.ByteBound)!.TryGet(secret, out _));
    }

    [Fact]
    public void AFullSetOfShortCountsKeepsWhatItHasAndTakesNoMore()
    {
        var set = new PromptCounts.ShortCounts();
        for (var i = 0; i < PromptCounts.ShortCounts.Most; i++) set.Add($"word {i}", new TokenCount(i, 0));
        set.Add("one more", new TokenCount(7, 0));

        Assert.All(Enumerable.Range(0, PromptCounts.ShortCounts.Most),
            i => Assert.True(set.TryGet($"word {i}", out var n) && n == new TokenCount(i, 0), $"word {i}"));
        Assert.False(set.TryGet("one more", out _));
    }

    [Fact]
    public void AnOrganisationsShortStretchesAreDroppedAnHourAfterTheirSetWasMadeHoweverOftenTheyAreUsed()
    {
        var clock = new ManualClock();
        using var counts = new PromptCounts(Options.Create(new InferenceOptions { PromptCountCacheMegabytes = 1 }), null, clock);
        var organization = Guid.NewGuid();
        counts.For(organization, ModelTokenizer.GptOss)!.Add("my password is hunter2", new TokenCount(6, 0));
        for (var minutes = 10; minutes <= 50; minutes += 10)
        {
            clock.UtcNow += TimeSpan.FromMinutes(10);
            Assert.True(counts.For(organization, ModelTokenizer.GptOss)!.TryGet("my password is hunter2", out _));
        }
        clock.UtcNow += TimeSpan.FromMinutes(12);
        // What the replica's timer does every five minutes: gone before anything looks for it.
        counts.RemoveIdle();
        Assert.Equal(0, counts.Size.Entries);
        Assert.False(counts.For(organization, ModelTokenizer.GptOss)!.TryGet("my password is hunter2", out _));
    }

    [Fact]
    public void AnOrganisationNeverFindsTheCountsOfAnotherOrganisationsPrompts()
    {
        using var counts = Counts(megabytes: 1);
        var text = string.Concat(Enumerable.Repeat("Quarterly figures, confidential. ", 20));
        var (first, second) = (Guid.NewGuid(), Guid.NewGuid());
        counts.For(first, ModelTokenizer.GptOss)!.Add(text, new TokenCount(123, 0));

        Assert.False(counts.For(second, ModelTokenizer.GptOss)!.TryGet(text, out _));
        Assert.True(counts.For(first, ModelTokenizer.GptOss)!.TryGet(text, out var found));
        Assert.Equal(new TokenCount(123, 0), found);
        // Another tokenizer counts the same text differently: its counts are its own.
        Assert.False(counts.For(first, ModelTokenizer.ByteBound)!.TryGet(text, out _));
    }

    [Fact]
    public void AKeyThatMatchesIsNotEnoughTheTextMustBeTheOneCounted()
    {
        // Every text hashes alike here, as two texts might by chance (or by a client's design) under any hash.
        using var counts = new PromptCounts(Options.Create(new InferenceOptions { PromptCountCacheMegabytes = 1 }), _ => 42, null);
        var organization = counts.For(Guid.NewGuid(), ModelTokenizer.GptOss)!;
        var counted = new string('a', 300);
        var other = new string('a', 299) + "b";
        organization.Add(counted, new TokenCount(38, 0));

        Assert.False(organization.TryGet(other, out _));
        Assert.True(organization.TryGet(counted, out var found));
        Assert.Equal(new TokenCount(38, 0), found);
        organization.Add(other, new TokenCount(39, 0));
        Assert.False(organization.TryGet(counted, out _));
        Assert.True(organization.TryGet(other, out found));
        Assert.Equal(new TokenCount(39, 0), found);
    }

    [Fact]
    public async Task TheCacheStaysWithinItsMemoryAndKeepsTakingNewPromptsWhateverAClientSends()
    {
        using var counts = Counts(megabytes: 1);
        var organization = counts.For(Guid.NewGuid(), ModelTokenizer.GptOss)!;
        // Ten times the cache's memory in distinct bodies of 10,000 characters.
        for (var i = 0; i < 500; i++)
        {
            organization.Add($"{i:D6}" + new string((char)('a' + i % 26), 10_000), new TokenCount(i, 0));
            Assert.InRange(counts.Size.Bytes, 0, 1024 * 1024);
        }
        // Full, it makes room in the background (least recently used first) and takes what comes next.
        var next = 0;
        await Eventually.WaitUntilAsync(() =>
        {
            var text = $"next-{next++}" + new string('z', 10_000);
            organization.Add(text, new TokenCount(7, 0));
            return organization.TryGet(text, out var found) && found == new TokenCount(7, 0);
        }, TimeSpan.FromSeconds(30), "a new body is cached again once the full cache has compacted");
        Assert.InRange(counts.Size.Bytes, 0, 1024 * 1024);
    }

    [Fact]
    public void ACountUnusedForAnHourIsDroppedEvenWhenNoPromptComesToLookItUp()
    {
        var clock = new ManualClock();
        using var counts = new PromptCounts(Options.Create(new InferenceOptions { PromptCountCacheMegabytes = 1 }), null, clock);
        var organization = counts.For(Guid.NewGuid(), ModelTokenizer.GptOss)!;
        var (used, idle) = (new string('u', 300), new string('i', 300));
        organization.Add(used, new TokenCount(1, 0));
        organization.Add(idle, new TokenCount(2, 0));

        clock.UtcNow += PromptCounts.Idle - TimeSpan.FromMinutes(1);
        Assert.True(organization.TryGet(used, out _));
        clock.UtcNow += TimeSpan.FromMinutes(2);
        // What the replica's timer does every five minutes; nothing has looked either text up since.
        counts.RemoveIdle();
        Assert.Equal(1, counts.Size.Entries);
        Assert.True(organization.TryGet(used, out _));
        Assert.False(organization.TryGet(idle, out _));
    }

    private sealed class ManualClock : Microsoft.Extensions.Internal.ISystemClock
    {
        public DateTimeOffset UtcNow { get; set; } = DateTimeOffset.UtcNow;
    }

    [Fact]
    public void NoMemoryForTheCacheTurnsItOff()
    {
        using var counts = Counts(megabytes: 0);
        Assert.Null(counts.For(Guid.NewGuid(), ModelTokenizer.GptOss));
    }

    private static PromptCounts Counts(int megabytes) =>
        new(Options.Create(new InferenceOptions { PromptCountCacheMegabytes = megabytes }));

    /// <summary>A request's scope that says how many stretches it found.</summary>
    private sealed class HitCounting(ITokenCountCache scope) : ITokenCountCache
    {
        public int Hits { get; private set; }

        public bool TryGet(ReadOnlySpan<char> text, out TokenCount count)
        {
            var found = scope.TryGet(text, out count);
            if (found) Hits++;
            return found;
        }

        public void Add(ReadOnlySpan<char> text, TokenCount count) => scope.Add(text, count);
    }

    /// <summary>A cache that remembers everything and says how often it was asked.</summary>
    private sealed class CountingCache : ITokenCountCache
    {
        private readonly Dictionary<string, TokenCount> _known = [];
        public int Hits { get; private set; }
        public int Misses { get; private set; }
        public IEnumerable<string> Texts => _known.Keys;

        public bool TryGet(ReadOnlySpan<char> text, out TokenCount count)
        {
            var found = _known.TryGetValue(text.ToString(), out count);
            if (found) Hits++; else Misses++;
            return found;
        }

        public void Add(ReadOnlySpan<char> text, TokenCount count) => _known[text.ToString()] = count;
    }
}
