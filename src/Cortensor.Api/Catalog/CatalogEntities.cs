using Microsoft.EntityFrameworkCore;
using Microsoft.EntityFrameworkCore.Metadata.Builders;

// The data model lives with its feature; the types stay in one namespace, the schema's.
namespace Cortensor.Api.Data;

public sealed class Model
{
    /// <summary>The public alias customers send, e.g. gpt-oss-20b.</summary>
    public required string Id { get; set; }
    public required string DisplayName { get; set; }
    /// <summary>Prompt template family (gpt-oss, gemma, qwen).</summary>
    public required string Family { get; set; }
    public decimal InputPricePer1K { get; set; }
    public decimal OutputPricePer1K { get; set; }
    public int ContextWindow { get; set; }
    public bool Enabled { get; set; } = true;
    public DateTimeOffset CreatedAt { get; set; }
    /// <summary>The router task's <c>timeout</c> in seconds; null takes Routing:DefaultTimeoutSeconds.</summary>
    public int? TimeoutSeconds { get; set; }
    /// <summary>The router task's <c>precommit_timeout</c> in seconds; null takes Routing:DefaultPrecommitTimeoutSeconds.</summary>
    public int? PrecommitTimeoutSeconds { get; set; }
}

internal sealed class ModelConfiguration : IEntityTypeConfiguration<Model>
{
    public void Configure(EntityTypeBuilder<Model> e)
    {
        e.Property(x => x.Id).HasMaxLength(64);
    }
}

public sealed class RouterPool
{
    public required string Id { get; set; }
    public bool Draining { get; set; }
    public DateTimeOffset CreatedAt { get; set; }
    /// <summary>Router completions API: 1 (/api/v1/completions) or 3 (/api/v3/completions); null is 1.</summary>
    public int? ApiVersion { get; set; }
    /// <summary>Optional request fields the pool's routers accept; not sent otherwise.</summary>
    public bool SupportsSeed { get; set; }
    public bool SupportsPenalties { get; set; }
    public bool SupportsTopK { get; set; }
}

internal sealed class RouterPoolConfiguration : IEntityTypeConfiguration<RouterPool>
{
    public void Configure(EntityTypeBuilder<RouterPool> e)
    {
        e.Property(x => x.Id).HasMaxLength(64);
    }
}

/// <summary>Which pool serves a model alias, and under what backend model name.</summary>
public sealed class RouterPoolModel
{
    public required string ModelId { get; set; }
    public required string PoolId { get; set; }
    public required string BackendModel { get; set; }
}

internal sealed class RouterPoolModelConfiguration : IEntityTypeConfiguration<RouterPoolModel>
{
    public void Configure(EntityTypeBuilder<RouterPoolModel> e)
    {
        // One pool per model in V1; the table allows a model to move between pools.
        e.HasKey(x => x.ModelId);
        e.HasOne<Model>().WithMany().HasForeignKey(x => x.ModelId);
        e.HasOne<RouterPool>().WithMany().HasForeignKey(x => x.PoolId);
    }
}

public sealed class Router
{
    public required string Id { get; set; }
    public required string PoolId { get; set; }
    /// <summary>Base address; a bare service name (http://router-x) is resolved by service discovery.</summary>
    public required string BaseUrl { get; set; }
    public bool Enabled { get; set; } = true;
    public DateTimeOffset CreatedAt { get; set; }
}

internal sealed class RouterConfiguration : IEntityTypeConfiguration<Router>
{
    public void Configure(EntityTypeBuilder<Router> e)
    {
        e.Property(x => x.Id).HasMaxLength(64);
        e.HasOne<RouterPool>().WithMany().HasForeignKey(x => x.PoolId);
    }
}

/// <summary>A dedicated session on a router node.</summary>
public sealed class RouterSession
{
    public long Id { get; set; }
    public required string RouterId { get; set; }
    public bool Enabled { get; set; } = true;
}

internal sealed class RouterSessionConfiguration : IEntityTypeConfiguration<RouterSession>
{
    public void Configure(EntityTypeBuilder<RouterSession> e)
    {
        e.Property(x => x.Id).ValueGeneratedNever();
        e.HasOne<Router>().WithMany().HasForeignKey(x => x.RouterId).OnDelete(DeleteBehavior.Cascade);
    }
}
