using Microsoft.AspNetCore.Identity;

namespace Cortensor.Api.Accounts;

/// <summary>
/// An address as the accounts table looks it up: ASP.NET Identity's own normalisation (Unicode normal form C, then
/// upper case). Every count or match keyed by an address uses it, so spellings Identity takes for one address (the
/// Kelvin sign for a K, a decomposed é) are one address to the sign-in throttle, the mail limiter and invitations
/// too; upper-casing alone let each spelling start a fresh count of failed sign-ins for the same account.
/// </summary>
public static class AccountEmail
{
    private static readonly UpperInvariantLookupNormalizer Identity = new();

    public static string Normalize(string email) => Identity.NormalizeEmail(email.Trim())!;
}
