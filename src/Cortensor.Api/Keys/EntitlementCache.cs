using Cortensor.Api.Data;
using Microsoft.EntityFrameworkCore;
using StackExchange.Redis;
using ZiggyCreatures.Caching.Fusion;

namespace Cortensor.Api.Keys;

/// <summary>The answer to "who is this key?": a snapshot, a known-unknown key, or "can't tell right now".</summary>
public enum KeyLookupOutcome { Found, Unknown, Unavailable, NotCached }

/// <summary>
/// Resolves key snapshots through FusionCache: in-process memory, then Redis (shared by every
/// replica), then Postgres. The Redis backplane evicts a changed snapshot from every replica's
/// memory at once. Unknown keys are cached too, briefly, so a key-spraying client costs Postgres
/// at most one query per key per <see cref="NegativeDuration"/>.
/// </summary>
public sealed class EntitlementCache(IFusionCache cache, IServiceScopeFactory scopes, IConnectionMultiplexer redis, ILogger<EntitlementCache> log,
    IKeyProvider? provider = null)
{
    public static readonly TimeSpan SnapshotDuration = TimeSpan.FromMinutes(5);
    public static readonly TimeSpan NegativeDuration = TimeSpan.FromSeconds(30);
    /// <summary>How long a replica keeps serving known keys from memory while Redis or Postgres is down.</summary>
    public static readonly TimeSpan FailSafeMaxDuration = TimeSpan.FromMinutes(15);

    private long _databaseLookups;
    public long DatabaseLookups => Interlocked.Read(ref _databaseLookups);

    /// <param name="databaseAllowed">False for a throttled client: memory and Redis answer, Postgres is not asked (<see cref="KeyLookupOutcome.NotCached"/>).</param>
    /// <param name="presentedKey">The key as presented, for a key provider that verifies it when the snapshot is built (Unkey).</param>
    public async ValueTask<(KeyLookupOutcome Outcome, KeySnapshot? Snapshot)> LookupAsync(byte[] hash, CancellationToken ct, bool databaseAllowed = true,
        string? presentedKey = null)
    {
        try
        {
            var snapshot = await cache.GetOrSetAsync<KeySnapshot?>(KeySnapshot.CacheKey(hash), async (ctx, token) =>
            {
                // Degraded mode: without Redis the replica cannot share limits with the others, so it
                // only serves keys it already knows (memory, fail-safe) and says 503 to the rest.
                if (!redis.IsConnected) throw new KeyStoreUnavailableException("Redis");
                if (!databaseAllowed) throw new KeyNotCachedException();
                var found = await LoadAsync(hash, token);
                if (found is not null) found = await VerifyWithProviderAsync(found, presentedKey, token);
                if (found is null)
                {
                    ctx.Options.Duration = NegativeDuration;
                    return null;
                }
                // Only tags something removes by: the cache checks every tag of an entry on every hit, so each one
                // is a lookup on the hot path (an organisation's change is the one removal by tag; a key's is by its key).
                ctx.Tags = [KeySnapshot.OrganizationTag(found.OrganizationId)];
                return found;
            }, token: ct);
            return snapshot is null ? (KeyLookupOutcome.Unknown, null) : (KeyLookupOutcome.Found, snapshot);
        }
        catch (Exception ex) when (ex is KeyNotCachedException || ex.InnerException is KeyNotCachedException)
        {
            return (KeyLookupOutcome.NotCached, null);
        }
        catch (Exception ex) when (ex is not OperationCanceledException)
        {
            KeysLog.LookupUnavailable(log, ex);
            return (KeyLookupOutcome.Unavailable, null);
        }
    }

    public Task InvalidateKeyAsync(byte[] hash) => cache.RemoveAsync(KeySnapshot.CacheKey(hash)).AsTask();
    public Task InvalidateOrganizationAsync(Guid organizationId) => cache.RemoveByTagAsync(KeySnapshot.OrganizationTag(organizationId)).AsTask();

    /// <summary>The key provider (Keys:Provider) has the last word on whether the key is live and on its own limits.</summary>
    private async Task<KeySnapshot?> VerifyWithProviderAsync(KeySnapshot portal, string? presentedKey, CancellationToken ct)
    {
        if (provider is null or BuiltinKeyProvider) return portal;
        if (presentedKey is null) throw new InvalidOperationException($"The {provider.Name} key provider verifies the presented key, not its hash.");
        using var scope = scopes.CreateScope();
        return await provider.VerifyAsync(presentedKey, portal, scope.ServiceProvider.GetRequiredService<PortalDbContext>(), ct);
    }

    private async Task<KeySnapshot?> LoadAsync(byte[] hash, CancellationToken ct)
    {
        Interlocked.Increment(ref _databaseLookups);
        using var scope = scopes.CreateScope();
        var db = scope.ServiceProvider.GetRequiredService<PortalDbContext>();
        var row = await (from k in db.ApiKeys.AsNoTracking()
                         join o in db.Organizations.AsNoTracking() on k.OrganizationId equals o.Id
                         join p in db.Plans.AsNoTracking() on o.PlanId equals p.Id
                         where k.Hash == hash || k.RetiredHash == hash
                         select new { Key = k, Org = o, Plan = p }).SingleOrDefaultAsync(ct);
        if (row is null) return null;

        var models = await ModelEntitlements.ForOrganizationAsync(db, row.Org.Id, row.Plan.Id, ct);
        if (row.Key.AllowedModels.Count > 0) models.IntersectWith(row.Key.AllowedModels);

        return new KeySnapshot(row.Key.Id, row.Org.Id, row.Key.Status, row.Key.ExpiresAt, row.Org.Status, row.Plan.Id, row.Plan.BillingMode,
            models.Order(StringComparer.Ordinal).ToArray(),
            Math.Min(row.Key.RequestsPerMinute ?? row.Plan.RequestsPerMinute, row.Plan.RequestsPerMinute),
            Math.Min(row.Key.TokensPerMinute ?? row.Plan.TokensPerMinute, row.Plan.TokensPerMinute),
            row.Plan.MonthlyTokenQuota, row.Plan.RequestsPerMinute, row.Plan.TokensPerMinute, row.Plan.MaxConcurrentRequests,
            KeyBudget.From(row.Key.BudgetUsd, row.Key.BudgetTokens, row.Key.BudgetPeriod), row.Key.Name,
            row.Key.RetiredHashExpiresAt, RetiredSecret: !row.Key.Hash.AsSpan().SequenceEqual(hash));
    }
}

public sealed class KeyStoreUnavailableException(string what) : Exception($"{what} is unavailable");

/// <summary>The key is in neither memory nor Redis, and this lookup may not ask Postgres.</summary>
public sealed class KeyNotCachedException() : Exception("The key is not cached and the database may not be asked");

internal static partial class KeysLog
{
    [LoggerMessage(LogLevel.Warning, "Key lookup unavailable")]
    public static partial void LookupUnavailable(ILogger logger, Exception exception);
}
