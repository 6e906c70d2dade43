using System.Text.Json;
using System.Text.Json.Serialization;
using Refit;

namespace Cortensor.Api.Keys.Unkey;

/// <summary>
/// The part of Unkey's public API v2 the Portal uses (https://www.unkey.com/docs/api-reference/v2). Every call is a POST
/// with the root key as bearer token; answers come in a <c>{meta, data}</c> envelope, failures as <c>{meta, error}</c>
/// (problem details) with a non-2xx status, which Refit raises as <see cref="ApiException"/>.
/// </summary>
public interface IUnkeyApi
{
    [Post("/v2/keys.createKey")]
    Task<UnkeyResponse<UnkeyCreatedKey>> CreateKeyAsync([Body] UnkeyCreateKey body, CancellationToken ct = default);

    /// <summary>Always 200 for a well-formed request: whether the key is good is in <see cref="UnkeyVerification.Code"/>.</summary>
    [Post("/v2/keys.verifyKey")]
    Task<UnkeyResponse<UnkeyVerification>> VerifyKeyAsync([Body] UnkeyVerifyKey body, CancellationToken ct = default);

    [Post("/v2/keys.updateKey")]
    Task<UnkeyResponse<JsonElement>> UpdateKeyAsync([Body] UnkeyUpdateKey body, CancellationToken ct = default);

    /// <summary>updateKey with every setting the Portal owns, <c>expires: null</c> included (it clears an expiry).</summary>
    [Post("/v2/keys.updateKey")]
    Task<UnkeyResponse<JsonElement>> UpdateKeySettingsAsync([Body] UnkeyKeySettings body, CancellationToken ct = default);

    [Post("/v2/keys.deleteKey")]
    Task<UnkeyResponse<JsonElement>> DeleteKeyAsync([Body] UnkeyDeleteKey body, CancellationToken ct = default);

    [Post("/v2/ratelimit.limit")]
    Task<UnkeyResponse<UnkeyLimitOutcome>> LimitAsync([Body] UnkeyLimit body, CancellationToken ct = default);
}

public sealed record UnkeyMeta(string RequestId);
public sealed record UnkeyResponse<T>(UnkeyMeta Meta, T Data);
public sealed record UnkeyErrorResponse(UnkeyMeta? Meta, UnkeyError? Error);
public sealed record UnkeyError(string Title, string Detail, int Status, string Type, UnkeyValidationError[]? Errors = null);
public sealed record UnkeyValidationError(string Location, string Message, string? Fix = null);

/// <summary>A rate limit held on a key: <paramref name="Duration"/> in milliseconds.</summary>
public sealed record UnkeyRatelimit(string Name, long Limit, long Duration, bool AutoApply = false);

public sealed record UnkeyCreateKey(string ApiId, string? Prefix = null, string? Name = null, int? ByteLength = null, string? ExternalId = null,
    Dictionary<string, string>? Meta = null, long? Expires = null, UnkeyRatelimit[]? Ratelimits = null, bool? Enabled = null);
public sealed record UnkeyCreatedKey(string KeyId, string Key);

/// <summary>A rate limit to check while verifying; <paramref name="Cost"/> 0 reads it without spending.</summary>
public sealed record UnkeyVerifyRatelimit(string Name, long? Cost = null, long? Limit = null, long? Duration = null);
public sealed record UnkeyVerifyKey(string Key, UnkeyVerifyRatelimit[]? Ratelimits = null, string[]? Tags = null);

public sealed record UnkeyVerification(bool Valid, string Code, string? KeyId = null, string? Name = null, JsonElement? Meta = null,
    long? Expires = null, bool? Enabled = null, UnkeyRatelimitState[]? Ratelimits = null)
{
    public const string ValidCode = "VALID", NotFound = "NOT_FOUND", Disabled = "DISABLED", Expired = "EXPIRED", RateLimited = "RATE_LIMITED";
}
public sealed record UnkeyRatelimitState(bool Exceeded, string Id, string Name, long Limit, long Duration, long Reset, long Remaining, bool AutoApply);

/// <summary>Only the fields set are sent: absent leaves them as they are in Unkey.</summary>
public sealed record UnkeyUpdateKey(string KeyId, string? Name = null, bool? Enabled = null, long? Expires = null, UnkeyRatelimit[]? Ratelimits = null);
public sealed record UnkeyKeySettings(string KeyId, string Name,
    [property: JsonIgnore(Condition = JsonIgnoreCondition.Never)] long? Expires, UnkeyRatelimit[] Ratelimits);
public sealed record UnkeyDeleteKey(string KeyId, bool? Permanent = null);

public sealed record UnkeyLimit(string Namespace, string Identifier, long Limit, long Duration, long? Cost = null);
public sealed record UnkeyLimitOutcome(long Limit, long Remaining, long Reset, bool Success);

public static class UnkeyJson
{
    public static readonly JsonSerializerOptions Options = new(JsonSerializerDefaults.Web)
    {
        DefaultIgnoreCondition = JsonIgnoreCondition.WhenWritingNull,
    };

    /// <summary>Unkey's error envelope of a failed call, when the body is one.</summary>
    public static UnkeyError? ErrorOf(ApiException ex)
    {
        try
        {
            return ex.Content is { Length: > 0 } content ? JsonSerializer.Deserialize<UnkeyErrorResponse>(content, Options)?.Error : null;
        }
        catch (JsonException)
        {
            return null;
        }
    }
}
