using Cortensor.Api.Data;

namespace Cortensor.Api.Limits;

/// <summary>
/// A reservation as recorded in Redis at admission: which counter it debited (the quota month
/// included), how much, the rate-limit window it counted in, its deadline, and what is needed to bill
/// it without the request (prices, bounds). Settlement, the reaper and a spool replay all settle from
/// it, by its id (the usage event id), exactly once.
/// </summary>
public sealed record Hold(
    string Counter, BillingMode Mode, long Amount, int Tokens, long Window,
    int PromptTokens, int MaxTokens, decimal InputPricePer1K, decimal OutputPricePer1K,
    DateTimeOffset Deadline, string Replica)
{
    public bool Credits => Mode == BillingMode.PrepaidCredits;

    /// <summary>What the usage costs on this hold's counter: credit units or tokens, never more than was held.</summary>
    public long Charge(int promptTokens, int completionTokens, decimal cost) =>
        Math.Min(Amount, Credits ? Pricing.ToUnits(cost) : promptTokens + completionTokens);
}
