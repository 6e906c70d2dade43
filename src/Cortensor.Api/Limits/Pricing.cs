using Cortensor.Api.Catalog;

namespace Cortensor.Api.Limits;

/// <summary>Money is decimal USD; in Redis it is whole credit units of 1e-10 USD, the precision of the ledger.</summary>
public static class Pricing
{
    public const decimal UnitsPerUsd = 10_000_000_000m;

    public static decimal Cost(CatalogModel model, int promptTokens, int completionTokens) =>
        (promptTokens * model.InputPricePer1K + completionTokens * model.OutputPricePer1K) / 1000m;

    /// <summary>Rounded up: a fraction of a unit is never given away.</summary>
    public static long ToUnits(decimal usd) => (long)decimal.Ceiling(usd * UnitsPerUsd);

    public static decimal FromUnits(long units) => units / UnitsPerUsd;

    /// <summary>The ledger's precision, rounded up like the units.</summary>
    public static decimal RoundForLedger(decimal usd) => FromUnits(ToUnits(usd));

    /// <summary>Tokens at these prices, in whole credit units (nothing used costs nothing).</summary>
    public static long Units(decimal inputPer1K, decimal outputPer1K, int promptTokens, int completionTokens) =>
        promptTokens + completionTokens == 0 ? 0 : ToUnits((promptTokens * inputPer1K + completionTokens * outputPer1K) / 1000m);

    /// <summary>
    /// What a request is billed, in USD at the ledger's precision: the one figure the client is told
    /// (<c>usage.cost</c>, <c>x-cortensor-cost</c>), the usage record carries, settlement takes off the
    /// balance and key budget, and the ledger writes. With a reservation, at its prices and never above
    /// what it covered; without one (a lease's admission, or this replica alone with Redis away), at the model's prices.
    /// </summary>
    public static decimal Bill(CatalogModel? model, Hold? hold, int promptTokens, int completionTokens) =>
        hold is not null ? hold.Bill(promptTokens, completionTokens)
        : model is null ? 0m
        : FromUnits(Units(model.InputPricePer1K, model.OutputPricePer1K, promptTokens, completionTokens));
}
