using System.Net;
using System.Security.Claims;
using System.Security.Cryptography;
using System.Text;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Http;
using Microsoft.AspNetCore.Hosting;
using Microsoft.IdentityModel.JsonWebTokens;
using Microsoft.IdentityModel.Tokens;

namespace Cortensor.Tests.Fixtures;

/// <summary>
/// Stands in for Supabase Auth: publishes a JWKS document over HTTP and signs tokens with its
/// private key, the way the real provider would. The Api is configured to trust it.
/// </summary>
public sealed class TestIdentityProvider : IAsyncDisposable
{
    public const string Issuer = "https://test-project.supabase.co/auth/v1";
    public const string Audience = "authenticated";
    private readonly RSA _rsa = RSA.Create(2048);
    private readonly WebApplication _server;

    public string JwksUrl { get; }

    private TestIdentityProvider(WebApplication server, string jwksUrl)
    {
        _server = server;
        JwksUrl = jwksUrl;
    }

    public static async Task<TestIdentityProvider> StartAsync()
    {
        var builder = WebApplication.CreateSlimBuilder();
        builder.WebHost.UseKestrel(o => o.Listen(IPAddress.Loopback, 0));
        var app = builder.Build();
        TestIdentityProvider? provider = null;
        app.MapGet("/auth/v1/.well-known/jwks.json", () => Results.Text(provider!.Jwks(), "application/json"));
        await app.StartAsync();
        var address = app.Urls.Single();
        provider = new TestIdentityProvider(app, $"{address}/auth/v1/.well-known/jwks.json");
        return provider;
    }

    private string Jwks()
    {
        var p = _rsa.ExportParameters(false);
        return $$"""{"keys":[{"kty":"RSA","kid":"test-key-1","use":"sig","alg":"RS256","n":"{{Base64UrlEncoder.Encode(p.Modulus)}}","e":"{{Base64UrlEncoder.Encode(p.Exponent)}}"}]}""";
    }

    /// <summary>A token as Supabase would issue it; <paramref name="signWithOtherKey"/> forges one.</summary>
    public string IssueToken(string subject, string? email, string issuer = Issuer, string audience = Audience,
        TimeSpan? lifetime = null, bool signWithOtherKey = false, bool emailVerified = true)
    {
        var key = signWithOtherKey ? new RsaSecurityKey(RSA.Create(2048)) { KeyId = "test-key-1" } : new RsaSecurityKey(_rsa) { KeyId = "test-key-1" };
        var claims = new List<Claim> { new("sub", subject), new("role", "authenticated") };
        if (email is not null) claims.Add(new Claim("email", email));
        if (email is not null) claims.Add(new Claim("email_verified", emailVerified ? "true" : "false", ClaimValueTypes.Boolean));
        var now = DateTime.UtcNow;
        var expires = now + (lifetime ?? TimeSpan.FromMinutes(10));
        return new JsonWebTokenHandler().CreateToken(new SecurityTokenDescriptor
        {
            Issuer = issuer, Audience = audience, Subject = new ClaimsIdentity(claims),
            IssuedAt = expires < now ? expires.AddMinutes(-5) : now, NotBefore = expires < now ? expires.AddMinutes(-5) : now, Expires = expires,
            SigningCredentials = new SigningCredentials(key, SecurityAlgorithms.RsaSha256),
        });
    }

    /// <summary>An HS256 token signed with a shared secret (Supabase's legacy JWT secret); no <c>aud</c> claim when <paramref name="audience"/> is null (Clerk).</summary>
    public static string IssueHmacToken(string secret, string subject, string issuer, string? audience) =>
        new JsonWebTokenHandler().CreateToken(new SecurityTokenDescriptor
        {
            Issuer = issuer, Audience = audience, Subject = new ClaimsIdentity([new Claim("sub", subject)]),
            Expires = DateTime.UtcNow.AddMinutes(5),
            SigningCredentials = new SigningCredentials(new SymmetricSecurityKey(Encoding.UTF8.GetBytes(secret)), SecurityAlgorithms.HmacSha256),
        });

    public async ValueTask DisposeAsync()
    {
        await _server.StopAsync();
        await _server.DisposeAsync();
        _rsa.Dispose();
    }
}
