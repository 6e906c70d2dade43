using Microsoft.AspNetCore.Identity;

namespace Cortensor.Api.Accounts;

/// <summary>
/// Identity's messages as a person would say them ("Add a digit (0-9)." rather than "Passwords must have at least one
/// digit ('0'-'9')."). Every password rule, token and account message a customer can see comes from here.
/// </summary>
public sealed class PortalIdentityErrors : IdentityErrorDescriber
{
    private static IdentityError Error(string code, string description) => new() { Code = code, Description = description };

    public override IdentityError PasswordTooShort(int length) => Error(nameof(PasswordTooShort), $"Use at least {length} characters.");
    public override IdentityError PasswordRequiresDigit() => Error(nameof(PasswordRequiresDigit), "Add a digit (0-9).");
    public override IdentityError PasswordRequiresLower() => Error(nameof(PasswordRequiresLower), "Add a lowercase letter (a-z).");
    public override IdentityError PasswordRequiresUpper() => Error(nameof(PasswordRequiresUpper), "Add a capital letter (A-Z).");
    public override IdentityError PasswordRequiresNonAlphanumeric() => Error(nameof(PasswordRequiresNonAlphanumeric), "Add a symbol such as - or !.");
    public override IdentityError PasswordRequiresUniqueChars(int uniqueChars) => Error(nameof(PasswordRequiresUniqueChars), $"Use at least {uniqueChars} different characters.");
    public override IdentityError PasswordMismatch() => Error(nameof(PasswordMismatch), "Your current password is not right.");
    public override IdentityError InvalidToken() => Error(nameof(InvalidToken), "This link or code is not valid any more. Ask for a new one.");
    public override IdentityError RecoveryCodeRedemptionFailed() => Error(nameof(RecoveryCodeRedemptionFailed), "That recovery code is not right, or it was used already.");
    public override IdentityError UserAlreadyHasPassword() => Error(nameof(UserAlreadyHasPassword), "This account already has a password.");
    public override IdentityError DuplicateEmail(string email) => Error(nameof(DuplicateEmail), "That e-mail address is already taken.");
    public override IdentityError DuplicateUserName(string userName) => Error(nameof(DuplicateUserName), "That e-mail address is already taken.");
    public override IdentityError InvalidEmail(string? email) => Error(nameof(InvalidEmail), "That is not a valid e-mail address.");
    public override IdentityError InvalidUserName(string? userName) => Error(nameof(InvalidUserName), "That is not a valid e-mail address.");
    public override IdentityError ConcurrencyFailure() => Error(nameof(ConcurrencyFailure), "Your account changed elsewhere at the same moment. Try again.");
    public override IdentityError DefaultError() => Error(nameof(DefaultError), "Something went wrong with your account. Try again.");
    public override IdentityError UserLockoutNotEnabled() => Error(nameof(UserLockoutNotEnabled), "This account cannot be locked.");

    /// <summary>Identity's failures as one sentence for the error message.</summary>
    public static string Describe(IdentityResult result) => string.Join(" ", result.Errors.Select(e => e.Description));
}
