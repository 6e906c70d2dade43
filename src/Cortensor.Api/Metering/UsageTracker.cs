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
/// What one /v1 request used, kept as it goes. After the response it hands exactly one usage record
/// to the meter, which settles the request's reservation with it (or spools both). The charge never
/// exceeds what was reserved: tokens are bounded before they get here and the cost is capped again.
/// </summary>
public sealed class UsageTracker(HttpContext http, KeySnapshot key, UsageMeter meter, SettlementQueue settlements, LocalAdmission local, TimeProvider clock)
{
    private const int MaxModelLength = 64;
    private static readonly TimeSpan ProgressEvery = TimeSpan.FromSeconds(1);
    // Latency counts from the request's arrival, authentication included.
    private readonly long _started = http.ArrivedAt();
    private readonly string _eventId = SortableId.New("evt_");
    private readonly string? _traceId = Activity.Current?.TraceId.ToHexString();
    private string _requestedModel = "";
    private bool _streamed, _completed;
    private int _status = StatusCodes.Status200OK, _promptTokens, _completionTokens;
    private string? _errorCode;
    private long _firstTokenAt, _progressAt;

    /// <summary>When the request was admitted: the month and day it is billed in.</summary>
    public DateTimeOffset CreatedAt { get; } = clock.GetUtcNow();
    public long Created => CreatedAt.ToUnixTimeSeconds();
    public CatalogModel? Model { get; set; }
    public Admission? Admission { get; set; }
    public RouteChoice? Route { get; set; }
    /// <summary>The router's task id, kept in the usage record and the request log.</summary>
    public string? TaskId { get; set; }

    /// <summary>The time spent waiting on routers: the rest of the request's time is the Portal's own.</summary>
    public RouterWait RouterWait { get; } = new();

    /// <summary>The router's task id goes into the usage record, the request log and the trace.</summary>
    public void KeepTaskId(string? taskId)
    {
        if (taskId is null) return;
        TaskId = taskId;
        Activity.Current?.SetTag("cortensor.task_id", taskId);
    }

    public string CompletionId(string prefix) => CompletionIdOf(_eventId, prefix);

    /// <summary>The id a client saw in the answer (chatcmpl-…, cmpl-…) is the event id under another prefix: nothing more to store.</summary>
    public static string CompletionIdOf(string eventId, string prefix) => $"{prefix}-{eventId[4..]}";

    /// <summary>The event id behind a completion id, or null when <paramref name="completionId"/> is not one.</summary>
    public static string? EventIdOf(string completionId)
    {
        var dash = completionId.IndexOf('-');
        var id = dash > 0 ? completionId[(dash + 1)..] : "";
        return id.Length == 32 && id.All(char.IsAsciiHexDigitLower) ? "evt_" + id : null;
    }

    public void Requested(string model, bool streamed) =>
        (_requestedModel, _streamed) = (LedgerText.Identifier(model, MaxModelLength), streamed);

    public ErrorResult Fail(ApiError error)
    {
        (_status, _errorCode) = (error.Status, error.Code);
        return error.ToResult();
    }

    /// <summary>What the request is charged for so far, as the client's usage object, its cost included.</summary>
    public Usage Tokens => new(_promptTokens, _completionTokens, _promptTokens + _completionTokens, Cost,
        new CompletionTokensDetails(Math.Min(_reasoningTokens, _completionTokens)));

    /// <summary>How many of the completion tokens the customer was not shown (a gpt-oss answer's reasoning).</summary>
    public void Reasoned(int tokens) => _reasoningTokens = tokens;
    private int _reasoningTokens;

    /// <summary>What the request is billed for its tokens so far: the figure the ledger gets (<see cref="Pricing.Bill"/>).</summary>
    /// <remarks>A request admitted from a lease is billed at the model's prices, never above the amount it took from the lease.</remarks>
    public decimal Cost => Admission?.Lease is { Credits: true } leased
        ? Pricing.FromUnits(leased.Charge(_promptTokens, _completionTokens, Pricing.Bill(Model, null, _promptTokens, _completionTokens)))
        : Pricing.Bill(Model, Admission?.Hold, _promptTokens, _completionTokens);

    /// <summary>The cost as a header too, for clients that read no body (LiteLLM's convention); non-streamed answers only.</summary>
    public void TellCost() =>
        http.Response.Headers[CostHeader] = Cost.ToString(System.Globalization.CultureInfo.InvariantCulture);

    public const string CostHeader = "x-cortensor-cost";

    public void FirstToken() => _firstTokenAt = Stopwatch.GetTimestamp();

    /// <summary>What the request is charged for, already bounded (see <see cref="UsageBounds"/>).</summary>
    public void Charge(int promptTokens, int completionTokens) => (_promptTokens, _completionTokens) = (promptTokens, completionTokens);

    /// <summary>Kept current while streaming: a disconnect bills what was generated, and so does the reaper if this replica dies.</summary>
    public void Progress(int promptTokens, int completionTokens)
    {
        Charge(promptTokens, completionTokens);
        if (Admission?.Hold is null || Stopwatch.GetElapsedTime(_progressAt) < ProgressEvery) return;
        _progressAt = Stopwatch.GetTimestamp();
        meter.ReportProgress(key.OrganizationId, _eventId, promptTokens, completionTokens);
    }

    /// <summary>The answer ended badly; what it used is still charged.</summary>
    public void Failed(ApiError error) => (_status, _errorCode) = (error.Status, error.Code);

    public void ClientDisconnected() => (_status, _errorCode) = (499, "client_disconnected");

    /// <summary>The request's span carries its outcome: model, pool, router, status and error code.</summary>
    public void Tag(Activity? trace)
    {
        if (trace is null) return;
        trace.SetTag("cortensor.model", Model?.Id ?? _requestedModel);
        if (Model is not null) trace.SetTag("cortensor.pool", Model.PoolId);
        if (Route is not null) trace.SetTag("cortensor.router", Route.Router.Id);
        trace.SetTag("cortensor.status", _status);
        if (_errorCode is not null)
        {
            trace.SetTag("cortensor.error_code", _errorCode);
            trace.SetStatus(ActivityStatusCode.Error, _errorCode);
        }
    }

    /// <summary>The record the reservation is filed with: what the reaper bills if nobody settles it.</summary>
    public UsageRecord Draft(CatalogModel model) => Record(model, 499, "request_abandoned", 0, 0, 0m, null, Stopwatch.GetTimestamp());

    public void Complete()
    {
        if (_completed) return;
        _completed = true;
        var admission = Admission;
        // One end for the record's latency and the Portal's own time, so the two add up to the same request.
        var end = Stopwatch.GetTimestamp();
        var record = Record(Model, _status, _errorCode, _promptTokens, _completionTokens, Cost, admission?.Hold, end);
        if (admission is { Local: true, Admitted: true })
            local.Release(key, admission.Window, _promptTokens + _completionTokens - admission.ReservedTokens);
        http.Features.Set(new RequestOutcome(_status));
        PortalMetrics.RecordRequest(record, OwnTime(end));
        RequestSummary.Write(http.RequestServices.GetRequiredService<ILogger<UsageTracker>>(), record);
        // Settlement leaves the response path: the lease files it, or the queue sends it with others'.
        if (admission?.Lease is { } lease) http.Response.OnCompleted(() => { lease.Complete(record); return Task.CompletedTask; });
        else http.Response.OnCompleted(() => { settlements.Record(record); return Task.CompletedTask; });
    }

    /// <summary>
    /// The Portal's own time on a request a router was tried for: from arrival to the answer (to the first token of a stream,
    /// the rest of a stream being the router's pace), less the time spent waiting on routers. Null when no router was tried.
    /// </summary>
    private TimeSpan? OwnTime(long end)
    {
        if (RouterWait.Attempts == 0) return null;
        if (_streamed && _firstTokenAt != 0) end = _firstTokenAt;
        var own = Stopwatch.GetElapsedTime(_started, end) - RouterWait.Total;
        return own < TimeSpan.Zero ? TimeSpan.Zero : own;
    }

    private UsageRecord Record(CatalogModel? model, int status, string? errorCode, int prompt, int completion, decimal cost, Hold? hold, long end) => new(
        _eventId, http.GetRequestId(), key.OrganizationId, key.KeyId, key.BillingMode,
        model?.Id ?? _requestedModel, model?.PoolId, Route?.Router.Id, Route?.Session, http.Request.Method, http.Request.Path.Value ?? "",
        status, errorCode, prompt, completion, cost,
        (int)Stopwatch.GetElapsedTime(_started, end).TotalMilliseconds,
        _firstTokenAt == 0 ? null : (int)Stopwatch.GetElapsedTime(_started, _firstTokenAt).TotalMilliseconds,
        _streamed, CreatedAt, hold, TaskId, _traceId);
}

/// <summary>Starts the one usage record of each authenticated /v1 request, wherever it is answered (the handler, the idempotency filter).</summary>
/// <summary>Marks an endpoint every request of an identified key leaves a usage record for, refused or served.</summary>
public sealed class MeteredEndpoint;

public sealed class UsageTrackers(UsageMeter meter, SettlementQueue settlements, LocalAdmission local, TimeProvider clock)
{
    public UsageTracker Start(HttpContext http, KeySnapshot key) => new(http, key, meter, settlements, local, clock);
}

/// <summary>A /v1 request's final status as metered (a stream that failed after its 200 says so): what later steps judge it by.</summary>
public sealed record RequestOutcome(int Status);
