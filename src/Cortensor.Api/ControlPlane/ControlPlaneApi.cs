using Cortensor.Api.Accounts;
using Cortensor.Api.Billing;
using Cortensor.Api.Infrastructure;

namespace Cortensor.Api.ControlPlane;

public static class ControlPlaneApi
{
    /// <summary>
    /// What a signed-in customer calls (SPEC §4). Everything under /portal except auth, the user's own
    /// organisations and the public catalog acts in one organisation (<see cref="PortalCaller"/>).
    /// </summary>
    public static WebApplicationBuilder AddControlPlane(this WebApplicationBuilder builder)
    {
        builder.Services.AddOptions<ControlPlaneLimits>().BindConfiguration(ControlPlaneLimits.Section)
            .Validate(o => o.FreeOrganizationsPerUser > 0 && o.DefaultApiKeysPerOrganization > 0 && o.ApiKeysPerOrganization.Values.All(n => n > 0),
                "ControlPlane limits must be positive.")
            .ValidateOnStart();
        return builder;
    }

    public static IEndpointRouteBuilder MapControlPlaneApi(this IEndpointRouteBuilder app)
    {
        app.MapAuthApi();
        app.MapOrganizationsApi();
        app.MapInvitationAcceptance();
        app.MapGroup("/portal")
            .RequireAuthorization(PortalAuth.UserPolicy)
            .AddEndpointFilter<OrganizationContextFilter>()
            .ProducesErrors(400, 401, 403, 404, 409)
            .MapApiKeysApi()
            .MapMembersApi()
            .MapInvitationsApi()
            .MapUsageApi()
            .MapCreditPurchasesApi();
        return app;
    }
}
