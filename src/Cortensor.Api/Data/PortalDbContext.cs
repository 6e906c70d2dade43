using Microsoft.AspNetCore.DataProtection.EntityFrameworkCore;
using Microsoft.AspNetCore.Identity;
using Microsoft.AspNetCore.Identity.EntityFrameworkCore;
using Microsoft.EntityFrameworkCore;
using Microsoft.EntityFrameworkCore.Design;

namespace Cortensor.Api.Data;

// Identity's user store lives in the same database (users, user_claims, user_logins, user_tokens);
// roles are not used: the one operator role is the IsAdmin flag, carried as a claim.
public sealed class PortalDbContext(DbContextOptions<PortalDbContext> options) : IdentityUserContext<User, Guid>(options), IDataProtectionKeyContext
{
    /// <summary>The key ring that signs verification and reset links, shared by every replica.</summary>
    public DbSet<DataProtectionKey> DataProtectionKeys => Set<DataProtectionKey>();
    public DbSet<RefreshToken> RefreshTokens => Set<RefreshToken>();
    public DbSet<Organization> Organizations => Set<Organization>();
    public DbSet<OrganizationMember> OrganizationMembers => Set<OrganizationMember>();
    public DbSet<Plan> Plans => Set<Plan>();
    public DbSet<PlanSubscription> PlanSubscriptions => Set<PlanSubscription>();
    public DbSet<ModelAccessPolicy> ModelAccessPolicies => Set<ModelAccessPolicy>();
    public DbSet<ApiKey> ApiKeys => Set<ApiKey>();
    public DbSet<Model> Models => Set<Model>();
    public DbSet<RouterPool> RouterPools => Set<RouterPool>();
    public DbSet<RouterPoolModel> RouterPoolModels => Set<RouterPoolModel>();
    public DbSet<Router> Routers => Set<Router>();
    public DbSet<RouterSession> RouterSessions => Set<RouterSession>();
    public DbSet<UsageEvent> UsageEvents => Set<UsageEvent>();
    public DbSet<RequestLog> RequestLogs => Set<RequestLog>();
    public DbSet<UsageDaily> UsageDaily => Set<UsageDaily>();
    public DbSet<BillingLedgerEntry> BillingLedger => Set<BillingLedgerEntry>();
    public DbSet<AuditLogEntry> AuditLog => Set<AuditLogEntry>();

    /// <summary>The one place the provider is configured, for the app and for design-time tools.</summary>
    public static void Configure(DbContextOptionsBuilder options) => options.UseSnakeCaseNamingConvention();

    protected override void ConfigureConventions(ModelConfigurationBuilder conventions)
    {
        // Enums as text: readable in psql and stable when members are added.
        conventions.Properties<OrganizationStatus>().HaveConversion<string>().HaveMaxLength(16);
        conventions.Properties<MemberRole>().HaveConversion<string>().HaveMaxLength(16);
        conventions.Properties<BillingMode>().HaveConversion<string>().HaveMaxLength(24);
        conventions.Properties<ApiKeyStatus>().HaveConversion<string>().HaveMaxLength(16);
        conventions.Properties<LedgerEntryKind>().HaveConversion<string>().HaveMaxLength(16);
        // Money: exact decimals, never floating point.
        conventions.Properties<decimal>().HavePrecision(20, 10);
    }

    protected override void OnModelCreating(ModelBuilder b)
    {
        base.OnModelCreating(b);
        b.Entity<User>(e =>
        {
            e.ToTable("users");
            e.HasIndex(x => new { x.ExternalIssuer, x.ExternalSubject }).IsUnique();
            e.HasIndex(x => x.NormalizedEmail).HasDatabaseName("EmailIndex").IsUnique();
            e.Property(x => x.Email).HasMaxLength(320);
            e.Property(x => x.DisplayName).HasMaxLength(200);
            e.Property(x => x.ExternalIssuer).HasMaxLength(500);
            e.Property(x => x.ExternalSubject).HasMaxLength(200);
        });
        b.Entity<IdentityUserClaim<Guid>>().ToTable("user_claims");
        b.Entity<IdentityUserLogin<Guid>>().ToTable("user_logins");
        b.Entity<IdentityUserToken<Guid>>().ToTable("user_tokens");
        b.Entity<RefreshToken>(e =>
        {
            e.HasIndex(x => x.Hash).IsUnique();
            e.HasIndex(x => x.FamilyId);
            e.HasOne<User>().WithMany().HasForeignKey(x => x.UserId).OnDelete(DeleteBehavior.Cascade);
        });
        b.Entity<Organization>(e =>
        {
            e.Property(x => x.Name).HasMaxLength(200);
            e.HasOne<Plan>().WithMany().HasForeignKey(x => x.PlanId);
        });
        b.Entity<OrganizationMember>(e =>
        {
            e.HasKey(x => new { x.OrganizationId, x.UserId });
            e.HasOne<Organization>().WithMany().HasForeignKey(x => x.OrganizationId).OnDelete(DeleteBehavior.Cascade);
            e.HasOne<User>().WithMany().HasForeignKey(x => x.UserId).OnDelete(DeleteBehavior.Cascade);
            e.HasIndex(x => x.UserId);
        });
        b.Entity<Plan>(e => e.Property(x => x.Id).HasMaxLength(32));
        b.Entity<PlanSubscription>(e =>
        {
            e.HasOne<Organization>().WithMany().HasForeignKey(x => x.OrganizationId).OnDelete(DeleteBehavior.Cascade);
            e.HasOne<Plan>().WithMany().HasForeignKey(x => x.PlanId);
            e.HasIndex(x => new { x.OrganizationId, x.StartsAt });
        });
        b.Entity<ModelAccessPolicy>(e =>
        {
            e.HasOne<Model>().WithMany().HasForeignKey(x => x.ModelId);
            e.HasOne<Plan>().WithMany().HasForeignKey(x => x.PlanId);
            e.HasOne<Organization>().WithMany().HasForeignKey(x => x.OrganizationId).OnDelete(DeleteBehavior.Cascade);
            e.HasIndex(x => new { x.PlanId, x.OrganizationId, x.ModelId }).IsUnique().AreNullsDistinct(false);
            e.ToTable(t => t.HasCheckConstraint("ck_model_access_policies_subject", "(plan_id IS NULL) <> (organization_id IS NULL)"));
        });
        b.Entity<ApiKey>(e =>
        {
            e.HasIndex(x => x.Hash).IsUnique();
            e.HasIndex(x => x.OrganizationId);
            e.Property(x => x.Name).HasMaxLength(100);
            e.Property(x => x.Environment).HasMaxLength(8);
            e.Property(x => x.Start).HasMaxLength(24);
            e.HasOne<Organization>().WithMany().HasForeignKey(x => x.OrganizationId).OnDelete(DeleteBehavior.Cascade);
        });
        b.Entity<Model>(e => e.Property(x => x.Id).HasMaxLength(64));
        b.Entity<RouterPool>(e => e.Property(x => x.Id).HasMaxLength(64));
        b.Entity<RouterPoolModel>(e =>
        {
            // One pool per model in V1; the table allows a model to move between pools.
            e.HasKey(x => x.ModelId);
            e.HasOne<Model>().WithMany().HasForeignKey(x => x.ModelId);
            e.HasOne<RouterPool>().WithMany().HasForeignKey(x => x.PoolId);
        });
        b.Entity<Router>(e =>
        {
            e.Property(x => x.Id).HasMaxLength(64);
            e.HasOne<RouterPool>().WithMany().HasForeignKey(x => x.PoolId);
        });
        b.Entity<RouterSession>(e =>
        {
            e.Property(x => x.Id).ValueGeneratedNever();
            e.HasOne<Router>().WithMany().HasForeignKey(x => x.RouterId).OnDelete(DeleteBehavior.Cascade);
        });
        b.Entity<UsageEvent>(e =>
        {
            // The event id is the idempotency key of the metering pipeline.
            e.HasKey(x => x.EventId);
            e.Property(x => x.EventId).HasMaxLength(40);
            e.Property(x => x.RequestId).HasMaxLength(128);
            // Written at tens of thousands of rows a second: every index here costs ledger throughput.
            // Lookups by request id or organisation go through request_logs; charts read usage_daily.
        });
        b.Entity<RequestLog>(e =>
        {
            e.HasKey(x => x.EventId);
            e.Property(x => x.EventId).HasMaxLength(40);
            e.Property(x => x.RequestId).HasMaxLength(128);
            e.HasIndex(x => x.RequestId);
            e.HasIndex(x => new { x.ModelId, x.CreatedAt });
            e.HasIndex(x => new { x.Status, x.CreatedAt });
            e.HasIndex(x => new { x.OrganizationId, x.CreatedAt });
            e.HasIndex(x => new { x.ApiKeyId, x.CreatedAt });
        });
        b.Entity<UsageDaily>(e =>
        {
            e.ToTable("usage_daily");
            e.HasKey(x => new { x.OrganizationId, x.Day, x.ApiKeyId, x.ModelId });
        });
        b.Entity<BillingLedgerEntry>(e =>
        {
            e.HasIndex(x => new { x.Kind, x.Reference }).IsUnique();
            e.HasIndex(x => new { x.OrganizationId, x.CreatedAt });
            e.HasOne<Organization>().WithMany().HasForeignKey(x => x.OrganizationId);
        });
        b.Entity<AuditLogEntry>(e =>
        {
            e.Property(x => x.Before).HasColumnType("jsonb");
            e.Property(x => x.After).HasColumnType("jsonb");
            e.HasIndex(x => x.CreatedAt);
        });

        b.ApplyConfiguration(new ControlPlane.InvitationConfiguration());

        PortalSeed.Apply(b);
    }
}

/// <summary>Lets <c>dotnet ef migrations add</c> build the model without a running database.</summary>
public sealed class DesignTimePortalDbContextFactory : IDesignTimeDbContextFactory<PortalDbContext>
{
    public PortalDbContext CreateDbContext(string[] args)
    {
        var options = new DbContextOptionsBuilder<PortalDbContext>().UseNpgsql("Host=localhost;Database=portal");
        PortalDbContext.Configure(options);
        return new PortalDbContext(options.Options);
    }
}
