using System.Net.Mail;
using Cortensor.Api.Accounts.Mail;
using Cortensor.Api.Accounts.Siwe;
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
    /// <summary>The longest address taken: what SMTP can deliver (RFC 5321), within the account's 256-character column.</summary>
    public const int MaxEmailLength = 254;

    public static IEndpointRouteBuilder MapAuthApi(this IEndpointRouteBuilder app)
    {
        var auth = app.MapGroup("/portal/auth").WithTags("Accounts").ProducesErrors(400, 401, 429);
        auth.MapPost("/signup", SignUp).RequireRateLimiting(AuthThrottling.SignUp)
            .WithSummary("Create an account and its personal organisation, and mail a verification link; the answer is the same whether or not the address was free");
        auth.MapPost("/login", LogIn).RequireRateLimiting(AuthThrottling.SignIn)
            .WithSummary("Sign in with e-mail and password (and two_factor_code when two-factor sign-in is on: 401 two_factor_required asks for it); a wrong password and an unknown address answer alike; too many failures from one IP make that IP wait for that address");
        auth.MapPost("/refresh", Refresh).RequireRateLimiting(AuthThrottling.Tokens).WithSummary("Exchange a refresh token for a new pair (the old one stops working)");
        auth.MapPost("/logout", LogOut).RequireRateLimiting(AuthThrottling.Tokens).WithSummary("Sign out: the refresh token and every token rotated from it stop working");
        auth.MapAccountLinks();
        auth.MapWalletSignIn();

        var me = app.MapGroup("/portal/me").WithTags("Accounts").RequireAuthorization(PortalAuth.UserPolicy).ProducesErrors(400, 401);
        me.MapGet("", GetMe).WithSummary("The signed-in user and their organisations");
        me.MapPatch("", UpdateMe).WithSummary("Change the display name");
        me.MapAccountSecurity();
        me.MapWallets();
        return app;
    }

    public sealed record SignUpBody(string? Email, string? Password, string? Organization);
    /// <param name="TwoFactorCode">With two-factor sign-in on: the authenticator app's 6-digit code, or one of the recovery codes.</param>
    public sealed record LogInBody(string? Email, string? Password, string? TwoFactorCode = null);
    public sealed record RefreshBody(string? RefreshToken);
    public sealed record ProfileBody(string? DisplayName);
    public sealed record TokensDto(string AccessToken, string RefreshToken, int ExpiresIn, string TokenType = "Bearer");
    public sealed record SignUpAcceptedDto(string Email, string Status, string Message);
    public sealed record MeDto(Guid Id, string? Email, bool EmailVerified, string? DisplayName, bool IsAdmin, string? IdentityProvider, DateTimeOffset CreatedAt, OrganizationsApi.OrganizationDto[] Organizations);

    /// <summary>
    /// Never says whether the address was free: a new account and a taken address both answer 202, and the
    /// mail to the address tells its owner which it was. Bad input (address, password policy) is checked first
    /// and answered the same way for both.
    /// </summary>
    private static async Task<Results<Accepted<SignUpAcceptedDto>, ErrorResult>> SignUp(SignUpBody body, UserManager<User> users,
        PortalDbContext db, KeyService keys, AccountMails mails, AddressMailLimiter mailLimit, CancellationToken ct)
    {
        var email = body.Email?.Trim();
        if (string.IsNullOrEmpty(email)) return ApiError.MissingField("email").ToResult();
        if (!MailAddress.TryCreate(email, out var parsed) || parsed.Address != email)
            return ApiError.InvalidField("email", "'email' is not a valid e-mail address.").ToResult();
        // The account's column (ASP.NET Identity's) holds 256 characters; no deliverable address is longer than 254.
        if (email.Length > MaxEmailLength)
            return ApiError.InvalidField("email", $"'email' may be at most {MaxEmailLength} characters.").ToResult();
        if (string.IsNullOrEmpty(body.Password)) return ApiError.MissingField("password").ToResult();
        var organization = body.Organization?.Trim();
        if (organization is not null && ApiError.Text("organization", "Organization name", organization, 200) is { } badOrganization)
            return badOrganization.ToResult();
        var user = new User { UserName = email, Email = email };
        var weak = new List<IdentityError>();
        foreach (var validator in users.PasswordValidators)
            if (await validator.ValidateAsync(users, user, body.Password) is { Succeeded: false } result) weak.AddRange(result.Errors);
        if (weak.Count > 0) return ApiError.InvalidField("password", "Choose a stronger password: " + string.Join(" ", weak.Select(e => e.Description))).ToResult();

        var accepted = TypedResults.Accepted("/portal/me", new SignUpAcceptedDto(email, "verification_sent",
            "Check your mail: follow the link we sent to verify your address, then sign in."));
        var existing = await users.FindByEmailAsync(email);
        if (existing is not null)
        {
            // Hash anyway, so a taken address costs the caller the same time as a new one.
            users.PasswordHasher.HashPassword(user, body.Password);
            // Never a verification link here: it would verify whoever registered the address first. The owner is
            // pointed at a password reset, which proves the mailbox and takes the account over.
            if (mailLimit.TryAcquire(email, "already-registered")) mails.SendAlreadyRegistered(email);
            return accepted;
        }

        // The account and its personal organisation exist together or not at all.
        var strategy = db.Database.CreateExecutionStrategy();
        var failure = await strategy.ExecuteAsync(async () =>
        {
            db.ChangeTracker.Clear();
            await using var transaction = await db.Database.BeginTransactionAsync(ct);
            try
            {
                var created = await users.CreateAsync(user, body.Password);
                if (!created.Succeeded) return created;
            }
            catch (DbUpdateException ex) when (ex.InnerException is Npgsql.PostgresException { SqlState: Npgsql.PostgresErrorCodes.UniqueViolation })
            {
                // Two sign-ups for one address raced: the other one created it, and this one answers as for a taken address.
                return IdentityResult.Failed(new IdentityError { Code = "DuplicateEmail" });
            }
            await keys.CreateOrganizationAsync(organization ?? ExternalUsers.PersonalOrganizationName(email), "free", user.Id, new AuditActor(user.Id, email), ct);
            await transaction.CommitAsync(ct);
            return null;
        });
        if (failure is not null)
        {
            if (failure.Errors.Any(e => e.Code is "DuplicateEmail" or "DuplicateUserName")) return accepted;
            return ApiError.InvalidField("email", string.Join(" ", failure.Errors.Select(e => e.Description))).ToResult();
        }
        if (mailLimit.TryAcquire(email, "verification")) await mails.SendVerificationAsync(user);
        return accepted;
    }

    /// <summary>
    /// A wrong password, an unknown address and an account without a password all take one password-hash
    /// verification and answer 401 invalid_credentials; the wait after too many failures is per client IP and
    /// address, for known and unknown addresses alike.
    /// </summary>
    private static async Task<Results<Ok<TokensDto>, ErrorResult>> LogIn(LogInBody body, HttpContext http, UserManager<User> users,
        SignInManager<User> signIn, SignInFailures failures, PortalTokens tokens, StackExchange.Redis.IConnectionMultiplexer redis, CancellationToken ct)
    {
        if (string.IsNullOrWhiteSpace(body.Email)) return ApiError.MissingField("email").ToResult();
        if (string.IsNullOrEmpty(body.Password)) return ApiError.MissingField("password").ToResult();
        var email = body.Email.Trim();
        if (await failures.WaitAsync(http, email) is { } wait) return ApiError.AuthThrottled(wait).ToResult();
        var user = await users.FindByEmailAsync(email);
        if (user is { PasswordHash: not null })
        {
            var result = await signIn.CheckPasswordSignInAsync(user, body.Password, lockoutOnFailure: false);
            if (result.Succeeded && user.TwoFactorEnabled && string.IsNullOrWhiteSpace(body.TwoFactorCode))
                return new ApiError(401, "authentication_error", "two_factor_required",
                    "Enter the 6-digit code from your authenticator app, or one of your recovery codes.", "two_factor_code").ToResult();
            if (result.Succeeded && user.TwoFactorEnabled && await TwoFactor.VerifyAsync(users, user, body.TwoFactorCode!, redis) is { } refused)
            {
                if (refused.Status == StatusCodes.Status401Unauthorized) await failures.RecordAsync(http, email);
                return refused.ToResult();
            }
            if (result.Succeeded)
            {
                await failures.ClearAsync(http, email);
                return TypedResults.Ok(ToDto(await tokens.IssueAsync(user, null, ct)));
            }
        }
        else
        {
            users.PasswordHasher.VerifyHashedPassword(user ?? new User(), DummyHash, body.Password);
        }
        await failures.RecordAsync(http, email);
        return new ApiError(401, "authentication_error", "invalid_credentials", "The e-mail or password is wrong.").ToResult();
    }

    /// <summary>A hash of nothing anyone knows, verified for unknown addresses so they cost what a real account costs.</summary>
    /// Made when the endpoints are mapped, so the first unknown address costs no more than the next.
    private static readonly string DummyHash =
        new PasswordHasher<User>().HashPassword(new User(), Convert.ToBase64String(System.Security.Cryptography.RandomNumberGenerator.GetBytes(24)));

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
        return TypedResults.Ok(new MeDto(user.Id, user.Email, user.EmailConfirmed, user.DisplayName, user.IsAdmin, http.User.FindFirst("idp")?.Value,
            user.CreatedAt, await OrganizationsApi.ListForUserAsync(db, user.Id, ct)));
    }

    private static async Task<Results<Ok<MeDto>, ErrorResult>> UpdateMe(ProfileBody body, HttpContext http, PortalDbContext db, CancellationToken ct)
    {
        var name = body.DisplayName?.Trim();
        if (ApiError.Text("display_name", "Display name", name, 200) is { } badName) return badName.ToResult();
        var user = await db.Users.SingleOrDefaultAsync(u => u.Id == http.User.UserId(), ct);
        if (user is null) return new ApiError(401, "authentication_error", "invalid_token", "This account no longer exists.").ToResult();
        user.DisplayName = name;
        await db.SaveChangesAsync(ct);
        return await GetMe(http, db, ct);
    }

    private static TokensDto ToDto(TokenPair t) => new(t.AccessToken, t.RefreshToken, t.ExpiresIn);
}
