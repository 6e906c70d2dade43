using Cortensor.Api.Keys;

namespace Cortensor.Api.Limits;

/// <summary>What a request was allowed to use: its rate-limit windows and, when admitted, its hold.</summary>
public sealed record Admission(
    AdmissionVerdict Verdict, TimeSpan Reset, long Window,
    int KeyRequestLimit, long KeyRequests, int KeyTokenLimit, long KeyTokens,
    int OrganizationRequestLimit, long OrganizationRequests, int OrganizationTokenLimit, long OrganizationTokens,
    int ConcurrencyLimit, int ReservedTokens, long Amount, long Balance, Hold? Hold, bool Local, KeyBudgetRefusal? OverBudget = null)
{
    public bool Admitted => Verdict == AdmissionVerdict.Admitted;

    /// <summary>Set when admitted from this replica's lease (<see cref="AdmissionLeases"/>) rather than by a reservation.</summary>
    public LeaseTicket? Lease { get; init; }

    /// <summary>
    /// When to try again (Retry-After), if sooner than the window's reset: with leasing on, a window refused as spent may
    /// have room again once idle leases give their unused slices back, a few seconds later.
    /// </summary>
    public TimeSpan? RetryAfter { get; init; }

    // The headers report whichever limit binds first: the key's own or the organisation's.
    public int RequestLimit => Math.Min(KeyRequestLimit, OrganizationRequestLimit);
    public int RequestsRemaining => (int)Math.Max(0, Math.Min(KeyRequestLimit - KeyRequests, OrganizationRequestLimit - OrganizationRequests));
    public int TokenLimit => Math.Min(KeyTokenLimit, OrganizationTokenLimit);
    public int TokensRemaining => (int)Math.Max(0, Math.Min(KeyTokenLimit - KeyTokens, OrganizationTokenLimit - OrganizationTokens));
}
