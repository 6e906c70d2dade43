using Cortensor.Api.Accounts;
using Cortensor.Api.Infrastructure;

namespace Cortensor.Api.Admin;

/// <summary>
/// Operator controls (SPEC §5), for users with the admin role, as route groups by what they act on.
/// Every change is audited with the operator who made it and reaches the hot path of every replica
/// within about a second.
/// </summary>
public static class AdminApi
{
    public static IEndpointRouteBuilder MapAdminApi(this IEndpointRouteBuilder app)
    {
        var admin = app.MapGroup("/admin").RequireAuthorization(PortalAuth.AdminPolicy).WithTags("Admin").ProducesErrors(400, 401, 403, 404);
        admin.MapOrganizationsAdmin();
        admin.MapKeysAdmin();
        admin.MapCatalogAdmin();
        admin.MapDiagnosticsAdmin();
        admin.MapUsageDeadLetters();
        admin.MapPlatformAdmins();
        return app;
    }
}
