using System.Net.Mail;
using Cortensor.Api.ControlPlane;
using Cortensor.Api.Data;
using Cortensor.Api.Errors;
using Cortensor.Api.Infrastructure;
using Cortensor.Api.Keys;
using Microsoft.AspNetCore.Http.HttpResults;
using Microsoft.AspNetCore.Identity;
using Microsoft.EntityFrameworkCore;

namespace Cortensor.Api.Accounts;

/// <summary>Sign-up, sign-in, token refresh, sign-out and the caller's profile (SPEC §4).</summary>
public static class AuthApi
{
    public static IEndpointRouteBuilder MapAuthApi(this IEndpointRouteBuilder app)
    {
        var auth = app.MapGroup("/portal/auth").WithTags("Accounts").ProducesErrors(400, 401, 409, 429);
        auth.MapPost("/signup", SignUp).WithSummary("Create an account and its personal organisation; answers with tokens");
        auth.MapPost("/login", LogIn).WithSummary("Sign in with e-mail and password; five failures lock the account for five minutes");
        auth.MapPost("/refresh", Refresh).WithSummary("Exchange a refresh token for a new pair (the old one stops working)");
        auth.MapPost("/logout", LogOut).WithSummary("Sign out: the refresh token and every token rotated from it stop working");

        var me = app.MapGroup("/portal/me").WithTags("Accounts").RequireAuthorization(PortalAuth.UserPolicy).ProducesErrors(400, 401);
        me.MapGet("", GetMe).WithSummary("The signed-in user and their organisations");
        me.MapPatch("", UpdateMe).WithSummary("Change the display name");
        return app;
    }

    public sealed record SignUpBody(string? Email, string? Password, string? Organization);
    public sealed record LogInBody(string? Email, string? Password);
    public sealed record RefreshBody(string? RefreshToken);
    public sealed record ProfileBody(string? DisplayName);
    public sealed record TokensDto(string AccessToken, string RefreshToken, int ExpiresIn, string TokenType = "Bearer");
    public sealed record MeDto(Guid Id, string? Email, string? DisplayName, bool IsAdmin, string? IdentityProvider, DateTimeOffset CreatedAt, OrganizationsApi.OrganizationDto[] Organizations);

    private static async Task<Results<Created<TokensDto>, ErrorResult>> SignUp(SignUpBody body, UserManager<User> users,
        PortalDbContext db, KeyService keys, PortalTokens tokens, CancellationToken ct)
    {
        var email = body.Email?.Trim();
        if (string.IsNullOrEmpty(email)) return ApiError.MissingField("email").ToResult();
        if (email.Length > 320 || !MailAddress.TryCreate(email, out var parsed) || parsed.Address != email)
            return ApiError.InvalidField("email", "'email' is not a valid e-mail address.").ToResult();
        if (string.IsNullOrEmpty(body.Password)) return ApiError.MissingField("password").ToResult();
        var organization = body.Organization?.Trim();
        if (organization is { Length: 0 or > 200 })
            return ApiError.InvalidField("organization", "'organization' must be 1 to 200 characters.").ToResult();
        var user = new User { UserName = email, Email = email };

        // Identity checks the password policy first, then that the address is free; the account and its
        // personal organisation exist together or not at all.
        var strategy = db.Database.CreateExecutionStrategy();
        var failure = await strategy.ExecuteAsync(async () =>
        {
            db.ChangeTracker.Clear();
            await using var transaction = await db.Database.BeginTransactionAsync(ct);
            var created = await users.CreateAsync(user, body.Password);
            if (!created.Succeeded) return created;
            await keys.CreateOrganizationAsync(organization ?? ExternalUsers.PersonalOrganizationName(email), "free", user.Id, new AuditActor(user.Id, email), ct);
            await transaction.CommitAsync(ct);
            return null;
        });
        if (failure is not null)
        {
            var described = string.Join(" ", failure.Errors.Select(e => e.Description));
            return failure.Errors.Any(e => e.Code.StartsWith("Password", StringComparison.Ordinal)) ? ApiError.InvalidField("password", described).ToResult()
                : failure.Errors.Any(e => e.Code is "DuplicateEmail" or "DuplicateUserName") ? ApiError.EmailTaken().ToResult()
                : ApiError.InvalidField("email", described).ToResult();
        }
        return TypedResults.Created("/portal/me", ToDto(await tokens.IssueAsync(user, null, ct)));
    }

    private static async Task<Results<Ok<TokensDto>, ErrorResult>> LogIn(LogInBody body, UserManager<User> users,
        SignInManager<User> signIn, PortalTokens tokens, TimeProvider clock, CancellationToken ct)
    {
        if (string.IsNullOrWhiteSpace(body.Email)) return ApiError.MissingField("email").ToResult();
        if (string.IsNullOrEmpty(body.Password)) return ApiError.MissingField("password").ToResult();
        var user = await users.FindByEmailAsync(body.Email.Trim());
        if (user is not null)
        {
            var result = await signIn.CheckPasswordSignInAsync(user, body.Password, lockoutOnFailure: true);
            if (result.Succeeded) return TypedResults.Ok(ToDto(await tokens.IssueAsync(user, null, ct)));
            if (result.IsLockedOut)
            {
                var wait = (int)Math.Ceiling(((user.LockoutEnd ?? clock.GetUtcNow()) - clock.GetUtcNow()).TotalSeconds);
                return new ApiError(429, "rate_limit_error", "account_locked",
                    $"Too many failed sign-ins: the account is locked. Try again in {Math.Max(wait, 1)} s.") { RetryAfterSeconds = Math.Max(wait, 1) }.ToResult();
            }
        }
        return new ApiError(401, "authentication_error", "invalid_credentials", "The e-mail or password is wrong.").ToResult();
    }

    private static async Task<Results<Ok<TokensDto>, ErrorResult>> Refresh(RefreshBody body, PortalTokens tokens, CancellationToken ct)
    {
        if (string.IsNullOrWhiteSpace(body.RefreshToken)) return ApiError.MissingField("refresh_token").ToResult();
        return await tokens.RefreshAsync(body.RefreshToken, ct) is { } refreshed
            ? TypedResults.Ok(ToDto(refreshed.Tokens))
            : new ApiError(401, "authentication_error", "invalid_refresh_token", "The refresh token is not valid any more. Sign in again.").ToResult();
    }

    private static async Task<Results<NoContent, ErrorResult>> LogOut(RefreshBody body, PortalTokens tokens, CancellationToken ct)
    {
        if (string.IsNullOrWhiteSpace(body.RefreshToken)) return ApiError.MissingField("refresh_token").ToResult();
        await tokens.RevokeAsync(body.RefreshToken, ct);
        return TypedResults.NoContent();
    }

    private static async Task<Results<Ok<MeDto>, ErrorResult>> GetMe(HttpContext http, PortalDbContext db, CancellationToken ct)
    {
        var user = await db.Users.AsNoTracking().SingleOrDefaultAsync(u => u.Id == http.User.UserId(), ct);
        if (user is null) return new ApiError(401, "authentication_error", "invalid_token", "This account no longer exists.").ToResult();
        return TypedResults.Ok(new MeDto(user.Id, user.Email, user.DisplayName, user.IsAdmin, http.User.FindFirst("idp")?.Value,
            user.CreatedAt, await OrganizationsApi.ListForUserAsync(db, user.Id, ct)));
    }

    private static async Task<Results<Ok<MeDto>, ErrorResult>> UpdateMe(ProfileBody body, HttpContext http, PortalDbContext db, CancellationToken ct)
    {
        var name = body.DisplayName?.Trim();
        if (string.IsNullOrEmpty(name) || name.Length > 200) return ApiError.InvalidField("display_name", "'display_name' must be 1 to 200 characters.").ToResult();
        var user = await db.Users.SingleOrDefaultAsync(u => u.Id == http.User.UserId(), ct);
        if (user is null) return new ApiError(401, "authentication_error", "invalid_token", "This account no longer exists.").ToResult();
        user.DisplayName = name;
        await db.SaveChangesAsync(ct);
        return await GetMe(http, db, ct);
    }

    private static TokensDto ToDto(TokenPair t) => new(t.AccessToken, t.RefreshToken, t.ExpiresIn);
}
