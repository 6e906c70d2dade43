using System.Globalization;
using Cortensor.Api.Accounts.Mail;
using Cortensor.Api.ControlPlane;
using Cortensor.Api.Data;
using Cortensor.Api.Limits;
using Microsoft.EntityFrameworkCore;
using Microsoft.Extensions.Options;
using Npgsql;
using Stripe;
using Stripe.Checkout;

namespace Cortensor.Api.Billing;

public sealed record StartedCheckout(string SessionId, string Url);

/// <summary>
/// Buying credit: a Stripe Checkout session per purchase, and the grant when Stripe says it is paid. The grant is
/// the ledger's TopUp entry referenced by the session id, unique per kind: a duplicate or late event for the same
/// session finds it there and grants nothing, whichever replica it reaches.
/// </summary>
public sealed partial class CreditPurchases(PortalDbContext db, IOptions<CreditPurchaseOptions> options, IOptions<MailOptions> mail,
    IHttpClientFactory http, HotCounters counters, TimeProvider clock, ILogger<CreditPurchases> log)
{
    public const string OrganizationKey = "organization_id";
    public const string AmountKey = "amount_usd";
    public const string UserKey = "user_id";
    public const string Currency = "usd";

    private CreditPurchaseOptions Options => options.Value;

    public async Task<StartedCheckout> StartCheckoutAsync(PortalCaller caller, decimal amountUsd, CancellationToken ct)
    {
        var balancePage = (mail.Value.LinkBaseUrl ?? "").TrimEnd('/') + "/balance";
        var amount = amountUsd.ToString("0.00", CultureInfo.InvariantCulture);
        var metadata = new Dictionary<string, string>
        {
            [OrganizationKey] = caller.OrganizationId.ToString(), [AmountKey] = amount, [UserKey] = caller.UserId.ToString(),
        };
        var session = await new SessionService(Client()).CreateAsync(new SessionCreateOptions
        {
            Mode = "payment",
            ClientReferenceId = caller.OrganizationId.ToString(),
            LineItems =
            [
                new SessionLineItemOptions
                {
                    Quantity = 1,
                    PriceData = new SessionLineItemPriceDataOptions
                    {
                        Currency = Currency, UnitAmount = (long)(amountUsd * 100),
                        ProductData = new SessionLineItemPriceDataProductDataOptions { Name = "Cortensor API credit", Description = $"${amount} of prepaid credit" },
                    },
                },
            ],
            Metadata = metadata,
            PaymentIntentData = new SessionPaymentIntentDataOptions { Metadata = metadata },
            SuccessUrl = balancePage + "?checkout=success&session_id={CHECKOUT_SESSION_ID}",
            CancelUrl = balancePage + "?checkout=cancelled",
        }, cancellationToken: ct);

        db.CreditPurchases.Add(new CreditPurchase
        {
            Id = session.Id, OrganizationId = caller.OrganizationId, CreatedByUserId = caller.UserId, AmountUsd = decimal.Parse(amount, CultureInfo.InvariantCulture),
            Status = CreditPurchaseStatus.Open, CreatedAt = clock.GetUtcNow(),
        });
        db.Record(caller.Actor, "credits.checkout", "organization", caller.OrganizationId.ToString(), null, new { SessionId = session.Id, AmountUsd = amount }, clock.GetUtcNow());
        await db.SaveChangesAsync(ct);
        return new StartedCheckout(session.Id, session.Url);
    }

    public enum Outcome { Granted, AlreadyGranted, NotPaid, NotOurs }

    /// <summary>
    /// A session Stripe says is complete (checkout.session.completed or async_payment_succeeded): credit it once if paid.
    /// The amount credited is what Stripe charged (amount_total), never what the metadata asked for.
    /// </summary>
    public async Task<Outcome> SettleAsync(Session session, string eventId, CancellationToken ct)
    {
        if (!TryOrganization(session, out var org) || !string.Equals(session.Currency, Currency, StringComparison.OrdinalIgnoreCase) || session.AmountTotal is not > 0)
        {
            Log.NotOurs(log, session.Id, eventId);
            return Outcome.NotOurs;
        }
        if (!await db.Organizations.AnyAsync(o => o.Id == org, ct))
        {
            Log.NotOurs(log, session.Id, eventId);
            return Outcome.NotOurs;
        }
        var amount = session.AmountTotal.Value / 100m;
        var now = clock.GetUtcNow();
        var purchase = await db.CreditPurchases.SingleOrDefaultAsync(p => p.Id == session.Id, ct);
        if (purchase is null)
        {
            // Created on another deployment's database, or the row was lost: the session itself says whose and how much.
            purchase = new CreditPurchase { Id = session.Id, OrganizationId = org, AmountUsd = amount, Status = CreditPurchaseStatus.Open, CreatedAt = now };
            db.CreditPurchases.Add(purchase);
        }
        if (purchase.Status == CreditPurchaseStatus.Paid) return Outcome.AlreadyGranted;
        purchase.LastEventId = eventId;
        purchase.PaymentIntentId ??= session.PaymentIntentId;
        if (session.PaymentStatus != "paid")
        {
            // An asynchronous payment (bank debit) is still on its way: its async_payment_succeeded event grants it.
            await db.SaveChangesAsync(ct);
            return Outcome.NotPaid;
        }

        purchase.Status = CreditPurchaseStatus.Paid;
        purchase.PaidAt = now;
        purchase.AmountUsd = amount;
        db.BillingLedger.Add(new BillingLedgerEntry
        {
            OrganizationId = org, Kind = LedgerEntryKind.TopUp, Amount = amount, Reference = session.Id,
            Description = $"Credit purchase (Stripe {session.PaymentIntentId ?? session.Id})", CreatedAt = now,
        });
        db.Record(AuditActor.System, "credits.purchase", "organization", org.ToString(), null, new { SessionId = session.Id, AmountUsd = amount, EventId = eventId }, now);
        // The hot-path balance moves now (as an admin grant does), not at the next reconciliation, and once.
        var granted = await counters.GrantAsync(org, session.Id, amount, async () =>
        {
            try
            {
                await db.SaveChangesAsync(ct);
                return true;
            }
            catch (DbUpdateException ex) when (ex.InnerException is PostgresException { SqlState: PostgresErrorCodes.UniqueViolation })
            {
                // Another replica granted this session a moment ago (the same event delivered twice at once).
                return false;
            }
        });
        if (!granted) return Outcome.AlreadyGranted;
        await AttachReceiptAsync(purchase, ct);
        return Outcome.Granted;
    }

    /// <summary>A session that will never be paid (expired, or its asynchronous payment failed).</summary>
    public async Task CloseAsync(Session session, CreditPurchaseStatus status, string eventId, CancellationToken ct) =>
        await db.CreditPurchases.Where(p => p.Id == session.Id && p.Status == CreditPurchaseStatus.Open)
            .ExecuteUpdateAsync(s => s.SetProperty(p => p.Status, status).SetProperty(p => p.LastEventId, eventId), ct);

    public Task<List<CreditPurchase>> ListAsync(Guid organizationId, CancellationToken ct) =>
        db.CreditPurchases.AsNoTracking().Where(p => p.OrganizationId == organizationId && p.Status != CreditPurchaseStatus.Open)
            .OrderByDescending(p => p.CreatedAt).Take(100).ToListAsync(ct);

    /// <summary>Stripe's receipt page lives on the charge; a customer without it still has the payment id, so failing here is no error.</summary>
    private async Task AttachReceiptAsync(CreditPurchase purchase, CancellationToken ct)
    {
        if (purchase.PaymentIntentId is null) return;
        try
        {
            var intent = await new PaymentIntentService(Client()).GetAsync(purchase.PaymentIntentId,
                new PaymentIntentGetOptions { Expand = ["latest_charge"] }, cancellationToken: ct);
            if (intent.LatestCharge?.ReceiptUrl is not { Length: > 0 and <= 2048 } receipt) return;
            purchase.ReceiptUrl = receipt;
            await db.SaveChangesAsync(ct);
        }
        catch (Exception ex) when (ex is StripeException or HttpRequestException or TaskCanceledException or DbUpdateException)
        {
            Log.NoReceipt(log, purchase.Id, ex);
        }
    }

    private static bool TryOrganization(Session session, out Guid org)
    {
        org = Guid.Empty;
        return session.Metadata is { } metadata && metadata.TryGetValue(OrganizationKey, out var value) && Guid.TryParse(value, out org);
    }

    private StripeClient Client() => BillingExtensions.CreateClient(Options, http.CreateClient(nameof(CreditPurchases)));

    private static partial class Log
    {
        [LoggerMessage(LogLevel.Error, "Stripe session {SessionId} (event {EventId}) names no organisation of this deployment in USD; nothing was credited.")]
        public static partial void NotOurs(ILogger logger, string sessionId, string eventId);

        [LoggerMessage(LogLevel.Warning, "No receipt URL for credit purchase {SessionId}; it stays listed with its payment id.")]
        public static partial void NoReceipt(ILogger logger, string sessionId, Exception ex);
    }
}
