using Microsoft.EntityFrameworkCore;
using Microsoft.EntityFrameworkCore.Metadata.Builders;

// The data model lives with its feature; the types stay in one namespace, the schema's.
namespace Cortensor.Api.Data;

public enum OrganizationStatus { Active, Paused }

public sealed class Organization
{
    public Guid Id { get; set; } = Guid.CreateVersion7();
    public required string Name { get; set; }
    public OrganizationStatus Status { get; set; }
    public required string PlanId { get; set; }
    public DateTimeOffset CreatedAt { get; set; } = DateTimeOffset.UtcNow;
}

internal sealed class OrganizationConfiguration : IEntityTypeConfiguration<Organization>
{
    public void Configure(EntityTypeBuilder<Organization> e)
    {
        e.Property(x => x.Name).HasMaxLength(200);
        e.HasOne<Plan>().WithMany().HasForeignKey(x => x.PlanId);
    }
}

public enum MemberRole { Owner, Admin, Member }

public sealed class OrganizationMember
{
    public Guid OrganizationId { get; set; }
    public Guid UserId { get; set; }
    public MemberRole Role { get; set; }
    public DateTimeOffset CreatedAt { get; set; } = DateTimeOffset.UtcNow;
}

internal sealed class OrganizationMemberConfiguration : IEntityTypeConfiguration<OrganizationMember>
{
    public void Configure(EntityTypeBuilder<OrganizationMember> e)
    {
        e.HasKey(x => new { x.OrganizationId, x.UserId });
        e.HasOne<Organization>().WithMany().HasForeignKey(x => x.OrganizationId).OnDelete(DeleteBehavior.Cascade);
        e.HasOne<User>().WithMany().HasForeignKey(x => x.UserId).OnDelete(DeleteBehavior.Cascade);
        e.HasIndex(x => x.UserId);
    }
}

public enum BillingMode { MonthlyQuota, PrepaidCredits }

public sealed class Plan
{
    public required string Id { get; set; }
    public required string Name { get; set; }
    public BillingMode BillingMode { get; set; }
    public int RequestsPerMinute { get; set; }
    public int TokensPerMinute { get; set; }
    /// <summary>Tokens per calendar month (UTC) for quota plans; null on credit plans.</summary>
    public long? MonthlyTokenQuota { get; set; }
    /// <summary>Requests of the organisation in flight at once, across all its keys and replicas.</summary>
    public int MaxConcurrentRequests { get; set; } = 16;
    public decimal MonthlyPriceUsd { get; set; }
}

internal sealed class PlanConfiguration : IEntityTypeConfiguration<Plan>
{
    public void Configure(EntityTypeBuilder<Plan> e)
    {
        e.Property(x => x.Id).HasMaxLength(32);
    }
}

public sealed class PlanSubscription
{
    public Guid Id { get; set; } = Guid.CreateVersion7();
    public Guid OrganizationId { get; set; }
    public required string PlanId { get; set; }
    public DateTimeOffset StartsAt { get; set; } = DateTimeOffset.UtcNow;
    public DateTimeOffset? EndsAt { get; set; }
}

internal sealed class PlanSubscriptionConfiguration : IEntityTypeConfiguration<PlanSubscription>
{
    public void Configure(EntityTypeBuilder<PlanSubscription> e)
    {
        e.HasOne<Organization>().WithMany().HasForeignKey(x => x.OrganizationId).OnDelete(DeleteBehavior.Cascade);
        e.HasOne<Plan>().WithMany().HasForeignKey(x => x.PlanId);
        e.HasIndex(x => new { x.OrganizationId, x.StartsAt });
    }
}
