using System.Net;
using System.Text.Json;
using Microsoft.AspNetCore.Components.Authorization;
using Refit;

namespace Cortensor.Web.Services;

/// <summary>The signed-in user of this circuit or request, and every Api call made on their behalf.</summary>
public sealed class PortalSession(IPortalApi api, SessionStore store, AuthenticationStateProvider authentication, TimeProvider clock)
{
    public const string SessionClaim = "portal_session";
    private PortalSessionState? _state;

    public async Task<PortalSessionState> StateAsync()
    {
        if (_state is not null) return _state;
        var user = (await authentication.GetAuthenticationStateAsync()).User;
        _state = store.Find(user.FindFirst(SessionClaim)?.Value) ?? throw new SessionEndedException();
        return _state;
    }

    public async Task<bool> IsAdminAsync() => (await StateAsync()).IsAdmin;

    /// <summary>Calls the Api as the user in their current organisation, refreshing the access token when it lapses.</summary>
    public async Task<T> CallAsync<T>(Func<IPortalApi, string, string?, Task<T>> call)
    {
        var state = await StateAsync();
        await RefreshIfDueAsync(state, force: false);
        try
        {
            return await call(api, state.AccessToken, state.OrganizationId?.ToString());
        }
        catch (ApiException e) when (e.StatusCode == HttpStatusCode.Unauthorized && e.Content?.Contains("token", StringComparison.Ordinal) == true)
        {
            await RefreshIfDueAsync(state, force: true);
            return await call(api, state.AccessToken, state.OrganizationId?.ToString());
        }
    }

    public Task CallAsync(Func<IPortalApi, string, string?, Task> call) =>
        CallAsync(async (a, t, o) => { await call(a, t, o); return true; });

    private async Task RefreshIfDueAsync(PortalSessionState state, bool force)
    {
        if (!force && state.AccessTokenExpires > clock.GetUtcNow().AddSeconds(30)) return;
        var stale = state.AccessToken;
        await state.RefreshLock.WaitAsync();
        try
        {
            // Another circuit of the same session may have refreshed while this one waited.
            if (state.AccessToken != stale) return;
            try
            {
                await store.RefreshAsync(state, refreshToken => api.RefreshAsync(new RefreshRequest(refreshToken)));
            }
            catch (ApiException e) when (e.StatusCode == HttpStatusCode.Unauthorized)
            {
                store.End(state.Id);
                throw new SessionEndedException();
            }
        }
        finally
        {
            state.RefreshLock.Release();
        }
    }

    /// <summary>What to tell the user about a failed call: the Api's own message when it gave one.</summary>
    public static string Describe(Exception exception) => exception switch
    {
        SessionEndedException => "Your session has ended. Sign in again.",
        ApiException api when TryMessage(api.Content) is { } message => message,
        ApiException api => $"The Portal answered {(int)api.StatusCode}. Try again in a moment.",
        HttpRequestException or TaskCanceledException => "The Portal API is unreachable. Check your connection and try again.",
        _ => "Something went wrong. Try again; if it persists, contact support.",
    };

    public static string Describe(HttpStatusCode status, string? content) =>
        TryMessage(content) ?? $"The Portal answered {(int)status}. Try again in a moment.";

    private static string? TryMessage(string? content)
    {
        if (string.IsNullOrEmpty(content)) return null;
        try
        {
            using var doc = JsonDocument.Parse(content);
            return doc.RootElement.TryGetProperty("error", out var error) && error.TryGetProperty("message", out var m) ? m.GetString() : null;
        }
        catch (JsonException) { return null; }
    }
}

public sealed class SessionEndedException() : Exception("The Portal session has ended; sign in again.");
