using System.Security.Cryptography;

namespace Cortensor.Web.Services;

/// <summary>
/// Binds a sign-in ticket to the browser that signed in (against login CSRF: a ticket link opened in
/// another browser must not sign that browser in as someone else). Every page request without one gets a
/// random HttpOnly cookie; the circuit learns its value from the prerender (persistent component state),
/// stores it with the ticket, and <c>/auth/session</c> only redeems the ticket for a browser presenting the
/// same cookie.
/// </summary>
public sealed class SignInBinding
{
    public const string CookieName = "cortensor.signin";

    /// <summary>This circuit's browser's binding cookie; null when the circuit started without a prerender.</summary>
    public string? Nonce { get; set; }

    /// <summary>The binding cookie of the current request: the one it carries, or the one just given to it.</summary>
    public static string? From(HttpContext http) => http.Items[CookieName] as string ?? http.Request.Cookies[CookieName];

    public static bool Matches(string? expected, string? presented) =>
        expected is not null && presented is not null
        && CryptographicOperations.FixedTimeEquals(System.Text.Encoding.UTF8.GetBytes(expected), System.Text.Encoding.UTF8.GetBytes(presented));

    internal static string NewNonce(byte[] bytes) => Convert.ToBase64String(bytes).TrimEnd('=').Replace('+', '-').Replace('/', '_');
}

public static class SignInBindingExtensions
{
    /// <summary>Gives every browser that asks for a page its binding cookie, before anything renders.</summary>
    public static IApplicationBuilder UseSignInBinding(this WebApplication app) => app.Use(async (http, next) =>
    {
        if (HttpMethods.IsGet(http.Request.Method) && !http.Request.Cookies.ContainsKey(SignInBinding.CookieName)
            && http.Request.Headers.Accept.ToString().Contains("text/html", StringComparison.Ordinal))
        {
            var nonce = SignInBinding.NewNonce(RandomNumberGenerator.GetBytes(32));
            http.Response.Cookies.Append(SignInBinding.CookieName, nonce, new CookieOptions
            {
                HttpOnly = true, SameSite = SameSiteMode.Lax, Secure = http.Request.IsHttps, IsEssential = true, Path = "/",
            });
            http.Items[SignInBinding.CookieName] = nonce;
        }
        await next(http);
    });
}
