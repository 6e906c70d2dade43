using System.Text;
using Cortensor.Api.Accounts.Mail;
using Cortensor.Api.Accounts.Siwe;
using Cortensor.Api.Data;
using Microsoft.AspNetCore.DataProtection;
using Microsoft.AspNetCore.Authentication.JwtBearer;
using Microsoft.AspNetCore.Identity;
using Microsoft.IdentityModel.JsonWebTokens;
using Microsoft.IdentityModel.Tokens;

namespace Cortensor.Api.Accounts;

public static class PortalAuth
{
    /// <summary>The scheme the control plane and the admin API authenticate with: it picks Portal or external by the token's issuer.</summary>
    public const string Bearer = "bearer";
    public const string PortalScheme = "portal";
    public const string ExternalScheme = "external";
    public const string UserPolicy = "portal-user";
    public const string AdminPolicy = "admin";
}

public static class AccountsExtensions
{
    /// <summary>
    /// Accounts on ASP.NET Core Identity (Postgres), the Portal's own JWTs, and optionally an external
    /// provider's. There is deliberately no default scheme: /v1 authenticates API keys on its own and
    /// must not pay for JWT parsing.
    /// </summary>
    public static WebApplicationBuilder AddAccounts(this WebApplicationBuilder builder)
    {
        builder.Services.AddOptions<AuthOptions>().BindConfiguration(AuthOptions.Section)
            .Validate(o => Encoding.UTF8.GetByteCount(o.SigningKey) >= 32, "Auth:SigningKey must be at least 32 bytes (AppHost parameter auth-signing-key).")
            .Validate(o => o.External.Problem() is null, "Auth:External needs exactly one of JwksUrl or SigningSecret, and Audience or AuthorizedParties.")
            .ValidateOnStart();

        builder.Services.AddIdentityCore<User>(o =>
            {
                // Addresses are unique in the database (a unique index on the normalised address) rather than by
                // Identity's validator, which also demands an address: external accounts without a verified one have none.
                o.User.RequireUniqueEmail = false;
                o.Password.RequiredLength = 10;
                o.Password.RequireNonAlphanumeric = false;
                o.Password.RequireUppercase = true;
                o.Password.RequireLowercase = true;
                o.Password.RequireDigit = true;
                // Identity's per-account lockout lets anyone lock the owner out; SignInFailures counts per IP and account instead.
                o.Lockout.AllowedForNewUsers = false;
                o.Tokens.PasswordResetTokenProvider = AccountTokens.ResetProvider;
            })
            .AddEntityFrameworkStores<PortalDbContext>()
            .AddSignInManager()
            .AddDefaultTokenProviders()
            .AddTokenProvider<PasswordResetTokenProvider>(AccountTokens.ResetProvider);
        builder.Services.Configure<DataProtectionTokenProviderOptions>(o => o.TokenLifespan = AccountTokens.VerificationLifespan);
        // Links are signed with the data-protection key ring, kept in Postgres so every replica (and a restart) reads the same keys.
        builder.Services.AddDataProtection().SetApplicationName("cortensor-portal").PersistKeysToDbContext<PortalDbContext>();
        builder.AddPortalMail();
        builder.AddAuthThrottling();
        builder.Services.AddScoped<AccountMails>();
        builder.Services.AddScoped<PortalTokens>();
        builder.Services.AddSingleton<SessionRevocations>();
        builder.Services.AddHostedService(sp => sp.GetRequiredService<SessionRevocations>());
        builder.Services.AddScoped<ExternalUsers>();
        builder.AddWalletSignIn();

        var auth = builder.Configuration.GetSection(AuthOptions.Section).Get<AuthOptions>() ?? new AuthOptions();
        var external = auth.External;
        var authentication = builder.Services.AddAuthentication()
            .AddPolicyScheme(PortalAuth.Bearer, "Portal or external bearer token", o => o.ForwardDefaultSelector = http =>
                external.IsConfigured && IssuerOf(http) == external.Issuer ? PortalAuth.ExternalScheme : PortalAuth.PortalScheme)
            .AddJwtBearer(PortalAuth.PortalScheme, jwt =>
            {
                jwt.MapInboundClaims = false;
                jwt.TokenValidationParameters = new TokenValidationParameters
                {
                    ValidIssuer = auth.Issuer, ValidAudience = auth.Audience, IssuerSigningKey = PortalTokens.SigningKey(auth),
                    ValidAlgorithms = [SecurityAlgorithms.HmacSha256], ClockSkew = TimeSpan.FromSeconds(30),
                    NameClaimType = "sub", RoleClaimType = "role",
                };
                // Signed-out sessions and cut-off sign-ins stop here, on every replica (an in-memory lookup).
                jwt.Events = PortalBearerEvents.Create(context =>
                {
                    if (context.HttpContext.RequestServices.GetRequiredService<SessionRevocations>().IsRevoked(context.Principal?.FindFirst("sid")?.Value))
                        context.Fail(new SessionRevokedException());
                    return Task.CompletedTask;
                });
            });
        if (external.IsConfigured)
            authentication.AddJwtBearer(PortalAuth.ExternalScheme, jwt => ExternalIdentity.Configure(jwt, external));

        builder.Services.AddAuthorizationBuilder()
            .AddPolicy(PortalAuth.UserPolicy, p => p.AddAuthenticationSchemes(PortalAuth.Bearer).RequireAuthenticatedUser())
            .AddPolicy(PortalAuth.AdminPolicy, p => p.AddAuthenticationSchemes(PortalAuth.Bearer).RequireClaim("role", PortalRoles.Admin));
        return builder;
    }

    /// <summary>
    /// Creates the data-protection key ring at migration time, so replicas starting together find one key
    /// instead of each creating its own and refusing the others' links.
    /// </summary>
    public static void EnsureLinkSigningKeys(IServiceProvider services) =>
        services.GetRequiredService<IDataProtectionProvider>().CreateProtector("cortensor-key-ring").Protect("ready"u8.ToArray());

    private static string? IssuerOf(HttpContext http)
    {
        var header = http.Request.Headers.Authorization.ToString();
        if (!header.StartsWith("Bearer ", StringComparison.OrdinalIgnoreCase)) return null;
        try { return new JsonWebToken(header[7..].Trim()).Issuer; }
        catch (ArgumentException) { return null; }
    }
}
