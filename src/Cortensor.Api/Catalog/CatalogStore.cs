using System.Collections.Frozen;
using Cortensor.Api.Data;
using Microsoft.EntityFrameworkCore;

namespace Cortensor.Api.Catalog;

/// <summary>Holds the current <see cref="CatalogSnapshot"/> and reloads it from Postgres on demand.</summary>
public sealed class CatalogStore(IServiceScopeFactory scopes, IConfiguration configuration, ILogger<CatalogStore> log)
{
    private CatalogSnapshot _current = CatalogSnapshot.Empty;
    private readonly SemaphoreSlim _reload = new(1, 1);

    public CatalogSnapshot Current => Volatile.Read(ref _current);

    public event Action<CatalogSnapshot>? Reloaded;

    public async Task ReloadAsync(CancellationToken ct = default)
    {
        using var work = Infrastructure.BackgroundWork.Start("catalog.reload");
        await _reload.WaitAsync(ct);
        try
        {
            using var scope = scopes.CreateScope();
            var db = scope.ServiceProvider.GetRequiredService<PortalDbContext>();
            var models = await db.Models.AsNoTracking().ToListAsync(ct);
            var mappings = await db.RouterPoolModels.AsNoTracking().ToDictionaryAsync(m => m.ModelId, ct);
            var pools = await db.RouterPools.AsNoTracking().ToListAsync(ct);
            var routers = await db.Routers.AsNoTracking().Where(r => r.Enabled).ToListAsync(ct);
            var sessions = await db.RouterSessions.AsNoTracking().Where(s => s.Enabled).ToListAsync(ct);
            var plansByModel = (await (from p in db.ModelAccessPolicies.AsNoTracking()
                                       join plan in db.Plans.AsNoTracking() on p.PlanId equals plan.Id
                                       where p.Allowed
                                       select new { p.ModelId, plan.Id, plan.Name, plan.MonthlyPriceUsd, plan.RequestsPerMinute }).ToListAsync(ct))
                .GroupBy(p => p.ModelId)
                .ToDictionary(g => g.Key, g => (IReadOnlyList<PlanName>)g.OrderBy(p => p.MonthlyPriceUsd).ThenBy(p => p.RequestsPerMinute)
                    .Select(p => new PlanName(p.Id, p.Name)).ToArray());

            var sessionsByRouter = sessions.GroupBy(s => s.RouterId).ToDictionary(g => g.Key, g => g.Select(s => s.Id).Order().ToArray());
            var catalogPools = pools.ToFrozenDictionary(p => p.Id, p => new CatalogPool(p.Id, p.Draining,
                routers.Where(r => r.PoolId == p.Id && sessionsByRouter.ContainsKey(r.Id)).OrderBy(r => r.Id)
                    .Select(r => new CatalogRouter(r.Id, r.PoolId, Resolve(r.BaseUrl), sessionsByRouter[r.Id])).ToArray())
                {
                    Protocol = Routing.PoolProtocol.From(p.ApiVersion, p.SupportsSeed, p.SupportsPenalties, p.SupportsTopK),
                });
            var catalogModels = models.Where(m => mappings.ContainsKey(m.Id)).ToFrozenDictionary(m => m.Id, m => new CatalogModel(
                m.Id, m.DisplayName, m.Family, m.Enabled, m.InputPricePer1K, m.OutputPricePer1K, m.ContextWindow,
                mappings[m.Id].PoolId, mappings[m.Id].BackendModel, m.CreatedAt)
            {
                TimeoutSeconds = m.TimeoutSeconds,
                PrecommitTimeoutSeconds = m.PrecommitTimeoutSeconds,
                IncludedIn = plansByModel.GetValueOrDefault(m.Id) ?? [],
            }, StringComparer.Ordinal);

            var snapshot = new CatalogSnapshot(catalogModels, catalogPools, DateTimeOffset.UtcNow);
            Volatile.Write(ref _current, snapshot);
            log.LogInformation("Catalog loaded: {Models} models, {Pools} pools, {Routers} routers", catalogModels.Count, catalogPools.Count, routers.Count);
            Reloaded?.Invoke(snapshot);
        }
        finally
        {
            _reload.Release();
        }
    }

    /// <summary>
    /// A router stored as a bare service name (http://router-oss20b-1) takes the address the platform
    /// gives that service (services:NAME:http:0, as Aspire and Container Apps set it); any other URL is used as is.
    /// </summary>
    private string Resolve(string baseUrl)
    {
        if (!Uri.TryCreate(baseUrl, UriKind.Absolute, out var uri) || uri.Host.Contains('.') || !uri.IsDefaultPort) return baseUrl.TrimEnd('/');
        var resolved = configuration[$"services:{uri.Host}:{uri.Scheme}:0"] ?? configuration[$"services:{uri.Host}:http:0"];
        return (resolved ?? baseUrl).TrimEnd('/');
    }
}
