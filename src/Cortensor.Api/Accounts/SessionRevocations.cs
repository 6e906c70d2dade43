using System.Collections.Concurrent;
using Cortensor.Api.Infrastructure;
using Microsoft.Extensions.Options;
using StackExchange.Redis;

namespace Cortensor.Api.Accounts;

/// <summary>
/// Signed-out and cut-off sign-ins (the <c>sid</c> of Portal access tokens) on every replica.
/// The durable list is a Redis sorted set (member: session id, score: when its last access token expires),
/// so it never outgrows the access-token lifetime; every replica keeps a copy in memory, updated within
/// milliseconds through <see cref="InvalidationBus"/> and reloaded on start, on reconnect and every
/// <see cref="Period"/> as a safety net. Checking a token is a dictionary lookup: no Redis round trip.
/// </summary>
public sealed class SessionRevocations(IConnectionMultiplexer redis, InvalidationBus bus, IOptions<AuthOptions> options,
    TimeProvider clock, ILogger<SessionRevocations> log) : BackgroundService
{
    public const string TopicPrefix = "session-revoked:";
    private static readonly RedisKey Key = "cortensor:revoked-sessions";
    private static readonly TimeSpan Period = TimeSpan.FromSeconds(30);
    private readonly ConcurrentDictionary<string, DateTimeOffset> _revoked = new(StringComparer.Ordinal);
    private readonly SemaphoreSlim _reload = new(0);

    /// <summary>As long as an access token of the session can still be presented (its lifetime and the validation clock skew).</summary>
    private TimeSpan Retention => TimeSpan.FromMinutes(options.Value.AccessTokenMinutes) + TimeSpan.FromMinutes(1);

    public bool IsRevoked(string? sessionId) => sessionId is not null && _revoked.ContainsKey(sessionId);

    /// <summary>
    /// Ends sessions on every replica. The refresh tokens are revoked in Postgres by the caller; this stops
    /// the access tokens already handed out. Without Redis only this replica learns it at once; the others
    /// accept those access tokens until they expire (at most <see cref="AuthOptions.AccessTokenMinutes"/>).
    /// </summary>
    public async Task RevokeAsync(IReadOnlyCollection<Guid> sessions)
    {
        if (sessions.Count == 0) return;
        var until = clock.GetUtcNow() + Retention;
        foreach (var session in sessions) _revoked[session.ToString()] = until;
        try
        {
            await redis.GetDatabase().SortedSetAddAsync(Key,
                sessions.Select(s => new SortedSetEntry(s.ToString(), until.ToUnixTimeSeconds())).ToArray());
        }
        catch (Exception ex) when (Outage.IsRedis(ex))
        {
            log.LogWarning(ex, "Could not record {Count} revoked session(s) in Redis; other replicas accept their access tokens until they expire", sessions.Count);
            return;
        }
        foreach (var session in sessions) await bus.PublishAsync(TopicPrefix + session + "|" + until.ToUnixTimeSeconds());
    }

    public override async Task StartAsync(CancellationToken cancellationToken)
    {
        // Before the first request where possible: a restarted replica must not accept a revoked token.
        try { await ReloadAsync(); }
        catch (Exception ex) when (Outage.IsRedis(ex)) { log.LogWarning(ex, "Revoked sessions not loaded at start; retrying in the background"); }
        await base.StartAsync(cancellationToken);
    }

    protected override async Task ExecuteAsync(CancellationToken stoppingToken)
    {
        redis.ConnectionRestored += (_, _) => _reload.Release();
        var subscribed = false;
        while (!stoppingToken.IsCancellationRequested)
        {
            try
            {
                if (!subscribed)
                {
                    await bus.SubscribeAsync(OnMessage);
                    subscribed = true;
                }
                await ReloadAsync();
            }
            catch (Exception ex) when (Outage.IsRedis(ex, stoppingToken))
            {
                log.LogWarning(ex, "Revoked sessions could not be refreshed from Redis; keeping the ones this replica knows");
            }
            catch (Exception ex) when (!stoppingToken.IsCancellationRequested)
            {
                BackgroundLoop.Failed(log, "session revocations", ex);
            }
            try { await _reload.WaitAsync(subscribed ? Period : TimeSpan.FromSeconds(2), stoppingToken); }
            catch (OperationCanceledException) { return; }
        }
    }

    private void OnMessage(string topic)
    {
        if (!topic.StartsWith(TopicPrefix, StringComparison.Ordinal)) return;
        var parts = topic[TopicPrefix.Length..].Split('|');
        if (parts.Length == 2 && long.TryParse(parts[1], out var until))
            _revoked[parts[0]] = DateTimeOffset.FromUnixTimeSeconds(until);
    }

    private async Task ReloadAsync()
    {
        var now = clock.GetUtcNow();
        var db = redis.GetDatabase();
        await db.SortedSetRemoveRangeByScoreAsync(Key, double.NegativeInfinity, now.ToUnixTimeSeconds());
        foreach (var entry in await db.SortedSetRangeByScoreWithScoresAsync(Key, now.ToUnixTimeSeconds(), double.PositiveInfinity))
            _revoked[entry.Element.ToString()] = DateTimeOffset.FromUnixTimeSeconds((long)entry.Score);
        foreach (var (session, until) in _revoked)
            if (until <= now) _revoked.TryRemove(session, out _);
    }
}

/// <summary>An access token of a session that was signed out, or cut off by a role change.</summary>
public sealed class SessionRevokedException() : Microsoft.IdentityModel.Tokens.SecurityTokenValidationException("The session of this access token has ended.");
