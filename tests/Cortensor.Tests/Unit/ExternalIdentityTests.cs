using Cortensor.Api.Accounts;
using Cortensor.Tests.Fixtures;
using System.Security.Claims;
using System.Security.Cryptography;
using Microsoft.IdentityModel.JsonWebTokens;
using Microsoft.IdentityModel.Tokens;

namespace Cortensor.Tests.Unit;

public class ExternalIdentityTests
{
    private static readonly ExternalIdentityOptions Supabase = new()
    {
        Provider = "supabase", Issuer = "https://abc.supabase.co/auth/v1", Audience = "authenticated",
        SigningSecret = "super-secret-jwt-token-with-at-least-32-characters-long",
    };

    [Fact]
    public async Task ATokenSignedWithTheSharedSecretIsAccepted()
    {
        var token = TestIdentityProvider.IssueHmacToken(Supabase.SigningSecret!, "user-1", Supabase.Issuer!, "authenticated");
        var result = await new JsonWebTokenHandler().ValidateTokenAsync(token, ExternalIdentity.ValidationParameters(Supabase));
        Assert.True(result.IsValid, result.Exception?.Message);
        Assert.Equal("user-1", result.ClaimsIdentity.Name);
    }

    [Theory]
    [InlineData("another-secret-that-is-also-at-least-32-characters", "https://abc.supabase.co/auth/v1", "authenticated")]
    [InlineData("super-secret-jwt-token-with-at-least-32-characters-long", "https://evil.example/auth/v1", "authenticated")]
    [InlineData("super-secret-jwt-token-with-at-least-32-characters-long", "https://abc.supabase.co/auth/v1", "anon")]
    public async Task ATokenWithTheWrongSecretIssuerOrAudienceIsRejected(string secret, string issuer, string audience)
    {
        var token = TestIdentityProvider.IssueHmacToken(secret, "user-1", issuer, audience);
        var result = await new JsonWebTokenHandler().ValidateTokenAsync(token, ExternalIdentity.ValidationParameters(Supabase));
        Assert.False(result.IsValid);
    }

    [Fact]
    public async Task ClerkStyleTokensWithoutAudAreAcceptedOnlyFromAnAuthorisedParty()
    {
        var clerk = new ExternalIdentityOptions { Issuer = "https://clerk.example.com", SigningSecret = Supabase.SigningSecret, AuthorizedParties = ["https://app.example.com"] };
        Assert.Null(clerk.Problem());
        var parameters = ExternalIdentity.ValidationParameters(clerk);
        Assert.True((await Handler.ValidateTokenAsync(HmacToken(clerk.SigningSecret!, clerk.Issuer!, audience: null, azp: "https://app.example.com"), parameters)).IsValid);
        Assert.False((await Handler.ValidateTokenAsync(HmacToken(clerk.SigningSecret!, clerk.Issuer!, audience: null, azp: "https://evil.example.com"), parameters)).IsValid);
        Assert.False((await Handler.ValidateTokenAsync(HmacToken(clerk.SigningSecret!, clerk.Issuer!, audience: null, azp: null), parameters)).IsValid);
    }

    [Fact]
    public async Task ATokenWithoutAudIsRefusedWhenAnAudienceIsConfigured()
    {
        var token = HmacToken(Supabase.SigningSecret!, Supabase.Issuer!, audience: null, azp: null);
        Assert.False((await Handler.ValidateTokenAsync(token, ExternalIdentity.ValidationParameters(Supabase))).IsValid);
    }

    [Fact]
    public void AProviderWithNeitherAudienceNorAuthorisedPartiesOrWithTwoKeySourcesIsRefusedAtStart()
    {
        Assert.NotNull(new ExternalIdentityOptions { Issuer = "https://clerk.example.com", SigningSecret = Supabase.SigningSecret }.Problem());
        Assert.NotNull(new ExternalIdentityOptions
        {
            Issuer = Supabase.Issuer, Audience = Supabase.Audience, SigningSecret = Supabase.SigningSecret, JwksUrl = "https://abc.supabase.co/auth/v1/.well-known/jwks.json",
        }.Problem());
    }

    [Fact]
    public async Task WithNeitherAudienceNorAuthorisedPartiesEveryTokenIsRefused()
    {
        var open = new ExternalIdentityOptions { Issuer = "https://clerk.example.com", SigningSecret = Supabase.SigningSecret };
        var token = HmacToken(open.SigningSecret!, open.Issuer!, audience: "anything", azp: "https://app.example.com");
        Assert.False((await Handler.ValidateTokenAsync(token, ExternalIdentity.ValidationParameters(open))).IsValid);
    }

    [Fact]
    public async Task OnlyTheAllowedAlgorithmIsAcceptedEvenWithTheRightKey()
    {
        var key = new SymmetricSecurityKey(System.Text.Encoding.UTF8.GetBytes(Supabase.SigningSecret! + Supabase.SigningSecret));
        var parameters = ExternalIdentity.ValidationParameters(Supabase);
        parameters.IssuerSigningKey = key;
        Assert.True((await Handler.ValidateTokenAsync(Handler.CreateToken(Descriptor(new SigningCredentials(key, SecurityAlgorithms.HmacSha256))), parameters)).IsValid);
        Assert.False((await Handler.ValidateTokenAsync(Handler.CreateToken(Descriptor(new SigningCredentials(key, SecurityAlgorithms.HmacSha512))), parameters)).IsValid);
    }

    [Fact]
    public async Task AnUnsignedTokenIsRefused()
    {
        var unsigned = Handler.CreateToken(new SecurityTokenDescriptor
        {
            Issuer = Supabase.Issuer, Audience = Supabase.Audience, Subject = new ClaimsIdentity([new Claim("sub", "user-1")]), Expires = DateTime.UtcNow.AddMinutes(5),
        });
        Assert.Contains("\"alg\":\"none\"", Base64UrlEncoder.Decode(unsigned.Split('.')[0]), StringComparison.Ordinal);
        Assert.False((await Handler.ValidateTokenAsync(unsigned, ExternalIdentity.ValidationParameters(Supabase))).IsValid);
        Assert.False((await Handler.ValidateTokenAsync(unsigned, JwksParameters(RSA.Create(2048)))).IsValid);
    }

    [Fact]
    public async Task AJwksProviderAcceptsRs256ButRefusesHs256SignedWithItsPublicKey()
    {
        using var rsa = RSA.Create(2048);
        var parameters = JwksParameters(rsa);
        var rs256 = Handler.CreateToken(Descriptor(new SigningCredentials(new RsaSecurityKey(rsa) { KeyId = "k1" }, SecurityAlgorithms.RsaSha256)));
        Assert.True((await Handler.ValidateTokenAsync(rs256, parameters)).IsValid);

        // Algorithm confusion: the public key (public to everyone) used as an HMAC secret.
        var publicKey = rsa.ExportSubjectPublicKeyInfo();
        foreach (var secret in new[] { publicKey, System.Text.Encoding.UTF8.GetBytes(rsa.ExportSubjectPublicKeyInfoPem()) })
        {
            var forged = Handler.CreateToken(Descriptor(new SigningCredentials(new SymmetricSecurityKey(secret) { KeyId = "k1" }, SecurityAlgorithms.HmacSha256)));
            Assert.False((await Handler.ValidateTokenAsync(forged, parameters)).IsValid);
        }
    }

    private static readonly JsonWebTokenHandler Handler = new();

    /// <summary>A JWKS provider as the Api configures it, with the keys its JWKS document would publish.</summary>
    private static TokenValidationParameters JwksParameters(RSA rsa)
    {
        var parameters = ExternalIdentity.ValidationParameters(Supabase.WithJwks("https://abc.supabase.co/auth/v1/.well-known/jwks.json"));
        var publicKey = RSA.Create();
        publicKey.ImportParameters(rsa.ExportParameters(false));
        parameters.IssuerSigningKeys = [new RsaSecurityKey(publicKey) { KeyId = "k1" }];
        return parameters;
    }

    private static SecurityTokenDescriptor Descriptor(SigningCredentials credentials) => new()
    {
        Issuer = Supabase.Issuer, Audience = Supabase.Audience, Subject = new ClaimsIdentity([new Claim("sub", "user-1")]),
        Expires = DateTime.UtcNow.AddMinutes(5), SigningCredentials = credentials,
    };

    private static string HmacToken(string secret, string issuer, string? audience, string? azp)
    {
        var claims = new List<Claim> { new("sub", "user-2") };
        if (azp is not null) claims.Add(new Claim("azp", azp));
        return Handler.CreateToken(new SecurityTokenDescriptor
        {
            Issuer = issuer, Audience = audience, Subject = new ClaimsIdentity(claims), Expires = DateTime.UtcNow.AddMinutes(5),
            SigningCredentials = new SigningCredentials(new SymmetricSecurityKey(System.Text.Encoding.UTF8.GetBytes(secret)), SecurityAlgorithms.HmacSha256),
        });
    }
}

internal static class ExternalIdentityOptionsExtensions
{
    public static ExternalIdentityOptions WithJwks(this ExternalIdentityOptions o, string jwksUrl) => new()
    {
        Provider = o.Provider, Issuer = o.Issuer, Audience = o.Audience, AuthorizedParties = o.AuthorizedParties, JwksUrl = jwksUrl,
    };
}
