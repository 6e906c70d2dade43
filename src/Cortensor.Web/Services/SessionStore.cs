using System.Security.Cryptography;
using System.Text.Json;
using StackExchange.Redis;

namespace Cortensor.Web.Services;

/// <summary>
/// The signed-in users' Api tokens, kept on the server: the browser's cookie carries only a session id.
/// Blazor circuits outlive a 15-minute access token and cannot rewrite the cookie, so refreshed
/// (rotated) tokens must live here. They live in Redis, so any Web replica serves any session and a
/// restart signs nobody out; an idle session expires with its key (sliding, like the cookie).
/// </summary>
public sealed class SessionStore(IConnectionMultiplexer redis, TimeProvider clock)
{
    /// <summary>As long as the session cookie lives (sliding): a session unused for longer is gone.</summary>
    public static readonly TimeSpan IdleLifetime = TimeSpan.FromDays(7);
    private static readonly TimeSpan TicketLifetime = TimeSpan.FromMinutes(1);
    private static readonly TimeSpan RefreshLockLifetime = TimeSpan.FromSeconds(30);

    private IDatabase Db => redis.GetDatabase();
    private static RedisKey SessionKey(string id) => $"web:session:{id}";
    private static RedisKey TicketKey(string ticket) => $"web:ticket:{ticket}";

    // Scripts rather than GETEX/GETDEL: those need Redis 6.2, and Azure Cache for Redis offers 6.0.
    private const string GetAndTouch = "local v = redis.call('GET', KEYS[1]) if v then redis.call('PEXPIRE', KEYS[1], ARGV[1]) end return v";
    private const string GetAndDelete = "local v = redis.call('GET', KEYS[1]) if v then redis.call('DEL', KEYS[1]) end return v";

    /// <summary>The session, its idle expiry pushed back (read and touch in one round trip).</summary>
    public PortalSessionState? Find(string? sessionId)
    {
        if (string.IsNullOrEmpty(sessionId)) return null;
        var json = (RedisValue)Db.ScriptEvaluate(GetAndTouch, [SessionKey(sessionId)], [(long)IdleLifetime.TotalMilliseconds]);
        return json.IsNullOrEmpty ? null : Attach(JsonSerializer.Deserialize<SessionRecord>(json.ToString())!);
    }

    /// <summary>
    /// Starts a session for freshly issued tokens; answers a one-time ticket the browser redeems for its
    /// cookie. The ticket is bound to the browser that signed in (its <see cref="SignInBinding"/> nonce).
    /// </summary>
    public (PortalSessionState Session, string Ticket) Start(Tokens tokens, Me me, string browser)
    {
        var state = Attach(new SessionRecord(NewId(), me.Id, me.Email ?? me.Id.ToString(), me.DisplayName, me.IsAdmin,
            "", "", default, me.Organizations.FirstOrDefault()?.Id));
        state.Update(tokens, clock.GetUtcNow());
        var ticket = NewId();
        Db.StringSet(TicketKey(ticket), JsonSerializer.Serialize(new TicketRecord(state.Id, browser)), TicketLifetime);
        return (state, ticket);
    }

    /// <summary>
    /// The ticket's session, when the ticket is fresh and presented by the browser it was issued to, on
    /// whichever replica the browser reaches. Used up either way (read and delete atomically).
    /// </summary>
    public PortalSessionState? Redeem(string ticket, string? browser)
    {
        var json = (RedisValue)Db.ScriptEvaluate(GetAndDelete, [TicketKey(ticket)]);
        if (json.IsNullOrEmpty) return null;
        var entry = JsonSerializer.Deserialize<TicketRecord>(json.ToString())!;
        if (SignInBinding.Matches(entry.Browser, browser)) return Find(entry.SessionId);
        // Someone else's ticket (a forwarded sign-in link): that sign-in is void.
        End(entry.SessionId);
        return null;
    }

    public PortalSessionState? End(string? sessionId)
    {
        if (string.IsNullOrEmpty(sessionId)) return null;
        var json = (RedisValue)Db.ScriptEvaluate(GetAndDelete, [SessionKey(sessionId)]);
        return json.IsNullOrEmpty ? null : Attach(JsonSerializer.Deserialize<SessionRecord>(json.ToString())!);
    }

    /// <summary>
    /// Refreshes the session's tokens once across every replica. A refresh token is single-use (the Api
    /// rotates it), so two circuits of one user on two replicas must not both spend it: under a Redis lock,
    /// the first refreshes and saves; the others find the saved tokens and take them.
    /// </summary>
    public async Task RefreshAsync(PortalSessionState state, Func<string, Task<Tokens>> refresh, CancellationToken cancellationToken = default)
    {
        var stale = state.AccessToken;
        var lockKey = (RedisKey)$"web:session-refresh:{state.Id}";
        var owner = NewId();
        using var deadline = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
        deadline.CancelAfter(RefreshLockLifetime);
        // Another replica holds the lock only while it calls the Api once; wait for it, then read what it saved.
        while (!await Db.LockTakeAsync(lockKey, owner, RefreshLockLifetime))
            await Task.Delay(TimeSpan.FromMilliseconds(50), deadline.Token);
        try
        {
            var saved = await Db.StringGetAsync(SessionKey(state.Id));
            if (saved.IsNullOrEmpty) throw new SessionEndedException();
            var current = JsonSerializer.Deserialize<SessionRecord>(saved.ToString())!;
            if (current.AccessToken != stale)
            {
                state.Adopt(current);
                return;
            }
            state.Update(await refresh(current.RefreshToken), clock.GetUtcNow());
        }
        finally
        {
            await Db.LockReleaseAsync(lockKey, owner);
        }
    }

    private PortalSessionState Attach(SessionRecord record) => new(record, Save);

    /// <summary>Every change of a session (tokens, organisation, last key) is written through at once.</summary>
    private void Save(SessionRecord record) =>
        Db.StringSet(SessionKey(record.Id), JsonSerializer.Serialize(record), IdleLifetime);

    private static string NewId() => Convert.ToBase64String(RandomNumberGenerator.GetBytes(32)).TrimEnd('=').Replace('+', '-').Replace('/', '_');
}

/// <summary>What Redis holds for one session: never an API key (the Playground asks for one).</summary>
public sealed record SessionRecord(
    string Id, Guid UserId, string Email, string? DisplayName, bool IsAdmin,
    string AccessToken, string RefreshToken, DateTimeOffset AccessTokenExpires, Guid? OrganizationId);

/// <summary>A sign-in ticket: the session it opens and the browser it was issued to.</summary>
public sealed record TicketRecord(string SessionId, string Browser);

/// <summary>One session as a circuit or request sees it; setting a property saves the session for every replica.</summary>
public sealed class PortalSessionState
{
    private SessionRecord _record;
    private readonly Action<SessionRecord> _save;

    internal PortalSessionState(SessionRecord record, Action<SessionRecord> save)
    {
        _record = record;
        _save = save;
    }

    public string Id => _record.Id;
    public Guid UserId => _record.UserId;
    public string Email => _record.Email;
    public bool IsAdmin => _record.IsAdmin;
    public string AccessToken => _record.AccessToken;
    public string RefreshToken => _record.RefreshToken;
    public DateTimeOffset AccessTokenExpires => _record.AccessTokenExpires;
    public string? DisplayName { get => _record.DisplayName; set => Change(_record with { DisplayName = value }); }
    public Guid? OrganizationId { get => _record.OrganizationId; set => Change(_record with { OrganizationId = value }); }
    /// <summary>Serialises refreshes of this circuit's copy; <see cref="SessionStore.RefreshAsync"/> serialises them across replicas.</summary>
    public SemaphoreSlim RefreshLock { get; } = new(1, 1);

    public void Update(Tokens tokens, DateTimeOffset now) => Change(_record with
    {
        AccessToken = tokens.AccessToken,
        RefreshToken = tokens.RefreshToken,
        AccessTokenExpires = now.AddSeconds(tokens.ExpiresIn),
    });

    /// <summary>Takes what another replica saved (its refreshed tokens) without writing it back.</summary>
    internal void Adopt(SessionRecord saved) => _record = saved;

    private void Change(SessionRecord next)
    {
        _record = next;
        _save(next);
    }
}
