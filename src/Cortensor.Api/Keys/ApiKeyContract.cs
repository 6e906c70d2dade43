using Cortensor.Api.Catalog;
using Cortensor.Api.Data;
using Cortensor.Api.Errors;

namespace Cortensor.Api.Keys;

/// <summary>What a caller may ask for when creating a key; the control plane and the admin API take the same.</summary>
public sealed record CreateKeyBody(string? Name, string? Environment, DateTimeOffset? ExpiresAt, string[]? Models, int? RequestsPerMinute, int? TokensPerMinute)
{
    /// <summary>Fields this body does not take: refused by name, never dropped (a budget dropped was a key without its cap).</summary>
    [System.Text.Json.Serialization.JsonExtensionData]
    public Dictionary<string, System.Text.Json.JsonElement>? Unknown { get; init; }

    public ApiError? Validate(CatalogSnapshot catalog, DateTimeOffset now)
    {
        // A null asks for nothing (as "budget": null on a PATCH removes none).
        if (Unknown?.Where(u => u.Value.ValueKind != System.Text.Json.JsonValueKind.Null).Select(u => u.Key).Order(StringComparer.Ordinal).FirstOrDefault() is { } unknown)
            return ApiError.UnsupportedParameter(unknown, unknown == "budget"
                ? "'budget' cannot be set when a key is created: create the key, then set its budget with PATCH /portal/api-keys/{id} (operators: PATCH /admin/api-keys/{id}) before you hand it out."
                : $"'{unknown}' is not a field of a new key. A key takes name, environment, expires_at, models, requests_per_minute and tokens_per_minute.");
        if (ApiError.Text("name", "Name", Name, 100) is { } badName) return badName;
        if ((Environment ?? "live") is not ("live" or "test")) return ApiError.InvalidField("environment", "'environment' must be 'live' or 'test'.");
        if (ExpiresAt is { } expires && expires <= now) return ApiError.InvalidField("expires_at", "'expires_at' must be in the future.");
        if (Models is { Length: > 50 }) return ApiError.InvalidField("models", "'models' lists at most 50 models.");
        foreach (var model in Models ?? [])
            if (string.IsNullOrEmpty(model) || !catalog.Models.ContainsKey(model))
                return ApiError.InvalidField("models", $"Unknown model '{model}'. GET /portal/models lists them.");
        if (RequestsPerMinute is < 1) return ApiError.InvalidField("requests_per_minute", "'requests_per_minute' must be at least 1.");
        if (TokensPerMinute is < 1) return ApiError.InvalidField("tokens_per_minute", "'tokens_per_minute' must be at least 1.");
        return null;
    }
}

/// <summary>A key as listed: never the plaintext, only its visible start.</summary>
public sealed record ApiKeyDto(Guid Id, Guid OrganizationId, string Name, string Start, string Environment, string Status,
    DateTimeOffset CreatedAt, DateTimeOffset? LastUsedAt, DateTimeOffset? ExpiresAt, DateTimeOffset? RevokedAt,
    string[] Models, int? RequestsPerMinute, int? TokensPerMinute, Guid? CreatedBy,
    KeyBudgetState? Budget = null, DateTimeOffset? RotatedAt = null, DateTimeOffset? PreviousSecretExpiresAt = null)
{
    /// <param name="budget">The budget's state this period (<see cref="KeyBudget.StateAsync"/>), when the key has one.</param>
    public static ApiKeyDto From(ApiKey k, DateTimeOffset now, DateTimeOffset? lastUsedAt = null, KeyBudgetState? budget = null) => new(k.Id, k.OrganizationId, k.Name, k.Start,
        k.Environment, StatusOf(k, now), k.CreatedAt, lastUsedAt, k.ExpiresAt, k.RevokedAt, k.AllowedModels.ToArray(),
        k.RequestsPerMinute, k.TokensPerMinute, k.CreatedByUserId, budget, k.RotatedAt,
        k.RetiredHashExpiresAt > now ? k.RetiredHashExpiresAt : null);

    public static string StatusOf(ApiKey k, DateTimeOffset now) =>
        k.Status == ApiKeyStatus.Active && k.ExpiresAt is { } e && e <= now ? "expired" : k.Status.ToString().ToLowerInvariant();
}

/// <summary>The answer to a create: the only time the plaintext key is ever shown.</summary>
public sealed record CreatedApiKeyDto(Guid Id, Guid OrganizationId, string Name, string Key, string Start, string Environment, string Status,
    DateTimeOffset CreatedAt, DateTimeOffset? ExpiresAt, string[] Models, int? RequestsPerMinute, int? TokensPerMinute)
{
    public static CreatedApiKeyDto From(CreatedKey created)
    {
        var k = created.Key;
        return new(k.Id, k.OrganizationId, k.Name, created.Plaintext, k.Start, k.Environment, k.Status.ToString().ToLowerInvariant(),
            k.CreatedAt, k.ExpiresAt, k.AllowedModels.ToArray(), k.RequestsPerMinute, k.TokensPerMinute);
    }
}

/// <summary>The answer to a rotation: the only time the new secret is shown, and until when the replaced one still works.</summary>
public sealed record RotatedApiKeyDto(Guid Id, string Name, string Key, string Start, DateTimeOffset RotatedAt, DateTimeOffset PreviousSecretExpiresAt)
{
    public static RotatedApiKeyDto From(CreatedKey rotated) =>
        new(rotated.Key.Id, rotated.Key.Name, rotated.Plaintext, rotated.Key.Start, rotated.Key.RotatedAt!.Value, rotated.Key.RetiredHashExpiresAt!.Value);
}
