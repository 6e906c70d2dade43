using System.Collections.Concurrent;
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
/// billing for gpt-oss and runs before admission (0.22 ms for a 2,000-token conversation, 0.85 ms for 8,000: more than the
/// rest of the Portal's work on a request). A count found here is the count the tokenizer gives
/// (<see cref="ModelTokenizer.Measure(string, ITokenCountCache?)"/>), so nothing billed changes.
/// Counts are kept per organisation and per tokenizer, as OpenAI keeps its prompt caches per organisation: a prompt
/// answered faster because another organisation had sent the same text would tell one customer what another sent.
/// The short stretches between control tokens (<see cref="ModelTokenizer.ShortStretch"/>: roles, channels, recipients,
/// short arguments and results, which an agent's turn is mostly made of) are kept the same way, per organisation and
/// tokenizer, in a small set of their own (<see cref="ShortCounts"/>).
/// </summary>
public sealed class PromptCounts : IDisposable
{
    private static readonly Meter Meter = new(CortensorTelemetry.MeterName);
    private static readonly Counter<long> Lookups = Meter.CreateCounter<long>("cortensor.prompt.count_cache", "{lookup}",
        "Long message bodies looked up in the replica's token-count cache (result: hit, miss)");
    private static readonly KeyValuePair<string, object?> Hit = new("result", "hit");
    private static readonly KeyValuePair<string, object?> Miss = new("result", "miss");

    /// <summary>
    /// What an entry holds besides its text's characters, counted against the size limit: the cache's entry (about 100
    /// bytes), its dictionary node, the boxed key, the value and the string's header.
    /// </summary>
    internal const int EntryOverheadBytes = 300;

    /// <summary>An entry not used for this long is dropped: a customer's text is held no longer than its conversation goes on.</summary>
    internal static readonly TimeSpan Idle = TimeSpan.FromHours(1);

    /// <summary>How a text is keyed; tests give a hash under which every text collides.</summary>
    internal delegate ulong TextHash(ReadOnlySpan<char> text);

    /// <summary>How often entries past <see cref="Idle"/> are swept out: MemoryCache drops them only when it is used.</summary>
    private static readonly TimeSpan Sweep = TimeSpan.FromMinutes(5);

    private readonly MemoryCache? _cache;
    private readonly Timer? _sweep;
    private readonly TextHash _hash;

    public PromptCounts(IOptions<InferenceOptions> options) : this(options, null, null)
    {
    }

    internal PromptCounts(IOptions<InferenceOptions> options, TextHash? hash, Microsoft.Extensions.Internal.ISystemClock? clock)
    {
        var megabytes = options.Value.PromptCountCacheMegabytes;
        if (megabytes > 0)
        {
            var cacheOptions = new MemoryCacheOptions { SizeLimit = megabytes * 1024L * 1024, TrackStatistics = true };
            // A test's clock: only the sweep under test may remove what has expired, not a scan the cache starts itself.
            if (clock is not null) (cacheOptions.Clock, cacheOptions.ExpirationScanFrequency) = (clock, TimeSpan.MaxValue);
            _cache = new MemoryCache(cacheOptions);
            // A replica that stops getting long prompts must still let go of customers' text an hour after its last use.
            // Made without the creating request's execution context, which the timer would otherwise keep for good.
            using (ExecutionContext.SuppressFlow())
                _sweep = new Timer(static cache => ((MemoryCache)cache!).Compact(0), _cache, Sweep, Sweep);
        }
        // Keyed with a seed no client knows, so no client can aim its texts at another's entries; a key that matches is
        // still checked against the text itself.
        var seed = BitConverter.ToInt64(RandomNumberGenerator.GetBytes(8));
        _hash = hash ?? (text => XxHash3.HashToUInt64(MemoryMarshal.AsBytes(text), seed));
    }

    /// <summary>The cache <paramref name="organization"/>'s prompts are counted with by <paramref name="tokenizer"/> (null when the cache is off).</summary>
    public ITokenCountCache? For(Guid organization, ModelTokenizer tokenizer) =>
        _cache is null ? null : new Scope(this, organization, tokenizer.Name);

    /// <summary>Entries and their estimated bytes now (what the size limit is held to).</summary>
    public (long Entries, long Bytes) Size =>
        _cache?.GetCurrentStatistics() is { } stats ? (stats.CurrentEntryCount, stats.CurrentEstimatedSize ?? 0) : (0, 0);

    public void Dispose()
    {
        _sweep?.Dispose();
        _cache?.Dispose();
    }

    /// <summary>
    /// What the sweep does every <see cref="Sweep"/>: removes the entries unused for <see cref="Idle"/> (a compaction of
    /// 0 % removes the expired ones only, and is harmless on a cache being disposed).
    /// </summary>
    internal void RemoveIdle() => _cache?.Compact(0);

    private readonly record struct Key(Guid Organization, string Tokenizer, ulong Hash, int Length);

    private readonly record struct ShortKey(Guid Organization, string Tokenizer);

    /// <summary>
    /// The organisation's short counts, from the same memory as the long ones. Held at most <see cref="Idle"/> from when
    /// they were first made (removed on the next look or by the five-minute sweep), however busy the organisation: no text
    /// is kept much past an hour of its last use, and a set still in use is started afresh. If the cache refuses the entry
    /// (full), the request gets a set of its own.
    /// </summary>
    private ShortCounts ShortCountsOf(Guid organization, string tokenizer) =>
        _cache!.GetOrCreate(new ShortKey(organization, tokenizer), static entry =>
        {
            entry.Size = ShortCounts.Bytes;
            entry.AbsoluteExpirationRelativeToNow = Idle;
            return new ShortCounts();
        })!;

    /// <summary>
    /// Counts of short stretches, looked up by span without a string being made: looking these up in the cache itself
    /// (a boxed key, a hash of the text, a lookup) cost about what counting them does. A set takes the first
    /// <see cref="Most"/> stretches it is given and no more until its hour is over: the template's words (roles, channels,
    /// the recipients of the tools in use), which every request of the organisation holds, are among the first, and a set
    /// started afresh when full would lose them along with the rest. Small, because every organisation sending gpt-oss
    /// prompts has one, charged whole against the memory the long stretches' counts (the larger saving) live in.
    /// </summary>
    internal sealed class ShortCounts
    {
        internal const int Most = 128;

        /// <summary>
        /// What the set may hold at most, counted against the cache's size limit: its texts (a string's header and
        /// characters) and their dictionary nodes, about 100 bytes each besides the characters.
        /// </summary>
        internal const long Bytes = Most * (ModelTokenizer.ShortStretch * sizeof(char) + 100);

        // One lock and no resizing: writes come only with misses, and reads take no lock.
        private readonly ConcurrentDictionary<string, TokenCount>.AlternateLookup<ReadOnlySpan<char>> _counts =
            new ConcurrentDictionary<string, TokenCount>(1, Most, StringComparer.Ordinal).GetAlternateLookup<ReadOnlySpan<char>>();
        private int _taken;

        public bool TryGet(ReadOnlySpan<char> text, out TokenCount count) => _counts.TryGetValue(text, out count);

        public void Add(ReadOnlySpan<char> text, TokenCount count)
        {
            // Counted before it is added, so the set never holds more than Most whatever adds at once; once full, not
            // counted at all (an hour of misses could otherwise wrap the count round and let the set grow again).
            if (Volatile.Read(ref _taken) < Most && Interlocked.Increment(ref _taken) <= Most) _counts.TryAdd(text, count);
        }
    }

    private sealed record Known(string Text, TokenCount Count);

    private sealed class Scope(PromptCounts owner, Guid organization, string tokenizer) : ITokenCountCache
    {
        // Found once per request, when its first short stretch is looked up.
        private ShortCounts? _short;

        private ShortCounts Short => _short ??= owner.ShortCountsOf(organization, tokenizer);

        public bool TryGet(ReadOnlySpan<char> text, out TokenCount count)
        {
            if (text.Length <= ModelTokenizer.ShortStretch) return Short.TryGet(text, out count);
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
            if (text.Length <= ModelTokenizer.ShortStretch)
            {
                Short.Add(text, count);
                return;
            }
            // Over the size limit the cache refuses the entry and compacts itself in the background (least recently
            // used first, whichever organisation's), so a client sending ever new texts costs the cache its oldest
            // entries, never more memory.
            using var entry = owner._cache!.CreateEntry(KeyOf(text));
            entry.Value = new Known(text.ToString(), count);
            entry.Size = text.Length * sizeof(char) + EntryOverheadBytes;
            entry.SlidingExpiration = Idle;
        }

        private Key KeyOf(ReadOnlySpan<char> text) => new(organization, tokenizer, owner._hash(text), text.Length);
    }
}
