using System.Diagnostics;
using Cortensor.Api.Data;
using Cortensor.Api.Errors;
using Cortensor.Api.Infrastructure;
using Cortensor.Api.Metering;

namespace Cortensor.Api.Keys;

/// <summary>
/// Step 2 of the hot path, applied to the whole /v1 group: the Bearer key is checked once and the
/// caller's snapshot is available to every handler through <see cref="CurrentKey"/>.
/// </summary>
public sealed partial class ApiKeyFilter(EntitlementCache entitlements, FailedKeyThrottle failures, TimeProvider clock, ILogger<ApiKeyFilter> log) : IEndpointFilter
{
    public async ValueTask<object?> InvokeAsync(EndpointFilterInvocationContext context, EndpointFilterDelegate next)
    {
        var http = context.HttpContext;
        using (var span = Telemetry.StartStep("authenticate"))
        {
            var error = await AuthenticateAsync(http);
            if (error is not null)
            {
                span?.SetStatus(ActivityStatusCode.Error, error.Code);
                // A key that is not the customer's (or none) leaves no usage record: this line (with the request id in its
                // scope) is how such a refusal is found by its request id.
                Refused(log, http.Request.Method, http.Request.Path.Value ?? "", error.Status, error.Code, http.GetRequestId(),
                    FailedKeyThrottle.ClientOf(http));
                return error.ToResult();
            }
        }
        return await next(context);
    }

    internal async ValueTask<ApiError?> AuthenticateAsync(HttpContext http)
    {
        var header = http.Request.Headers.Authorization.ToString();
        if (header.Length == 0) return ApiError.MissingKey();
        var client = FailedKeyThrottle.ClientOf(http);
        var throttled = failures.IsThrottled(client, out var retryAfter);
        var key = header.StartsWith("Bearer ", StringComparison.OrdinalIgnoreCase) ? header.AsSpan(7).Trim() : [];
        if (!ApiKeyFormat.LooksValid(key))
        {
            failures.RecordFailure(client);
            return throttled ? ApiError.TooManyFailedAuthentications(retryAfter) : ApiError.InvalidKey();
        }

        var presented = key.ToString();
        var hash = ApiKeyFormat.Hash(presented);
        var (outcome, snapshot) = await entitlements.LookupAsync(hash, http.RequestAborted, databaseAllowed: !throttled, presentedKey: presented);
        switch (outcome)
        {
            case KeyLookupOutcome.Unavailable: return ApiError.DependencyUnavailable("Key verification");
            case KeyLookupOutcome.Unknown or KeyLookupOutcome.NotCached:
                failures.RecordFailure(client);
                // Throttled, a cached "unknown" answers the same as an unasked one: nothing to learn by probing.
                return throttled ? ApiError.TooManyFailedAuthentications(retryAfter) : ApiError.InvalidKey();
        }
        var s = snapshot!;
        if (Refusal(s) is { } refused)
        {
            // A key of the customer's that may not be used (revoked, expired, paused): its inference requests are in the
            // organisation's request log as the refusals they are, so a service still using an old key can be found there.
            if (http.GetEndpoint()?.Metadata.GetMetadata<MeteredEndpoint>() is not null)
            {
                // Only a refused key of a customer needs the metering pipeline: resolved on that path alone.
                var usage = http.RequestServices.GetRequiredService<UsageTrackers>().Start(http, s);
                usage.Fail(refused);
                usage.Complete();
            }
            return refused;
        }
        http.Features.Set(new CurrentKey(s));
        Activity.Current?.SetTag("cortensor.org", s.OrganizationId);
        Activity.Current?.SetTag("cortensor.key", s.KeyId);
        return null;
    }

    private ApiError? Refusal(KeySnapshot s)
    {
        if (s.KeyStatus == ApiKeyStatus.Revoked) return ApiError.RevokedKey();
        if (s.RetiredSecret && !(s.RetiredSecretExpiresAt > clock.GetUtcNow())) return ApiError.RotatedKey();
        if (s.ExpiresAt is { } expires && expires <= clock.GetUtcNow()) return ApiError.ExpiredKey();
        if (s.OrganizationStatus == OrganizationStatus.Paused) return ApiError.OrganizationPaused();
        if (s.KeyStatus == ApiKeyStatus.Paused) return ApiError.KeyPaused();
        return null;
    }

    [LoggerMessage(Level = LogLevel.Information, Message = "{Method} {Path} {Status} {ErrorCode}: authentication refused, request {RequestId} from {Client}")]
    private static partial void Refused(ILogger logger, string method, string path, int status, string errorCode, string requestId, string client);
}

/// <summary>The authenticated caller of a /v1 request.</summary>
public sealed record CurrentKey(KeySnapshot Snapshot);

public static class CurrentKeyExtensions
{
    public static KeySnapshot GetKey(this HttpContext http) =>
        http.Features.Get<CurrentKey>()?.Snapshot ?? throw new InvalidOperationException("no authenticated key on this request");
}
