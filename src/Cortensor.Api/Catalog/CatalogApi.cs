using System.Text.Json.Serialization;
using Cortensor.Api.Accounts;
using Cortensor.Api.ControlPlane;
using Cortensor.Api.Data;
using Cortensor.Api.Errors;
using Cortensor.Api.Keys;
using Cortensor.Api.Routing;
using Microsoft.AspNetCore.Authentication;
using Microsoft.AspNetCore.Http.HttpResults;
using Microsoft.EntityFrameworkCore;

namespace Cortensor.Api.Catalog;

public static class CatalogApi
{
    public static IEndpointRouteBuilder MapCatalogApi(this IEndpointRouteBuilder app)
    {
        var portal = app.MapGroup("/portal").WithTags("Catalog");
        portal.MapGet("/models", GetModels)
            .WithName("ListCatalogModels")
            .WithSummary("The model catalog with prices per 1K tokens; signed in, also whether the organisation may use each");
        return app;
    }

    /// <summary>Public; with a bearer token, 'allowed' says what the caller's organisation (X-Organization-Id or personal) may use.</summary>
    public static async Task<Results<Ok<CatalogModelDto[]>, ErrorResult>> GetModels(HttpContext http, CatalogStore catalog, RouterBalancer balancer,
        PortalDbContext db, CancellationToken ct)
    {
        HashSet<string>? allowed = null;
        if (http.Request.Headers.Authorization.Count > 0)
        {
            var auth = await http.AuthenticateAsync(PortalAuth.Bearer);
            if (!auth.Succeeded)
                return new ApiError(401, "authentication_error", "invalid_token", "The access token is not valid. Sign in again, or call without a token for the public catalog.").ToResult();
            http.User = auth.Principal;
            var (caller, error) = await PortalCaller.ResolveAsync(http, db, ct);
            if (error is not null) return error.ToResult();
            var planId = await db.Organizations.Where(o => o.Id == caller!.OrganizationId).Select(o => o.PlanId).SingleAsync(ct);
            allowed = await ModelEntitlements.ForOrganizationAsync(db, caller!.OrganizationId, planId, ct);
        }
        var snapshot = catalog.Current;
        return TypedResults.Ok(snapshot.Models.Values
            .OrderBy(m => m.Id, StringComparer.Ordinal)
            .Select(m => new CatalogModelDto(m.Id, m.DisplayName, m.Family, m.Enabled, m.ContextWindow,
                m.InputPricePer1K, m.OutputPricePer1K,
                // What a request for the model would find now: served (enabled), and a router of its pool that could be
                // picked (probe healthy, circuit not open) as this replica sees it, the test /health reports per pool.
                m.Enabled && snapshot.Pools.TryGetValue(m.PoolId, out var pool) && !pool.Draining && balancer.AnyAvailable(pool),
                allowed?.Contains(m.Id), m.IncludedIn.Select(p => p.Name).ToArray()))
            .ToArray());
    }
}

/// <summary>A catalog entry as customers see it; pools and routers stay internal.</summary>
public sealed record CatalogModelDto(
    string Id, string DisplayName, string Family, bool Enabled, int ContextWindow,
    [property: JsonPropertyName("input_price_per_1k")] decimal InputPricePer1K,
    [property: JsonPropertyName("output_price_per_1k")] decimal OutputPricePer1K,
    /// <summary>Enabled, and a router of its pool is in rotation now: a request would be served rather than refused 503.</summary>
    bool Available,
    bool? Allowed = null,
    string[]? IncludedIn = null);
