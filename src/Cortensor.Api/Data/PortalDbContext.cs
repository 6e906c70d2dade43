using Microsoft.AspNetCore.DataProtection.EntityFrameworkCore;
using Microsoft.AspNetCore.Identity;
using Microsoft.AspNetCore.Identity.EntityFrameworkCore;
using Microsoft.EntityFrameworkCore;
using Microsoft.EntityFrameworkCore.Design;

namespace Cortensor.Api.Data;

// The seed's entity list (SPEC §6) plus what the features need, each entity beside its feature with its
// EF configuration. Table and column names are snake_case (EFCore.NamingConventions) so operators can
// query them as the seed names them. Identity's user store lives in the same database (users, user_claims, user_logins, user_tokens);
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
    public DbSet<LedgerTotal> LedgerTotals => Set<LedgerTotal>();
    public DbSet<CreditPurchase> CreditPurchases => Set<CreditPurchase>();
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
        // Identity's tables by the seed's names, before anything refers to them.
        b.Entity<User>().ToTable("users");
        b.Entity<IdentityUserClaim<Guid>>().ToTable("user_claims");
        b.Entity<IdentityUserLogin<Guid>>().ToTable("user_logins");
        b.Entity<IdentityUserToken<Guid>>().ToTable("user_tokens");

        // Each feature configures its own entities (IEntityTypeConfiguration<T> beside them).
        b.ApplyConfigurationsFromAssembly(typeof(PortalDbContext).Assembly);

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
