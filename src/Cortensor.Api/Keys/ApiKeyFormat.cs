using System.Security.Cryptography;
using System.Text;

namespace Cortensor.Api.Keys;

/// <summary>
/// Keys look like <c>ctr_live_</c> + 43 base62 characters (256 random bits). Only the SHA-256 of
/// the whole key is stored, with its first characters for display.
/// </summary>
public static class ApiKeyFormat
{
    private const string Alphabet = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";
    public const int RandomLength = 43; // 62^43 > 2^256
    /// <summary>Keys issued by Unkey (Keys:Provider=unkey) carry 32 random bytes in base58: 43 or 44 characters, rarely fewer.</summary>
    private const int MinRandomLength = 40, MaxRandomLength = 44;
    private const int VisibleRandomChars = 4;

    public static string Generate(string environment)
    {
        if (environment is not ("live" or "test")) throw new ArgumentException("environment must be live or test", nameof(environment));
        Span<char> random = stackalloc char[RandomLength];
        // Rejection-free: GetItems draws each character uniformly from the alphabet.
        RandomNumberGenerator.GetItems(Alphabet, random);
        return $"ctr_{environment}_{random}";
    }

    /// <summary>A cheap syntactic check: malformed keys never reach any cache or database.</summary>
    public static bool LooksValid(ReadOnlySpan<char> key)
    {
        if (!(key.StartsWith("ctr_live_") || key.StartsWith("ctr_test_"))) return false;
        var random = key[9..];
        if (random.Length is < MinRandomLength or > MaxRandomLength) return false;
        foreach (var c in random)
            if (!char.IsAsciiLetterOrDigit(c)) return false;
        return true;
    }

    public static byte[] Hash(string key) => SHA256.HashData(Encoding.ASCII.GetBytes(key));

    public static string Start(string key) => key[..(9 + VisibleRandomChars)];

    public static string Environment(string key) => key[4..8];
}
