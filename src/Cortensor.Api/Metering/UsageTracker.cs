using System.Diagnostics;
using Cortensor.Api.Catalog;
using Cortensor.Api.Errors;
using Cortensor.Api.Infrastructure;
using Cortensor.Api.Inference;
using Cortensor.Api.Keys;
using Cortensor.Api.Limits;
using Cortensor.Api.Routing;

namespace Cortensor.Api.Metering;

/// <summary>
/// Follows one authenticated request to its end, whatever the end: success, refusal, router failure or
/// client disconnect. Gives back the unused part of its reservation and hands exactly one usage record
/// to the meter, both after the response has gone, in one Redis round trip.
/// </summary>
public sealed class UsageTracker(HttpContext http, KeySnapshot key, TimeProvider clock)
{
    private const int MaxModelLength = 64;
    private readonly long _started = Stopwatch.GetTimestamp();
    private readonly string _eventId = "evt_" + Guid.CreateVersion7().ToString("N");
    private string _requestedModel = "";
    private bool _streamed, _completed;
    private int _status = StatusCodes.Status200OK, _promptTokens, _completionTokens;
    private string? _errorCode;
    private long _firstTokenAt;

    public long Created { get; } = clock.GetUtcNow().ToUnixTimeSeconds();
    public CatalogModel? Model { get; set; }
    public Admission? Admission { get; set; }
    public RouteChoice? Route { get; set; }
    /// <summary>The router's task id, kept in the usage record and the request log.</summary>
    public string? TaskId { get; set; }

    public string CompletionId(string prefix) => $"{prefix}-{_eventId[4..]}";

    public void Requested(string model, bool streamed) =>
        (_requestedModel, _streamed) = (model.Length > MaxModelLength ? model[..MaxModelLength] : model, streamed);

    public ErrorResult Fail(ApiError error)
    {
        (_status, _errorCode) = (error.Status, error.Code);
        return error.ToResult();
    }

    public void FirstToken() => _firstTokenAt = Stopwatch.GetTimestamp();

    public void Succeeded(int promptTokens, int completionTokens) => (_promptTokens, _completionTokens) = (promptTokens, completionTokens);

    /// <summary>Kept current while streaming, so a disconnect at any point bills what was generated.</summary>
    public void Progress(int promptEstimate, int chunks) => (_promptTokens, _completionTokens) = (promptEstimate, chunks);

    /// <summary>The stream ended badly after some output: what was generated is still billed.</summary>
    public void StreamFailed(ApiError error, int promptTokens, int completionTokens)
    {
        (_status, _errorCode) = (error.Status, error.Code);
        (_promptTokens, _completionTokens) = (promptTokens, completionTokens);
    }

    public void ClientDisconnected() => (_status, _errorCode) = (499, "client_disconnected");

    public void Complete(AdmissionGate admissions, UsageMeter meter)
    {
        if (_completed) return;
        _completed = true;
        var tokens = _promptTokens + _completionTokens;
        var cost = tokens == 0 || Model is null ? 0m : Pricing.RoundForLedger(Pricing.Cost(Model, _promptTokens, _completionTokens));
        var record = new UsageRecord(_eventId, http.GetRequestId(), key.OrganizationId, key.KeyId, key.BillingMode,
            Model?.Id ?? _requestedModel, Model?.PoolId, Route?.Router.Id, Route?.Session, http.Request.Method, http.Request.Path.Value ?? "",
            _status, _errorCode, _promptTokens, _completionTokens, cost,
            (int)Stopwatch.GetElapsedTime(_started).TotalMilliseconds,
            _firstTokenAt == 0 ? null : (int)Stopwatch.GetElapsedTime(_started, _firstTokenAt).TotalMilliseconds,
            _streamed, clock.GetUtcNow(), TaskId);

        var admission = Admission;
        http.Response.OnCompleted(() => admission is null
            ? meter.RecordAsync(record)
            : admissions.SettleAsync(key, admission, tokens, cost, batch => meter.RecordAsync(record, batch)));
    }
}
