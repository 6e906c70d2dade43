using Cortensor.Api.Data;

namespace Cortensor.Api.Inference;

/// <summary>
/// What one authenticated /v1 request used, as it leaves the hot path for the ledger. EventId is
/// minted per request and is the ledger's idempotency key (a client-supplied request id may repeat).
/// TaskId is the router's task id (the network's record of the work), when a router answered.
/// </summary>
public sealed record UsageRecord(
    string EventId, string RequestId, Guid OrganizationId, Guid ApiKeyId, BillingMode BillingMode,
    string ModelId, string? PoolId, string? RouterId, long? SessionId,
    string Method, string Path, int Status, string? ErrorCode,
    int PromptTokens, int CompletionTokens, decimal Cost, int LatencyMs, int? TimeToFirstTokenMs, bool Streamed,
    DateTimeOffset CreatedAt,
    string? TaskId = null);
