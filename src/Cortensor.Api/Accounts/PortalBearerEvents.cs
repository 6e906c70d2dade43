using Cortensor.Api.Errors;
using Microsoft.AspNetCore.Authentication.JwtBearer;
using Microsoft.IdentityModel.Tokens;

namespace Cortensor.Api.Accounts;

/// <summary>401 and 403 of the control plane in the Api's one error shape, saying what to do next.</summary>
public static class PortalBearerEvents
{
    public static JwtBearerEvents Create(Func<TokenValidatedContext, Task>? onValidated = null) => new()
    {
        OnTokenValidated = onValidated ?? (_ => Task.CompletedTask),
        OnChallenge = async context =>
        {
            context.HandleResponse();
            var error = context.AuthenticateFailure switch
            {
                SessionRevokedException => new ApiError(401, "authentication_error", "session_revoked",
                    "This sign-in has ended (signed out, or your access changed). Sign in again with POST /portal/auth/login."),
                SecurityTokenExpiredException => new ApiError(401, "authentication_error", "token_expired",
                    "The access token has expired. Get a new one from POST /portal/auth/refresh."),
                not null => new ApiError(401, "authentication_error", "invalid_token",
                    "The access token is not valid. Sign in again with POST /portal/auth/login."),
                null => new ApiError(401, "authentication_error", "missing_token",
                    "Sign in first, then send 'Authorization: Bearer <access_token>' (POST /portal/auth/login)."),
            };
            context.Response.Headers.WWWAuthenticate = "Bearer";
            await new ErrorResult(error).ExecuteAsync(context.HttpContext);
        },
        OnForbidden = context => new ErrorResult(new ApiError(403, "permission_error", "admin_only",
            "This endpoint is for Portal administrators.")).ExecuteAsync(context.HttpContext),
    };
}
