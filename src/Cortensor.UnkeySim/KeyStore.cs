using System.Security.Cryptography;
using System.Text;
using System.Text.Json.Nodes;

namespace Cortensor.UnkeySim;

/// <summary>A rate limit configured on a key, as Unkey stores it.</summary>
public sealed record KeyRatelimit(string Id, string Name, long Limit, long Duration, bool AutoApply);

public sealed class StoredKey
{
    public required string Id { get; init; }
    public required string ApiId { get; init; }
    /// <summary>SHA-256 of the key, as Unkey stores it: the plaintext is never kept.</summary>
    public required string Hash { get; init; }
    public string? Name { get; set; }
    public string? ExternalId { get; set; }
    public JsonObject? Meta { get; set; }
    public long? Expires { get; set; }
    public bool Enabled { get; set; } = true;
    public List<KeyRatelimit> Ratelimits { get; set; } = [];
    public bool Deleted { get; set; }
}

/// <summary>
/// The stand-in's keys, in memory: one process stands in for Unkey's whole service, so a restart forgets every key
/// (as RouterSim forgets its sessions). Keys are found by the hash of what the caller presents, as in Unkey.
/// </summary>
public sealed class KeyStore(TimeProvider clock)
{
    private readonly Lock _gate = new();
    private readonly Dictionary<string, StoredKey> _byId = new(StringComparer.Ordinal);
    private readonly Dictionary<string, StoredKey> _byHash = new(StringComparer.Ordinal);

    public (StoredKey Key, string Plaintext) Create(CreateKeyRequest request)
    {
        var random = Base58.Encode(RandomNumberGenerator.GetBytes(request.ByteLength ?? 16));
        // Unkey's own format: the prefix, an underscore, then the random bytes in base58.
        var plaintext = request.Prefix is { Length: > 0 } prefix ? $"{prefix}_{random}" : random;
        var key = new StoredKey
        {
            Id = Ids.New("key"), ApiId = request.ApiId!, Hash = HashOf(plaintext), Name = request.Name, ExternalId = request.ExternalId,
            Meta = request.Meta, Expires = request.Expires, Enabled = request.Enabled ?? true,
            Ratelimits = [.. (request.Ratelimits ?? []).Select(r => new KeyRatelimit(Ids.New("rl"), r.Name!, r.Limit!.Value, r.Duration!.Value, r.AutoApply ?? false))],
        };
        lock (_gate)
        {
            _byId[key.Id] = key;
            _byHash[key.Hash] = key;
        }
        return (key, plaintext);
    }

    public StoredKey? FindByPlaintext(string plaintext)
    {
        lock (_gate) return _byHash.GetValueOrDefault(HashOf(plaintext)) is { Deleted: false } key ? key : null;
    }

    public StoredKey? Find(string keyId)
    {
        lock (_gate) return _byId.GetValueOrDefault(keyId) is { Deleted: false } key ? key : null;
    }

    /// <summary>Applies a change to a live key under the store's lock; false when there is no such key.</summary>
    public bool Update(string keyId, Action<StoredKey> change)
    {
        lock (_gate)
        {
            if (_byId.GetValueOrDefault(keyId) is not { Deleted: false } key) return false;
            change(key);
            return true;
        }
    }

    public bool Delete(string keyId, bool permanent)
    {
        lock (_gate)
        {
            if (_byId.GetValueOrDefault(keyId) is not { Deleted: false } key) return false;
            key.Deleted = true;
            if (permanent)
            {
                _byId.Remove(key.Id);
                _byHash.Remove(key.Hash);
            }
            return true;
        }
    }

    public bool IsExpired(StoredKey key) => key.Expires is { } expires && expires <= clock.GetUtcNow().ToUnixTimeMilliseconds();

    private static string HashOf(string plaintext) => Convert.ToHexStringLower(SHA256.HashData(Encoding.UTF8.GetBytes(plaintext)));
}

internal static class Ids
{
    public static string New(string prefix) => prefix + "_" + Base58.Encode(RandomNumberGenerator.GetBytes(16));
}

/// <summary>Bitcoin-alphabet base58, the encoding of Unkey's keys and ids (a few lines; no package carries just this).</summary>
public static class Base58
{
    private const string Alphabet = "123456789ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz";

    public static string Encode(ReadOnlySpan<byte> bytes)
    {
        var value = new System.Numerics.BigInteger(bytes, isUnsigned: true, isBigEndian: true);
        var text = new StringBuilder();
        while (value > 0)
        {
            value = System.Numerics.BigInteger.DivRem(value, 58, out var digit);
            text.Insert(0, Alphabet[(int)digit]);
        }
        foreach (var b in bytes)
        {
            if (b != 0) break;
            text.Insert(0, '1');
        }
        return text.ToString();
    }
}
