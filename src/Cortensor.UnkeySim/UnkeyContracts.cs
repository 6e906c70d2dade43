using System.Text.Json;
using System.Text.Json.Nodes;
using System.Text.Json.Serialization;

namespace Cortensor.UnkeySim;

// The request and response bodies of Unkey's public API v2 (svc/api/openapi in unkeyed/unkey), as far as the
// stand-in implements them. Fields the stand-in does not implement (credits, roles, permissions, identities)
// are not declared, so a request that sends one is refused with a 400 naming it rather than silently ignored.

public sealed record Meta(string RequestId);
public sealed record Envelope<T>(Meta Meta, T Data);
public sealed record Empty;

public sealed record ErrorEnvelope(Meta Meta, ErrorDetail Error);
public sealed record ErrorDetail(string Title, string Detail, int Status, string Type, ValidationError[]? Errors = null);
public sealed record ValidationError(string Location, string Message, string? Fix = null);

public sealed record RatelimitRequest(string? Name, long? Limit, long? Duration, bool? AutoApply);

public sealed record CreateKeyRequest(
    string? ApiId, string? Prefix, string? Name, int? ByteLength, string? ExternalId, JsonObject? Meta,
    long? Expires, RatelimitRequest[]? Ratelimits, bool? Enabled, bool? Recoverable);
public sealed record CreateKeyData(string KeyId, string Key);

public sealed record VerifyRatelimit(string? Name, long? Cost, long? Limit, long? Duration);
public sealed record VerifyKeyRequest(string? Key, string[]? Tags, VerifyRatelimit[]? Ratelimits);
public sealed record VerifyRatelimitData(bool Exceeded, string Id, string Name, long Limit, long Duration, long Reset, long Remaining, bool AutoApply);
public sealed record VerifyKeyData(
    bool Valid, string Code, string? KeyId = null, string? Name = null, JsonObject? Meta = null, long? Expires = null,
    bool? Enabled = null, VerifyRatelimitData[]? Ratelimits = null);

public sealed record DeleteKeyRequest(string? KeyId, bool? Permanent);

public sealed record RatelimitLimitRequest(string? Namespace, string? Identifier, long? Limit, long? Duration, long? Cost);
public sealed record RatelimitLimitData(long Limit, long Remaining, long Reset, bool Success);

internal static class SimJson
{
    public static readonly JsonSerializerOptions Options = new(JsonSerializerDefaults.Web)
    {
        DefaultIgnoreCondition = JsonIgnoreCondition.WhenWritingNull,
        // Unkey's schemas say additionalProperties: false.
        UnmappedMemberHandling = JsonUnmappedMemberHandling.Disallow,
    };
}
