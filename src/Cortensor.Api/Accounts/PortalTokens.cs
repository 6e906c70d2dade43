using System.Security.Claims;
using System.Security.Cryptography;
using System.Text;
using Cortensor.Api.Data;
using Microsoft.EntityFrameworkCore;
using Microsoft.Extensions.Options;
using Microsoft.IdentityModel.JsonWebTokens;
using Microsoft.IdentityModel.Tokens;

namespace Cortensor.Api.Accounts;

public sealed record TokenPair(string AccessToken, string RefreshToken, int ExpiresIn);

/// <summary>
/// Issues the Portal's own tokens: a short-lived JWT access token and a rotating opaque refresh token
/// (stored hashed). Presenting a refresh token twice revokes every token of that sign-in.
/// </summary>
public sealed class PortalTokens(PortalDbContext db, IOptions<AuthOptions> options, TimeProvider clock, SessionRevocations revocations)
{
    private static readonly JsonWebTokenHandler Handler = new();
    private AuthOptions Options => options.Value;

    public static SymmetricSecurityKey SigningKey(AuthOptions options) => new(Encoding.UTF8.GetBytes(options.SigningKey));

    public async Task<TokenPair> IssueAsync(User user, Guid? family, CancellationToken ct)
    {
        var now = clock.GetUtcNow();
        var familyId = family ?? Guid.CreateVersion7();
        var claims = new List<Claim> { new("sub", user.Id.ToString()), new("sid", familyId.ToString()) };
        if (user.Email is { } email) claims.Add(new Claim("email", email));
        if (user.IsAdmin) claims.Add(new Claim("role", PortalRoles.Admin));
        var access = Handler.CreateToken(new SecurityTokenDescriptor
        {
            Issuer = Options.Issuer, Audience = Options.Audience, Subject = new ClaimsIdentity(claims),
            IssuedAt = now.UtcDateTime, NotBefore = now.UtcDateTime, Expires = now.AddMinutes(Options.AccessTokenMinutes).UtcDateTime,
            SigningCredentials = new SigningCredentials(SigningKey(Options), SecurityAlgorithms.HmacSha256),
        });

        var refresh = "ctr_rt_" + Base64UrlEncoder.Encode(RandomNumberGenerator.GetBytes(32));
        db.RefreshTokens.Add(new RefreshToken
        {
            UserId = user.Id, FamilyId = familyId, Hash = Hash(refresh), CreatedAt = now, ExpiresAt = now.AddDays(Options.RefreshTokenDays),
        });
        await db.SaveChangesAsync(ct);
        return new TokenPair(access, refresh, Options.AccessTokenMinutes * 60);
    }

    /// <summary>Rotates a refresh token: the user and a new pair, or null when the token is unknown, expired, revoked or reused.</summary>
    public async Task<(User User, TokenPair Tokens)?> RefreshAsync(string refreshToken, CancellationToken ct)
    {
        var now = clock.GetUtcNow();
        var hash = Hash(refreshToken);
        var stored = await db.RefreshTokens.AsNoTracking().SingleOrDefaultAsync(t => t.Hash == hash, ct);
        if (stored is null || stored.RevokedAt is not null || stored.ExpiresAt <= now) return null;
        // Claim the token with a conditional update, so two concurrent refreshes cannot both succeed.
        var claimed = await db.RefreshTokens.Where(t => t.Id == stored.Id && t.UsedAt == null)
            .ExecuteUpdateAsync(s => s.SetProperty(t => t.UsedAt, now), ct);
        if (claimed == 0)
        {
            await RevokeFamilyAsync(stored.FamilyId, ct);
            return null;
        }
        var user = await db.Users.SingleOrDefaultAsync(u => u.Id == stored.UserId, ct);
        if (user is null) return null;
        return (user, await IssueAsync(user, stored.FamilyId, ct));
    }

    /// <summary>Signs out: every refresh token of the sign-in this token belongs to stops working. Unknown tokens change nothing.</summary>
    public async Task RevokeAsync(string refreshToken, CancellationToken ct)
    {
        var hash = Hash(refreshToken);
        var family = await db.RefreshTokens.Where(t => t.Hash == hash).Select(t => (Guid?)t.FamilyId).SingleOrDefaultAsync(ct);
        if (family is { } id) await RevokeFamilyAsync(id, ct);
    }

    /// <summary>
    /// Ends every sign-in of a user (e.g. their platform role changed): refresh tokens stop working and the
    /// access tokens already issued are refused on every replica within about a second.
    /// </summary>
    public Task RevokeAllSessionsAsync(Guid userId, CancellationToken ct) => RevokeSessionsAsync(userId, keep: null, ct);

    /// <summary>Ends every sign-in of a user but <paramref name="keep"/> (the one asking, e.g. after a password change).</summary>
    public async Task RevokeSessionsAsync(Guid userId, Guid? keep, CancellationToken ct)
    {
        var now = clock.GetUtcNow();
        // Every sign-in that may still hold an access token, revoked refresh tokens included (a session ended in the
        // database only still has access tokens for their lifetime): each access token is issued with a refresh token,
        // so those issued within an access token's lifetime (and a minute of clock skew) are the ones.
        var issuedSince = now.AddMinutes(-Options.AccessTokenMinutes - 1);
        var families = await db.RefreshTokens
            .Where(t => t.UserId == userId && t.FamilyId != keep && ((t.RevokedAt == null && t.ExpiresAt > now) || t.CreatedAt > issuedSince))
            .Select(t => t.FamilyId).Distinct().ToListAsync(ct);
        await db.RefreshTokens.Where(t => t.UserId == userId && t.RevokedAt == null && t.FamilyId != keep)
            .ExecuteUpdateAsync(s => s.SetProperty(t => t.RevokedAt, now), ct);
        await revocations.RevokeAsync(families);
    }

    /// <summary>A family is one sign-in: its id is the access tokens' <c>sid</c>, so those stop too.</summary>
    private async Task RevokeFamilyAsync(Guid family, CancellationToken ct)
    {
        var now = clock.GetUtcNow();
        await db.RefreshTokens.Where(t => t.FamilyId == family && t.RevokedAt == null)
            .ExecuteUpdateAsync(s => s.SetProperty(t => t.RevokedAt, now), ct);
        await revocations.RevokeAsync([family]);
    }

    private static byte[] Hash(string token) => SHA256.HashData(Encoding.UTF8.GetBytes(token));
}

public static class PortalRoles
{
    public const string Admin = "admin";
}
