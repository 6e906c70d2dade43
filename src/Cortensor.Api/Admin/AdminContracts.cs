using System.Security.Claims;
using Cortensor.Api.Catalog;
using Cortensor.Api.Data;
using Cortensor.Api.Keys;

namespace Cortensor.Api.Admin;

// What the admin API takes and answers, in one place.

public sealed record CreateOrganizationBody(string? Name, string? Plan);
public sealed record OrganizationDto(Guid Id, string Name, string Plan, string Status, DateTimeOffset CreatedAt)
{
    public static OrganizationDto From(Organization o) => new(o.Id, o.Name, o.PlanId, o.Status.ToString().ToLowerInvariant(), o.CreatedAt);
}
public sealed record PlanBody(string? Plan);
public sealed record CreditsBody(decimal? Amount, string? Reason);
public sealed record BalanceDto(Guid OrganizationId, decimal Balance);
public sealed record BalancesDto(Guid OrganizationId, decimal LedgerBalance, decimal? HotBalance, long TokensThisMonth, long UsageEntries, long UsageEvents);

/// <summary>A router as this Api replica sees it; <c>Share</c> is its part of the pool's picks here (a starved router shows near 0).</summary>
public sealed record RouterDto(string Id, bool Healthy, string Circuit, int InFlight, long ReportedLoad, long Completed, long Failed, double ErrorRate, double LatencyMs, DateTimeOffset? LastProbeAt,
    long Picked, double Share, double ProbeLatencyMs);
public sealed record PoolDto(string Id, bool Draining, string[] Models, RouterDto[] Routers);
public sealed record RequestDto(RequestLog Log, UsageEvent? Usage);

/// <summary>What every admin change needs: the operator (audited), the key and organisation service, the clock.</summary>
public sealed record AdminChanges(ClaimsPrincipal User, KeyService Keys, PortalDbContext Db, CatalogStore Catalog, TimeProvider Clock, CancellationToken Ct)
{
    public AuditActor Actor => AuditActor.From(User);
}
