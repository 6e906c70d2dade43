using Cortensor.Api.Errors;
using Cortensor.Api.Inference;
using Cortensor.Api.Infrastructure;
using Cortensor.Api.Keys;
using Cortensor.Api.Limits;
using Cortensor.Api.Metering;
using Microsoft.AspNetCore.Http.Features;
using Microsoft.Extensions.Options;

namespace Cortensor.Api.Idempotency;

/// <summary>
/// <c>Idempotency-Key</c> on the /v1 POST endpoints, after the key check: the same API key, Idempotency-Key
/// and body within the retention period run once (one router call, one ledger entry) and are then answered
/// with the stored answer, streams included (the same events again). Only a request that ran to a whole
/// answer is stored (Stripe's rule: results of requests that executed); a refusal, a failure or a client
/// that went away lets go of the key, so the retry runs as a new request.
/// </summary>
public sealed partial class IdempotencyFilter(IdempotencyStore store, IOptions<IdempotencyOptions> options,
    IOptions<InferenceOptions> inference, IOptions<LimitsOptions> limits, UsageTrackers trackers, ReplayLimiter replays, ILogger<IdempotencyFilter> log) : IEndpointFilter
{
    public const string Header = "Idempotency-Key";
    public const string ReplayedHeader = "Idempotent-Replayed";
    public const string OriginalRequestHeader = "Idempotency-Original-Request-Id";
    private const int MaxKeyLength = 255;

    public async ValueTask<object?> InvokeAsync(EndpointFilterInvocationContext context, EndpointFilterDelegate next)
    {
        var http = context.HttpContext;
        if (!http.Request.Headers.TryGetValue(Header, out var values)) return await next(context);
        var key = http.GetKey();
        if (values.Count != 1 || values[0] is not { Length: > 0 and <= MaxKeyLength } idempotencyKey || !idempotencyKey.All(c => c is >= ' ' and <= '~'))
            return Refused(http, key, null, ApiError.InvalidIdempotencyKey());

        byte[]? body;
        try
        {
            body = await BufferAsync(http, inference.Value.MaxRequestBytes);
        }
        catch (Exception ex) when (ex is OperationCanceledException or IOException or BadHttpRequestException)
        {
            if (!http.RequestAborted.IsCancellationRequested && ex is BadHttpRequestException bad)
                return Refused(http, key, null, ApiError.BadRequest(bad.Message));
            var left = Track(http, key, null);
            left.ClientDisconnected();
            left.Complete();
            return Results.Empty;
        }
        if (body is null) return Refused(http, key, null, ApiError.BodyTooLarge(inference.Value.MaxRequestBytes));

        var record = IdempotencyStore.RecordKey(key.OrganizationId, key.KeyId, idempotencyKey);
        var owner = http.GetRequestId();
        // A request cannot outlive its reservation, so neither can its claim.
        var endpoint = (http.GetEndpoint() as RouteEndpoint)?.RoutePattern.RawText ?? http.Request.Path.Value!;
        var bodyHash = CanonicalBody.Request(endpoint, body);
        var claim = await store.ClaimAsync(record, bodyHash, owner, TimeSpan.FromSeconds(limits.Value.ReservationSeconds));
        switch (claim.Outcome)
        {
            case ClaimOutcome.Unavailable: return Refused(http, key, body, ApiError.DependencyUnavailable("Idempotency keys"));
            case ClaimOutcome.Mismatch: return Refused(http, key, body, ApiError.IdempotencyKeyReused());
            case ClaimOutcome.InProgress: return Refused(http, key, body, ApiError.IdempotencyInProgress(claim.RetryAfterSeconds));
            case ClaimOutcome.NotRetained: return Refused(http, key, body, ApiError.IdempotentAnswerNotRetained(claim.RequestId));
            case ClaimOutcome.Stored:
                if (replays.Refuse(key) is { } retryAfter)
                    return Refused(http, key, body, ApiError.RateLimited("replays of answers (the key's and its organisation's requests per minute, on each server)", retryAfter));
                var stored = await store.AnswerAsync(record, bodyHash);
                switch (stored.Outcome)
                {
                    case ClaimOutcome.Unavailable: return Refused(http, key, body, ApiError.DependencyUnavailable("Idempotency keys"));
                    case ClaimOutcome.Mismatch: return Refused(http, key, body, ApiError.IdempotencyKeyReused());
                    case ClaimOutcome.InProgress: return Refused(http, key, body, ApiError.IdempotencyInProgress(stored.RetryAfterSeconds));
                    case ClaimOutcome.NotRetained: return Refused(http, key, body, ApiError.IdempotentAnswerNotRetained(stored.RequestId));
                }
                Track(http, key, body).Complete();
                return Replay(stored.Answer!);
        }

        http.Request.Body = new MemoryStream(body, writable: false);
        var original = http.Features.Get<IHttpResponseBodyFeature>()!;
        var capture = new CapturingStream(original.Stream, http.Response, options.Value.MaxCapturedBytes);
        var teed = new StreamResponseBodyFeature(capture, original);
        http.Features.Set<IHttpResponseBodyFeature>(teed);
        try
        {
            // The answer is written here rather than by the framework, so what the client got is what is kept.
            var result = await next(context);
            if (result is IResult answer) await answer.ExecuteAsync(http);
            await teed.CompleteAsync();
        }
        catch
        {
            await store.ReleaseAsync(record, owner);
            throw;
        }
        finally
        {
            http.Features.Set(original);
        }

        // Whole answers only: a stream that failed after its 200 is metered as failed, and a client that left as 499.
        var ran = http.Response.StatusCode == StatusCodes.Status200OK && http.Features.Get<RequestOutcome>() is { Status: StatusCodes.Status200OK };
        try
        {
            if (ran) await store.SaveAsync(record, owner, http.Response.StatusCode, http.Response.ContentType ?? "application/json", capture.Captured);
            else await store.ReleaseAsync(record, owner);
        }
        finally
        {
            // A whole answer reaches the client only now, when a retry with this key finds it stored (or free); and
            // it reaches the client even when the store failed in a way it does not handle: the request ran and was billed.
            try
            {
                await capture.ReleaseAsync(http.RequestAborted);
            }
            catch (Exception ex) when (http.RequestAborted.IsCancellationRequested && ex is OperationCanceledException or IOException)
            {
                // The client left; a retry with the key is answered from the store.
            }
        }
        return Results.Empty;
    }

    /// <summary>
    /// The usage record of a request answered here rather than by the endpoint: a refusal, a replay (status 200), a client
    /// gone. Every authenticated request leaves one, so its request id finds it in the request log; none carries tokens
    /// or a charge.
    /// </summary>
    private UsageTracker Track(HttpContext http, KeySnapshot key, byte[]? body)
    {
        var usage = trackers.Start(http, key);
        if (body is not null && RequestReader.Requested(body) is var (model, stream)) usage.Requested(model, stream);
        return usage;
    }

    private ErrorResult Refused(HttpContext http, KeySnapshot key, byte[]? body, ApiError error)
    {
        var usage = Track(http, key, body);
        var refused = usage.Fail(error);
        usage.Complete();
        return refused;
    }

    /// <summary>The body in memory (it is hashed, then read by the endpoint), or null when it exceeds the limit.</summary>
    private static async Task<byte[]?> BufferAsync(HttpContext http, long limit)
    {
        if (http.Request.ContentLength > limit) return null;
        if (http.Features.Get<IHttpMaxRequestBodySizeFeature>() is { IsReadOnly: false } size) size.MaxRequestBodySize = limit;
        using var buffer = new MemoryStream();
        try
        {
            await http.Request.Body.CopyToAsync(buffer, http.RequestAborted);
        }
        catch (BadHttpRequestException ex) when (ex.StatusCode == StatusCodes.Status413PayloadTooLarge)
        {
            return null;
        }
        return buffer.Length > limit ? null : buffer.ToArray();
    }

    private IResult Replay(StoredAnswer answer) => new ReplayResult(answer, log);

    /// <summary>The stored answer as it was sent the first time, marked as a replay.</summary>
    private sealed class ReplayResult(StoredAnswer answer, ILogger log) : IResult
    {
        public async Task ExecuteAsync(HttpContext http)
        {
            Replayed(log, answer.RequestId, http.GetRequestId());
            http.Response.StatusCode = answer.Status;
            http.Response.ContentType = answer.ContentType;
            if (answer.ContentType.StartsWith("text/event-stream", StringComparison.Ordinal)) http.Response.Headers.CacheControl = "no-cache";
            http.Response.Headers[ReplayedHeader] = "true";
            http.Response.Headers[OriginalRequestHeader] = answer.RequestId;
            http.Response.ContentLength = answer.Body.Length;
            await http.Response.Body.WriteAsync(answer.Body, http.RequestAborted);
        }
    }

    [LoggerMessage(Level = LogLevel.Information, Message = "Idempotency-Key: request {RequestId} answered with the stored answer of request {OriginalRequestId}")]
    private static partial void Replayed(ILogger logger, string originalRequestId, string requestId);
}
