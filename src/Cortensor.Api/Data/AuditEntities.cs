using Microsoft.EntityFrameworkCore;
using Microsoft.EntityFrameworkCore.Metadata.Builders;

// The data model lives with its feature; the types stay in one namespace, the schema's.
namespace Cortensor.Api.Data;

public sealed class AuditLogEntry
{
    public long Id { get; set; }
    public Guid? ActorUserId { get; set; }
    public required string Actor { get; set; }
    public required string Action { get; set; }
    public required string TargetType { get; set; }
    public required string TargetId { get; set; }
    public string? Before { get; set; }
    public string? After { get; set; }
    public DateTimeOffset CreatedAt { get; set; } = DateTimeOffset.UtcNow;
}

internal sealed class AuditLogEntryConfiguration : IEntityTypeConfiguration<AuditLogEntry>
{
    public void Configure(EntityTypeBuilder<AuditLogEntry> e)
    {
        e.Property(x => x.Before).HasColumnType("jsonb");
        e.Property(x => x.After).HasColumnType("jsonb");
        e.HasIndex(x => x.CreatedAt);
    }
}
