using System.Security.Claims;
using Microsoft.AspNetCore.Authentication;
using Microsoft.AspNetCore.Authentication.Cookies;

namespace Cortensor.Web.Services;

/// <summary>
/// The browser's side of sign-in: the sign-in page gets tokens from the Api inside the Blazor circuit,
/// then sends the browser here with a one-time ticket to set the session cookie (a circuit cannot).
/// </summary>
public static class SessionEndpoints
{
    public static WebApplicationBuilder AddPortalSessions(this WebApplicationBuilder builder)
    {
        builder.Services.AddSingleton(TimeProvider.System);
        builder.Services.AddScoped<SignInBinding>();
        builder.AddWalletSignIn();
        builder.Services.AddAuthentication(CookieAuthenticationDefaults.AuthenticationScheme)
            .AddCookie(o =>
            {
                o.LoginPath = "/signin";
                o.AccessDeniedPath = "/forbidden";
                o.Cookie.Name = "cortensor.session";
                o.Cookie.HttpOnly = true;
                o.Cookie.SameSite = SameSiteMode.Lax;
                o.SlidingExpiration = true;
                o.ExpireTimeSpan = TimeSpan.FromDays(7);
                // A cookie whose server-side session is gone (signed out elsewhere, Web restarted) signs out.
                o.Events.OnValidatePrincipal = context =>
                {
                    var store = context.HttpContext.RequestServices.GetRequiredService<SessionStore>();
                    if (store.Find(context.Principal?.FindFirst(PortalSession.SessionClaim)?.Value) is null)
                    {
                        context.RejectPrincipal();
                        return context.HttpContext.SignOutAsync(CookieAuthenticationDefaults.AuthenticationScheme);
                    }
                    return Task.CompletedTask;
                };
            });
        builder.Services.AddAuthorizationBuilder().AddPolicy("admin", p => p.RequireRole("admin"));
        builder.Services.AddCascadingAuthenticationState();
        return builder;
    }

    public static IEndpointRouteBuilder MapPortalSessions(this IEndpointRouteBuilder app)
    {
        app.MapGet("/auth/session", async (string ticket, string? returnUrl, SessionStore store, HttpContext http) =>
        {
            if (store.Redeem(ticket, SignInBinding.From(http)) is not { } session) return Results.Redirect("/signin?expired=1");
            var claims = new List<Claim>
            {
                new(ClaimTypes.NameIdentifier, session.UserId.ToString()), new(ClaimTypes.Name, session.DisplayName ?? session.Email),
                new(ClaimTypes.Email, session.Email), new(PortalSession.SessionClaim, session.Id),
            };
            if (session.IsAdmin) claims.Add(new Claim(ClaimTypes.Role, "admin"));
            await http.SignInAsync(CookieAuthenticationDefaults.AuthenticationScheme,
                new ClaimsPrincipal(new ClaimsIdentity(claims, CookieAuthenticationDefaults.AuthenticationScheme)));
            return Results.LocalRedirect(IsLocal(returnUrl) ? returnUrl! : "/");
        });

        app.MapPost("/auth/signout", async (HttpContext http, SessionStore store, IPortalApi api) =>
        {
            if (store.End(http.User.FindFirst(PortalSession.SessionClaim)?.Value) is { } session)
            {
                try { await api.LogOutAsync(new RefreshRequest(session.RefreshToken)); }
                catch (Exception ex) when (ex is HttpRequestException or Refit.ApiException) { } // the local session is gone either way
            }
            await http.SignOutAsync(CookieAuthenticationDefaults.AuthenticationScheme);
            return Results.LocalRedirect("/signin?signedout=1");
        });
        return app;
    }

    private static bool IsLocal(string? url) => url is { Length: > 0 } && url[0] == '/' && (url.Length == 1 || (url[1] != '/' && url[1] != '\\'));
}
