using Cortensor.Api.Catalog;
using Cortensor.Api.Data;

namespace Cortensor.Api.Admin;

/// <summary>Models and pools: disable or enable a model, drain or undrain a pool.</summary>
public static class CatalogAdminApi
{
    public static RouteGroupBuilder MapCatalogAdmin(this RouteGroupBuilder admin)
    {
        admin.MapPost("/models/{id}/disable", (string id, [AsParameters] CatalogChanges c) => c.Admin.SetModelEnabledAsync(id, false, c.Actor, c.Ct))
            .WithSummary("Disable a model: requests for it answer 403 model_disabled");
        admin.MapPost("/models/{id}/enable", (string id, [AsParameters] CatalogChanges c) => c.Admin.SetModelEnabledAsync(id, true, c.Actor, c.Ct))
            .WithSummary("Enable a model");
        admin.MapPost("/pools/{id}/drain", (string id, [AsParameters] CatalogChanges c) => c.Admin.SetPoolDrainingAsync(id, true, c.Actor, c.Ct))
            .WithSummary("Drain a pool: its models answer 503 with Retry-After, requests in flight finish");
        admin.MapPost("/pools/{id}/undrain", (string id, [AsParameters] CatalogChanges c) => c.Admin.SetPoolDrainingAsync(id, false, c.Actor, c.Ct))
            .WithSummary("Put a drained pool back into service");
        return admin;
    }

    public sealed record CatalogChanges(System.Security.Claims.ClaimsPrincipal User, CatalogAdmin Admin, CancellationToken Ct)
    {
        public AuditActor Actor => AuditActor.From(User);
    }
}
