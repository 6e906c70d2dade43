using Microsoft.AspNetCore.Identity;

namespace Cortensor.Api.Data;

// The seed's entity list (SPEC §6) plus what the features need. Table and column names are
// snake_case (EFCore.NamingConventions) so operators can query them as the seed names them.

/// <summary>
/// A person who signs in to the Portal. ASP.NET Core Identity owns the password hash, lockout and
/// security stamp; the Portal adds the profile and the link to an external identity provider.
/// </summary>
public sealed class User : IdentityUser<Guid>
{
    public User() => Id = Guid.CreateVersion7();

    public string? DisplayName { get; set; }
    /// <summary>Issuer and subject of an external identity provider (Supabase Auth, Clerk), when the user came from one.</summary>
    public string? ExternalIssuer { get; set; }
    public string? ExternalSubject { get; set; }
    public bool IsAdmin { get; set; }
    public DateTimeOffset CreatedAt { get; set; } = DateTimeOffset.UtcNow;
}

/// <summary>
/// A refresh token, stored as a SHA-256 hash. Tokens rotate on every use; all tokens of one sign-in
/// share a family, and presenting an already-rotated token revokes the whole family (token theft).
/// </summary>
public sealed class RefreshToken
{
    public Guid Id { get; set; } = Guid.CreateVersion7();
    public Guid UserId { get; set; }
    public Guid FamilyId { get; set; }
    public required byte[] Hash { get; set; }
    public DateTimeOffset CreatedAt { get; set; }
    public DateTimeOffset ExpiresAt { get; set; }
    public DateTimeOffset? UsedAt { get; set; }
    public DateTimeOffset? RevokedAt { get; set; }
}

public enum OrganizationStatus { Active, Paused }

public sealed class Organization
{
    public Guid Id { get; set; } = Guid.CreateVersion7();
    public required string Name { get; set; }
    public OrganizationStatus Status { get; set; }
    public required string PlanId { get; set; }
    public DateTimeOffset CreatedAt { get; set; } = DateTimeOffset.UtcNow;
}

public enum MemberRole { Owner, Admin, Member }

public sealed class OrganizationMember
{
    public Guid OrganizationId { get; set; }
    public Guid UserId { get; set; }
    public MemberRole Role { get; set; }
    public DateTimeOffset CreatedAt { get; set; } = DateTimeOffset.UtcNow;
}

public enum BillingMode { MonthlyQuota, PrepaidCredits }

public sealed class Plan
{
    public required string Id { get; set; }
    public required string Name { get; set; }
    public BillingMode BillingMode { get; set; }
    public int RequestsPerMinute { get; set; }
    public int TokensPerMinute { get; set; }
    /// <summary>Tokens per calendar month (UTC) for quota plans; null on credit plans.</summary>
    public long? MonthlyTokenQuota { get; set; }
    /// <summary>Requests of the organisation in flight at once, across all its keys and replicas.</summary>
    public int MaxConcurrentRequests { get; set; } = 16;
    public decimal MonthlyPriceUsd { get; set; }
}

public sealed class PlanSubscription
{
    public Guid Id { get; set; } = Guid.CreateVersion7();
    public Guid OrganizationId { get; set; }
    public required string PlanId { get; set; }
    public DateTimeOffset StartsAt { get; set; } = DateTimeOffset.UtcNow;
    public DateTimeOffset? EndsAt { get; set; }
}

/// <summary>Allows a model to a plan, or to (or away from) one organisation.</summary>
public sealed class ModelAccessPolicy
{
    public Guid Id { get; set; } = Guid.CreateVersion7();
    public string? PlanId { get; set; }
    public Guid? OrganizationId { get; set; }
    public required string ModelId { get; set; }
    public bool Allowed { get; set; } = true;
}

public enum ApiKeyStatus { Active, Revoked, Paused }

public sealed class ApiKey
{
    public Guid Id { get; set; } = Guid.CreateVersion7();
    public Guid OrganizationId { get; set; }
    public Guid? CreatedByUserId { get; set; }
    public required string Name { get; set; }
    /// <summary>"live" or "test".</summary>
    public required string Environment { get; set; }
    /// <summary>The visible start of the key, for display (e.g. ctr_live_Ab3d).</summary>
    public required string Start { get; set; }
    /// <summary>SHA-256 of the whole key; the plaintext is never stored.</summary>
    public required byte[] Hash { get; set; }
    public ApiKeyStatus Status { get; set; }
    public DateTimeOffset? ExpiresAt { get; set; }
    /// <summary>Restriction to these model aliases; empty means every model the plan allows.</summary>
    public List<string> AllowedModels { get; set; } = [];
    public int? RequestsPerMinute { get; set; }
    public int? TokensPerMinute { get; set; }
    public DateTimeOffset CreatedAt { get; set; } = DateTimeOffset.UtcNow;
    public DateTimeOffset? LastUsedAt { get; set; }
    public DateTimeOffset? RevokedAt { get; set; }
}

public sealed class Model
{
    /// <summary>The public alias customers send, e.g. gpt-oss-20b.</summary>
    public required string Id { get; set; }
    public required string DisplayName { get; set; }
    /// <summary>Prompt template family (gpt-oss, gemma, qwen).</summary>
    public required string Family { get; set; }
    public decimal InputPricePer1K { get; set; }
    public decimal OutputPricePer1K { get; set; }
    public int ContextWindow { get; set; }
    public bool Enabled { get; set; } = true;
    public DateTimeOffset CreatedAt { get; set; }
    /// <summary>The router task's <c>timeout</c> in seconds; null takes Routing:DefaultTimeoutSeconds.</summary>
    public int? TimeoutSeconds { get; set; }
    /// <summary>The router task's <c>precommit_timeout</c> in seconds; null takes Routing:DefaultPrecommitTimeoutSeconds.</summary>
    public int? PrecommitTimeoutSeconds { get; set; }
}

public sealed class RouterPool
{
    public required string Id { get; set; }
    public bool Draining { get; set; }
    public DateTimeOffset CreatedAt { get; set; }
    /// <summary>Router completions API: 1 (/api/v1/completions) or 3 (/api/v3/completions); null is 1.</summary>
    public int? ApiVersion { get; set; }
    /// <summary>Optional request fields the pool's routers accept; not sent otherwise.</summary>
    public bool SupportsSeed { get; set; }
    public bool SupportsPenalties { get; set; }
    public bool SupportsTopK { get; set; }
}

/// <summary>Which pool serves a model alias, and under what backend model name.</summary>
public sealed class RouterPoolModel
{
    public required string ModelId { get; set; }
    public required string PoolId { get; set; }
    public required string BackendModel { get; set; }
}

public sealed class Router
{
    public required string Id { get; set; }
    public required string PoolId { get; set; }
    /// <summary>Base address; a bare service name (http://router-x) is resolved by service discovery.</summary>
    public required string BaseUrl { get; set; }
    public bool Enabled { get; set; } = true;
    public DateTimeOffset CreatedAt { get; set; }
}

/// <summary>A dedicated session on a router node.</summary>
public sealed class RouterSession
{
    public long Id { get; set; }
    public required string RouterId { get; set; }
    public bool Enabled { get; set; } = true;
}

public sealed class UsageEvent
{
    /// <summary>Minted once per request; the idempotency key of the metering pipeline.</summary>
    public required string EventId { get; set; }
    /// <summary>The request id the client saw (its own X-Request-Id, or one we minted).</summary>
    public required string RequestId { get; set; }
    public Guid OrganizationId { get; set; }
    public Guid ApiKeyId { get; set; }
    public required string ModelId { get; set; }
    public string? PoolId { get; set; }
    public string? RouterId { get; set; }
    public long? SessionId { get; set; }
    public int Status { get; set; }
    public int PromptTokens { get; set; }
    public int CompletionTokens { get; set; }
    public decimal Cost { get; set; }
    public int LatencyMs { get; set; }
    public int? TimeToFirstTokenMs { get; set; }
    public bool Streamed { get; set; }
    public DateTimeOffset CreatedAt { get; set; }
    /// <summary>The router's task id: the link to the network's own record of the work.</summary>
    public string? TaskId { get; set; }
    /// <summary>The W3C trace id of the request (32 hex digits): the link to its trace.</summary>
    [System.ComponentModel.DataAnnotations.MaxLength(32)]
    public string? TraceId { get; set; }
}

public sealed class RequestLog
{
    public required string EventId { get; set; }
    public required string RequestId { get; set; }
    public Guid? OrganizationId { get; set; }
    public Guid? ApiKeyId { get; set; }
    public string? ModelId { get; set; }
    public required string Method { get; set; }
    public required string Path { get; set; }
    public int Status { get; set; }
    public string? ErrorCode { get; set; }
    public int LatencyMs { get; set; }
    public DateTimeOffset CreatedAt { get; set; }
    /// <summary>The router's task id, when a router took the request.</summary>
    public string? TaskId { get; set; }
    /// <summary>The W3C trace id of the request (32 hex digits): the link to its trace.</summary>
    [System.ComponentModel.DataAnnotations.MaxLength(32)]
    public string? TraceId { get; set; }
}

/// <summary>Per organisation, key, model and UTC day: what the usage charts read (90 days stay cheap).</summary>
public sealed class UsageDaily
{
    public Guid OrganizationId { get; set; }
    public Guid ApiKeyId { get; set; }
    public required string ModelId { get; set; }
    public DateOnly Day { get; set; }
    public long Requests { get; set; }
    public long Errors { get; set; }
    public long PromptTokens { get; set; }
    public long CompletionTokens { get; set; }
    public decimal Cost { get; set; }
}

public enum LedgerEntryKind { Grant, TopUp, Usage, Adjustment }

public sealed class BillingLedgerEntry
{
    public long Id { get; set; }
    public Guid OrganizationId { get; set; }
    public LedgerEntryKind Kind { get; set; }
    /// <summary>Positive for credit added, negative for usage debits.</summary>
    public decimal Amount { get; set; }
    public long Tokens { get; set; }
    /// <summary>What caused the entry: a request id for usage, an admin action id for grants. Unique per kind.</summary>
    public required string Reference { get; set; }
    public string? Description { get; set; }
    public DateTimeOffset CreatedAt { get; set; } = DateTimeOffset.UtcNow;
}

public sealed class AuditLogEntry
{
    public long Id { get; set; }
    public Guid? ActorUserId { get; set; }
    public required string Actor { get; set; }
    public required string Action { get; set; }
    public required string TargetType { get; set; }
    public required string TargetId { get; set; }
    public string? Before { get; set; }
    public string? After { get; set; }
    public DateTimeOffset CreatedAt { get; set; } = DateTimeOffset.UtcNow;
}
