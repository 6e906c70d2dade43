using Cortensor.Api.Data;
using Cortensor.Api.Limits;

namespace Cortensor.Api.Metering;

/// <summary>
/// What one authenticated /v1 request used, as it leaves the hot path for the ledger. EventId is
/// minted per request and is the ledger's idempotency key (a client-supplied request id may repeat)
/// and the id of its reservation. CreatedAt is when the request was admitted: the month it is billed in.
/// <see cref="Hold"/> is the reservation the record settles, if the request was admitted through Redis.
/// TaskId is the router's task id (the network's record of the work), when a router answered.
/// TraceId is the W3C trace id of the request, when it was traced: the admin views link to the trace with it.
/// </summary>
public sealed record UsageRecord(
    string EventId, string RequestId, Guid OrganizationId, Guid ApiKeyId, BillingMode BillingMode,
    string ModelId, string? PoolId, string? RouterId, long? SessionId,
    string Method, string Path, int Status, string? ErrorCode,
    int PromptTokens, int CompletionTokens, decimal Cost, int LatencyMs, int? TimeToFirstTokenMs, bool Streamed,
    DateTimeOffset CreatedAt, Hold? Hold = null, string? TaskId = null, string? TraceId = null)
{
    /// <summary>
    /// The record with every stored string made storable (<see cref="LedgerText"/>): applied before the record is
    /// buffered and again by the writer, for records already in the stream or the spool. Lengths follow the schema.
    /// </summary>
    public UsageRecord Normalised() => this with
    {
        EventId = LedgerText.Identifier(EventId, 40),
        RequestId = LedgerText.Identifier(RequestId, 128),
        ModelId = LedgerText.Identifier(ModelId, 64),
        PoolId = LedgerText.OptionalIdentifier(PoolId, 64),
        RouterId = LedgerText.OptionalIdentifier(RouterId, 64),
        Method = LedgerText.Identifier(Method, 16),
        Path = LedgerText.Text(Path, 2048),
        ErrorCode = LedgerText.OptionalIdentifier(ErrorCode, 64),
        TaskId = LedgerText.OptionalIdentifier(TaskId, 128),
        TraceId = LedgerText.OptionalIdentifier(TraceId, 32),
    };
}
