using Microsoft.EntityFrameworkCore;
using Microsoft.EntityFrameworkCore.Metadata.Builders;

// The data model lives with its feature; the types stay in one namespace, the schema's.
namespace Cortensor.Api.Data;

/// <summary>
/// A Portal key's key in Unkey: its id there, for updates, revocation and checking what verification returns. One Portal key
/// may have more than one (a rotated key's old secret lives on in Unkey until its grace period ends).
/// </summary>
public sealed class UnkeyKey
{
    public Guid ApiKeyId { get; set; }
    public required string UnkeyKeyId { get; set; }
    public DateTimeOffset CreatedAt { get; set; }
}

internal sealed class UnkeyKeyConfiguration : IEntityTypeConfiguration<UnkeyKey>
{
    public void Configure(EntityTypeBuilder<UnkeyKey> e)
    {
        e.ToTable("unkey_keys");
        e.HasKey(x => x.UnkeyKeyId);
        e.HasIndex(x => x.ApiKeyId);
        e.Property(x => x.UnkeyKeyId).HasMaxLength(255).IsRequired();
        e.HasOne<ApiKey>().WithMany().HasForeignKey(x => x.ApiKeyId).OnDelete(DeleteBehavior.Cascade);
    }
}
