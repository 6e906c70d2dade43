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
    public UsageRecord Normalised()
    {
        var eventId = LedgerText.Identifier(EventId, 40);
        var requestId = LedgerText.Identifier(RequestId, 128);
        var modelId = LedgerText.Identifier(ModelId, 64);
        var poolId = LedgerText.OptionalIdentifier(PoolId, 64);
        var routerId = LedgerText.OptionalIdentifier(RouterId, 64);
        var method = LedgerText.Identifier(Method, 16);
        var path = LedgerText.Text(Path, 2048);
        var errorCode = LedgerText.OptionalIdentifier(ErrorCode, 64);
        var taskId = LedgerText.OptionalIdentifier(TaskId, 128);
        var traceId = LedgerText.OptionalIdentifier(TraceId, 32);
        // LedgerText hands back the very string it was given when that is storable already, as nearly every record's
        // are: the record itself is then normal, and no copy is made (it is normalised twice on its way to the ledger).
        if (ReferenceEquals(eventId, EventId) && ReferenceEquals(requestId, RequestId) && ReferenceEquals(modelId, ModelId)
            && ReferenceEquals(poolId, PoolId) && ReferenceEquals(routerId, RouterId) && ReferenceEquals(method, Method)
            && ReferenceEquals(path, Path) && ReferenceEquals(errorCode, ErrorCode) && ReferenceEquals(taskId, TaskId)
            && ReferenceEquals(traceId, TraceId))
            return this;
        return this with
        {
            EventId = eventId, RequestId = requestId, ModelId = modelId, PoolId = poolId, RouterId = routerId,
            Method = method, Path = path, ErrorCode = errorCode, TaskId = taskId, TraceId = traceId,
        };
    }
}
