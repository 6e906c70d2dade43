using System.Buffers;
using Cortensor.Api.ControlPlane;
using Cortensor.Api.Data;
using Cortensor.Api.Errors;
using Microsoft.AspNetCore.Http.HttpResults;
using Microsoft.Extensions.Options;
using Stripe;
using Stripe.Checkout;

namespace Cortensor.Api.Billing;

/// <summary>Buying credit (signed-in owners and admins) and Stripe's webhook that grants it.</summary>
public static partial class CreditPurchasesApi
{
    public static RouteGroupBuilder MapCreditPurchasesApi(this RouteGroupBuilder portal)
    {
        var billing = portal.MapGroup("/billing").WithTags("Billing");
        billing.MapGet("", Overview).WithSummary("Whether credit can be bought here, the amounts allowed, and the organisation's receipts");
        billing.MapPost("/checkout", StartCheckout)
            .WithSummary("Start buying credit: answers a Stripe Checkout URL; the credit is granted when Stripe reports the payment");
        return portal;
    }

    public static IEndpointRouteBuilder MapStripeWebhook(this IEndpointRouteBuilder app)
    {
        app.MapPost("/webhooks/stripe", Webhook).ExcludeFromDescription();
        return app;
    }

    public sealed record CheckoutBody(decimal? AmountUsd);
    public sealed record CheckoutDto(string SessionId, string Url);
    public sealed record ReceiptDto(string SessionId, decimal AmountUsd, string Status, DateTimeOffset CreatedAt, DateTimeOffset? PaidAt,
        string? PaymentIntentId, string? ReceiptUrl);
    public sealed record BillingDto(bool PurchasesEnabled, string? HowToEnable, decimal MinimumUsd, decimal MaximumUsd, ReceiptDto[] Receipts);

    private static async Task<Ok<BillingDto>> Overview(PortalCaller caller, CreditPurchases purchases, IOptions<CreditPurchaseOptions> options, CancellationToken ct)
    {
        var o = options.Value;
        var receipts = (await purchases.ListAsync(caller.OrganizationId, ct))
            .Select(p => new ReceiptDto(p.Id, p.AmountUsd, p.Status.ToString().ToLowerInvariant(), p.CreatedAt, p.PaidAt, p.PaymentIntentId, p.ReceiptUrl))
            .ToArray();
        return TypedResults.Ok(new BillingDto(o.Enabled, o.Enabled ? null : CreditPurchaseOptions.HowToEnable, o.MinimumUsd, o.MaximumUsd, receipts));
    }

    private static async Task<Results<Ok<CheckoutDto>, ErrorResult>> StartCheckout(CheckoutBody body, PortalCaller caller, CreditPurchases purchases,
        IOptions<CreditPurchaseOptions> options, ILoggerFactory logs, CancellationToken ct)
    {
        var o = options.Value;
        if (!o.Enabled) return new ApiError(409, "invalid_request_error", "credit_purchases_disabled", CreditPurchaseOptions.HowToEnable).ToResult();
        if (!caller.CanManage) return ApiError.InsufficientRole("buy credit").ToResult();
        if (body.AmountUsd is not { } amount) return ApiError.MissingField("amount_usd").ToResult();
        if (amount < o.MinimumUsd || amount > o.MaximumUsd || decimal.Round(amount, 2) != amount)
            return ApiError.InvalidField("amount_usd", $"'amount_usd' must be between {o.MinimumUsd:0.##} and {o.MaximumUsd:0.##} USD, in whole cents.").ToResult();
        try
        {
            var started = await purchases.StartCheckoutAsync(caller, amount, ct);
            return TypedResults.Ok(new CheckoutDto(started.SessionId, started.Url));
        }
        catch (StripeException ex)
        {
            Log.CheckoutFailed(logs.CreateLogger(typeof(CreditPurchasesApi)), ex);
            return ApiError.DependencyUnavailable("The payment provider").ToResult();
        }
    }

    /// <summary>The most a Checkout event can plausibly weigh; anything larger is not Stripe.</summary>
    private const int MaxWebhookBytes = 256 * 1024;

    private static ApiError InvalidSignature() => new(400, "invalid_request_error", "invalid_signature",
        "The Stripe-Signature header does not match this payload and the webhook secret (or the event is too old).");

    /// <summary>
    /// Whether a Stripe-Signature header could pass Stripe.net's check: a timestamp not older than the tolerance and a v1 signature.
    /// Only a quick refusal of what cannot; the signature itself is checked on the payload.
    /// </summary>
    internal static bool MaybeFresh(string header, DateTimeOffset now, int toleranceSeconds)
    {
        long? at = null;
        var signed = false;
        foreach (var part in header.Split(','))
        {
            if (part.StartsWith("t=", StringComparison.Ordinal) && long.TryParse(part.AsSpan(2), out var t)) at = t;
            else if (part.StartsWith("v1=", StringComparison.Ordinal) && part.Length > 3) signed = true;
        }
        // Too old only, as Stripe.net judges it: a sender's clock ahead of this one is its business.
        return signed && at is { } seconds && now.ToUnixTimeSeconds() - seconds <= toleranceSeconds;
    }

    /// <summary>
    /// Stripe's event delivery. The signature (Stripe-Signature, HMAC-SHA256 with the endpoint's secret, at most
    /// <see cref="CreditPurchaseOptions.SignatureToleranceSeconds"/> old) is checked by Stripe.net before anything is read.
    /// A 2xx tells Stripe to stop retrying: it is answered once the grant is durable, or when the event needs nothing.
    /// </summary>
    private static async Task<Results<Ok, ErrorResult>> Webhook(HttpRequest request, CreditPurchases purchases, IOptions<CreditPurchaseOptions> options,
        TimeProvider clock, ILoggerFactory logs, CancellationToken ct)
    {
        var o = options.Value;
        if (!o.Enabled) return ApiError.NotFound("webhook").ToResult();
        // The endpoint is anonymous: a call that cannot be a fresh delivery of Stripe's costs no read at all.
        if (!MaybeFresh(request.Headers["Stripe-Signature"].ToString(), clock.GetUtcNow(), o.SignatureToleranceSeconds))
            return InvalidSignature().ToResult();
        if (request.ContentLength > MaxWebhookBytes) return ApiError.BodyTooLarge(MaxWebhookBytes).ToResult();
        string payload;
        // Pooled: a fresh buffer of this size would go to the large object heap on every call.
        var buffer = ArrayPool<char>.Shared.Rent(MaxWebhookBytes + 1);
        try
        {
            using var reader = new StreamReader(request.Body);
            var read = await reader.ReadBlockAsync(buffer.AsMemory(0, MaxWebhookBytes + 1), ct);
            if (read > MaxWebhookBytes) return ApiError.BodyTooLarge(MaxWebhookBytes).ToResult();
            payload = new string(buffer, 0, read);
        }
        finally
        {
            // Cleared: the next renter must not read a customer's checkout session.
            ArrayPool<char>.Shared.Return(buffer, clearArray: true);
        }
        Event stripeEvent;
        try
        {
            // The API version of the endpoint may differ from Stripe.net's: the few session fields read here are stable across versions.
            stripeEvent = EventUtility.ConstructEvent(payload, request.Headers["Stripe-Signature"], o.WebhookSecret,
                o.SignatureToleranceSeconds, throwOnApiVersionMismatch: false);
        }
        catch (StripeException)
        {
            return InvalidSignature().ToResult();
        }

        if (stripeEvent.Data?.Object is not Session session) return TypedResults.Ok();
        var log = logs.CreateLogger(typeof(CreditPurchasesApi));
        switch (stripeEvent.Type)
        {
            case EventTypes.CheckoutSessionCompleted or EventTypes.CheckoutSessionAsyncPaymentSucceeded:
                var outcome = await purchases.SettleAsync(session, stripeEvent.Id, ct);
                Log.Settled(log, stripeEvent.Type, stripeEvent.Id, session.Id, outcome);
                break;
            case EventTypes.CheckoutSessionAsyncPaymentFailed:
                await purchases.CloseAsync(session, CreditPurchaseStatus.Failed, stripeEvent.Id, ct);
                break;
            case EventTypes.CheckoutSessionExpired:
                await purchases.CloseAsync(session, CreditPurchaseStatus.Expired, stripeEvent.Id, ct);
                break;
        }
        return TypedResults.Ok();
    }

    private static partial class Log
    {
        [LoggerMessage(LogLevel.Warning, "Stripe refused to create a Checkout session")]
        public static partial void CheckoutFailed(ILogger logger, Exception ex);

        [LoggerMessage(LogLevel.Information, "Stripe {EventType} {EventId} for session {SessionId}: {Outcome}")]
        public static partial void Settled(ILogger logger, string eventType, string eventId, string sessionId, CreditPurchases.Outcome outcome);
    }
}
