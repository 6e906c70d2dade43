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
    int OrganizationRequestsPerMinute, int OrganizationTokensPerMinute, int MaxConcurrentRequests,
    KeyBudget? Budget = null, string KeyName = "", DateTimeOffset? RetiredSecretExpiresAt = null, bool RetiredSecret = false)
{
    // Budget: the key's spending limit. A key with one must be admitted by the exact, per-request admission script
    // (AdmissionGate), never from a lease or by one replica alone: only the script reserves against the budget atomically.
    // RetiredSecret: this snapshot was found by the secret a rotation replaced; it works until RetiredSecretExpiresAt.
    // RequestsPerMinute and TokensPerMinute are the key's own (never above the plan's); the
    // Organization* limits and MaxConcurrentRequests are the plan's, shared by every key of the organisation.

    public bool MayUse(string model) => Array.IndexOf(Models, model) >= 0;

    /// <summary>True when admission must go through the exact per-request script (a key budget is checked there).</summary>
    public bool NeedsExactAdmission => Budget is not null;

    public static string CacheKey(byte[] hash) => "key:v3:" + Convert.ToHexStringLower(hash);
    public static string OrganizationTag(Guid organizationId) => "org:" + organizationId.ToString("N");
}
