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
}
