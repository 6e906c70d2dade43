using System.Security.Claims;
using Cortensor.Api.Data;
using Cortensor.Api.Keys;
using Microsoft.AspNetCore.Authentication.JwtBearer;
using Microsoft.AspNetCore.Identity;
using Microsoft.EntityFrameworkCore;
using Microsoft.IdentityModel.JsonWebTokens;
using Microsoft.IdentityModel.Protocols;
using Microsoft.IdentityModel.Protocols.OpenIdConnect;
using Microsoft.IdentityModel.Tokens;

namespace Cortensor.Api.Accounts;

/// <summary>
/// Accepting Supabase Auth or Clerk tokens: their signing keys (a JWKS document, refreshed by the
/// IdentityModel configuration manager, or a shared secret), and the mapping of their subject to a
/// Portal user, created with a personal organisation the first time the subject is seen.
/// </summary>
public static class ExternalIdentity
{
    public static void Configure(JwtBearerOptions jwt, ExternalIdentityOptions external)
    {
        jwt.MapInboundClaims = false;
        jwt.TokenValidationParameters = ValidationParameters(external);
        if (string.IsNullOrWhiteSpace(external.SigningSecret) && !string.IsNullOrWhiteSpace(external.JwksUrl))
            jwt.ConfigurationManager = new ConfigurationManager<OpenIdConnectConfiguration>(external.JwksUrl,
                new JwksRetriever(external.Issuer!), new HttpDocumentRetriever { RequireHttps = external.RequireHttps });
        jwt.Events = PortalBearerEvents.Create(async context =>
        {
            try
            {
                var users = context.HttpContext.RequestServices.GetRequiredService<ExternalUsers>();
                var user = await users.ResolveAsync(external, context.Principal!, context.HttpContext.RequestAborted);
                context.Principal = PortalPrincipal(user, external.Provider);
            }
            catch (SecurityTokenValidationException ex)
            {
                context.Fail(ex);
            }
        });
    }

    /// <summary>JWKS keys are asymmetric; a shared secret is HMAC. Nothing else, and never "none".</summary>
    public static readonly string[] JwksAlgorithms = [SecurityAlgorithms.RsaSha256, SecurityAlgorithms.EcdsaSha256];
    public static readonly string[] SecretAlgorithms = [SecurityAlgorithms.HmacSha256];

    public static TokenValidationParameters ValidationParameters(ExternalIdentityOptions external)
    {
        var shared = !string.IsNullOrWhiteSpace(external.SigningSecret);
        return new TokenValidationParameters
        {
            ValidIssuer = external.Issuer,
            // Always on: with neither an audience nor authorised parties configured, every token is refused.
            ValidateAudience = true,
            AudienceValidator = (audiences, token, _) => AudienceAccepted(external, audiences, token),
            ValidateLifetime = true,
            RequireExpirationTime = true,
            ClockSkew = TimeSpan.FromSeconds(30),
            RequireSignedTokens = true,
            ValidateIssuerSigningKey = true,
            // Pinning the algorithm to the key type stops "alg: none" and HS256 signed with a JWKS public key.
            ValidAlgorithms = shared ? SecretAlgorithms : JwksAlgorithms,
            IssuerSigningKey = shared ? new SymmetricSecurityKey(System.Text.Encoding.UTF8.GetBytes(external.SigningSecret!)) : null,
            NameClaimType = "sub",
            RoleClaimType = "role",
        };
    }

    /// <summary>The configured <c>aud</c> must be among the token's audiences, and its <c>azp</c> among the authorised parties.</summary>
    private static bool AudienceAccepted(ExternalIdentityOptions external, IEnumerable<string> audiences, SecurityToken token)
    {
        var hasAudience = !string.IsNullOrWhiteSpace(external.Audience);
        if (!hasAudience && external.AuthorizedParties.Length == 0) return false;
        if (hasAudience && !audiences.Contains(external.Audience, StringComparer.Ordinal)) return false;
        if (external.AuthorizedParties.Length == 0) return true;
        return token is JsonWebToken jwt && jwt.TryGetPayloadValue<string>("azp", out var azp)
            && external.AuthorizedParties.Contains(azp, StringComparer.Ordinal);
    }

    /// <summary>Once mapped, an external caller looks exactly like a Portal-signed one to the rest of the Api.</summary>
    private static ClaimsPrincipal PortalPrincipal(User user, string provider)
    {
        var claims = new List<Claim> { new("sub", user.Id.ToString()), new("idp", provider) };
        if (user.Email is { } email) claims.Add(new Claim("email", email));
        if (user.IsAdmin) claims.Add(new Claim("role", PortalRoles.Admin));
        return new ClaimsPrincipal(new ClaimsIdentity(claims, "external", "sub", "role"));
    }

    /// <summary>Reads a bare JWKS document (Supabase and Clerk publish one, without OIDC discovery).</summary>
    private sealed class JwksRetriever(string issuer) : IConfigurationRetriever<OpenIdConnectConfiguration>
    {
        public async Task<OpenIdConnectConfiguration> GetConfigurationAsync(string address, IDocumentRetriever retriever, CancellationToken cancel)
        {
            var keys = new JsonWebKeySet(await retriever.GetDocumentAsync(address, cancel));
            var configuration = new OpenIdConnectConfiguration { Issuer = issuer, JsonWebKeySet = keys };
            foreach (var key in keys.GetSigningKeys()) configuration.SigningKeys.Add(key);
            return configuration;
        }
    }
}

/// <summary>Finds or creates the Portal user behind an external subject.</summary>
public sealed class ExternalUsers(PortalDbContext db, UserManager<User> users, KeyService keys, ILogger<ExternalUsers> log)
{
    public async Task<User> ResolveAsync(ExternalIdentityOptions external, ClaimsPrincipal principal, CancellationToken ct)
    {
        var issuer = external.Issuer!;
        var subject = principal.FindFirstValue("sub") ?? throw new SecurityTokenValidationException("The token has no 'sub' claim.");
        var existing = await db.Users.SingleOrDefaultAsync(u => u.ExternalIssuer == issuer && u.ExternalSubject == subject, ct);
        if (existing is not null) return existing;

        var email = principal.FindFirstValue(external.EmailClaim);
        // An address counts only when the provider says it verified it; an unverified one is not stored at all,
        // so it can neither squat a Portal address nor stand for someone it does not belong to.
        if (!IsTrue(principal.FindFirstValue(EmailVerifiedClaim))) email = null;
        // Never link to an existing account by e-mail: that would let whoever controls the provider
        // take over a local account. A colliding address stays on the local account only.
        if (email is not null && await users.FindByEmailAsync(email) is not null) email = null;
        var user = new User
        {
            UserName = $"{external.Provider}_{Convert.ToHexStringLower(System.Security.Cryptography.SHA256.HashData(System.Text.Encoding.UTF8.GetBytes(issuer + "|" + subject)))[..32]}", Email = email, EmailConfirmed = email is not null,
            ExternalIssuer = issuer, ExternalSubject = subject, DisplayName = principal.FindFirstValue("name") is { } name && !Errors.ApiError.NotOneLine(name) ? name : email,
        };
        var created = await users.CreateAsync(user);
        if (!created.Succeeded)
        {
            // Two first requests of the same subject raced; the other one created the user.
            var raced = await db.Users.AsNoTracking().SingleOrDefaultAsync(u => u.ExternalIssuer == issuer && u.ExternalSubject == subject, ct);
            return raced ?? throw new SecurityTokenValidationException(string.Join(" ", created.Errors.Select(e => e.Description)));
        }
        await keys.CreateOrganizationAsync(PersonalOrganizationName(email ?? user.DisplayName ?? subject), "free", user.Id,
            new AuditActor(user.Id, email ?? user.UserName!), ct);
        log.LogInformation("Created Portal user {UserId} for {Provider} subject on first sign-in", user.Id, external.Provider);
        return user;
    }

    public static string PersonalOrganizationName(string who) => $"{who}'s organization";

    /// <summary>Supabase and Clerk (with the email_verified session claim configured) carry it as a JSON boolean.</summary>
    public const string EmailVerifiedClaim = "email_verified";

    private static bool IsTrue(string? value) => string.Equals(value, "true", StringComparison.OrdinalIgnoreCase);
}
