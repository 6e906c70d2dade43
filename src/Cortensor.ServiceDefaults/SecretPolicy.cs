namespace Microsoft.Extensions.Hosting;

/// <summary>
/// What a production secret must be: present, long enough, not guessable, and none of the development
/// defaults published in this repository. Shared by the AppHost (its parameters) and the Api (the settings
/// it receives), so both refuse the same values outside Development and name the setting that is wrong.
/// </summary>
public static class SecretPolicy
{
    /// <summary>
    /// Every secret value this repository publishes for development, tests or benchmarks. Anyone can read
    /// them, so a deployment that kept one is open; they are refused outside Development.
    /// </summary>
    public static readonly IReadOnlySet<string> PublishedDevelopmentValues = new HashSet<string>(StringComparer.Ordinal)
    {
        "cortensor-dev-signing-key-change-me-in-production-0123456789",
        "cortensor-dev-relay-key-change-me-in-production-0123456789",
        "cortensor-dev-postgres",
        "cortensor-dev-redis",
        "cortensor-dev-router-token",
        "cortensor-dev-unkey-root-key",
        "Cortensor-dev-admin-1",
        "bench-signing-key-bench-signing-key-0123456789",
        "bench-router",
        "Bench-admin-password-1",
        "bench",
        "integration-tests",
    };

    /// <summary>A JWT/HMAC signing key: at least 32 bytes and about 128 bits of estimated entropy (e.g. `openssl rand -base64 32`).</summary>
    public static readonly SecretRule SigningKey = new(MinimumLength: 32, MinimumEntropyBits: 128);
    /// <summary>Machine passwords and tokens (database, Redis, router token): nobody types them, so they can be long.</summary>
    public static readonly SecretRule MachinePassword = new(MinimumLength: 16, MinimumEntropyBits: 56);
    /// <summary>The first administrator's password, typed by a person.</summary>
    public static readonly SecretRule HumanPassword = new(MinimumLength: 12, MinimumEntropyBits: 40);

    /// <summary>Why <paramref name="value"/> can't be used as <paramref name="setting"/> outside Development, or null when it can.</summary>
    public static string? Problem(string setting, string? value, SecretRule rule)
    {
        if (string.IsNullOrWhiteSpace(value))
            return $"{setting} is not set.";
        if (PublishedDevelopmentValues.Contains(value))
            return $"{setting} is a development default published in the repository; set a secret of your own.";
        var bytes = System.Text.Encoding.UTF8.GetByteCount(value);
        if (bytes < rule.MinimumLength)
            return $"{setting} is too short ({bytes} bytes; at least {rule.MinimumLength}).";
        if (EstimatedEntropyBits(value) < rule.MinimumEntropyBits)
            return $"{setting} is too predictable (repeated or few distinct characters); use a random value of at least {rule.MinimumLength} characters.";
        return null;
    }

    /// <summary>
    /// Shannon entropy of the value's own character frequencies times its length: a cheap upper bound that
    /// catches "aaaa…", "abab…" and short alphabets, not a proof of randomness.
    /// </summary>
    public static double EstimatedEntropyBits(string value)
    {
        if (value.Length == 0) return 0;
        var entropy = 0.0;
        foreach (var group in value.GroupBy(c => c))
        {
            var p = (double)group.Count() / value.Length;
            entropy -= p * Math.Log2(p);
        }
        return entropy * value.Length;
    }
}

public sealed record SecretRule(int MinimumLength, double MinimumEntropyBits);
