using Cortensor.Api.Accounts;
using Cortensor.Tests.Fixtures;
using Microsoft.IdentityModel.JsonWebTokens;

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
    public async Task WithoutAnAudienceSettingClerkStyleTokensWithoutAudIsAccepted()
    {
        var clerk = new ExternalIdentityOptions { Issuer = "https://clerk.example.com", SigningSecret = Supabase.SigningSecret };
        var token = TestIdentityProvider.IssueHmacToken(clerk.SigningSecret!, "user_2", clerk.Issuer!, audience: null);
        Assert.False(new JsonWebTokenHandler().ReadJsonWebToken(token).TryGetPayloadValue<object>("aud", out _), "the token must carry no aud claim");

        var result = await new JsonWebTokenHandler().ValidateTokenAsync(token, ExternalIdentity.ValidationParameters(clerk));
        Assert.True(result.IsValid, result.Exception?.Message);
        Assert.Equal("user_2", result.ClaimsIdentity.Name);

        // The same token where an audience is configured is refused: the setting is what lets it through.
        var withAudience = new ExternalIdentityOptions { Issuer = clerk.Issuer, SigningSecret = clerk.SigningSecret, Audience = "authenticated" };
        Assert.False((await new JsonWebTokenHandler().ValidateTokenAsync(token, ExternalIdentity.ValidationParameters(withAudience))).IsValid);
    }
}
