namespace Cortensor.Api.Accounts;

/// <summary>The "Auth" configuration section: how the Portal signs its own tokens, and which external provider it trusts.</summary>
public sealed class AuthOptions
{
    public const string Section = "Auth";

    /// <summary>HMAC-SHA256 key shared by every Api replica (AppHost parameter <c>auth-signing-key</c>); at least 32 bytes.</summary>
    public string SigningKey { get; set; } = "";
    public string Issuer { get; set; } = "cortensor-portal";
    public string Audience { get; set; } = "cortensor-portal";
    public int AccessTokenMinutes { get; set; } = 15;
    public int RefreshTokenDays { get; set; } = 30;
    public ExternalIdentityOptions External { get; set; } = new();
}

/// <summary>
/// An external identity provider (Supabase Auth or Clerk) whose JWTs the Api accepts as well as its own.
/// Configured when <see cref="Issuer"/> is set; keys come from <see cref="JwksUrl"/> (RS256/ES256) or
/// <see cref="SigningSecret"/> (Supabase's HS256 JWT secret).
/// </summary>
public sealed class ExternalIdentityOptions
{
    /// <summary>A name for logs and the audit trail, e.g. "supabase" or "clerk".</summary>
    public string Provider { get; set; } = "external";
    /// <summary>Exact <c>iss</c> of the provider's tokens, e.g. https://PROJECT.supabase.co/auth/v1 or https://CLERK-DOMAIN.</summary>
    public string? Issuer { get; set; }
    /// <summary>Expected <c>aud</c>; empty skips the audience check (Clerk session tokens carry none).</summary>
    public string? Audience { get; set; }
    public string? JwksUrl { get; set; }
    public string? SigningSecret { get; set; }
    /// <summary>Plain-http JWKS only for local development and tests.</summary>
    public bool RequireHttps { get; set; } = true;
    public string EmailClaim { get; set; } = "email";

    public bool IsConfigured => !string.IsNullOrWhiteSpace(Issuer);
}
