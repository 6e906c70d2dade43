using Cortensor.Api.Data;

namespace Cortensor.Api.Limits;

/// <summary>
/// A reservation as recorded in Redis at admission: which counter it debited (the quota month
/// included), how much, the rate-limit window it counted in, its deadline, and what is needed to bill
/// it without the request (prices, bounds). Settlement, the reaper and a spool replay all settle from
/// it, by its id (the usage event id), exactly once. <see cref="KeyBudget"/> is the key budget counter
/// it debited (the budget period included) with <see cref="BudgetUnits"/> and <see cref="Tokens"/>,
/// so unused amounts go back to the period they were taken from.
/// </summary>
public sealed record Hold(
    string Counter, BillingMode Mode, long Amount, int Tokens, long Window,
    int PromptTokens, int MaxTokens, decimal InputPricePer1K, decimal OutputPricePer1K,
    DateTimeOffset Deadline, string Replica, string? KeyBudget = null, long BudgetUnits = 0)
{
    public bool Credits => Mode == BillingMode.PrepaidCredits;

    /// <summary>The most the request can cost: its prompt's ceiling and max_tokens at its prices.</summary>
    public long CostCeiling => Pricing.Units(InputPricePer1K, OutputPricePer1K, PromptTokens, MaxTokens);

    /// <summary>See <see cref="Pricing.Bill"/>: the usage at this hold's prices, never above what it covered.</summary>
    public decimal Bill(int promptTokens, int completionTokens) =>
        Pricing.FromUnits(Math.Min(CostCeiling, Pricing.Units(InputPricePer1K, OutputPricePer1K, promptTokens, completionTokens)));

    /// <summary>What the usage costs on this hold's counter: credit units or tokens, never more than was held.</summary>
    public long Charge(int promptTokens, int completionTokens, decimal cost) =>
        Math.Min(Amount, Credits ? Pricing.ToUnits(cost) : promptTokens + completionTokens);
}
