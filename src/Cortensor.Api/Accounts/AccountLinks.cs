using Cortensor.Api.Accounts.Mail;
using Cortensor.Api.ControlPlane;
using Cortensor.Api.Data;
using Cortensor.Api.Errors;
using Microsoft.AspNetCore.Http.HttpResults;
using Microsoft.AspNetCore.Identity;
using Microsoft.EntityFrameworkCore;

namespace Cortensor.Api.Accounts;

/// <summary>What the links in account mails do: verify an address, choose a new password.</summary>
public static class AccountLinks
{
    public static RouteGroupBuilder MapAccountLinks(this RouteGroupBuilder auth)
    {
        auth.MapPost("/verify-email", Verify).RequireAuthorization(PortalAuth.UserPolicy).RequireRateLimiting(AuthThrottling.Tokens)
            .WithSummary("Verify the e-mail address with the user id and token from the verification link, signed in as that account (works once)");
        auth.MapPost("/verify-email/resend", Resend).RequireAuthorization(PortalAuth.UserPolicy).RequireRateLimiting(AuthThrottling.MailRequest)
            .WithSummary("Send the signed-in user's verification mail again");
        auth.MapPost("/password-reset", RequestReset).RequireRateLimiting(AuthThrottling.MailRequest)
            .WithSummary("Mail a password-reset link; answers the same whether or not the address has an account");
        auth.MapPost("/password-reset/confirm", ConfirmReset).RequireRateLimiting(AuthThrottling.Tokens)
            .WithSummary("Choose a new password with the user id and token from the reset link (works once); signs out every session");
        return auth;
    }

    public sealed record LinkBody(Guid? UserId, string? Token);
    public sealed record ResetRequestBody(string? Email);
    public sealed record ResetBody(Guid? UserId, string? Token, string? NewPassword);
    public sealed record StatusDto(string Status, string Message);

    /// <summary>
    /// The link works only for the account it was made for, signed in: if someone registered another person's
    /// address, that person clicking the mail's link does not hand the squatter a verified address (they reset
    /// the password instead, which proves the mailbox and signs the squatter out).
    /// </summary>
    private static async Task<Results<Ok<StatusDto>, ErrorResult>> Verify(LinkBody body, HttpContext http, UserManager<User> users)
    {
        if (body.UserId is null) return ApiError.MissingField("user_id").ToResult();
        if (string.IsNullOrWhiteSpace(body.Token)) return ApiError.MissingField("token").ToResult();
        if (body.UserId != http.User.UserId())
            return new ApiError(403, "permission_error", "link_for_another_account",
                "This link verifies another account. Sign in with the account that signed up with this address, or reset its password.").ToResult();
        var user = await users.FindByIdAsync(body.UserId.Value.ToString());
        // A used link is as dead as a forged one: the token proves nothing new once the address is verified.
        if (user is null || user.EmailConfirmed) return ApiError.InvalidLink("verification").ToResult();
        var result = await users.ConfirmEmailAsync(user, body.Token);
        if (!result.Succeeded) return ApiError.InvalidLink("verification").ToResult();
        return TypedResults.Ok(new StatusDto("verified", "Your e-mail address is verified. You can create API keys and join organizations."));
    }

    private static async Task<Results<Accepted<StatusDto>, ErrorResult>> Resend(HttpContext http, UserManager<User> users,
        AccountMails mails, AddressMailLimiter mailLimit)
    {
        var user = await users.FindByIdAsync(http.User.UserId().ToString());
        if (user is null) return new ApiError(401, "authentication_error", "invalid_token", "This account no longer exists.").ToResult();
        if (user.EmailConfirmed) return new ApiError(409, "invalid_request_error", "already_verified", "Your e-mail address is verified already.").ToResult();
        if (user.Email is null) return new ApiError(409, "invalid_request_error", "no_email", "This account has no e-mail address to verify (it signs in with a wallet or an identity provider).").ToResult();
        if (mailLimit.TryAcquire(user.Email, "verification")) await mails.SendVerificationAsync(user);
        return TypedResults.Accepted("/portal/me", new StatusDto("verification_sent", "We sent the verification link again. Check your mail."));
    }

    private static async Task<Results<Accepted<StatusDto>, ErrorResult>> RequestReset(ResetRequestBody body, UserManager<User> users,
        AccountMails mails, AddressMailLimiter mailLimit)
    {
        var email = body.Email?.Trim();
        if (string.IsNullOrEmpty(email)) return ApiError.MissingField("email").ToResult();
        var user = await users.FindByEmailAsync(email);
        // Only accounts with a Portal password can reset one; the mail is queued, so the answer takes the same time.
        if (user is { PasswordHash: not null, Email: not null } && mailLimit.TryAcquire(email, "reset")) await mails.SendPasswordResetAsync(user);
        return TypedResults.Accepted("/portal/auth/password-reset", new StatusDto("reset_sent",
            "If an account has this address, we sent it a link to choose a new password. Check your mail."));
    }

    private static async Task<Results<Ok<StatusDto>, ErrorResult>> ConfirmReset(ResetBody body, UserManager<User> users,
        PortalTokens tokens, Siwe.WalletAccounts wallets, CancellationToken ct)
    {
        if (body.UserId is null) return ApiError.MissingField("user_id").ToResult();
        if (string.IsNullOrWhiteSpace(body.Token)) return ApiError.MissingField("token").ToResult();
        if (string.IsNullOrEmpty(body.NewPassword)) return ApiError.MissingField("new_password").ToResult();
        var user = await users.FindByIdAsync(body.UserId.Value.ToString());
        if (user is null || user.PasswordHash is null) return ApiError.InvalidLink("password reset").ToResult();
        if (!await users.VerifyUserTokenAsync(user, users.Options.Tokens.PasswordResetTokenProvider, UserManager<User>.ResetPasswordTokenPurpose, body.Token))
            return ApiError.InvalidLink("password reset").ToResult();
        // ResetPasswordAsync changes the security stamp, which is what makes the link single-use.
        var result = await users.ResetPasswordAsync(user, body.Token, body.NewPassword);
        if (!result.Succeeded)
            return result.Errors.Any(e => e.Code == "InvalidToken") ? ApiError.InvalidLink("password reset").ToResult()
                : ApiError.InvalidField("new_password", (result.Errors.Any(e => e.Code.StartsWith("Password", StringComparison.Ordinal)) ? "Choose a stronger password: " : "")
                    + PortalIdentityErrors.Describe(result)).ToResult();
        // The password is changed: what follows runs even if the client has gone (a half-done reset would leave the old
        // sessions alive). Reaching the mailbox proves the address as well, and hands the account to its owner: a second
        // factor or a wallet set up before the address was proven may not have been set up by them. A squatter's second
        // factor could lock the owner out for good (it needs a verified address since), and a squatter's wallet would have
        // kept signing them in. The address counts as proven only once both are gone, so a reset that fails half-way is
        // done again in full by the next one.
        if (!user.EmailConfirmed)
        {
            await wallets.UnlinkAllAsync(user, CancellationToken.None);
            if (user.TwoFactorEnabled)
            {
                await users.SetTwoFactorEnabledAsync(user, false);
                await users.ResetAuthenticatorKeyAsync(user);
                await users.ReplaceCodesAsync(user);
            }
            user.EmailConfirmed = true;
            await users.UpdateAsync(user);
        }
        // Last, so no sign-in made with what was just removed (a squatter's wallet, a moment ago) outlives the reset: whoever
        // knew the old password, or held a way in, is signed out; every sign-in ends, its access tokens with it.
        await tokens.RevokeAllSessionsAsync(user.Id, CancellationToken.None);
        return TypedResults.Ok(new StatusDto("password_changed", "Your password is changed and every session is signed out. Sign in with the new password."));
    }
}

/// <summary>
/// Keeps unverified accounts from what needs a proven identity (creating keys, organisations, invitations,
/// joining). Reads the database, not a token claim, so verifying takes effect at once.
/// </summary>
public sealed class VerifiedEmailFilter(string what, bool walletCounts = true) : IEndpointFilter
{
    public async ValueTask<object?> InvokeAsync(EndpointFilterInvocationContext context, EndpointFilterDelegate next)
    {
        var http = context.HttpContext;
        var userId = http.User.UserId();
        var db = http.RequestServices.GetRequiredService<PortalDbContext>();
        // A wallet proven by a signed message is an identity as proven as a verified address.
        var verified = await db.Users.AsNoTracking().Where(u => u.Id == userId)
            .Select(u => u.EmailConfirmed || (walletCounts && db.UserLogins.Any(l => l.UserId == u.Id && l.LoginProvider == Siwe.WalletAccounts.LoginProvider)))
            .SingleOrDefaultAsync(http.RequestAborted);
        return verified ? await next(context) : ApiError.EmailNotVerified(what).ToResult();
    }
}

public static class VerifiedEmailExtensions
{
    /// <param name="walletCounts">Whether a linked wallet proves the account as a verified address does.</param>
    public static TBuilder RequireVerifiedEmail<TBuilder>(this TBuilder builder, string what, bool walletCounts = true) where TBuilder : IEndpointConventionBuilder =>
        builder.AddEndpointFilter(new VerifiedEmailFilter(what, walletCounts));
}
