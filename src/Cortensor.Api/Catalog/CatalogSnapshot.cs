using System.Collections.Frozen;

namespace Cortensor.Api.Catalog;

/// <summary>
/// Everything the hot path needs about models, pools and routers, read from Postgres in one go
/// and swapped atomically, so a request never reads the database to find where it goes.
/// </summary>
public sealed record CatalogSnapshot(
    FrozenDictionary<string, CatalogModel> Models,
    FrozenDictionary<string, CatalogPool> Pools,
    DateTimeOffset LoadedAt)
{
    public static readonly CatalogSnapshot Empty = new(
        FrozenDictionary<string, CatalogModel>.Empty, FrozenDictionary<string, CatalogPool>.Empty, DateTimeOffset.MinValue);

    public bool IsLoaded => LoadedAt != DateTimeOffset.MinValue;
}

public sealed record CatalogModel(
    string Id, string DisplayName, string Family, bool Enabled,
    decimal InputPricePer1K, decimal OutputPricePer1K, int ContextWindow,
    string PoolId, string BackendModel, DateTimeOffset CreatedAt)
{
    /// <summary>The router task's <c>timeout</c> and <c>precommit_timeout</c> in seconds; unset takes the routing defaults.</summary>
    public int? TimeoutSeconds { get; init; }
    public int? PrecommitTimeoutSeconds { get; init; }
    /// <summary>The plans that include the model, cheapest first: what a refusal names as the way to it.</summary>
    public IReadOnlyList<PlanName> IncludedIn { get; init; } = [];
}

public sealed record PlanName(string Id, string Name);

public sealed record CatalogPool(string Id, bool Draining, IReadOnlyList<CatalogRouter> Routers)
{
    /// <summary>The routers' API version and the optional fields they accept.</summary>
    public Routing.PoolProtocol Protocol { get; init; } = Routing.PoolProtocol.Default;
}

public sealed record CatalogRouter(string Id, string PoolId, string BaseUrl, IReadOnlyList<long> Sessions);
