using System.Security.Claims;
using Cortensor.Api.Data;
using Cortensor.Api.Errors;
using Microsoft.EntityFrameworkCore;

namespace Cortensor.Api.ControlPlane;

/// <summary>
/// The signed-in user acting in one organisation: the one named by the X-Organization-Id header, or
/// their first (personal) organisation. Bound into every org-scoped control-plane endpoint.
/// </summary>
public sealed record PortalCaller(Guid UserId, string Name, Guid OrganizationId, MemberRole Role)
{
    public const string OrganizationHeader = "X-Organization-Id";

    public bool CanManage => Role is MemberRole.Owner or MemberRole.Admin;
    public AuditActor Actor => new(UserId, Name);

    /// <summary>Why the request cannot act in an organisation; <see cref="OrganizationContextFilter"/> answers with it.</summary>
    public ApiError? Error { get; private init; }

    /// <summary>
    /// Binding resolves the organisation (parameter binding runs before endpoint filters); a failure is
    /// carried in <see cref="Error"/> rather than failing the binding, which would answer a bare 400.
    /// </summary>
    public static async ValueTask<PortalCaller?> BindAsync(HttpContext http)
    {
        var (caller, error) = await ResolveAsync(http, http.RequestServices.GetRequiredService<PortalDbContext>(), http.RequestAborted);
        return caller ?? new PortalCaller(Guid.Empty, "", Guid.Empty, MemberRole.Member) { Error = error };
    }

    /// <summary>Which organisation the request acts in; an organisation the user is not a member of does not exist for them.</summary>
    public static async Task<(PortalCaller? Caller, ApiError? Error)> ResolveAsync(HttpContext http, PortalDbContext db, CancellationToken ct)
    {
        var userId = http.User.UserId();
        Guid? wanted = null;
        var header = http.Request.Headers[OrganizationHeader].ToString();
        if (header.Length > 0)
        {
            if (!Guid.TryParse(header, out var parsed))
                return (null, ApiError.InvalidField(OrganizationHeader, $"'{OrganizationHeader}' must be an organization id (a UUID)."));
            wanted = parsed;
        }
        var membership = await db.OrganizationMembers.AsNoTracking()
            .Where(m => m.UserId == userId && (wanted == null || m.OrganizationId == wanted))
            .OrderBy(m => m.CreatedAt).ThenBy(m => m.OrganizationId)
            .Select(m => new { m.OrganizationId, m.Role })
            .FirstOrDefaultAsync(ct);
        if (membership is null)
            return (null, wanted is null
                ? new ApiError(404, "invalid_request_error", "no_organization", "You are not a member of any organization. Create one with POST /portal/organizations.")
                : ApiError.NotFound("organization"));
        var name = http.User.FindFirstValue("email") ?? userId.ToString();
        return (new PortalCaller(userId, name, membership.OrganizationId, membership.Role), null);
    }
}

/// <summary>Stops an org-scoped request whose organisation could not be resolved, before the endpoint runs.</summary>
public sealed class OrganizationContextFilter : IEndpointFilter
{
    public ValueTask<object?> InvokeAsync(EndpointFilterInvocationContext context, EndpointFilterDelegate next)
    {
        foreach (var argument in context.Arguments)
            if (argument is PortalCaller { Error: { } error })
                return ValueTask.FromResult<object?>(error.ToResult());
        return next(context);
    }
}

public static class PrincipalExtensions
{
    /// <summary>The Portal user id; Portal and external tokens both carry it as 'sub' once authenticated.</summary>
    public static Guid UserId(this ClaimsPrincipal principal) =>
        Guid.TryParse(principal.FindFirstValue("sub"), out var id) ? id : Guid.Empty;
}
