using System.Security.Cryptography;
using System.Text;
using Cortensor.Api.Errors;

namespace Cortensor.Api.Admin;

/// <summary>
/// Operator access to /admin: a bearer token from the AppHost's <c>admin-token</c> parameter
/// (<c>Admin:Token</c>). Compared in constant time; never logged.
/// </summary>
public sealed class AdminTokenFilter(IConfiguration configuration) : IEndpointFilter
{
    public ValueTask<object?> InvokeAsync(EndpointFilterInvocationContext context, EndpointFilterDelegate next)
    {
        var expected = configuration["Admin:Token"];
        var header = context.HttpContext.Request.Headers.Authorization.ToString();
        var presented = header.StartsWith("Bearer ", StringComparison.OrdinalIgnoreCase) ? header[7..].Trim() : "";
        if (string.IsNullOrEmpty(expected) || !CryptographicOperations.FixedTimeEquals(Encoding.UTF8.GetBytes(presented), Encoding.UTF8.GetBytes(expected)))
            return ValueTask.FromResult<object?>(new ApiError(401, "authentication_error", "invalid_admin_token", "Admin endpoints need the operator token as 'Authorization: Bearer <token>'.").ToResult());
        return next(context);
    }
}
