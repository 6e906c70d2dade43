using Cortensor.Api.Data;

namespace Cortensor.Api.Keys;

/// <summary><c>Keys:Provider</c>: who issues and verifies API keys (docs/operations.md, "Key provider").</summary>
public sealed class KeyProviderOptions
{
    public const string Section = "Keys";
    public const string Builtin = "builtin";
    public const string Unkey = "unkey";
    public string Provider { get; set; } = Builtin;
}

/// <summary>A key the provider issued: the plaintext (shown once) and, for an external provider, its id there.</summary>
public sealed record IssuedKey(string Plaintext, string? ProviderKeyId);

/// <summary>What the Portal asks a provider to issue: the key's own settings, never its plan or credit.</summary>
public sealed record KeyToIssue(Guid KeyId, Guid OrganizationId, string Name, string Environment, DateTimeOffset? ExpiresAt,
    int? RequestsPerMinute, int? TokensPerMinute);

/// <summary>
/// Where API keys are issued and verified. The Portal's own rows stay the source of what a key may use (plan, models,
/// organisation, quota, credit); the provider decides whether a presented key is a live key at all, and (for Unkey)
/// holds the key's own rate limits. Every method but <see cref="VerifyAsync"/> runs in a control-plane request;
/// <see cref="VerifyAsync"/> runs only when the entitlement snapshot of a key is in neither memory nor Redis.
/// </summary>
public interface IKeyProvider
{
    string Name { get; }

    Task<IssuedKey> IssueAsync(KeyToIssue key, CancellationToken ct);

    /// <summary>
    /// Verifies a presented key whose Portal row was found by its hash, and returns the snapshot to cache: <paramref name="portal"/>
    /// as it is (builtin), narrowed by the provider's answer, or null when the provider does not know the key.
    /// </summary>
    Task<KeySnapshot?> VerifyAsync(string presentedKey, KeySnapshot portal, PortalDbContext db, CancellationToken ct);

    /// <summary>Carries a status change made in the Portal (pause, resume, revoke) to the provider, before the Portal records it.</summary>
    Task SetStatusAsync(Guid keyId, ApiKeyStatus status, PortalDbContext db, CancellationToken ct);

    /// <summary>Carries a change of a key's own settings made in the Portal (name, expiry, its limits) to the provider, before the Portal records it.</summary>
    Task UpdateAsync(Guid keyId, KeySettings settings, PortalDbContext db, CancellationToken ct);
}

/// <summary>A key's own settings as they are after a change (null limit: the plan's; null expiry: never).</summary>
public sealed record KeySettings(string Name, DateTimeOffset? ExpiresAt, int? RequestsPerMinute, int? TokensPerMinute);

/// <summary>The Portal issues keys itself and its Postgres rows are the whole truth about them.</summary>
public sealed class BuiltinKeyProvider : IKeyProvider
{
    public string Name => KeyProviderOptions.Builtin;

    public Task<IssuedKey> IssueAsync(KeyToIssue key, CancellationToken ct) =>
        Task.FromResult(new IssuedKey(ApiKeyFormat.Generate(key.Environment), null));

    public Task<KeySnapshot?> VerifyAsync(string presentedKey, KeySnapshot portal, PortalDbContext db, CancellationToken ct) =>
        Task.FromResult<KeySnapshot?>(portal);

    public Task SetStatusAsync(Guid keyId, ApiKeyStatus status, PortalDbContext db, CancellationToken ct) => Task.CompletedTask;

    public Task UpdateAsync(Guid keyId, KeySettings settings, PortalDbContext db, CancellationToken ct) => Task.CompletedTask;
}

/// <summary>The key provider could not be reached or refused the Portal's call: a 503, never a 401 nor a half-made change.</summary>
public sealed class KeyProviderUnavailableException(string provider, Exception? inner = null)
    : Exception($"The key provider {provider} is unavailable", inner)
{
    public string Provider { get; } = provider;
}
