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
    /// <summary>Expected <c>aud</c> (Supabase: "authenticated"). Required unless <see cref="AuthorizedParties"/> is set.</summary>
    public string? Audience { get; set; }
    /// <summary>
    /// Accepted <c>azp</c> values (the origins of your front ends): Clerk session tokens carry no <c>aud</c>, so
    /// they are pinned to your applications this way. When set, a token without a listed <c>azp</c> is refused.
    /// </summary>
    public string[] AuthorizedParties { get; set; } = [];
    public string? JwksUrl { get; set; }
    public string? SigningSecret { get; set; }
    /// <summary>Plain-http JWKS only for local development and tests.</summary>
    public bool RequireHttps { get; set; } = true;
    public string EmailClaim { get; set; } = "email";

    public bool IsConfigured => !string.IsNullOrWhiteSpace(Issuer);

    /// <summary>What is wrong with a configured provider (null when nothing): the Api refuses to start with it.</summary>
    public string? Problem() =>
        !IsConfigured ? null
        : string.IsNullOrWhiteSpace(JwksUrl) == string.IsNullOrWhiteSpace(SigningSecret)
            ? "Auth:External needs exactly one of JwksUrl (RS256/ES256 keys) or SigningSecret (HS256)."
        : string.IsNullOrWhiteSpace(Audience) && AuthorizedParties.Length == 0
            ? "Auth:External needs Audience or AuthorizedParties: a token meant for another application must not sign in here."
        : null;
}
