using Microsoft.AspNetCore.Components.Authorization;

namespace Cortensor.Web.Services;

/// <summary>
/// The request log's CSV download. A browser download is a plain GET, not a circuit call, and the Api wants
/// the user's bearer token (which stays on this server): this endpoint passes the Api's stream straight through.
/// </summary>
public static class RequestExport
{
    public const string Path = "/usage/requests.csv";
    private static readonly string[] Filters = ["search", "key_id", "model", "status", "from", "to"];

    public static IEndpointRouteBuilder MapRequestExport(this IEndpointRouteBuilder app)
    {
        app.MapGet(Path, async (HttpContext http, PortalSession session, AuthenticationStateProvider authentication, IHttpClientFactory clients) =>
        {
            // Outside a circuit the session reads the signed-in user from this request.
            if (authentication is IHostEnvironmentAuthenticationStateProvider host)
                host.SetAuthenticationState(Task.FromResult(new AuthenticationState(http.User)));
            (string Token, string? Organization) caller;
            try
            {
                caller = await session.CallAsync((_, token, org) => Task.FromResult((token, org)));
            }
            catch (SessionEndedException)
            {
                return Results.Redirect("/signin?expired=1");
            }
            var query = QueryString.Create(http.Request.Query.Where(q => Filters.Contains(q.Key))
                .Select(q => new KeyValuePair<string, string?>(q.Key, q.Value.ToString())));
            using var request = new HttpRequestMessage(HttpMethod.Get, "/portal/requests.csv" + query);
            request.Headers.Authorization = new("Bearer", caller.Token);
            if (caller.Organization is not null) request.Headers.Add("X-Organization-Id", caller.Organization);
            var response = await clients.CreateClient(PortalApiClientExtensions.HttpClientName)
                .SendAsync(request, HttpCompletionOption.ResponseHeadersRead, http.RequestAborted);
            http.Response.RegisterForDispose(response);
            if (!response.IsSuccessStatusCode)
                return Results.Text(PortalSession.Describe(response.StatusCode, await response.Content.ReadAsStringAsync(http.RequestAborted)),
                    "text/plain", statusCode: (int)response.StatusCode);
            var name = response.Content.Headers.ContentDisposition?.FileNameStar ?? response.Content.Headers.ContentDisposition?.FileName?.Trim('"') ?? "requests.csv";
            return Results.Stream(await response.Content.ReadAsStreamAsync(http.RequestAborted), "text/csv; charset=utf-8", name);
        }).RequireAuthorization();
        return app;
    }
}
