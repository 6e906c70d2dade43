using System.Diagnostics.Metrics;
using System.IO.Hashing;
using System.Runtime.InteropServices;
using System.Security.Cryptography;
using Cortensor.Contracts;
using Microsoft.Extensions.Caching.Memory;
using Microsoft.Extensions.Options;

namespace Cortensor.Api.Inference;

/// <summary>
/// The token counts of long message bodies this replica has counted lately, so that a conversation's history, a system
/// prompt or a tool list sent again with every turn is counted once rather than on every request: counting is exact
/// billing for gpt-oss and runs before admission, at about 25-40 characters a microsecond (a 32,000-character prompt took
/// 1.3 ms, more than the rest of the Portal's work on a request). A count found here is the count the tokenizer gives
/// (<see cref="ModelTokenizer.Measure(string, ITokenCountCache?)"/>), so nothing billed changes.
/// Counts are kept per organisation, as OpenAI keeps its prompt caches: a prompt answered faster because another
/// organisation had sent the same text would tell one customer what another sent.
/// </summary>
public sealed class PromptCounts : IDisposable
{
    private static readonly Meter Meter = new(CortensorTelemetry.MeterName);
    private static readonly Counter<long> Lookups = Meter.CreateCounter<long>("cortensor.prompt.count_cache", "{lookup}",
        "Long message bodies looked up in the replica's token-count cache (result: hit, miss)");
    private static readonly KeyValuePair<string, object?> Hit = new("result", "hit");
    private static readonly KeyValuePair<string, object?> Miss = new("result", "miss");

    // What an entry holds besides its text: the cache's entry, the key and the value objects.
    private const int EntryOverheadBytes = 200;

    private readonly MemoryCache? _cache;
    // Keys are hashed with a seed no client knows, so no client can aim its texts at another's entries; a hash that
    // matches is still checked against the text itself.
    private readonly long _seed = BitConverter.ToInt64(RandomNumberGenerator.GetBytes(8));

    public PromptCounts(IOptions<InferenceOptions> options)
    {
        var megabytes = options.Value.PromptCountCacheMegabytes;
        if (megabytes > 0)
            _cache = new MemoryCache(new MemoryCacheOptions { SizeLimit = megabytes * 1024L * 1024, TrackStatistics = true });
    }

    /// <summary>The cache <paramref name="organization"/>'s prompts are counted with (null when the cache is off).</summary>
    public ITokenCountCache? For(Guid organization) => _cache is null ? null : new Scope(this, organization);

    /// <summary>Entries and their estimated bytes now (what the size limit is held to).</summary>
    public (long Entries, long Bytes) Size =>
        _cache?.GetCurrentStatistics() is { } stats ? (stats.CurrentEntryCount, stats.CurrentEstimatedSize ?? 0) : (0, 0);

    public void Dispose() => _cache?.Dispose();

    private readonly record struct Key(Guid Organization, ulong Hash, int Length);

    private sealed record Known(string Text, TokenCount Count);

    private sealed class Scope(PromptCounts owner, Guid organization) : ITokenCountCache
    {
        public bool TryGet(ReadOnlySpan<char> text, out TokenCount count)
        {
            if (owner._cache!.TryGetValue(KeyOf(text), out Known? known) && known!.Text.AsSpan().SequenceEqual(text))
            {
                Lookups.Add(1, Hit);
                count = known.Count;
                return true;
            }
            Lookups.Add(1, Miss);
            count = default;
            return false;
        }

        public void Add(ReadOnlySpan<char> text, TokenCount count)
        {
            var key = KeyOf(text);
            // Over the size limit the cache refuses the entry and compacts itself in the background (least recently
            // used first), so a client sending ever new texts costs the cache its oldest entries, never more memory.
            using var entry = owner._cache!.CreateEntry(key);
            entry.Value = new Known(text.ToString(), count);
            entry.Size = text.Length * sizeof(char) + EntryOverheadBytes;
        }

        private Key KeyOf(ReadOnlySpan<char> text) =>
            new(organization, XxHash3.HashToUInt64(MemoryMarshal.AsBytes(text), owner._seed), text.Length);
    }
}
