using System.Net;
using System.Net.Http.Json;
using System.Text;
using System.Text.Json;
using Aspire.Hosting.Testing;
using Cortensor.Tests.Fixtures;

namespace Cortensor.Tests.EndToEnd;

/// <summary>
/// Buying credit: a Checkout session through Stripe (a local stand-in for api.stripe.com), then Stripe's signed
/// webhook, delivered as Stripe delivers it (twice, out of order, forged), and the credit as the customer and the
/// hot path see it.
/// </summary>
[Collection(PortalAppCollection.Name), Trait("Category", PortalAppCollection.Category)]
public class CreditPurchaseTests(PortalAppFixture portal)
{
    private static object Chat() => new { model = "gpt-oss-20b", messages = new[] { new { role = "user", content = "hello there" } }, max_tokens = 6 };

    /// <summary>An owner of a prepaid (pro) organisation with no credit and one key.</summary>
    private async Task<(TestUser User, HttpClient Client, string Key)> PrepaidCustomerAsync()
    {
        var user = await portal.SignUpAsync();
        using (var admin = portal.CreateAdminClient())
            (await admin.PutAsJsonAsync($"/admin/organizations/{user.OrganizationId}/plan", new { plan = "pro" })).EnsureSuccessStatusCode();
        var client = user.CreateClient();
        var created = await client.PostAsJsonAsync("/portal/api-keys", new { name = "backend" });
        Assert.True(created.StatusCode == HttpStatusCode.Created, await created.Content.ReadAsStringAsync());
        return (user, client, (await created.Content.ReadFromJsonAsync<JsonElement>()).GetProperty("key").GetString()!);
    }

    private async Task<HttpResponseMessage> DeliverAsync(string payload, string? signature = null)
    {
        using var client = portal.CreateClient(LaunchTopology.Api);
        using var request = new HttpRequestMessage(HttpMethod.Post, "/webhooks/stripe") { Content = new StringContent(payload, Encoding.UTF8, "application/json") };
        request.Headers.TryAddWithoutValidation("Stripe-Signature", signature ?? StripeStandIn.Sign(payload));
        return await client.SendAsync(request);
    }

    private static async Task<decimal> BalanceAsync(HttpClient client) =>
        (await client.GetFromJsonAsync<JsonElement>("/portal/balance")).GetProperty("credit_balance_usd").GetDecimal();

    private async Task<string> StartCheckoutAsync(HttpClient client, decimal amount)
    {
        var started = await client.PostAsJsonAsync("/portal/billing/checkout", new { amount_usd = amount });
        Assert.True(started.IsSuccessStatusCode, await started.Content.ReadAsStringAsync());
        var body = await started.Content.ReadFromJsonAsync<JsonElement>();
        var sessionId = body.GetProperty("session_id").GetString()!;
        Assert.StartsWith("https://checkout.stripe.com/", body.GetProperty("url").GetString());
        return sessionId;
    }

    [Fact]
    public async Task APaidCheckoutCreditsTheOrganisationOnceEvenDeliveredTwiceAndOutOfOrderAndAdmissionSeesItAtOnce()
    {
        var (user, client, key) = await PrepaidCustomerAsync();
        using var api = new HttpClient { BaseAddress = portal.App.GetEndpoint(LaunchTopology.Api, "http") };
        api.DefaultRequestHeaders.Authorization = new("Bearer", key);
        // No credit yet: the hot path refuses (and has now loaded the organisation's balance into Redis).
        Assert.Equal(HttpStatusCode.PaymentRequired, (await api.PostAsJsonAsync("/v1/chat/completions", Chat())).StatusCode);

        var sessionId = await StartCheckoutAsync(client, 12.50m);
        var asked = portal.Stripe.Sessions[sessionId].Form;
        Assert.Equal(user.OrganizationId.ToString(), asked["metadata[organization_id]"]);
        Assert.Equal("12.50", asked["metadata[amount_usd]"]);
        Assert.Equal("1250", asked["line_items[0][price_data][unit_amount]"]);
        Assert.Equal("payment", asked["mode"]);

        // A bank debit: the session completes unpaid first; that grants nothing.
        var completedUnpaid = portal.Stripe.EventFor(sessionId, "checkout.session.completed", paid: false);
        Assert.Equal(HttpStatusCode.OK, (await DeliverAsync(completedUnpaid)).StatusCode);
        Assert.Equal(0m, await BalanceAsync(client));
        Assert.Equal(HttpStatusCode.PaymentRequired, (await api.PostAsJsonAsync("/v1/chat/completions", Chat())).StatusCode);

        // Out of order: the payment's success arrives, then a paid "completed" for the same session, then a redelivery.
        var succeeded = portal.Stripe.EventFor(sessionId, "checkout.session.async_payment_succeeded", paid: true);
        Assert.Equal(HttpStatusCode.OK, (await DeliverAsync(succeeded)).StatusCode);
        Assert.Equal(HttpStatusCode.OK, (await DeliverAsync(portal.Stripe.EventFor(sessionId, "checkout.session.completed", paid: true))).StatusCode);
        await Task.WhenAll(DeliverAsync(succeeded), DeliverAsync(succeeded));

        Assert.Equal(12.50m, await BalanceAsync(client));
        // The hot path admits well before the reconciler would run (Redis moved with the grant).
        await Eventually.WaitUntilAsync(async () => (await api.PostAsJsonAsync("/v1/chat/completions", Chat())).StatusCode == HttpStatusCode.OK,
            Eventually.Propagation, "the credit bought did not reach admission");

        var billing = await client.GetFromJsonAsync<JsonElement>("/portal/billing");
        Assert.True(billing.GetProperty("purchases_enabled").GetBoolean());
        var receipt = Assert.Single(billing.GetProperty("receipts").EnumerateArray());
        Assert.Equal(sessionId, receipt.GetProperty("session_id").GetString());
        Assert.Equal(12.50m, receipt.GetProperty("amount_usd").GetDecimal());
        Assert.Equal("paid", receipt.GetProperty("status").GetString());
        var paymentIntent = receipt.GetProperty("payment_intent_id").GetString()!;
        Assert.StartsWith("pi_", paymentIntent);
        Assert.Equal(StripeStandIn.ReceiptUrl(paymentIntent), receipt.GetProperty("receipt_url").GetString());

        // The admin view agrees: one top-up in the ledger, and the hot-path balance moved with it.
        using var admin = portal.CreateAdminClient();
        var balances = await admin.GetFromJsonAsync<JsonElement>($"/admin/organizations/{user.OrganizationId}/balance");
        Assert.True(balances.GetProperty("hot_balance").GetDecimal() is > 12m and <= 12.50m, balances.ToString());
        client.Dispose();
    }

    [Fact]
    public async Task AForgedOrStaleWebhookIsRefusedWith400AndUnpaidSessionsCreditNothing()
    {
        var (_, client, _) = await PrepaidCustomerAsync();
        var sessionId = await StartCheckoutAsync(client, 20m);
        var paid = portal.Stripe.EventFor(sessionId, "checkout.session.completed", paid: true);

        var wrongSecret = await DeliverAsync(paid, StripeStandIn.Sign(paid, "whsec_someoneElsesSecret0123456789"));
        Assert.Equal(HttpStatusCode.BadRequest, wrongSecret.StatusCode);
        Assert.Equal("invalid_signature", (await wrongSecret.Content.ReadFromJsonAsync<JsonElement>()).GetProperty("error").GetProperty("code").GetString());
        // A genuine signature over another payload: the amount was tampered with.
        var tampered = paid.Replace("\"amount_total\":2000", "\"amount_total\":200000");
        Assert.NotEqual(paid, tampered);
        Assert.Equal(HttpStatusCode.BadRequest, (await DeliverAsync(tampered, StripeStandIn.Sign(paid))).StatusCode);
        // A genuine delivery replayed an hour later.
        Assert.Equal(HttpStatusCode.BadRequest, (await DeliverAsync(paid, StripeStandIn.Sign(paid, at: DateTimeOffset.UtcNow.AddHours(-1)))).StatusCode);
        Assert.Equal(HttpStatusCode.BadRequest, (await DeliverAsync(paid, "")).StatusCode);
        // Signed but unpaid.
        Assert.Equal(HttpStatusCode.OK, (await DeliverAsync(portal.Stripe.EventFor(sessionId, "checkout.session.completed", paid: false))).StatusCode);

        Assert.Equal(0m, await BalanceAsync(client));
        var billing = await client.GetFromJsonAsync<JsonElement>("/portal/billing");
        Assert.Empty(billing.GetProperty("receipts").EnumerateArray());
        client.Dispose();
    }

    [Fact]
    public async Task CheckoutRefusesAnAmountOutsideTheBoundsOrInFractionsOfACent()
    {
        var (_, client, _) = await PrepaidCustomerAsync();
        foreach (var amount in new[] { 0.5m, 1_000_000m, 10.005m })
        {
            var refused = await client.PostAsJsonAsync("/portal/billing/checkout", new { amount_usd = amount });
            Assert.Equal(HttpStatusCode.BadRequest, refused.StatusCode);
            Assert.Equal("amount_usd", (await refused.Content.ReadFromJsonAsync<JsonElement>()).GetProperty("error").GetProperty("param").GetString());
        }
        var missing = await client.PostAsJsonAsync("/portal/billing/checkout", new { });
        Assert.Equal(HttpStatusCode.BadRequest, missing.StatusCode);
        client.Dispose();
    }
}
