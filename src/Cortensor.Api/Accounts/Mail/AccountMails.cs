using Cortensor.Api.Errors;
using Cortensor.Api.Data;
using Microsoft.AspNetCore.Identity;
using Microsoft.Extensions.Options;

namespace Cortensor.Api.Accounts.Mail;

/// <summary>
/// The mails accounts receive. Verification and reset links carry tokens from ASP.NET Core Identity's
/// token providers (data-protected, expiring, bound to the user's security stamp).
/// </summary>
public sealed class AccountMails(UserManager<User> users, MailOutbox outbox, IOptions<MailOptions> options)
{
    private MailOptions Options => options.Value;

    public async Task SendVerificationAsync(User user)
    {
        var token = await users.GenerateEmailConfirmationTokenAsync(user);
        var link = Options.Link("/verify-email", ("user", user.Id.ToString()), ("token", token));
        outbox.Enqueue(new PortalMessage(user.Email!, "Verify your e-mail address for Cortensor Portal",
            $"""
            Welcome to Cortensor Portal.

            Open this link to verify your e-mail address (it works once, for {AccountTokens.VerificationLifespan.TotalHours:0} hours,
            signed in with the account you created):

            {link}

            Until you verify it you can sign in, but not create API keys or join organizations.
            If you did not sign up, someone else used your address: do not open the link. To take the account
            over, choose a password with "Forgot your password?": {Options.Link("/forgot-password")}
            """));
    }

    /// <summary>Sign-up with an address that has an account: the answer to the caller is the same, the owner learns it here.</summary>
    public void SendAlreadyRegistered(string email) =>
        outbox.Enqueue(new PortalMessage(email, "You already have a Cortensor Portal account",
            $"""
            Someone (probably you) tried to sign up for Cortensor Portal with this address, which already has an account.
            No new account was created. If you did not create that account, someone else did with your address:
            choosing a new password below makes it yours and signs them out.

            Sign in: {Options.Link("/signin")}
            Forgot your password? {Options.Link("/forgot-password")}

            If it was not you, ignore this mail.
            """));

    public async Task SendPasswordResetAsync(User user)
    {
        var token = await users.GeneratePasswordResetTokenAsync(user);
        var link = Options.Link("/reset-password", ("user", user.Id.ToString()), ("token", token));
        outbox.Enqueue(new PortalMessage(user.Email!, "Reset your Cortensor Portal password",
            $"""
            Open this link to choose a new password (it works once, for {AccountTokens.ResetLifespan.TotalMinutes:0} minutes):

            {link}

            Choosing a new password signs you out everywhere. If you did not ask for this, ignore this mail.
            """));
    }

    public void SendInvitation(string email, string organization, string inviter, string role, string token, DateTimeOffset expiresAt)
    {
        // Names are refused unless one line (ApiError.Text), but some came in before that rule, or from an identity
        // provider's claim: in a mail a line break would write the sender's own lines, so each such character is a space.
        (organization, inviter) = (OneLine(organization), OneLine(inviter));
        outbox.Enqueue(new PortalMessage(email, $"You are invited to {organization} on Cortensor Portal",
            $"""
            {inviter} invites you to join the organization "{organization}" on Cortensor Portal as {role}.

            Accept the invitation (sign in or sign up with this address first; the link works once, until {expiresAt:yyyy-MM-dd HH:mm} UTC):

            {Options.Link("/invitations/accept", ("token", token))}

            If you do not want to join, ignore this mail.
            """));
    }

    private static string OneLine(string name) => ApiError.NotOneLine(name) ? string.Create(name.Length, name, static (chars, name) =>
    {
        for (var i = 0; i < name.Length; i++) chars[i] = ApiError.BreaksALine(name[i]) ? ' ' : name[i];
    }) : name;
}

/// <summary>How long links stay valid: Identity's data-protection token provider, one instance per purpose.</summary>
public static class AccountTokens
{
    public const string ResetProvider = "PasswordReset";
    public static readonly TimeSpan VerificationLifespan = TimeSpan.FromHours(24);
    public static readonly TimeSpan ResetLifespan = TimeSpan.FromMinutes(60);
}

/// <summary>The reset provider: the same data-protected tokens as Identity's default provider, with a shorter life.</summary>
public sealed class PasswordResetTokenProvider(Microsoft.AspNetCore.DataProtection.IDataProtectionProvider protection,
    IOptions<PasswordResetTokenProviderOptions> options, ILogger<DataProtectorTokenProvider<User>> log)
    : DataProtectorTokenProvider<User>(protection, options, log);

public sealed class PasswordResetTokenProviderOptions : DataProtectionTokenProviderOptions
{
    public PasswordResetTokenProviderOptions()
    {
        Name = AccountTokens.ResetProvider;
        TokenLifespan = AccountTokens.ResetLifespan;
    }
}
