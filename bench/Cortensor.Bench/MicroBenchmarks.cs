using BenchmarkDotNet.Attributes;
using BenchmarkDotNet.Configs;
using BenchmarkDotNet.Jobs;
using BenchmarkDotNet.Running;
using BenchmarkDotNet.Toolchains.InProcess.Emit;
using Cortensor.Api.Data;
using Cortensor.Api.Inference;
using Cortensor.Api.Keys;
using Cortensor.Contracts;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging.Abstractions;
using Microsoft.Extensions.Options;
using StackExchange.Redis;
using ZiggyCreatures.Caching.Fusion;

namespace Cortensor.Bench;

public static class MicroBenchmarks
{
    public static int Run(string[] args)
    {
        // In process: the harness runs from a scratch folder, not beside the project file.
        var config = DefaultConfig.Instance
            .AddJob(Job.ShortRun.WithToolchain(InProcessEmitToolchain.Instance))
            .WithArtifactsPath(Path.Combine(Directory.GetCurrentDirectory(), "BenchmarkDotNet.Artifacts"));
        BenchmarkSwitcher.FromTypes([typeof(SnapshotLookupBenchmark), typeof(PromptCountBenchmark), typeof(AgentTurnCountBenchmark)]).Run(args, config);
        return 0;
    }
}

/// <summary>Step 2 of the hot path on a cache hit: hash the presented key, find its snapshot in process memory.</summary>
[MemoryDiagnoser]
public class SnapshotLookupBenchmark
{
    private EntitlementCache _cache = null!;
    private string _key = null!;

    [GlobalSetup]
    public void Setup()
    {
        var fusion = new FusionCache(new FusionCacheOptions());
        // Never contacted on a hit; present because a miss would need it.
        var redis = ConnectionMultiplexer.Connect("127.0.0.1:1,abortConnect=false,connectTimeout=50");
        _cache = new EntitlementCache(fusion, new ServiceCollection().BuildServiceProvider().GetRequiredService<IServiceScopeFactory>(),
            redis, NullLogger<EntitlementCache>.Instance);
        _key = ApiKeyFormat.Generate("live");
        var snapshot = new KeySnapshot(Guid.NewGuid(), Guid.NewGuid(), ApiKeyStatus.Active, null, OrganizationStatus.Active, "pro",
            BillingMode.PrepaidCredits, ["gpt-oss-20b", "gemma-4-26b"], 1000, 2_000_000, null, 1000, 2_000_000, 256);
        fusion.Set<KeySnapshot?>(KeySnapshot.CacheKey(ApiKeyFormat.Hash(_key)), snapshot);
    }

    [Benchmark]
    public async ValueTask<KeySnapshot?> HashAndLookUpAKnownKey()
    {
        var (_, snapshot) = await _cache.LookupAsync(ApiKeyFormat.Hash(_key), CancellationToken.None);
        return snapshot;
    }
}

/// <summary>
/// Step 3 of the hot path for a conversation's next turn: counting its rendered prompt (gpt-oss, exact) before admission,
/// without the replica's cache of message bodies it has counted, with the cache when none of the bodies is in it (the
/// first time the replica sees them: counted, then kept), and with it on every turn after (only what is new and the short
/// pieces between bodies are counted).
/// </summary>
[MemoryDiagnoser]
public class PromptCountBenchmark
{
    private string _prompt = null!;
    private ITokenCountCache _known = null!;
    private PromptCounts _counts = null!;

    [Params(2_000, 8_000, 32_000)]
    public int Tokens { get; set; }

    [GlobalSetup]
    public void Setup()
    {
        // English-like prose from a fixed vocabulary (about six characters a token: its words are mostly one token each), in
        // turns of 150-500 words.
        string[] words = ["the", "ledger", "router", "pool", "settles", "each", "request", "within", "its", "minute", "and",
            "credits", "are", "reserved", "before", "answer", "streams", "back", "to", "customer", "quota", "of", "tokens",
            "is", "counted", "exactly", "once", "replica", "leases", "slices", "from", "Redis", "while", "Postgres", "keeps"];
        var random = new Random(14);
        var messages = new List<PromptMessage> { new("system", "You are a careful assistant for Cortensor operators.") };
        while (ModelTokenizer.GptOss.Count(PromptTemplates.Render("gpt-oss", messages)) < Tokens)
        {
            var turn = string.Join(' ', Enumerable.Range(0, random.Next(150, 500)).Select(_ => words[random.Next(words.Length)])) + ".";
            messages.Add(new(messages.Count % 2 == 1 ? "user" : "assistant", turn));
        }
        messages.Add(new("user", "And the next question?"));
        _prompt = PromptTemplates.Render("gpt-oss", messages);
        _counts = new PromptCounts(Options.Create(new InferenceOptions()));
        _known = _counts.For(Guid.NewGuid(), ModelTokenizer.GptOss)!;
        ModelTokenizer.GptOss.Measure(_prompt, _known);
    }

    [GlobalCleanup]
    public void Cleanup() => _counts.Dispose();

    [Benchmark(Baseline = true)]
    public TokenCount FirstSight() => ModelTokenizer.GptOss.Measure(_prompt);

    /// <summary>Every body new to the cache (another organisation each time): what the cache costs when it never helps.</summary>
    [Benchmark]
    public TokenCount FirstSightWithTheCache() => ModelTokenizer.GptOss.Measure(_prompt, _counts.For(Guid.NewGuid(), ModelTokenizer.GptOss)!);

    [Benchmark]
    public TokenCount NextTurn() => ModelTokenizer.GptOss.Measure(_prompt, _known);
}

/// <summary>
/// Step 3 for an agent's turn: a system prompt, five tools and a loop of tool calls and results. <see cref="NextTurn"/> counts it
/// as the organisation's next request would, everything it sent before known (the tools' developer message among the long
/// stretches; the roles, channels, recipients, arguments and results among the short ones). <see cref="FirstTurn"/> counts
/// it for an organisation whose counts hold nothing yet: every stretch counted and then kept.
/// </summary>
[MemoryDiagnoser]
public class AgentTurnCountBenchmark
{
    private string _prompt = null!;
    private PromptCounts _counts = null!;
    private Guid _organization;
    private List<PromptMessage> _messages = null!;
    private ToolSet _tools = null!;

    [Params(2, 8)]
    public int Calls { get; set; }

    [GlobalSetup]
    public void Setup()
    {
        string[] names = ["read_file", "search", "run_command", "edit_file", "list_directory"];
        var tools = new ToolSet([.. names.Select(n => new ToolSpec(n, $"The workspace's {n.Replace('_', ' ')}.",
            System.Text.Json.JsonDocument.Parse("""{"type":"object","properties":{"path":{"type":"string","description":"relative to the root"},"limit":{"type":"integer"}},"required":["path"]}""").RootElement, false))],
            ToolChoiceMode.Auto, null, true);
        var messages = new List<PromptMessage>
        {
            new("system", "You are a careful coding agent. Use the tools to inspect the repository before you change anything."),
            new("user", "The tests in tests/Billing fail since yesterday. Find out why and fix it."),
        };
        for (var i = 0; i < Calls; i++)
        {
            var name = names[i % names.Length];
            messages.Add(new("assistant", "") { ToolCalls = [new PromptToolCall($"call_{i}", name, $$"""{"path":"src/Billing/File{{i}}.cs"}""")] });
            messages.Add(new("tool", $"line {i}: return Math.Round(cost, 7);") { ToolCallId = $"call_{i}", Name = name });
        }
        (_messages, _tools) = (messages, tools);
        _prompt = PromptTemplates.Render("gpt-oss", messages, tools, null);
        _counts = new PromptCounts(Options.Create(new InferenceOptions()));
        _organization = Guid.NewGuid();
        ModelTokenizer.GptOss.Measure(_prompt, _counts.For(_organization, ModelTokenizer.GptOss));
    }

    [GlobalCleanup]
    public void Cleanup() => _counts.Dispose();

    /// <summary>Without the organisation's counts: every stretch counted, as before any were kept.</summary>
    [Benchmark(Baseline = true)]
    public TokenCount Uncached() => ModelTokenizer.GptOss.Measure(_prompt);

    [Benchmark]
    public TokenCount FirstTurn() => ModelTokenizer.GptOss.Measure(_prompt, _counts.For(Guid.NewGuid(), ModelTokenizer.GptOss));

    [Benchmark]
    public TokenCount NextTurn() => ModelTokenizer.GptOss.Measure(_prompt, _counts.For(_organization, ModelTokenizer.GptOss));

    [Benchmark]
    public string Render() => PromptTemplates.Render("gpt-oss", _messages, _tools, null);
}
