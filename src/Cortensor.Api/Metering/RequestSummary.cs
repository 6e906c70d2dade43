using Cortensor.Api.Inference;

namespace Cortensor.Api.Metering;

/// <summary>One Information line per /v1 request, from the record the ledger gets: what an on-call engineer greps first.</summary>
public static partial class RequestSummary
{
    public static void Write(ILogger logger, UsageRecord r) =>
        Completed(logger, r.Method, r.Path, r.Status, r.ErrorCode ?? "-", r.ModelId, r.RouterId ?? "-", r.PromptTokens, r.CompletionTokens,
            r.Cost, r.LatencyMs, r.TimeToFirstTokenMs, r.RequestId, r.TraceId);

    [LoggerMessage(Level = LogLevel.Information,
        Message = "{Method} {Path} {Status} {ErrorCode} model {Model} router {Router}: {PromptTokens}+{CompletionTokens} tokens, {Cost} USD, {LatencyMs} ms (first token {TimeToFirstTokenMs} ms), request {RequestId}, trace {TraceId}")]
    private static partial void Completed(ILogger logger, string method, string path, int status, string errorCode, string model, string router,
        int promptTokens, int completionTokens, decimal cost, int latencyMs, int? timeToFirstTokenMs, string requestId, string? traceId);
}
