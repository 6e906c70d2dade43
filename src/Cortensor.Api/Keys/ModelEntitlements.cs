using Cortensor.Api.Data;
using Microsoft.EntityFrameworkCore;

namespace Cortensor.Api.Keys;

/// <summary>Which models an organisation may use: its plan's policies, overridden (both ways) by its own.</summary>
public static class ModelEntitlements
{
    public static async Task<HashSet<string>> ForOrganizationAsync(PortalDbContext db, Guid organizationId, string planId, CancellationToken ct)
    {
        var policies = await db.ModelAccessPolicies.AsNoTracking()
            .Where(p => p.PlanId == planId || p.OrganizationId == organizationId)
            .ToListAsync(ct);
        var models = policies.Where(p => p.PlanId is not null && p.Allowed).Select(p => p.ModelId).ToHashSet(StringComparer.Ordinal);
        foreach (var p in policies.Where(p => p.OrganizationId is not null))
            if (p.Allowed) models.Add(p.ModelId); else models.Remove(p.ModelId);
        return models;
    }
}
