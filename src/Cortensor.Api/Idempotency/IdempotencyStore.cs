using System.IO.Compression;
using System.Security.Cryptography;
using System.Text;
using Microsoft.Extensions.Options;
using StackExchange.Redis;
using Cortensor.Api.Infrastructure;

namespace Cortensor.Api.Idempotency;

/// <summary>What an Idempotency-Key already stands for when a request arrives with it.</summary>
public enum ClaimOutcome
{
    /// <summary>First use: this request runs, and holds the key until it stores its answer or lets go.</summary>
    Claimed,
    /// <summary>The key was used with another body.</summary>
    Mismatch,
    /// <summary>A request with this key and body is still running (on any replica).</summary>
    InProgress,
    /// <summary>The request ran; its answer is stored and is replayed.</summary>
    Stored,
    /// <summary>The request ran, but its answer was too large to keep.</summary>
    NotRetained,
    /// <summary>Redis did not answer: the key cannot be honoured, so the request does not run.</summary>
    Unavailable,
}

/// <summary>A stored answer: status, content type, the request that produced it and its body (uncompressed).</summary>
public sealed record StoredAnswer(int Status, string ContentType, string RequestId, byte[] Body);

public sealed record Claim(ClaimOutcome Outcome, StoredAnswer? Answer = null, string? RequestId = null, int RetryAfterSeconds = 1);

/// <summary>
/// Idempotency keys in Redis, shared by every replica. One hash per (organisation, API key, Idempotency-Key):
/// the body's hash, the state (running, done, unretained), the owner of a running claim and, once done,
/// the answer (gzip). A running claim expires with the longest a request may run, so a replica that dies
/// holding it blocks the key for that long at most; a done record lives for the retention period.
/// </summary>
public sealed partial class IdempotencyStore(IConnectionMultiplexer redis, IOptions<IdempotencyOptions> options, ILogger<IdempotencyStore> log)
{
    private static readonly LuaScript ClaimScript = LuaScript.Prepare("""
        local r = redis.call('HMGET', @record, 'hash', 'state', 'status', 'type', 'request')
        if not r[1] then
            redis.call('HSET', @record, 'hash', @hash, 'state', 'running', 'owner', @owner)
            redis.call('EXPIRE', @record, tonumber(@claimTtl))
            return {'claimed'}
        end
        if r[1] ~= @hash then return {'mismatch'} end
        if r[2] == 'running' then return {'running', tostring(redis.call('TTL', @record))} end
        return {r[2], r[3], r[4], r[5]}
        """);

    private static readonly LuaScript SaveScript = LuaScript.Prepare("""
        if redis.call('HGET', @record, 'owner') ~= @owner then return 0 end
        redis.call('HSET', @record, 'state', @state, 'status', @status, 'type', @type, 'request', @owner, 'body', @body)
        redis.call('EXPIRE', @record, tonumber(@ttl))
        return 1
        """);

    private static readonly LuaScript ReleaseScript = LuaScript.Prepare("""
        if redis.call('HGET', @record, 'owner') == @owner then return redis.call('DEL', @record) end
        return 0
        """);

    /// <summary>The record of one Idempotency-Key: the organisation as hash tag, the key id, the header hashed (any length, any bytes).</summary>
    public static string RecordKey(Guid organization, Guid key, string idempotencyKey) =>
        $"idem:{{{organization:N}}}:{key:N}:{Convert.ToHexStringLower(SHA256.HashData(Encoding.UTF8.GetBytes(idempotencyKey)))}";

    public async Task<Claim> ClaimAsync(string record, string bodyHash, string owner, TimeSpan claimTtl)
    {
        try
        {
            if (!redis.IsConnected) return new Claim(ClaimOutcome.Unavailable);
            var r = (RedisResult[])(await redis.GetDatabase().ScriptEvaluateAsync(ClaimScript, new
            {
                record = (RedisKey)record, hash = bodyHash, owner, claimTtl = (long)claimTtl.TotalSeconds,
            }))!;
            return (string?)r[0] switch
            {
                "claimed" => new Claim(ClaimOutcome.Claimed),
                "mismatch" => new Claim(ClaimOutcome.Mismatch),
                "running" => new Claim(ClaimOutcome.InProgress, RetryAfterSeconds: (int)Math.Clamp(long.Parse((string)r[1]!), 1, 5)),
                "unretained" => new Claim(ClaimOutcome.NotRetained, RequestId: (string?)r[3]),
                // Without its body: up to a megabyte, read only for a replay that may be answered (AnswerAsync).
                _ => new Claim(ClaimOutcome.Stored, RequestId: (string?)r[3]),
            };
        }
        catch (Exception ex) when (Outage.IsRedis(ex))
        {
            Unreachable(log, ex);
            return new Claim(ClaimOutcome.Unavailable);
        }
    }

    /// <summary>
    /// The stored answer, body included, read for a replay that may be answered. Judged anew from this one read, as a claim
    /// would judge it: the record may have expired, or been claimed by another request, since the claim found it.
    /// </summary>
    public async Task<Claim> AnswerAsync(string record, string bodyHash)
    {
        try
        {
            var r = await redis.GetDatabase().HashGetAsync(record, [(RedisValue)"hash", (RedisValue)"state", (RedisValue)"status", (RedisValue)"type", (RedisValue)"request", (RedisValue)"body"]);
            var (hash, state, request) = ((string?)r[0], (string?)r[1], (string?)r[4]);
            // Gone (a retry claims it and runs) or running again: either way, retrying shortly is the answer.
            if (hash is null || state == "running") return new Claim(ClaimOutcome.InProgress);
            if (!string.Equals(hash, bodyHash, StringComparison.Ordinal)) return new Claim(ClaimOutcome.Mismatch);
            if (state != "done" || r[5].IsNull) return new Claim(ClaimOutcome.NotRetained, RequestId: request);
            return new Claim(ClaimOutcome.Stored, new StoredAnswer((int)r[2], (string)r[3]!, request!, Decompress((byte[])r[5]!)), request);
        }
        catch (Exception ex) when (Outage.IsRedis(ex))
        {
            Unreachable(log, ex);
            return new Claim(ClaimOutcome.Unavailable);
        }
    }

    /// <summary>Keeps the answer for the retention period, or (too large) the fact that the request ran.</summary>
    public async Task SaveAsync(string record, string owner, int status, string contentType, byte[]? body)
    {
        var compressed = body is null ? null : Compress(body);
        var retained = compressed is not null && compressed.Length <= options.Value.MaxStoredBytes;
        if (!retained) AnswerNotRetained(log, owner, body?.Length, compressed?.Length, options.Value.MaxStoredBytes);
        try
        {
            await redis.GetDatabase().ScriptEvaluateAsync(SaveScript, new
            {
                record = (RedisKey)record, owner, state = retained ? "done" : "unretained", status, type = contentType,
                body = retained ? compressed : [], ttl = (long)TimeSpan.FromHours(options.Value.RetentionHours).TotalSeconds,
            });
        }
        catch (Exception ex) when (Outage.IsRedis(ex))
        {
            // The claim stays until it expires; a retry after that runs again.
            NotSaved(log, owner, ex);
        }
    }

    /// <summary>Lets go of a claim whose request did not run to an answer, so a retry runs.</summary>
    public async Task ReleaseAsync(string record, string owner)
    {
        try
        {
            await redis.GetDatabase().ScriptEvaluateAsync(ReleaseScript, new { record = (RedisKey)record, owner });
        }
        catch (Exception ex) when (Outage.IsRedis(ex))
        {
            NotReleased(log, owner, ex);
        }
    }

    private static byte[] Compress(byte[] body)
    {
        using var output = new MemoryStream();
        using (var gzip = new GZipStream(output, CompressionLevel.Fastest, leaveOpen: true)) gzip.Write(body);
        return output.ToArray();
    }

    private static byte[] Decompress(byte[] body)
    {
        using var input = new GZipStream(new MemoryStream(body), CompressionMode.Decompress);
        using var output = new MemoryStream();
        input.CopyTo(output);
        return output.ToArray();
    }

    [LoggerMessage(Level = LogLevel.Warning, Message = "Idempotency keys: Redis is unreachable; requests with an Idempotency-Key are refused")]
    private static partial void Unreachable(ILogger logger, Exception exception);

    [LoggerMessage(Level = LogLevel.Warning, Message = "Idempotency key of request {RequestId}: answer of {Bytes} bytes ({Compressed} compressed) exceeds {Limit}; only the fact that it ran is kept")]
    private static partial void AnswerNotRetained(ILogger logger, string requestId, int? bytes, int? compressed, int limit);

    [LoggerMessage(Level = LogLevel.Warning, Message = "Idempotency key of request {RequestId}: the answer could not be stored; the claim expires by itself")]
    private static partial void NotSaved(ILogger logger, string requestId, Exception exception);

    [LoggerMessage(Level = LogLevel.Warning, Message = "Idempotency key of request {RequestId}: the claim could not be released; it expires by itself")]
    private static partial void NotReleased(ILogger logger, string requestId, Exception exception);
}
