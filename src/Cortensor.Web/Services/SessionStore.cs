using System.Collections.Concurrent;
using System.Security.Cryptography;

namespace Cortensor.Web.Services;

/// <summary>
/// The signed-in users' Api tokens, kept on the server: the browser's cookie carries only a session id.
/// Blazor circuits outlive a 15-minute access token and cannot rewrite the cookie, so refreshed
/// (rotated) tokens must live here. Sessions end when the Web process restarts; users sign in again.
/// </summary>
public sealed class SessionStore(TimeProvider clock)
{
    private readonly ConcurrentDictionary<string, PortalSessionState> _sessions = new();
    private readonly ConcurrentDictionary<string, (string SessionId, DateTimeOffset Expires, string Browser)> _tickets = new();

    /// <summary>As long as the session cookie lives (sliding): a session unused for longer is gone.</summary>
    public static readonly TimeSpan IdleLifetime = TimeSpan.FromDays(7);

    public PortalSessionState? Find(string? sessionId)
    {
        if (sessionId is null || !_sessions.TryGetValue(sessionId, out var state)) return null;
        var now = clock.GetUtcNow();
        if (now - state.LastSeen > IdleLifetime)
        {
            _sessions.TryRemove(sessionId, out _);
            return null;
        }
        state.LastSeen = now;
        return state;
    }

    /// <summary>
    /// Starts a session for freshly issued tokens; answers a one-time ticket that only the browser holding
    /// <paramref name="browser"/> (its <see cref="SignInBinding"/> cookie) can redeem for its session cookie.
    /// </summary>
    public (PortalSessionState Session, string Ticket) Start(Tokens tokens, Me me, string browser)
    {
        var now = clock.GetUtcNow();
        // Abandoned sessions (never signed out) would otherwise stay in memory for good.
        foreach (var (id, idle) in _sessions)
            if (now - idle.LastSeen > IdleLifetime) _sessions.TryRemove(id, out _);
        foreach (var (id, pending) in _tickets)
            if (pending.Expires <= now) _tickets.TryRemove(id, out _);
        var state = new PortalSessionState(NewId(), me.Id, me.Email ?? me.Id.ToString(), me.DisplayName, me.IsAdmin) { LastSeen = now };
        state.Update(tokens, now);
        state.OrganizationId = me.Organizations.FirstOrDefault()?.Id;
        _sessions[state.Id] = state;
        var ticket = NewId();
        _tickets[ticket] = (state.Id, clock.GetUtcNow().AddMinutes(1), browser);
        return (state, ticket);
    }

    /// <summary>The ticket's session, when the ticket is fresh and presented by the browser it was issued to. Used up either way.</summary>
    public PortalSessionState? Redeem(string ticket, string? browser)
    {
        if (!_tickets.TryRemove(ticket, out var entry) || entry.Expires <= clock.GetUtcNow()) return null;
        if (SignInBinding.Matches(entry.Browser, browser)) return Find(entry.SessionId);
        // Someone else's ticket (a forwarded sign-in link): that sign-in is void.
        End(entry.SessionId);
        return null;
    }

    public PortalSessionState? End(string? sessionId) => sessionId is not null && _sessions.TryRemove(sessionId, out var s) ? s : null;

    private static string NewId() => Convert.ToBase64String(RandomNumberGenerator.GetBytes(32)).TrimEnd('=').Replace('+', '-').Replace('/', '_');
}

public sealed class PortalSessionState(string id, Guid userId, string email, string? displayName, bool isAdmin)
{
    public string Id { get; } = id;
    public Guid UserId { get; } = userId;
    public string Email { get; } = email;
    public string? DisplayName { get; set; } = displayName;
    public bool IsAdmin { get; } = isAdmin;
    public string AccessToken { get; private set; } = "";
    public string RefreshToken { get; private set; } = "";
    public DateTimeOffset AccessTokenExpires { get; private set; }
    public Guid? OrganizationId { get; set; }
    public SemaphoreSlim RefreshLock { get; } = new(1, 1);
    public DateTimeOffset LastSeen { get; set; }

    public void Update(Tokens tokens, DateTimeOffset now)
    {
        AccessToken = tokens.AccessToken;
        RefreshToken = tokens.RefreshToken;
        AccessTokenExpires = now.AddSeconds(tokens.ExpiresIn);
    }
}
