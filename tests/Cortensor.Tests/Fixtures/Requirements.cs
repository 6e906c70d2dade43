namespace Cortensor.Tests.Fixtures;

/// <summary>
/// What the product promises, copied by hand from the README's launch catalog and the plan table of
/// docs/api.md. Tests compare against these, never against LaunchTopology or the seed (the code under
/// test): a wrong price or a lost router in the seed must fail a test, not move its expectation.
/// </summary>
public static class Requirements
{
    public sealed record CatalogModel(string Id, string Pool, int Routers, long[] Sessions, decimal InputPricePer1K, decimal OutputPricePer1K);

    /// <summary>README, "Launch catalog".</summary>
    public static readonly CatalogModel[] LaunchCatalog =
    [
        new("gpt-oss-20b", "oss-20b", 3, [2001, 2002, 2003, 2004, 2005, 2006], 0.0001m, 0.0004m),
        new("gpt-oss-120b", "oss-120b", 1, [3001, 3002], 0.0005m, 0.0020m),
        new("gemma-4-26b", "gemma4", 1, [4001, 4002], 0.0002m, 0.0006m),
        new("qwen-3-32b", "qwen", 1, [5001, 5002], 0.0003m, 0.0009m),
    ];

    public static IEnumerable<string> ModelIds => LaunchCatalog.Select(m => m.Id);

    public static CatalogModel Model(string id) => LaunchCatalog.Single(m => m.Id == id);

    public sealed record PlanTerms(string Id, string BillingMode, int RequestsPerMinute, long TokensPerMinute, long? MonthlyTokenQuota, string[] Models);

    /// <summary>docs/api.md, the plan table; README: new organisations start on free with gpt-oss-20b and gemma-4-26b.</summary>
    public static readonly PlanTerms[] Plans =
    [
        new("free", "monthly_quota", 60, 100_000, 1_000_000, ["gemma-4-26b", "gpt-oss-20b"]),
        new("pro", "prepaid_credits", 1_000, 2_000_000, null, [.. ModelIds.Order()]),
        new("scale", "prepaid_credits", 10_000_000, 2_000_000_000, null, [.. ModelIds.Order()]),
    ];

    public static PlanTerms Plan(string id) => Plans.Single(p => p.Id == id);
}
