using Cortensor.Api.Data;
using Cortensor.Api.Limits;

namespace Cortensor.Api.Inference;

/// <summary>
/// What one authenticated /v1 request used, as it leaves the hot path for the ledger. EventId is
/// minted per request and is the ledger's idempotency key (a client-supplied request id may repeat)
/// and the id of its reservation. CreatedAt is when the request was admitted: the month it is billed in.
/// <see cref="Hold"/> is the reservation the record settles, if the request was admitted through Redis.
/// </summary>
public sealed record UsageRecord(
    string EventId, string RequestId, Guid OrganizationId, Guid ApiKeyId, BillingMode BillingMode,
    string ModelId, string? PoolId, string? RouterId, long? SessionId,
    string Method, string Path, int Status, string? ErrorCode,
    int PromptTokens, int CompletionTokens, decimal Cost, int LatencyMs, int? TimeToFirstTokenMs, bool Streamed,
    DateTimeOffset CreatedAt, Hold? Hold = null);
