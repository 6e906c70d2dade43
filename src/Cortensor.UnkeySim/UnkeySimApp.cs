using System.Security.Cryptography;
using System.Text;
using System.Text.Json;
using System.Text.Json.Nodes;

namespace Cortensor.UnkeySim;

/// <summary>The stand-in's settings: the one root key it accepts and the one API (key space) it holds.</summary>
public sealed class UnkeySimOptions
{
    public const string Section = "UnkeySim";
    public string RootKey { get; set; } = "";
    public string ApiId { get; set; } = "";
}

/// <summary>
/// A stand-in for Unkey's public API v2 (https://api.unkey.com), for machines that cannot reach it: the same routes,
/// root-key bearer auth, <c>{meta, data}</c> envelope and <c>{meta, error}</c> problem shape, key verification codes
/// and sliding-window rate limits. What it does not implement (credits, roles, permissions, identities,
/// analytics) it refuses with a 400 naming the field.
/// </summary>
public static class UnkeySimApp
{
    public static WebApplication Create(string[] args)
    {
        var builder = WebApplication.CreateBuilder(args);
        builder.AddServiceDefaults();
        builder.Services.AddOptions<UnkeySimOptions>().BindConfiguration(UnkeySimOptions.Section)
            .Validate(o => o.RootKey.Length >= 16, "UnkeySim:RootKey must be at least 16 characters.")
            .Validate(o => o.ApiId.Length >= 3, "UnkeySim:ApiId must be set.")
            .ValidateOnStart();
        builder.Services.AddSingleton(TimeProvider.System);
        builder.Services.AddSingleton<KeyStore>();
        builder.Services.AddSingleton<SlidingWindowLimiter>();
        builder.Services.AddSingleton<Traffic>();

        var app = builder.Build();
        app.MapDefaultEndpoints();
        var v2 = app.MapGroup("/v2").AddEndpointFilter(RequireRootKey);
        v2.MapPost("/keys.createKey", CreateKey);
        v2.MapPost("/keys.verifyKey", VerifyKey);
        v2.MapPost("/keys.updateKey", UpdateKey);
        v2.MapPost("/keys.deleteKey", DeleteKey);
        v2.MapPost("/ratelimit.limit", Limit);
        // Not Unkey's: what the stand-in was asked, so tests can show what the Portal calls and what it does not.
        app.MapGet("/control/stats", (Traffic traffic) => Results.Json(traffic.Snapshot(), SimJson.Options)).AddEndpointFilter(RequireRootKey);
        return app;
    }

    private static async ValueTask<object?> RequireRootKey(EndpointFilterInvocationContext context, EndpointFilterDelegate next)
    {
        var header = context.HttpContext.Request.Headers.Authorization.ToString();
        if (header.Length == 0)
            return Problem(401, "Unauthorized", "Authorization header is missing.", "authentication/missing");
        if (!header.StartsWith("Bearer ", StringComparison.Ordinal) || header.Length == 7)
            return Problem(401, "Unauthorized", "Authorization header must be 'Bearer <root key>'.", "authentication/malformed");
        var expected = context.HttpContext.RequestServices.GetRequiredService<Microsoft.Extensions.Options.IOptions<UnkeySimOptions>>().Value.RootKey;
        if (!CryptographicOperations.FixedTimeEquals(Encoding.UTF8.GetBytes(header[7..]), Encoding.UTF8.GetBytes(expected)))
            return Problem(401, "Unauthorized", "The root key was not found.", "authentication/key_not_found");
        return await next(context);
    }

    private static async Task<IResult> CreateKey(HttpRequest http, KeyStore store, Microsoft.Extensions.Options.IOptions<UnkeySimOptions> options, Traffic traffic)
    {
        traffic.Count(ref traffic.Creations);
        var (request, invalid) = await ReadAsync<CreateKeyRequest>(http);
        if (invalid is not null) return invalid;
        var errors = new List<ValidationError>();
        Require(errors, request!.ApiId is { Length: >= 3 and <= 255 }, "body.apiId", "apiId is required (3 to 255 characters)");
        Require(errors, request.Prefix is null or { Length: >= 1 and <= 16 } && (request.Prefix ?? "").All(c => char.IsAsciiLetterOrDigit(c) || c == '_'),
            "body.prefix", "prefix must be 1 to 16 letters, digits or underscores");
        Require(errors, request.Name is null or { Length: >= 1 and <= 255 }, "body.name", "name must be 1 to 255 characters");
        Require(errors, request.ByteLength is null or (>= 16 and <= 255), "body.byteLength", "byteLength must be between 16 and 255");
        Require(errors, request.Expires is null or (>= 0 and <= 4102444800000), "body.expires", "expires must be a Unix time in milliseconds");
        ValidateRatelimits(errors, request.Ratelimits);
        if (errors.Count > 0) return BadRequest(errors);
        if (request.ApiId != options.Value.ApiId) return Problem(404, "Not Found", $"The API {request.ApiId} does not exist.", "data/api_not_found");
        var (key, plaintext) = store.Create(request);
        return Ok(new CreateKeyData(key.Id, plaintext));
    }

    private static async Task<IResult> VerifyKey(HttpRequest http, KeyStore store, SlidingWindowLimiter limiter, Traffic traffic)
    {
        traffic.Count(ref traffic.Verifications);
        var (request, invalid) = await ReadAsync<VerifyKeyRequest>(http);
        if (invalid is not null) return invalid;
        if (request!.Key is not { Length: >= 1 and <= 512 }) return BadRequest([new("body.key", "key is required (1 to 512 characters)")]);
        var errors = new List<ValidationError>();
        foreach (var (r, i) in (request.Ratelimits ?? []).Select((r, i) => (r, i)))
        {
            Require(errors, r.Name is { Length: >= 3 and <= 255 }, $"body.ratelimits[{i}].name", "name is required (3 to 255 characters)");
            Require(errors, r.Cost is null or >= 0, $"body.ratelimits[{i}].cost", "cost must not be negative");
            Require(errors, r.Limit is null or >= 0, $"body.ratelimits[{i}].limit", "limit must not be negative");
            Require(errors, r.Duration is null or >= 0, $"body.ratelimits[{i}].duration", "duration must not be negative");
        }
        if (errors.Count > 0) return BadRequest(errors);

        var key = store.FindByPlaintext(request.Key);
        if (key is null) return Ok(new VerifyKeyData(false, "NOT_FOUND"));
        var expires = key.Expires;
        VerifyKeyData Answer(string code, VerifyRatelimitData[]? ratelimits = null) =>
            new(code == "VALID", code, key.Id, key.Name, key.Meta, expires, key.Enabled, ratelimits);
        if (!key.Enabled) return Ok(Answer("DISABLED"));
        if (store.IsExpired(key)) return Ok(Answer("EXPIRED"));

        // The rate limits to check: every auto-applied one, then those the request names (Unkey's order and rules).
        var checks = new Dictionary<string, (KeyRatelimit Config, long Cost)>(StringComparer.Ordinal);
        foreach (var r in key.Ratelimits.Where(r => r.AutoApply)) checks[r.Name] = (r, 1);
        foreach (var r in request.Ratelimits ?? [])
        {
            if (r.Limit is { } limit && r.Duration is { } duration)
                checks[r.Name!] = (new KeyRatelimit("", r.Name!, limit, duration, false), r.Cost ?? 1);
            else if (key.Ratelimits.FirstOrDefault(c => c.Name == r.Name) is { } configured)
                checks[r.Name!] = (configured, r.Cost ?? 1);
            else
                return Problem(412, "Precondition Failed",
                    $"ratelimit '{r.Name}' was requested but does not exist for key '{key.Id}' and there is no identity connected.",
                    "application/precondition_failed");
        }
        if (checks.Count == 0) return Ok(Answer("VALID"));

        var now = DateTimeOffset.UtcNow.ToUnixTimeMilliseconds();
        var results = checks.Values.Select(c =>
        {
            var outcome = limiter.Take($"key:{key.Id}:{c.Config.Name}", c.Config.Limit, Math.Max(1, c.Config.Duration), c.Cost);
            return new VerifyRatelimitData(!outcome.Success, c.Config.Id, c.Config.Name, c.Config.Limit, c.Config.Duration,
                Math.Max(0, outcome.ResetAt - now), outcome.Remaining, c.Config.AutoApply);
        }).ToArray();
        return Ok(Answer(results.Any(r => r.Exceeded) ? "RATE_LIMITED" : "VALID", results));
    }

    private static async Task<IResult> UpdateKey(HttpRequest http, KeyStore store, Traffic traffic)
    {
        traffic.Count(ref traffic.Updates);
        JsonObject body;
        try
        {
            body = await JsonSerializer.DeserializeAsync<JsonObject>(http.Body, SimJson.Options, http.HttpContext.RequestAborted)
                   ?? throw new JsonException("the body is null");
        }
        catch (JsonException ex)
        {
            return BadRequest([new("body", "The body is not valid JSON: " + ex.Message)]);
        }
        string[] known = ["keyId", "name", "externalId", "meta", "expires", "ratelimits", "enabled"];
        var errors = body.Where(p => !known.Contains(p.Key))
            .Select(p => new ValidationError("body." + p.Key, $"{p.Key} is not supported by the Unkey stand-in", "Remove the field")).ToList();
        var keyId = body["keyId"]?.GetValueKind() == JsonValueKind.String ? body["keyId"]!.GetValue<string>() : null;
        Require(errors, keyId is { Length: >= 3 and <= 255 }, "body.keyId", "keyId is required");
        string? name = null; long? expires = null; bool? enabled = null; RatelimitRequest[]? ratelimits = null; JsonObject? meta = null;
        try
        {
            name = body["name"]?.GetValue<string>();
            Require(errors, name is null or { Length: >= 1 and <= 255 }, "body.name", "name must be 1 to 255 characters or null");
            expires = body["expires"]?.GetValue<long>();
            Require(errors, expires is null or (>= 0 and <= 4102444800000), "body.expires", "expires must be a Unix time in milliseconds or null");
            enabled = body["enabled"]?.GetValue<bool>();
            meta = body["meta"]?.AsObject();
            ratelimits = body["ratelimits"]?.Deserialize<RatelimitRequest[]>(SimJson.Options);
            ValidateRatelimits(errors, ratelimits);
        }
        catch (Exception ex) when (ex is InvalidOperationException or FormatException or JsonException)
        {
            errors.Add(new("body", "A field has the wrong type: " + ex.Message));
        }
        if (errors.Count > 0) return BadRequest(errors);

        var updated = store.Update(keyId!, key =>
        {
            // Absent means unchanged; null clears (Unkey's update semantics).
            if (body.ContainsKey("name")) key.Name = name;
            if (body.ContainsKey("externalId")) key.ExternalId = body["externalId"]?.GetValue<string>();
            if (body.ContainsKey("meta")) key.Meta = meta?.DeepClone().AsObject();
            if (body.ContainsKey("expires")) key.Expires = expires;
            if (enabled is { } e) key.Enabled = e;
            if (ratelimits is not null)
                key.Ratelimits = [.. ratelimits.Select(r => new KeyRatelimit(
                    key.Ratelimits.FirstOrDefault(c => c.Name == r.Name)?.Id ?? Ids.New("rl"), r.Name!, r.Limit!.Value, r.Duration!.Value, r.AutoApply ?? false))];
        });
        return updated ? Ok(new Empty()) : Problem(404, "Not Found", $"The key {keyId} does not exist.", "data/key_not_found");
    }

    private static async Task<IResult> DeleteKey(HttpRequest http, KeyStore store, Traffic traffic)
    {
        traffic.Count(ref traffic.Deletions);
        var (request, invalid) = await ReadAsync<DeleteKeyRequest>(http);
        if (invalid is not null) return invalid;
        if (request!.KeyId is not { Length: >= 3 and <= 255 }) return BadRequest([new("body.keyId", "keyId is required")]);
        return store.Delete(request.KeyId, request.Permanent ?? false)
            ? Ok(new Empty())
            : Problem(404, "Not Found", $"The key {request.KeyId} does not exist.", "data/key_not_found");
    }

    private static async Task<IResult> Limit(HttpRequest http, SlidingWindowLimiter limiter, Traffic traffic)
    {
        traffic.Count(ref traffic.Limits);
        var (request, invalid) = await ReadAsync<RatelimitLimitRequest>(http);
        if (invalid is not null) return invalid;
        var errors = new List<ValidationError>();
        Require(errors, request!.Namespace is { Length: >= 1 and <= 512 }, "body.namespace", "namespace is required (1 to 512 characters)");
        Require(errors, request.Identifier is { Length: >= 1 and <= 512 }, "body.identifier", "identifier is required (1 to 512 characters)");
        Require(errors, request.Limit is >= 1, "body.limit", "limit is required and must be at least 1");
        Require(errors, request.Duration is >= 1000 and <= 2592000000, "body.duration", "duration is required, in milliseconds (1000 to 2592000000)");
        Require(errors, request.Cost is null or >= 0, "body.cost", "cost must not be negative");
        if (errors.Count > 0) return BadRequest(errors);
        var outcome = limiter.Take($"ns:{request.Namespace}:{request.Identifier}", request.Limit!.Value, request.Duration!.Value, request.Cost ?? 1);
        return Ok(new RatelimitLimitData(outcome.Limit, outcome.Remaining, outcome.ResetAt, outcome.Success));
    }

    private static void ValidateRatelimits(List<ValidationError> errors, RatelimitRequest[]? ratelimits)
    {
        if (ratelimits is null) return;
        Require(errors, ratelimits.Length <= 50, "body.ratelimits", "at most 50 rate limits");
        foreach (var (r, i) in ratelimits.Select((r, i) => (r, i)))
        {
            Require(errors, r.Name is { Length: >= 3 and <= 128 }, $"body.ratelimits[{i}].name", "name is required (3 to 128 characters)");
            Require(errors, r.Limit is >= 1, $"body.ratelimits[{i}].limit", "limit is required and must be at least 1");
            Require(errors, r.Duration is >= 1000, $"body.ratelimits[{i}].duration", "duration is required, in milliseconds (at least 1000)");
        }
        if (ratelimits.Select(r => r.Name).Distinct().Count() != ratelimits.Length)
            errors.Add(new("body.ratelimits", "rate limit names must be unique"));
    }

    private static void Require(List<ValidationError> errors, bool condition, string location, string message)
    {
        if (!condition) errors.Add(new(location, message));
    }

    private static async Task<(T? Value, IResult? Invalid)> ReadAsync<T>(HttpRequest http) where T : class
    {
        try
        {
            var value = await JsonSerializer.DeserializeAsync<T>(http.Body, SimJson.Options, http.HttpContext.RequestAborted);
            return value is null ? (null, BadRequest([new("body", "The body must be a JSON object")])) : (value, null);
        }
        catch (JsonException ex)
        {
            var location = ex.Path is { Length: > 1 } path ? "body" + path[1..] : "body";
            return (null, BadRequest([new(location, ex.Message)]));
        }
    }

    private static string RequestId() => Ids.New("req");

    private static IResult Ok<T>(T data) => Results.Json(new Envelope<T>(new Meta(RequestId()), data), SimJson.Options);

    private static IResult BadRequest(List<ValidationError> errors) =>
        Results.Json(new ErrorEnvelope(new Meta(RequestId()), new ErrorDetail("Bad Request", "The request is invalid.", 400,
            "https://unkey.com/docs/errors/unkey/application/invalid_input", [.. errors])), SimJson.Options,
            "application/problem+json", 400);

    private static IResult Problem(int status, string title, string detail, string type) =>
        Results.Json(new ErrorEnvelope(new Meta(RequestId()), new ErrorDetail(title, detail, status, "https://unkey.com/docs/errors/unkey/" + type)),
            SimJson.Options, "application/problem+json", status);
}

/// <summary>How many calls of each kind the stand-in has answered (GET /control/stats).</summary>
public sealed class Traffic
{
    public long Creations, Verifications, Updates, Deletions, Limits;

    public void Count(ref long counter) => Interlocked.Increment(ref counter);

    public TrafficStats Snapshot() => new(Interlocked.Read(ref Creations), Interlocked.Read(ref Verifications), Interlocked.Read(ref Updates),
        Interlocked.Read(ref Deletions), Interlocked.Read(ref Limits));
}

public sealed record TrafficStats(long Creations, long Verifications, long Updates, long Deletions, long Limits);
