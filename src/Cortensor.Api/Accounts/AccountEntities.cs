using Microsoft.AspNetCore.Identity;
using Microsoft.EntityFrameworkCore;
using Microsoft.EntityFrameworkCore.Metadata.Builders;

// The data model lives with its feature; the types stay in one namespace, the schema's.
namespace Cortensor.Api.Data;

/// <summary>
/// A person who signs in to the Portal. ASP.NET Core Identity owns the password hash, lockout and
/// security stamp; the Portal adds the profile and the link to an external identity provider.
/// </summary>
public sealed class User : IdentityUser<Guid>
{
    public User() => Id = Guid.CreateVersion7();

    public string? DisplayName { get; set; }
    /// <summary>Issuer and subject of an external identity provider (Supabase Auth, Clerk), when the user came from one.</summary>
    public string? ExternalIssuer { get; set; }
    public string? ExternalSubject { get; set; }
    public bool IsAdmin { get; set; }
    public DateTimeOffset CreatedAt { get; set; } = DateTimeOffset.UtcNow;
}

internal sealed class UserConfiguration : IEntityTypeConfiguration<User>
{
    public void Configure(EntityTypeBuilder<User> e)
    {
        e.HasIndex(x => new { x.ExternalIssuer, x.ExternalSubject }).IsUnique();
        e.HasIndex(x => x.NormalizedEmail).HasDatabaseName("EmailIndex").IsUnique();
        e.Property(x => x.Email).HasMaxLength(320);
        e.Property(x => x.DisplayName).HasMaxLength(200);
        e.Property(x => x.ExternalIssuer).HasMaxLength(500);
        e.Property(x => x.ExternalSubject).HasMaxLength(200);
    }
}

/// <summary>
/// A refresh token, stored as a SHA-256 hash. Tokens rotate on every use; all tokens of one sign-in
/// share a family, and presenting an already-rotated token revokes the whole family (token theft).
/// </summary>
public sealed class RefreshToken
{
    public Guid Id { get; set; } = Guid.CreateVersion7();
    public Guid UserId { get; set; }
    public Guid FamilyId { get; set; }
    public required byte[] Hash { get; set; }
    public DateTimeOffset CreatedAt { get; set; }
    public DateTimeOffset ExpiresAt { get; set; }
    public DateTimeOffset? UsedAt { get; set; }
    public DateTimeOffset? RevokedAt { get; set; }
}

internal sealed class RefreshTokenConfiguration : IEntityTypeConfiguration<RefreshToken>
{
    public void Configure(EntityTypeBuilder<RefreshToken> e)
    {
        e.HasIndex(x => x.Hash).IsUnique();
        e.HasIndex(x => x.FamilyId);
        e.HasOne<User>().WithMany().HasForeignKey(x => x.UserId).OnDelete(DeleteBehavior.Cascade);
    }
}
