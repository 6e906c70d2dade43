namespace Microsoft.Extensions.Hosting;

/// <summary>
/// The launch catalog's router pools as the AppHost starts them and the database seeds them.
/// One definition, so the routers the AppHost runs are exactly the routers the Api routes to.
/// Product data, not service plumbing: it lives with what the Api, the AppHost and the simulator share.
/// </summary>
public static class LaunchTopology
{
    public const string Database = "portaldb";
    public const string Redis = "redis";
    public const string Api = "api";
    public const string Web = "web";
    public const string Migrations = "migrations";

    public static readonly IReadOnlyList<PoolDefinition> Pools =
    [
        new("oss-20b", "gpt-oss-20b", "gpt-oss",
        [
            new("router-oss20b-1", [2001, 2002]),
            new("router-oss20b-2", [2003, 2004]),
            new("router-oss20b-3", [2005, 2006]),
        ]),
        new("oss-120b", "gpt-oss-120b", "gpt-oss", [new("router-oss120b-1", [3001, 3002])]),
        new("gemma4", "gemma-4-26b", "gemma", [new("router-gemma4-1", [4001, 4002])]),
        new("qwen", "qwen-3-32b", "qwen", [new("router-qwen-1", [5001, 5002])]),
    ];

    public static readonly IReadOnlyList<ModelDefinition> Models =
    [
        new("gpt-oss-20b", "GPT-OSS 20B", "oss-20b", "gpt-oss", 0.00010m, 0.00040m, ContextWindow: 131072, FreeTier: true),
        new("gpt-oss-120b", "GPT-OSS 120B", "oss-120b", "gpt-oss", 0.00050m, 0.00200m, ContextWindow: 131072, FreeTier: false),
        new("gemma-4-26b", "Gemma 4 26B", "gemma4", "gemma", 0.00020m, 0.00060m, ContextWindow: 131072, FreeTier: true),
        new("qwen-3-32b", "Qwen 3 32B", "qwen", "qwen", 0.00030m, 0.00090m, ContextWindow: 131072, FreeTier: false),
    ];
}

public sealed record PoolDefinition(string Name, string BackendModel, string Family, IReadOnlyList<RouterDefinition> Routers);

/// <summary>A router node and the dedicated session ids it serves.</summary>
public sealed record RouterDefinition(string Name, IReadOnlyList<long> Sessions);

/// <summary>A product model: public alias, its pool, and prices per 1K tokens in USD.</summary>
public sealed record ModelDefinition(
    string Alias, string DisplayName, string Pool, string Family,
    decimal InputPricePer1K, decimal OutputPricePer1K, int ContextWindow, bool FreeTier);
