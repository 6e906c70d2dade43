using System.Diagnostics;
using Cortensor.Api.Catalog;
using Cortensor.Api.Errors;
using Cortensor.Api.Infrastructure;
using Cortensor.Api.Inference;
using Cortensor.Api.Keys;
using Cortensor.Api.Limits;
using Cortensor.Api.Routing;
using Cortensor.Api.Data;

namespace Cortensor.Api.Metering;

/// <summary>
/// Follows one request from admission to its end, whatever the end: success, refusal, router
/// failure or client disconnect. Settles the reservations with what was really used and hands
/// exactly one usage record to the meter.
/// </summary>
public sealed class UsageTracker(HttpContext http, KeySnapshot key, CatalogModel model, bool streamed, long started, TimeProvider clock)
{
    private readonly string _eventId = "evt_" + Guid.CreateVersion7().ToString("N");
    private int _status = StatusCodes.Status200OK, _promptTokens, _completionTokens;
    private string? _errorCode;
    private long _firstTokenAt;
    private bool _settled;

    public long Created { get; } = clock.GetUtcNow().ToUnixTimeSeconds();
    public RateLimitDecision? RateLimit { get; set; }
    public QuotaReservation? Reservation { get; set; }
    public RouteChoice? Route { get; set; }

    public string CompletionId(string prefix) => $"{prefix}-{_eventId[4..]}";

    public ErrorResult Fail(ApiError error)
    {
        _status = error.Status;
        _errorCode = error.Code;
        return error.ToResult();
    }

    public void FirstToken() => _firstTokenAt = Stopwatch.GetTimestamp();

    public void Succeeded(int promptTokens, int completionTokens) => (_promptTokens, _completionTokens) = (promptTokens, completionTokens);

    /// <summary>The stream ended badly after some output: what was generated is still billed.</summary>
    public void StreamFailed(ApiError error, int promptTokens, int completionTokens)
    {
        (_status, _errorCode) = (error.Status, error.Code);
        (_promptTokens, _completionTokens) = (promptTokens, completionTokens);
    }

    /// <summary>The client went away; tokens already generated (one per streamed chunk) are billed.</summary>
    public void ClientDisconnected()
    {
        _status = 499;
        _errorCode = "client_disconnected";
    }

    /// <summary>Kept current while streaming, so a disconnect at any point bills what was generated.</summary>
    public void Progress(int promptEstimate, int chunks) => (_promptTokens, _completionTokens) = (promptEstimate, chunks);

    public async Task SettleAsync(RateLimiter rateLimiter, QuotaGate quota, UsageMeter meter)
    {
        if (_settled) return;
        _settled = true;
        var cost = _promptTokens + _completionTokens == 0 ? 0m : Pricing.RoundForLedger(Pricing.Cost(model, _promptTokens, _completionTokens));
        var record = new UsageRecord(_eventId, http.GetRequestId(), key.OrganizationId, key.KeyId, key.BillingMode, model.Id,
            model.PoolId, Route?.Router.Id, Route?.Session, http.Request.Method, http.Request.Path.Value ?? "", _status, _errorCode,
            _promptTokens, _completionTokens, cost,
            (int)Stopwatch.GetElapsedTime(started).TotalMilliseconds,
            _firstTokenAt == 0 ? null : (int)Stopwatch.GetElapsedTime(started, _firstTokenAt).TotalMilliseconds,
            streamed, clock.GetUtcNow());

        // After the response is on its way: settling and metering never delay the client.
        var rateLimit = RateLimit;
        var reservation = Reservation;
        var actualTokens = _promptTokens + _completionTokens;
        http.Response.OnCompleted(async () =>
        {
            if (rateLimit is not null) await rateLimiter.SettleAsync(key, rateLimit, actualTokens);
            if (reservation is not null)
                await quota.SettleAsync(reservation, reservation.Mode == BillingMode.MonthlyQuota ? actualTokens : Pricing.ToUnits(cost));
            await meter.RecordAsync(record);
        });
        await Task.CompletedTask;
    }
}
