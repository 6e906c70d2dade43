using Cortensor.Api.Data;

namespace Cortensor.Api.Keys;

/// <summary>
/// Everything the hot path needs about a key, resolved in one lookup: key and organisation state,
/// plan, the models it may use and its limits. Cached in process and in Redis; Postgres only on a miss.
/// </summary>
public sealed record KeySnapshot(
    Guid KeyId, Guid OrganizationId, ApiKeyStatus KeyStatus, DateTimeOffset? ExpiresAt,
    OrganizationStatus OrganizationStatus, string PlanId, BillingMode BillingMode,
    string[] Models, int RequestsPerMinute, int TokensPerMinute, long? MonthlyTokenQuota,
    int OrganizationRequestsPerMinute, int OrganizationTokensPerMinute, int MaxConcurrentRequests)
{
    // RequestsPerMinute and TokensPerMinute are the key's own (never above the plan's); the
    // Organization* limits and MaxConcurrentRequests are the plan's, shared by every key of the organisation.

    public bool MayUse(string model) => Array.IndexOf(Models, model) >= 0;

    public static string CacheKey(byte[] hash) => "key:v2:" + Convert.ToHexStringLower(hash);
    public static string OrganizationTag(Guid organizationId) => "org:" + organizationId.ToString("N");
    public static string PlanTag(string planId) => "plan:" + planId;
    /// <summary>Every snapshot carries it: model-access changes drop them all.</summary>
    public const string AllTag = "keys";
}
