using System.Collections.Concurrent;
using System.Net;
using System.Security.Cryptography;
using System.Text;
using System.Text.Json;
using System.Text.Json.Nodes;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Hosting;
using Microsoft.AspNetCore.Http;

namespace Cortensor.Tests.Fixtures;

/// <summary>
/// Stands in for api.stripe.com (unreachable from here): creates Checkout sessions the way Stripe answers
/// POST /v1/checkout/sessions and serves the PaymentIntent a receipt hangs off. It also plays Stripe's
/// webhook sender: events are signed exactly as Stripe signs them (Stripe-Signature: t=…,v1=HMAC-SHA256).
/// </summary>
public sealed class StripeStandIn : IAsyncDisposable
{
    /// <summary>The secrets the AppHost under test is given (test-only values, as a Stripe test-mode account has).</summary>
    public const string SecretKey = "sk_test_cortensorStandInSecretKey4f9a2c71";
    public const string WebhookSecret = "whsec_cortensorStandInWebhookSecret8b3d5e0f";

    private readonly WebApplication _server;
    /// <summary>Every session created, by id, as the Api asked for it (form fields) and as answered.</summary>
    public ConcurrentDictionary<string, (IReadOnlyDictionary<string, string> Form, JsonObject Session)> Sessions { get; } = new();

    public string ApiBase { get; }

    private StripeStandIn(WebApplication server, string apiBase)
    {
        _server = server;
        ApiBase = apiBase;
    }

    public static async Task<StripeStandIn> StartAsync()
    {
        var builder = WebApplication.CreateSlimBuilder();
        builder.WebHost.UseKestrel(o => o.Listen(IPAddress.Loopback, 0));
        var app = builder.Build();
        StripeStandIn? standIn = null;
        app.MapPost("/v1/checkout/sessions", async (HttpRequest request) =>
        {
            if (request.Headers.Authorization.ToString() != "Bearer " + SecretKey)
                return Results.Json(new { error = new { type = "invalid_request_error", message = "Invalid API Key provided" } }, statusCode: 401);
            var form = (await request.ReadFormAsync()).ToDictionary(f => f.Key, f => f.Value.ToString());
            var id = "cs_test_" + Guid.NewGuid().ToString("N");
            var amount = long.Parse(form["line_items[0][price_data][unit_amount]"]) * long.Parse(form.GetValueOrDefault("line_items[0][quantity]", "1"));
            var metadata = new JsonObject();
            foreach (var (key, value) in form.Where(f => f.Key.StartsWith("metadata[", StringComparison.Ordinal)))
                metadata[key["metadata[".Length..^1]] = value;
            var session = new JsonObject
            {
                ["id"] = id, ["object"] = "checkout.session", ["mode"] = form.GetValueOrDefault("mode"), ["status"] = "open",
                ["payment_status"] = "unpaid", ["amount_total"] = amount, ["currency"] = form["line_items[0][price_data][currency]"],
                ["client_reference_id"] = form.GetValueOrDefault("client_reference_id"), ["metadata"] = metadata,
                ["url"] = $"https://checkout.stripe.com/c/pay/{id}", ["success_url"] = form.GetValueOrDefault("success_url"),
                ["payment_intent"] = null, ["livemode"] = false,
            };
            standIn!.Sessions[id] = (form, session);
            return Results.Text(session.ToJsonString(), "application/json");
        });
        app.MapGet("/v1/payment_intents/{id}", (string id) => Results.Text(new JsonObject
        {
            ["id"] = id, ["object"] = "payment_intent", ["status"] = "succeeded",
            ["latest_charge"] = new JsonObject { ["id"] = "ch_" + id[3..], ["object"] = "charge", ["receipt_url"] = ReceiptUrl(id) },
        }.ToJsonString(), "application/json"));
        await app.StartAsync();
        standIn = new StripeStandIn(app, app.Urls.Single());
        return standIn;
    }

    public static string ReceiptUrl(string paymentIntent) => $"https://pay.stripe.com/receipts/test/{paymentIntent}";

    /// <summary>The event Stripe would send for a session, in its wire form; <paramref name="paid"/> decides payment_status.</summary>
    public string EventFor(string sessionId, string type, bool paid, string? eventId = null)
    {
        var session = (JsonObject)Sessions[sessionId].Session.DeepClone();
        session["status"] = "complete";
        session["payment_status"] = paid ? "paid" : "unpaid";
        session["payment_intent"] = "pi_" + sessionId["cs_test_".Length..];
        return new JsonObject
        {
            ["id"] = eventId ?? "evt_" + Guid.NewGuid().ToString("N"), ["object"] = "event", ["api_version"] = Stripe.StripeConfiguration.ApiVersion,
            ["created"] = DateTimeOffset.UtcNow.ToUnixTimeSeconds(), ["type"] = type, ["livemode"] = false, ["pending_webhooks"] = 1,
            ["data"] = new JsonObject { ["object"] = session },
            ["request"] = new JsonObject { ["id"] = null, ["idempotency_key"] = null },
        }.ToJsonString();
    }

    /// <summary>Stripe's signature header, computed here as Stripe documents it: v1 = hex(HMAC-SHA256(secret, "{t}.{payload}")).</summary>
    public static string Sign(string payload, string secret = WebhookSecret, DateTimeOffset? at = null)
    {
        var t = (at ?? DateTimeOffset.UtcNow).ToUnixTimeSeconds();
        var mac = HMACSHA256.HashData(Encoding.UTF8.GetBytes(secret), Encoding.UTF8.GetBytes($"{t}.{payload}"));
        return $"t={t},v1={Convert.ToHexStringLower(mac)}";
    }

    public async ValueTask DisposeAsync() => await _server.DisposeAsync();
}
