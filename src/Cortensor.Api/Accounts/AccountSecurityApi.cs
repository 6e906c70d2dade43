using Cortensor.Api.Infrastructure;
using System.Text;
using Cortensor.Api.ControlPlane;
using Cortensor.Api.Data;
using Cortensor.Api.Errors;
using Cortensor.Api.Keys;
using Microsoft.AspNetCore.Http.HttpResults;
using Microsoft.AspNetCore.Identity;
using Microsoft.EntityFrameworkCore;

namespace Cortensor.Api.Accounts;

/// <summary>Two-factor codes: an authenticator app's TOTP (RFC 6238, ASP.NET Core Identity's authenticator provider) or a recovery code.</summary>
public static class TwoFactor
{
    public const string Issuer = "Cortensor Portal";
    public const int RecoveryCodes = 10;

    /// <summary>
    /// Identity accepts an authenticator code for about two and a half minutes (two time steps either side) and does not
    /// remember that it was used; a code seen once (shoulder-surfed, phished, replayed from a log) must not sign in
    /// again, so each used code is kept for longer than that window.
    /// </summary>
    private static readonly TimeSpan UsedCodeMemory = TimeSpan.FromMinutes(3);

    /// <returns>Null when the code is right and unused (it is used now); otherwise the error to answer.</returns>
    public static async Task<ApiError?> VerifyAsync(UserManager<User> users, User user, string code, StackExchange.Redis.IConnectionMultiplexer redis)
    {
        var compact = code.Replace(" ", "").Replace("-", "").Trim();
        if (compact.Length == 6 && compact.All(char.IsAsciiDigit))
        {
            if (!await users.VerifyTwoFactorTokenAsync(user, users.Options.Tokens.AuthenticatorTokenProvider, compact)) return WrongCode;
            bool first;
            try
            {
                first = await redis.GetDatabase().StringSetAsync($"cortensor:totp-used:{user.Id:N}:{compact}", 1, UsedCodeMemory, StackExchange.Redis.When.NotExists);
            }
            catch (Exception ex) when (Outage.IsRedis(ex))
            {
                // Without the memory of used codes a replay cannot be told apart: no sign-in rather than an unsafe one.
                return ApiError.DependencyUnavailable("Two-factor sign-in");
            }
            return first ? null : UsedCode;
        }
        // Recovery codes are stored as issued (with their dash); each works once.
        return compact.Length > 0 && (await users.RedeemTwoFactorRecoveryCodeAsync(user, code.Trim())).Succeeded ? null : WrongCode;
    }

    private static ApiError WrongCode => new(401, "authentication_error", "invalid_two_factor_code",
        "That code is not right. Enter the current code from your authenticator app (check its clock), or an unused recovery code.", "two_factor_code");

    private static ApiError UsedCode => new(401, "authentication_error", "two_factor_code_used",
        "That code has already been used to sign in. Wait for your authenticator app to show the next code, or use a recovery code.", "two_factor_code");

    /// <summary>The key as people type it: base32 in groups of four.</summary>
    public static string Format(string key)
    {
        var grouped = new StringBuilder();
        for (var i = 0; i < key.Length; i += 4) grouped.Append(key.AsSpan(i, Math.Min(4, key.Length - i))).Append(' ');
        return grouped.ToString().TrimEnd().ToLowerInvariant();
    }

    /// <summary>The otpauth:// URI authenticator apps read from the QR code (Key Uri Format).</summary>
    public static string Uri(string email, string key) =>
        $"otpauth://totp/{System.Uri.EscapeDataString(Issuer)}:{System.Uri.EscapeDataString(email)}?secret={key}&issuer={System.Uri.EscapeDataString(Issuer)}&digits=6&period=30";
}

/// <summary>
/// The signed-in user's own account: password, two-factor sign-in, and deleting the account. What deletion does to
/// organisations is decided in <see cref="AccountDeletion"/> and shown before it happens.
/// </summary>
public static class AccountSecurityApi
{
    public static RouteGroupBuilder MapAccountSecurity(this RouteGroupBuilder me)
    {
        me.MapPost("/password", ChangePassword).RequireRateLimiting(AuthThrottling.SignIn)
            .WithSummary("Change the password (the current one is required); every other sign-in of the account ends");
        me.MapGet("/two-factor", TwoFactorStatus).WithSummary("Whether two-factor sign-in is on, and how many recovery codes are left");
        // Only the address's proven owner (a wallet proves the account, not the address a reset goes to): an account signed
        // up with someone else's address could otherwise lock its owner out for good, with a second factor only it holds.
        me.MapPost("/two-factor/setup", SetUpTwoFactor).RequireRateLimiting(AuthThrottling.SignIn).RequireVerifiedEmail("turn on two-factor sign-in", walletCounts: false)
            .WithSummary("A new authenticator key (shared key and otpauth URI for a QR code); two-factor sign-in is on once a code from it is confirmed");
        me.MapPost("/two-factor/enable", EnableTwoFactor).RequireRateLimiting(AuthThrottling.SignIn).RequireVerifiedEmail("turn on two-factor sign-in", walletCounts: false)
            .WithSummary("Confirm a code from the authenticator app: two-factor sign-in is on, and the answer holds the recovery codes (shown once)");
        me.MapPost("/two-factor/disable", DisableTwoFactor).RequireRateLimiting(AuthThrottling.SignIn)
            .WithSummary("Turn two-factor sign-in off (the password is required)");
        me.MapPost("/two-factor/recovery-codes", NewRecoveryCodes).RequireRateLimiting(AuthThrottling.SignIn)
            .WithSummary("Replace the recovery codes (the password is required); the old ones stop working");
        me.MapGet("/deletion", DeletionPreview).WithSummary("What deleting the account would do to each of its organisations and their keys");
        me.MapPost("/delete", DeleteAccount).RequireRateLimiting(AuthThrottling.SignIn)
            .WithSummary("Delete the account (password, or the account's e-mail for accounts without one): see GET /portal/me/deletion");
        return me;
    }

    public sealed record PasswordChangeBody(string? CurrentPassword, string? NewPassword);
    public sealed record PasswordBody(string? Password);
    public sealed record CodeBody(string? Code);
    public sealed record DeleteBody(string? Password, string? ConfirmEmail);
    public sealed record TwoFactorStatusDto(bool Enabled, bool HasPassword, int RecoveryCodesLeft);
    public sealed record TwoFactorSetupDto(string SharedKey, string AuthenticatorUri);
    public sealed record RecoveryCodesDto(string[] RecoveryCodes);

    private static ErrorResult AccountGone() =>
        new ApiError(401, "authentication_error", "invalid_token", "This account no longer exists.").ToResult();

    private static ErrorResult NeedsPassword(string what) =>
        new ApiError(409, "invalid_request_error", "no_password",
            $"This account signs in through another provider and has no password here, so it cannot {what}. Use your provider's settings.").ToResult();

    private static async Task<Results<NoContent, ErrorResult>> ChangePassword(PasswordChangeBody body, HttpContext http, UserManager<User> users,
        SignInFailures failures, PortalTokens tokens, PortalDbContext db, TimeProvider clock, CancellationToken ct)
    {
        if (await users.FindByIdAsync(http.User.UserId().ToString()) is not { } user) return AccountGone();
        if (user.PasswordHash is null) return NeedsPassword("change a password");
        if (string.IsNullOrEmpty(body.CurrentPassword)) return new ApiError(400, "invalid_request_error", "missing_required_parameter", "Enter your current password.", "current_password").ToResult();
        if (string.IsNullOrEmpty(body.NewPassword)) return new ApiError(400, "invalid_request_error", "missing_required_parameter", "Enter a new password.", "new_password").ToResult();
        if (await failures.WaitAsync(user.Id) is { } wait) return ApiError.AuthThrottled(wait).ToResult();
        var changed = await users.ChangePasswordAsync(user, body.CurrentPassword, body.NewPassword);
        if (!changed.Succeeded)
        {
            if (!changed.Errors.Any(e => e.Code == nameof(IdentityErrorDescriber.PasswordMismatch)))
                return ApiError.InvalidField("new_password", "Choose a stronger password: " + PortalIdentityErrors.Describe(changed)).ToResult();
            await failures.RecordAsync(user.Id);
            return ApiError.InvalidField("current_password", "Your current password is not right.").ToResult();
        }
        await failures.ClearAsync(user.Id);
        // Whoever knew the old password is signed out everywhere but here.
        await tokens.RevokeSessionsAsync(user.Id, Guid.TryParse(http.User.FindFirst("sid")?.Value, out var sid) ? sid : null, ct);
        db.Record(AuditActor.From(http.User), "account.password", "user", user.Id.ToString(), null, null, clock.GetUtcNow());
        await db.SaveChangesAsync(ct);
        return TypedResults.NoContent();
    }

    private static async Task<Results<Ok<TwoFactorStatusDto>, ErrorResult>> TwoFactorStatus(HttpContext http, UserManager<User> users)
    {
        if (await users.FindByIdAsync(http.User.UserId().ToString()) is not { } user) return AccountGone();
        return TypedResults.Ok(new TwoFactorStatusDto(user.TwoFactorEnabled, user.PasswordHash is not null,
            user.TwoFactorEnabled ? await users.CountRecoveryCodesAsync(user) : 0));
    }

    private static async Task<Results<Ok<TwoFactorSetupDto>, ErrorResult>> SetUpTwoFactor(HttpContext http, UserManager<User> users)
    {
        if (await users.FindByIdAsync(http.User.UserId().ToString()) is not { } user) return AccountGone();
        // Two-factor sign-in guards the password sign-in; a provider's account signs in at the provider.
        if (user.PasswordHash is null) return NeedsPassword("turn on two-factor sign-in");
        if (user.TwoFactorEnabled)
            return new ApiError(409, "invalid_request_error", "two_factor_already_on",
                "Two-factor sign-in is already on. Turn it off first to move it to another authenticator app.").ToResult();
        await users.ResetAuthenticatorKeyAsync(user);
        var key = (await users.GetAuthenticatorKeyAsync(user))!;
        return TypedResults.Ok(new TwoFactorSetupDto(TwoFactor.Format(key), TwoFactor.Uri(user.Email ?? user.Id.ToString(), key)));
    }

    private static async Task<Results<Ok<RecoveryCodesDto>, ErrorResult>> EnableTwoFactor(CodeBody body, HttpContext http, UserManager<User> users,
        PortalDbContext db, TimeProvider clock, CancellationToken ct)
    {
        if (await users.FindByIdAsync(http.User.UserId().ToString()) is not { } user) return AccountGone();
        if (user.PasswordHash is null) return NeedsPassword("turn on two-factor sign-in");
        if (user.TwoFactorEnabled) return new ApiError(409, "invalid_request_error", "two_factor_already_on", "Two-factor sign-in is already on.").ToResult();
        if (await users.GetAuthenticatorKeyAsync(user) is null)
            return new ApiError(409, "invalid_request_error", "two_factor_not_set_up", "Start with POST /portal/me/two-factor/setup: scan its QR code, then confirm a code.").ToResult();
        var code = body.Code?.Replace(" ", "").Trim();
        if (string.IsNullOrEmpty(code)) return new ApiError(400, "invalid_request_error", "missing_required_parameter", "Enter the 6-digit code from your authenticator app.", "code").ToResult();
        if (code.Length != 6 || !code.All(char.IsAsciiDigit) || !await users.VerifyTwoFactorTokenAsync(user, users.Options.Tokens.AuthenticatorTokenProvider, code))
            return ApiError.InvalidField("code", "That code is not right. Enter the code your authenticator app shows now (check that its clock is right).").ToResult();
        await users.SetTwoFactorEnabledAsync(user, true);
        var codes = (await users.GenerateNewTwoFactorRecoveryCodesAsync(user, TwoFactor.RecoveryCodes))!.ToArray();
        db.Record(AuditActor.From(http.User), "account.two_factor.enable", "user", user.Id.ToString(), null, null, clock.GetUtcNow());
        await db.SaveChangesAsync(ct);
        return TypedResults.Ok(new RecoveryCodesDto(codes));
    }

    private static async Task<Results<NoContent, ErrorResult>> DisableTwoFactor(PasswordBody body, HttpContext http, UserManager<User> users,
        SignInFailures failures, PortalDbContext db, TimeProvider clock, CancellationToken ct)
    {
        if (await users.FindByIdAsync(http.User.UserId().ToString()) is not { } user) return AccountGone();
        if (await CheckPasswordAsync(users, failures, user, body.Password) is { } wrong) return wrong;
        await users.SetTwoFactorEnabledAsync(user, false);
        await users.ResetAuthenticatorKeyAsync(user);
        await users.ReplaceCodesAsync(user);
        db.Record(AuditActor.From(http.User), "account.two_factor.disable", "user", user.Id.ToString(), null, null, clock.GetUtcNow());
        await db.SaveChangesAsync(ct);
        return TypedResults.NoContent();
    }

    private static async Task<Results<Ok<RecoveryCodesDto>, ErrorResult>> NewRecoveryCodes(PasswordBody body, HttpContext http, UserManager<User> users,
        SignInFailures failures)
    {
        if (await users.FindByIdAsync(http.User.UserId().ToString()) is not { } user) return AccountGone();
        if (await CheckPasswordAsync(users, failures, user, body.Password) is { } wrong) return wrong;
        if (!user.TwoFactorEnabled) return new ApiError(409, "invalid_request_error", "two_factor_off", "Two-factor sign-in is off: there are no recovery codes to replace.").ToResult();
        return TypedResults.Ok(new RecoveryCodesDto((await users.GenerateNewTwoFactorRecoveryCodesAsync(user, TwoFactor.RecoveryCodes))!.ToArray()));
    }

    private static async Task<Ok<AccountDeletion.Plan>> DeletionPreview(HttpContext http, AccountDeletion deletion, CancellationToken ct) =>
        TypedResults.Ok(await deletion.PlanAsync(http.User.UserId(), ct));

    private static async Task<Results<Ok<AccountDeletion.Plan>, ErrorResult>> DeleteAccount(DeleteBody body, HttpContext http, UserManager<User> users,
        SignInFailures failures, AccountDeletion deletion, CancellationToken ct)
    {
        if (await users.FindByIdAsync(http.User.UserId().ToString()) is not { } user) return AccountGone();
        if (user.PasswordHash is not null)
        {
            if (await CheckPasswordAsync(users, failures, user, body.Password) is { } wrong) return wrong;
        }
        else if (!string.Equals(body.ConfirmEmail?.Trim(), user.Email, StringComparison.OrdinalIgnoreCase) || user.Email is null)
        {
            return ApiError.InvalidField("confirm_email", "Type your account's e-mail address to confirm.").ToResult();
        }
        return await deletion.DeleteAsync(user, AuditActor.From(http.User), ct) is { } deleted
            ? TypedResults.Ok(deleted)
            : new ApiError(409, "invalid_request_error", "last_administrator",
                "You are the only platform administrator. Make someone else an administrator before deleting this account.").ToResult();
    }

    /// <summary>The signed-in user's password, counted against the account's failures (<see cref="SignInFailures"/>).</summary>
    private static async Task<ErrorResult?> CheckPasswordAsync(UserManager<User> users, SignInFailures failures, User user, string? password)
    {
        if (user.PasswordHash is null) return NeedsPassword("do this with a password");
        if (string.IsNullOrEmpty(password)) return new ApiError(400, "invalid_request_error", "missing_required_parameter", "Enter your password.", "password").ToResult();
        if (await failures.WaitAsync(user.Id) is { } wait) return ApiError.AuthThrottled(wait).ToResult();
        if (await users.CheckPasswordAsync(user, password))
        {
            await failures.ClearAsync(user.Id);
            return null;
        }
        await failures.RecordAsync(user.Id);
        return ApiError.InvalidField("password", "Your password is not right.").ToResult();
    }

    /// <summary>Identity keeps recovery codes until new ones are generated; turning two-factor off must void them.</summary>
    internal static Task ReplaceCodesAsync(this UserManager<User> users, User user) =>
        users.RemoveAuthenticationTokenAsync(user, "[AspNetUserStore]", "RecoveryCodes");
}
