using BenchmarkDotNet.Attributes;
using BenchmarkDotNet.Configs;
using BenchmarkDotNet.Jobs;
using BenchmarkDotNet.Running;
using BenchmarkDotNet.Toolchains.InProcess.Emit;
using Cortensor.Api.Data;
using Cortensor.Api.Keys;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging.Abstractions;
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
        BenchmarkSwitcher.FromTypes([typeof(SnapshotLookupBenchmark)]).Run(args, config);
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
