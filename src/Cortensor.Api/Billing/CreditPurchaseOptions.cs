namespace Cortensor.Api.Billing;

/// <summary>
/// Self-serve credit top-ups through Stripe Checkout. Off until both secrets are set; the secrets come from the
/// secret store (AppHost parameters stripe-secret-key and stripe-webhook-secret), never from appsettings.
/// See docs/operations.md, "Credit purchases (Stripe)".
/// </summary>
public sealed class CreditPurchaseOptions
{
    public const string Section = "Stripe";

    /// <summary>The Stripe secret (or restricted) API key, sk_… / rk_…: creates Checkout sessions.</summary>
    public string? SecretKey { get; set; }
    /// <summary>The signing secret of the webhook endpoint (whsec_…) that points at POST /webhooks/stripe.</summary>
    public string? WebhookSecret { get; set; }
    /// <summary>Where Stripe's API is; only tests point it elsewhere (a local stand-in).</summary>
    public string? ApiBase { get; set; }
    public decimal MinimumUsd { get; set; } = 5m;
    public decimal MaximumUsd { get; set; } = 1000m;
    /// <summary>How old a signed webhook may be (Stripe's own default): older deliveries are refused as replays.</summary>
    public int SignatureToleranceSeconds { get; set; } = 300;

    public bool Enabled => !string.IsNullOrWhiteSpace(SecretKey) && !string.IsNullOrWhiteSpace(WebhookSecret);

    /// <summary>What the Balance page tells a customer when purchases are off.</summary>
    public const string HowToEnable =
        "Buying credit is not enabled on this deployment. An operator enables it by setting the Stripe secret key and webhook signing secret "
        + "(AppHost parameters stripe-secret-key and stripe-webhook-secret) and pointing a Stripe webhook at /webhooks/stripe; "
        + "see docs/operations.md, \"Credit purchases (Stripe)\". Until then an administrator can grant credit.";
}
