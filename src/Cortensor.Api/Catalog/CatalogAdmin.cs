using Cortensor.Api.Data;
using Cortensor.Api.Errors;
using Cortensor.Api.Infrastructure;
using Microsoft.EntityFrameworkCore;

namespace Cortensor.Api.Catalog;

/// <summary>Operator changes to models and pools: durable first, then every replica reloads its catalog.</summary>
public sealed class CatalogAdmin(PortalDbContext db, InvalidationBus bus, CatalogStore store, TimeProvider clock)
{
    public sealed record ModelState(string Id, bool Enabled);
    public sealed record PoolState(string Id, bool Draining);

    public async Task<IResult> SetModelEnabledAsync(string id, bool enabled, AuditActor actor, CancellationToken ct)
    {
        var model = await db.Models.SingleOrDefaultAsync(m => m.Id == id, ct);
        if (model is null) return ApiError.NotFound($"model '{id}'").ToResult();
        var before = model.Enabled;
        model.Enabled = enabled;
        // Asked again, it changes nothing and is not audited as a change; it is still published (every replica told again).
        if (before != enabled)
            db.Record(actor, enabled ? "model.enable" : "model.disable", "model", id, new { Enabled = before }, new { Enabled = enabled }, clock.GetUtcNow());
        await db.SaveChangesAsync(ct);
        await PublishAsync(ct);
        return TypedResults.Ok(new ModelState(id, enabled));
    }

    public async Task<IResult> SetPoolDrainingAsync(string id, bool draining, AuditActor actor, CancellationToken ct)
    {
        var pool = await db.RouterPools.SingleOrDefaultAsync(p => p.Id == id, ct);
        if (pool is null) return ApiError.NotFound($"pool '{id}'").ToResult();
        var before = pool.Draining;
        pool.Draining = draining;
        if (before != draining)
            db.Record(actor, draining ? "pool.drain" : "pool.undrain", "router_pool", id, new { Draining = before }, new { Draining = draining }, clock.GetUtcNow());
        await db.SaveChangesAsync(ct);
        await PublishAsync(ct);
        return TypedResults.Ok(new PoolState(id, draining));
    }

    private async Task PublishAsync(CancellationToken ct)
    {
        await store.ReloadAsync(ct);
        await bus.PublishAsync(CatalogRefresher.Topic);
    }
}
