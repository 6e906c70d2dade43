using Cortensor.Api.Catalog;
using Cortensor.Api.Data;
using Cortensor.Api.Errors;
using Cortensor.Api.ControlPlane;
using Cortensor.Api.Metering;
using Cortensor.Api.Routing;
using Microsoft.AspNetCore.Http.HttpResults;
using Microsoft.AspNetCore.Mvc;
using Microsoft.EntityFrameworkCore;

namespace Cortensor.Api.Admin;

/// <summary>What operators look at: pools and routers as this replica sees them, the audit log, any request by id.</summary>
public static class DiagnosticsAdminApi
{
    public static RouteGroupBuilder MapDiagnosticsAdmin(this RouteGroupBuilder admin)
    {
        admin.MapGet("/pools", ListPools).WithSummary("Pools and routers with health, load and error rate, as this replica sees them");
        admin.MapGet("/audit", ListAudit).TakesQuery("limit", "action", "target_id", "actor", "before")
            .WithSummary("The audit log, newest first; filter by action, target or actor (an e-mail in any case, or a user id); page with 'before' = the last id seen");
        admin.MapGet("/requests/{requestId}", FindRequest).WithSummary("Any request by its request id, with its usage");
        return admin;
    }

    private static Ok<PoolDto[]> ListPools(CatalogStore catalog, RouterBalancer balancer)
    {
        var snapshot = catalog.Current;
        return TypedResults.Ok(snapshot.Pools.Values.OrderBy(p => p.Id).Select(p => new PoolDto(p.Id, p.Draining,
            snapshot.Models.Values.Where(m => m.PoolId == p.Id).Select(m => m.Id).Order().ToArray(),
            RoutersOf(p, balancer))).ToArray());
    }

    private static RouterDto[] RoutersOf(CatalogPool pool, RouterBalancer balancer)
    {
        var poolPicked = pool.Routers.Sum(r => balancer.StateOf(r.Id).Picked);
        return pool.Routers.Select(r =>
        {
            var s = balancer.StateOf(r.Id);
            var total = s.Completed + s.Failed;
            return new RouterDto(r.Id, s.Available, s.Circuit.ToString(), s.InFlight, s.ReportedLoad, s.Completed, s.Failed,
                total == 0 ? 0 : (double)s.Failed / total, Math.Round(s.LatencyMs, 2), s.LastProbeAt,
                s.Picked, poolPicked == 0 ? 0 : Math.Round((double)s.Picked / poolPicked, 4), Math.Round(s.ProbeLatencyMs, 2));
        }).ToArray();
    }

    private static async Task<Results<Ok<AuditLogEntry[]>, ErrorResult>> ListAudit(PortalDbContext db, [FromQuery] string? limit,
        [FromQuery] string? action, [FromQuery(Name = "target_id")] string? targetId, [FromQuery] string? actor, [FromQuery] string? before, CancellationToken ct)
    {
        if (QueryParameters.Int(limit, "limit", 1, 1000, out var size) is { } bad) return bad.ToResult();
        long? beforeId = null;
        if (!string.IsNullOrEmpty(before))
        {
            if (!long.TryParse(before, System.Globalization.NumberStyles.None, System.Globalization.CultureInfo.InvariantCulture, out var id))
                return ApiError.InvalidField("before", "'before' must be the id of an audit entry (a whole number), e.g. the last one of a page.").ToResult();
            beforeId = id;
        }
        var query = db.AuditLog.AsNoTracking();
        if (beforeId is { } cursor) query = query.Where(a => a.Id < cursor);
        if (!string.IsNullOrEmpty(action)) query = query.Where(a => a.Action == action);
        if (!string.IsNullOrEmpty(targetId)) query = query.Where(a => a.TargetId == targetId);
        // An actor as the log shows it: by the user's id, or by the address it was recorded under, in any case.
        if (Guid.TryParse(actor, out var actorId)) query = query.Where(a => a.ActorUserId == actorId);
        else if (!string.IsNullOrEmpty(actor)) query = query.Where(a => a.Actor.ToLower() == actor.ToLowerInvariant());
        return TypedResults.Ok(await query.OrderByDescending(a => a.Id).Take(size ?? 100).ToArrayAsync(ct));
    }

    private static async Task<Results<Ok<RequestDto[]>, ErrorResult>> FindRequest(string requestId, PortalDbContext db, CancellationToken ct)
    {
        // Or the completion id a customer quotes from their SDK (chatcmpl-…), which names the usage event.
        var eventId = UsageTracker.EventIdOf(requestId);
        var found = await db.RequestLogs.AsNoTracking().Where(r => r.RequestId == requestId || (eventId != null && r.EventId == eventId)).OrderBy(r => r.CreatedAt)
            .GroupJoin(db.UsageEvents.AsNoTracking(), r => r.EventId, u => u.EventId, (r, u) => new { r, u })
            .SelectMany(x => x.u.DefaultIfEmpty(), (x, u) => new RequestDto(x.r, u))
            .ToArrayAsync(ct);
        return found.Length > 0 ? TypedResults.Ok(found) : ApiError.NotFound("request").ToResult();
    }
}
