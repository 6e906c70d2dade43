using Microsoft.EntityFrameworkCore;
using Microsoft.EntityFrameworkCore.Metadata.Builders;

// The data model lives with its feature; the types stay in one namespace, the schema's.
namespace Cortensor.Api.Data;

public enum ApiKeyStatus { Active, Revoked, Paused }

public sealed class ApiKey
{
    public Guid Id { get; set; } = Guid.CreateVersion7();
    public Guid OrganizationId { get; set; }
    public Guid? CreatedByUserId { get; set; }
    public required string Name { get; set; }
    /// <summary>"live" or "test".</summary>
    public required string Environment { get; set; }
    /// <summary>The visible start of the key, for display (e.g. ctr_live_Ab3d).</summary>
    public required string Start { get; set; }
    /// <summary>SHA-256 of the whole key; the plaintext is never stored.</summary>
    public required byte[] Hash { get; set; }
    public ApiKeyStatus Status { get; set; }
    public DateTimeOffset? ExpiresAt { get; set; }
    /// <summary>Restriction to these model aliases; empty means every model the plan allows.</summary>
    public List<string> AllowedModels { get; set; } = [];
    public int? RequestsPerMinute { get; set; }
    public int? TokensPerMinute { get; set; }
    public DateTimeOffset CreatedAt { get; set; } = DateTimeOffset.UtcNow;
    public DateTimeOffset? LastUsedAt { get; set; }
    public DateTimeOffset? RevokedAt { get; set; }
    /// <summary>Optional spending limit per UTC period (<see cref="Keys.KeyBudget"/>): USD, tokens, or both.</summary>
    public decimal? BudgetUsd { get; set; }
    public long? BudgetTokens { get; set; }
    public Keys.KeyBudgetPeriod? BudgetPeriod { get; set; }
    /// <summary>SHA-256 of the secret the last rotation replaced: it works until <see cref="RetiredHashExpiresAt"/>, then answers api_key_rotated.</summary>
    public byte[]? RetiredHash { get; set; }
    public DateTimeOffset? RetiredHashExpiresAt { get; set; }
    public DateTimeOffset? RotatedAt { get; set; }
}

internal sealed class ApiKeyConfiguration : IEntityTypeConfiguration<ApiKey>
{
    public void Configure(EntityTypeBuilder<ApiKey> e)
    {
        e.HasIndex(x => x.Hash).IsUnique();
        e.HasIndex(x => x.OrganizationId);
        e.HasIndex(x => x.RetiredHash).IsUnique();
        e.Property(x => x.BudgetPeriod).HasConversion<string>().HasMaxLength(8);
        e.Property(x => x.Name).HasMaxLength(100);
        e.Property(x => x.Environment).HasMaxLength(8);
        e.Property(x => x.Start).HasMaxLength(24);
        e.HasOne<Organization>().WithMany().HasForeignKey(x => x.OrganizationId).OnDelete(DeleteBehavior.Cascade);
    }
}

/// <summary>Allows a model to a plan, or to (or away from) one organisation.</summary>
public sealed class ModelAccessPolicy
{
    public Guid Id { get; set; } = Guid.CreateVersion7();
    public string? PlanId { get; set; }
    public Guid? OrganizationId { get; set; }
    public required string ModelId { get; set; }
    public bool Allowed { get; set; } = true;
}

internal sealed class ModelAccessPolicyConfiguration : IEntityTypeConfiguration<ModelAccessPolicy>
{
    public void Configure(EntityTypeBuilder<ModelAccessPolicy> e)
    {
        e.HasOne<Model>().WithMany().HasForeignKey(x => x.ModelId);
        e.HasOne<Plan>().WithMany().HasForeignKey(x => x.PlanId);
        e.HasOne<Organization>().WithMany().HasForeignKey(x => x.OrganizationId).OnDelete(DeleteBehavior.Cascade);
        e.HasIndex(x => new { x.PlanId, x.OrganizationId, x.ModelId }).IsUnique().AreNullsDistinct(false);
        e.ToTable(t => t.HasCheckConstraint("ck_model_access_policies_subject", "(plan_id IS NULL) <> (organization_id IS NULL)"));
    }
}
