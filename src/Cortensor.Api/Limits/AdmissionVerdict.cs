namespace Cortensor.Api.Limits;

/// <summary>What the admission script decided; the numbers are the script's return codes.</summary>
public enum AdmissionVerdict
{
    Admitted = 0,
    KeyRequestsExhausted = 1,
    KeyTokensExhausted = 2,
    OrganizationRequestsExhausted = 3,
    OrganizationTokensExhausted = 4,
    TooManyConcurrent = 5,
    BalanceNotLoaded = 6,
    InsufficientFunds = 7,
    OutageAllowanceSpent = 8,
    BillingUnavailable = 9,
    KeyBudgetExhausted = 10,
}
