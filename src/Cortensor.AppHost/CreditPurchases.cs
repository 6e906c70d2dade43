namespace Cortensor.AppHost;

/// <summary>
/// Self-serve credit purchases (Stripe Checkout) are optional. A deployment turns them on by giving both Stripe
/// secrets as parameters (user secrets, environment, or the deployment's secret store); without them the Api keeps
/// purchases off and the dashboard tells the customer how an operator enables them.
/// </summary>
public static class CreditPurchases
{
    public const string SecretKeyParameter = "stripe-secret-key";
    public const string WebhookSecretParameter = "stripe-webhook-secret";

    /// <summary>On when a secret key is configured, or for a published deployment that asks for them (Stripe:Enabled=true).</summary>
    public static bool Enabled(IDistributedApplicationBuilder builder) =>
        !string.IsNullOrWhiteSpace(builder.Configuration[$"Parameters:{SecretKeyParameter}"]) || builder.Configuration.GetValue("Stripe:Enabled", false);

    public static IResourceBuilder<ProjectResource> WithCreditPurchases(this IResourceBuilder<ProjectResource> api, IDistributedApplicationBuilder builder)
    {
        // Non-secret settings (amount bounds; a test's stand-in API base) pass through as they are.
        api.WithSettingsFrom(builder.Configuration, "Stripe");
        if (!Enabled(builder)) return api;
        return api
            .WithEnvironment("Stripe__SecretKey", builder.AddParameter(SecretKeyParameter, secret: true))
            .WithEnvironment("Stripe__WebhookSecret", builder.AddParameter(WebhookSecretParameter, secret: true));
    }

    /// <summary>What is wrong with the Stripe secrets when purchases are on (outside Development); nothing when they are off.</summary>
    public static IEnumerable<string> Problems(IDistributedApplicationBuilder builder) =>
        !Enabled(builder) ? [] :
            new[] { SecretKeyParameter, WebhookSecretParameter }
                .Select(p => SecretPolicy.Problem($"Parameters:{p}", builder.Configuration[$"Parameters:{p}"], SecretPolicy.MachinePassword))
                .OfType<string>();
}
