using System.Net;
using Cortensor.Api.Data;
using Microsoft.EntityFrameworkCore;
using Microsoft.Extensions.Options;
using Refit;

namespace Cortensor.Api.Keys.Unkey;

/// <summary><c>Keys:Unkey</c>: where Unkey is and which of its APIs (key spaces) holds the Portal's keys.</summary>
public sealed class UnkeyOptions
{
    public const string Section = "Keys:Unkey";
    public string BaseUrl { get; set; } = "https://api.unkey.com";
    /// <summary>A root key with create_key, verify_key, update_key and delete_key on <see cref="ApiId"/>.</summary>
    public string RootKey { get; set; } = "";
    public string ApiId { get; set; } = "";
}

/// <summary>
/// Keys issued, verified, paused and revoked by Unkey. Unkey holds each key's own limits as two key rate limits,
/// <c>requests</c> and <c>tokens</c> per minute, read back (without spending them) when a snapshot is built;
/// the Portal enforces them in its Redis admission together with the organisation's limits, so a request makes
/// no call to Unkey while the key's snapshot is warm (docs/operations.md, "Key provider", says why).
/// Keys issued before the switch to Unkey (no <see cref="UnkeyKey"/> row) stay the Portal's own.
/// </summary>
public sealed partial class UnkeyKeyProvider(IUnkeyApi unkey, IOptions<UnkeyOptions> options, TimeProvider clock, ILogger<UnkeyKeyProvider> log) : IKeyProvider
{
    public const string RequestsLimit = "requests";
    public const string TokensLimit = "tokens";
    private const long Minute = 60_000;
    /// <summary>Unkey's largest limit: a key limit this high means "no key limit", the plan's applies.</summary>
    public const long NoKeyLimit = 1_000_000;
    /// <summary>256 random bits, as the Portal's own keys.</summary>
    private const int ByteLength = 32;

    public string Name => KeyProviderOptions.Unkey;

    public async Task<IssuedKey> IssueAsync(KeyToIssue key, CancellationToken ct)
    {
        var created = await CallAsync(() => unkey.CreateKeyAsync(new UnkeyCreateKey(
            options.Value.ApiId, Prefix: $"ctr_{key.Environment}", Name: key.Name, ByteLength: ByteLength,
            ExternalId: key.OrganizationId.ToString("N"),
            Meta: new() { ["portalKeyId"] = key.KeyId.ToString(), ["organizationId"] = key.OrganizationId.ToString() },
            Expires: key.ExpiresAt?.ToUnixTimeMilliseconds(),
            Ratelimits: Ratelimits(key.RequestsPerMinute, key.TokensPerMinute)), ct));
        return new IssuedKey(created.Data.Key, created.Data.KeyId);
    }

    public static UnkeyRatelimit[] Ratelimits(int? requestsPerMinute, int? tokensPerMinute) =>
    [
        new(RequestsLimit, Math.Min(requestsPerMinute ?? NoKeyLimit, NoKeyLimit), Minute),
        new(TokensLimit, Math.Min(tokensPerMinute ?? NoKeyLimit, NoKeyLimit), Minute),
    ];

    public async Task<KeySnapshot?> VerifyAsync(string presentedKey, KeySnapshot portal, PortalDbContext db, CancellationToken ct)
    {
        var unkeyKeyIds = await UnkeyKeyIdsAsync(portal.KeyId, db, ct);
        if (unkeyKeyIds.Count == 0) return portal;

        UnkeyResponse<UnkeyVerification> verdict;
        try
        {
            // Cost 0 reads the key's limits without spending them: counting is the Portal's admission's job.
            verdict = await CallAsync(() => unkey.VerifyKeyAsync(new UnkeyVerifyKey(presentedKey,
                [new UnkeyVerifyRatelimit(RequestsLimit, Cost: 0), new UnkeyVerifyRatelimit(TokensLimit, Cost: 0)]), ct), allow: HttpStatusCode.PreconditionFailed);
        }
        catch (UnkeyPreconditionFailedException)
        {
            // Someone removed the key's limits in Unkey's dashboard: verify it without them; the plan's limits apply.
            verdict = await CallAsync(() => unkey.VerifyKeyAsync(new UnkeyVerifyKey(presentedKey), ct));
        }
        var answer = verdict.Data;

        if (answer.Code == UnkeyVerification.NotFound)
            // Deleted in Unkey: revoked here, or removed there behind the Portal's back (then the key is simply not valid).
            return portal.KeyStatus == ApiKeyStatus.Revoked ? portal : null;
        if (answer.KeyId is null || !unkeyKeyIds.Contains(answer.KeyId))
        {
            KeyIdMismatch(log, portal.KeyId, string.Join(", ", unkeyKeyIds), answer.KeyId);
            return null;
        }

        var status = answer.Code switch
        {
            // Rate limited can only come from limits someone set to auto-apply in Unkey: the key itself is good.
            UnkeyVerification.ValidCode or UnkeyVerification.RateLimited or UnkeyVerification.Expired => portal.KeyStatus,
            // Disabled, and refusals the Portal has no word for (no credits left in Unkey, missing permissions).
            _ => portal.KeyStatus == ApiKeyStatus.Revoked ? ApiKeyStatus.Revoked : ApiKeyStatus.Paused,
        };
        var expiresAt = answer.Code == UnkeyVerification.Expired ? clock.GetUtcNow()
            : answer.Expires is { } ms ? DateTimeOffset.FromUnixTimeMilliseconds(ms) : portal.ExpiresAt;
        if (portal.ExpiresAt is { } own && (expiresAt is null || own < expiresAt)) expiresAt = own;

        return portal with
        {
            KeyStatus = status,
            ExpiresAt = expiresAt,
            RequestsPerMinute = PerMinute(answer, RequestsLimit, portal.OrganizationRequestsPerMinute),
            TokensPerMinute = PerMinute(answer, TokensLimit, portal.OrganizationTokensPerMinute),
        };
    }

    /// <summary>The key's limit held in Unkey, per minute, never above the plan's.</summary>
    private static int PerMinute(UnkeyVerification answer, string name, int plan)
    {
        if (answer.Ratelimits?.FirstOrDefault(r => r.Name == name) is not { } limit || limit.Limit >= NoKeyLimit || limit.Duration <= 0) return plan;
        var perMinute = Math.Max(1, limit.Limit * Minute / limit.Duration);
        return (int)Math.Min(perMinute, plan);
    }

    public async Task SetStatusAsync(Guid keyId, ApiKeyStatus status, PortalDbContext db, CancellationToken ct)
    {
        foreach (var unkeyKeyId in await UnkeyKeyIdsAsync(keyId, db, ct))
        {
            if (status == ApiKeyStatus.Revoked)
                // A soft delete: Unkey keeps the record for its audit log and answers NOT_FOUND from now on. Already gone is fine.
                await CallAsync(() => unkey.DeleteKeyAsync(new UnkeyDeleteKey(unkeyKeyId), ct), allow: HttpStatusCode.NotFound);
            else
                await CallAsync(() => unkey.UpdateKeyAsync(new UnkeyUpdateKey(unkeyKeyId, Enabled: status == ApiKeyStatus.Active), ct));
        }
    }

    public async Task UpdateAsync(Guid keyId, KeySettings settings, PortalDbContext db, CancellationToken ct)
    {
        foreach (var unkeyKeyId in await UnkeyKeyIdsAsync(keyId, db, ct))
            await CallAsync(() => unkey.UpdateKeySettingsAsync(new UnkeyKeySettings(unkeyKeyId, settings.Name, settings.ExpiresAt?.ToUnixTimeMilliseconds(),
                Ratelimits(settings.RequestsPerMinute, settings.TokensPerMinute)), ct));
    }

    private static Task<List<string>> UnkeyKeyIdsAsync(Guid keyId, PortalDbContext db, CancellationToken ct) =>
        db.Set<UnkeyKey>().AsNoTracking().Where(m => m.ApiKeyId == keyId).Select(m => m.UnkeyKeyId).ToListAsync(ct);

    /// <summary>
    /// Every failure of a call to Unkey is a <see cref="KeyProviderUnavailableException"/> (a 503 to the caller, the change not made),
    /// except a status the caller expects (<paramref name="allow"/>): 404 is then success, 412 a <see cref="UnkeyPreconditionFailedException"/>.
    /// </summary>
    private async Task<T> CallAsync<T>(Func<Task<T>> call, HttpStatusCode? allow = null) where T : class
    {
        try
        {
            return await call();
        }
        catch (ApiException ex) when (ex.StatusCode == allow && allow == HttpStatusCode.NotFound)
        {
            return null!;
        }
        catch (ApiException ex) when (ex.StatusCode == allow && allow == HttpStatusCode.PreconditionFailed)
        {
            throw new UnkeyPreconditionFailedException(ex);
        }
        catch (ApiException ex)
        {
            var error = UnkeyJson.ErrorOf(ex);
            CallFailed(log, (int)ex.StatusCode, error?.Type ?? "", error?.Detail ?? ex.Message, ex);
            throw new KeyProviderUnavailableException("Unkey", ex);
        }
        // Refit wraps what sending threw (no connection, a timeout) in ApiRequestException.
        catch (Exception ex) when (ex is ApiRequestException or HttpRequestException or TimeoutException or Polly.Timeout.TimeoutRejectedException)
        {
            CallFailed(log, 0, "", ex.Message, ex);
            throw new KeyProviderUnavailableException("Unkey", ex);
        }
    }

    [LoggerMessage(LogLevel.Error, "Unkey call failed ({Status} {Type}): {Detail}")]
    private static partial void CallFailed(ILogger logger, int status, string type, string detail, Exception exception);

    [LoggerMessage(LogLevel.Warning, "Key {KeyId} is mapped to Unkey key {Expected}, but Unkey verified the presented key as {Actual}: refused")]
    private static partial void KeyIdMismatch(ILogger logger, Guid keyId, string expected, string? actual);
}

public sealed class UnkeyPreconditionFailedException(Exception inner) : Exception("Unkey refused a precondition", inner);
