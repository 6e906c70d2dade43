using Stripe;

namespace Cortensor.Api.Billing;

public static class BillingExtensions
{
    /// <summary>Credit purchases through Stripe Checkout and the webhook that turns a paid session into ledger credit.</summary>
    public static WebApplicationBuilder AddBilling(this WebApplicationBuilder builder)
    {
        builder.Services.AddOptions<CreditPurchaseOptions>().BindConfiguration(CreditPurchaseOptions.Section)
            .Validate(o => string.IsNullOrWhiteSpace(o.SecretKey) == string.IsNullOrWhiteSpace(o.WebhookSecret),
                "Stripe:SecretKey and Stripe:WebhookSecret are set together or not at all (credit purchases need both).")
            .Validate(o => o.MinimumUsd > 0 && o.MaximumUsd >= o.MinimumUsd, "Stripe:MinimumUsd must be positive and at most Stripe:MaximumUsd.")
            .Validate(o => o.ApiBase is null || Uri.TryCreate(o.ApiBase, UriKind.Absolute, out _), "Stripe:ApiBase must be an absolute URL.")
            .ValidateOnStart();
        builder.Services.AddHttpClient(nameof(CreditPurchases));
        builder.Services.AddScoped<CreditPurchases>();
        return builder;
    }

    public static IEndpointRouteBuilder MapBilling(this IEndpointRouteBuilder app)
    {
        app.MapStripeWebhook();
        return app;
    }

    /// <summary>A Stripe client for the configured key and API base, on a pooled HttpClient.</summary>
    internal static StripeClient CreateClient(CreditPurchaseOptions options, HttpClient http) =>
        new(apiKey: options.SecretKey, httpClient: new SystemNetHttpClient(http),
            apiBase: string.IsNullOrWhiteSpace(options.ApiBase) ? null : options.ApiBase.TrimEnd('/'));
}
