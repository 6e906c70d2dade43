using Microsoft.EntityFrameworkCore;
using Microsoft.EntityFrameworkCore.Metadata.Builders;

// The data model lives with its feature; the types stay in one namespace, the schema's.
namespace Cortensor.Api.Data;

public enum CreditPurchaseStatus { Open, Paid, Failed, Expired }

/// <summary>
/// A credit top-up paid through Stripe Checkout, one row per Checkout session. The money itself is the
/// ledger's TopUp entry whose reference is the session id (unique per kind), so however often Stripe
/// delivers the session's events, and in whatever order, it is credited once.
/// </summary>
public sealed class CreditPurchase
{
    /// <summary>The Stripe Checkout session id (cs_…).</summary>
    public required string Id { get; set; }
    public Guid OrganizationId { get; set; }
    public Guid? CreatedByUserId { get; set; }
    public decimal AmountUsd { get; set; }
    public CreditPurchaseStatus Status { get; set; }
    public DateTimeOffset CreatedAt { get; set; }
    public DateTimeOffset? PaidAt { get; set; }
    /// <summary>The Stripe PaymentIntent (pi_…) that paid the session.</summary>
    public string? PaymentIntentId { get; set; }
    /// <summary>Stripe's receipt page for the charge, when Stripe gives one.</summary>
    public string? ReceiptUrl { get; set; }
    /// <summary>The last Stripe event (evt_…) that changed the row.</summary>
    public string? LastEventId { get; set; }
}

internal sealed class CreditPurchaseConfiguration : IEntityTypeConfiguration<CreditPurchase>
{
    public void Configure(EntityTypeBuilder<CreditPurchase> e)
    {
        e.HasKey(x => x.Id);
        e.Property(x => x.Id).HasMaxLength(255);
        e.Property(x => x.Status).HasConversion<string>().HasMaxLength(16);
        e.Property(x => x.PaymentIntentId).HasMaxLength(255);
        e.Property(x => x.ReceiptUrl).HasMaxLength(2048);
        e.Property(x => x.LastEventId).HasMaxLength(255);
        e.HasIndex(x => new { x.OrganizationId, x.CreatedAt });
        e.HasOne<Organization>().WithMany().HasForeignKey(x => x.OrganizationId).OnDelete(DeleteBehavior.Cascade);
    }
}
