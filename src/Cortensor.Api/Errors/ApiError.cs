using System.Text.Json.Serialization;

namespace Cortensor.Api.Errors;

/// <summary>
/// The one error shape of the Api, OpenAI style: <c>{"error": {"message", "type", "code", "param", "request_id"}}</c>.
/// Every failure, on every path, is one of these factories.
/// </summary>
public sealed record ApiError(int Status, string Type, string Code, string Message, string? Param = null)
{
    /// <summary>Seconds a client should wait before retrying (429, 503).</summary>
    public int? RetryAfterSeconds { get; init; }

    /// <summary>
    /// Sent as <c>x-should-retry</c>, which OpenAI's SDKs obey over their own rule (retry 408, 409, 429 and every 5xx):
    /// false where the same request would fail the same way (and, for a model's answer, be charged again).
    /// </summary>
    public bool? ShouldRetry { get; init; }

    /// <summary>A request Kestrel could not read (a body that ended before its Content-Length, broken chunking): its words.</summary>
    public static ApiError BadRequest(string message) => new(400, "invalid_request_error", "bad_request", message);
    public static ApiError InvalidField(string param, string message) =>
        new(400, "invalid_request_error", "invalid_value", message, param);
    /// <summary>
    /// The prompt and the completion it may have do not fit the model: OpenAI's code, which agent frameworks look for to
    /// shorten the conversation and try again.
    /// </summary>
    public static ApiError ContextLengthExceeded(string param, string message) =>
        new(400, "invalid_request_error", "context_length_exceeded", message, param);
    public static ApiError UnsupportedParameter(string param, string message) =>
        new(400, "invalid_request_error", "unsupported_parameter", message, param);
    public static ApiError UnsupportedMediaType() =>
        new(415, "invalid_request_error", "unsupported_media_type",
            "Send the request body as UTF-8 JSON with 'Content-Type: application/json' (with charset=utf-8 or no charset).");
    public static ApiError MissingField(string param) =>
        new(400, "invalid_request_error", "missing_required_parameter", $"'{param}' is required.", param);
    public static ApiError MalformedJson(string? path, string detail) =>
        new(400, "invalid_request_error", "invalid_json", $"The request body is not valid JSON{(path is null ? "" : $" at '{path}'")}: {detail}", path);
    /// <summary>
    /// A required text field in the customer's words: blank is "required", too long names the limit (a long name is never
    /// told it is "required"). <paramref name="label"/> is how the form calls it ("Name", "Display name").
    /// </summary>
    public static ApiError? Text(string param, string label, string? value, int max) =>
        string.IsNullOrWhiteSpace(value) ? new(400, "invalid_request_error", "missing_required_parameter", $"{label} is required.", param)
        : value.Trim().Length > max ? InvalidField(param, $"{label} must be at most {max} characters.")
        : NotOneLine(value) ? NotOneLineField(param, label)
        : null;

    public static ApiError NotOneLineField(string param, string label) =>
        InvalidField(param, $"{label} must be one line of text: no line breaks, control characters or text-direction overrides.");

    /// <summary>
    /// A name is shown in lists, mails (an organisation's in an invitation's subject) and logs: a line break there writes
    /// a line of the sender's choosing, and a direction override (U+202E) shows a name backwards.
    /// </summary>
    public static bool NotOneLine(string value)
    {
        foreach (var c in value)
            if (BreaksALine(c)) return true;
        return false;
    }

    /// <summary>A control character, a line or paragraph separator, or a text-direction override or isolate.</summary>
    public static bool BreaksALine(char c) =>
        char.IsControl(c) || c is >= '\u202A' and <= '\u202E' or >= '\u2066' and <= '\u2069' or '\u2028' or '\u2029';
    public static ApiError BodyTooLarge(long limit) =>
        new(413, "invalid_request_error", "request_too_large", $"The request body exceeds the limit of {limit} bytes.");
    public static ApiError NotFound(string what) =>
        new(404, "invalid_request_error", "not_found", $"No such {what}.");
    public static ApiError InsufficientRole(string what) =>
        new(403, "permission_error", "insufficient_role", $"Only an owner or admin of the organization can {what}.");
    public static ApiError EmailNotVerified(string what) =>
        new(403, "permission_error", "email_not_verified", $"Verify your e-mail address before you {what}: follow the link in the mail we sent (POST /portal/auth/verify-email/resend sends it again).");
    public static ApiError InvalidLink(string what) =>
        new(400, "invalid_request_error", "invalid_link", $"This {what} link is not valid: it may have expired or been used already. Ask for a new one.", "token");
    public static ApiError AuthThrottled(int retryAfter) =>
        new(429, "rate_limit_error", "too_many_attempts", $"Too many attempts. Try again in {retryAfter} s.") { RetryAfterSeconds = retryAfter };
    public static ApiError LimitReached(string code, string message) =>
        new(409, "invalid_request_error", code, message);
    public static ApiError MissingKey() =>
        new(401, "authentication_error", "missing_api_key", "No API key provided. Send it as 'Authorization: Bearer <key>'.");
    public static ApiError InvalidKey() =>
        new(401, "authentication_error", "invalid_api_key", "The API key is not valid. Check it, or create a new one in the Portal.");
    public static ApiError TooManyFailedAuthentications(int retryAfterSeconds) =>
        new(429, "rate_limit_error", "too_many_failed_authentications",
            $"Too many requests with unknown API keys from your address. Check your key and try again in {retryAfterSeconds} s.") { RetryAfterSeconds = retryAfterSeconds };
    public static ApiError RevokedKey() =>
        new(401, "authentication_error", "api_key_revoked", "This API key has been revoked. Create a new one in the Portal.");
    public static ApiError RotatedKey() =>
        new(401, "authentication_error", "api_key_rotated", "This API key's secret was rotated and its grace period has ended. Use the new secret shown when the key was rotated.");
    public static ApiError KeyAlreadyRevoked() =>
        new(409, "invalid_request_error", "api_key_revoked", "This API key is revoked: it can no longer be changed or rotated. Create a new one.");
    public static ApiError KeyBudgetExceeded(string message) =>
        new(402, "insufficient_quota", "key_budget_exceeded", message);
    public static ApiError ExpiredKey() =>
        new(401, "authentication_error", "api_key_expired", "This API key has expired. Create a new one in the Portal.");
    public static ApiError KeyPaused() =>
        new(403, "permission_error", "api_key_paused", "This API key is paused by an administrator. Contact support to resume it.");
    public static ApiError OrganizationPaused() =>
        new(403, "permission_error", "organization_paused", "Your organization's access is paused. Contact support to resume it.");
    public static ApiError UnknownModel(string model) =>
        new(404, "invalid_request_error", "model_not_found", $"The model '{model}' does not exist. GET /v1/models lists the models you can use.", "model");
    public static ApiError ModelDisabled(string model) =>
        new(403, "permission_error", "model_disabled", $"The model '{model}' is temporarily disabled.", "model");
    /// <summary>Says which plan includes the model, or that the key's own model list is what refuses it.</summary>
    public static ApiError ModelNotEntitled(Catalog.CatalogModel model, string planId)
    {
        var plans = model.IncludedIn;
        var message = plans.Any(p => p.Id == planId)
            ? $"This API key is restricted to other models and does not include '{model.Id}'. Use a key without that restriction, or create one on the API keys page of the Portal (/api-keys)."
            : $"Your plan does not include the model '{model.Id}'" + (plans.Count == 0 ? "." : $"; the {Join(plans.Select(p => p.Name))} plan{(plans.Count > 1 ? "s include" : " includes")} it.")
              + " See your plan and balance on the Balance and plan page of the Portal (/balance); until paid plans open, a Cortensor administrator changes plans on request.";
        return new(403, "permission_error", "model_not_entitled", message, "model");
    }

    private static string Join(IEnumerable<string> names)
    {
        var list = names.ToList();
        return list.Count <= 1 ? string.Concat(list) : string.Join(", ", list[..^1]) + " and " + list[^1];
    }
    public static ApiError RateLimited(string what, int retryAfter) =>
        new(429, "rate_limit_error", "rate_limit_exceeded", $"Rate limit reached for {what}. Retry after {retryAfter}s.") { RetryAfterSeconds = retryAfter };
    public static ApiError InsufficientQuota(string message) =>
        new(402, "insufficient_quota", "insufficient_quota", message);
    public static ApiError NoCapacity(string reason, int retryAfter = 5) =>
        new(503, "service_unavailable", "no_capacity", reason) { RetryAfterSeconds = retryAfter };
    public static ApiError DependencyUnavailable(string what, int retryAfter = 2) =>
        new(503, "service_unavailable", "dependency_unavailable", $"{what} is temporarily unavailable. Retry shortly.") { RetryAfterSeconds = retryAfter };
    public static ApiError UpstreamTimeout() =>
        new(504, "timeout", "upstream_timeout", "The model did not answer in time. Retry, or lower max_tokens.");
    public static ApiError UpstreamFailed() =>
        new(502, "api_error", "upstream_error", "The model failed while answering. Retry the request.");
    public static ApiError InvalidIdempotencyKey() =>
        new(400, "invalid_request_error", "invalid_idempotency_key", "'Idempotency-Key' must be one value of 1 to 255 printable ASCII characters.", "Idempotency-Key");
    public static ApiError IdempotencyKeyReused() =>
        new(422, "invalid_request_error", "idempotency_key_reused",
            "This Idempotency-Key was already used with a different request (another body, or another endpoint). Use a new key for a new request.", "Idempotency-Key");
    public static ApiError IdempotencyInProgress(int retryAfter) =>
        new(409, "invalid_request_error", "idempotency_in_progress",
            "A request with this Idempotency-Key is still running. Retry shortly to get its answer.", "Idempotency-Key") { RetryAfterSeconds = retryAfter };
    public static ApiError IdempotentAnswerNotRetained(string? requestId) =>
        new(409, "invalid_request_error", "idempotency_answer_not_retained",
            $"A request with this Idempotency-Key already ran{(requestId is null ? "" : $" (request {requestId})")}, but its answer was too large to keep, so it cannot be replayed. Use a new key to run it again.", "Idempotency-Key")
        { ShouldRetry = false };
    /// <summary>
    /// The model answered, but not in the form the request asked for (tool call, JSON, schema); the tokens are charged.
    /// An answer <paramref name="cut"/> by max_tokens or by one of the request's stop sequences fails the same way again:
    /// SDKs are told not to retry it (they retry every 5xx, and each retry would be charged), and the client what to change.
    /// </summary>
    public static ApiError InvalidModelOutput(string why, Inference.AnswerCut cut)
    {
        // A schema library's message may end without a full stop; the next sentence follows it.
        why = why.EndsWith('.') ? why : why + ".";
        return cut switch
        {
        Inference.AnswerCut.MaxTokens => new(502, "api_error", "invalid_model_output",
            $"The model's answer was not usable: {why}{(why.Contains("max_tokens", StringComparison.Ordinal) ? "" : " It was cut off by max_tokens; raise max_tokens.")} The tokens it generated are charged; the same request would be cut off again.")
            { ShouldRetry = false },
        Inference.AnswerCut.StopSequence => new(502, "api_error", "invalid_model_output",
            $"The model's answer was not usable: {why} It was cut at one of the request's stop sequences, which the call or JSON contained; remove that stop sequence or make it one the answer cannot contain. The tokens it generated are charged; the same request would be cut again.")
            { ShouldRetry = false },
        _ => new(502, "api_error", "invalid_model_output", $"The model's answer was not usable: {why} The tokens it generated are charged; retry the request."),
        };
    }
    public static ApiError Internal() =>
        new(500, "api_error", "internal_error", "Something went wrong on our side. Retry; if it persists, contact support with the request id.");

    public ErrorEnvelope ToEnvelope(string requestId) => new(new ErrorBody(Message, Type, Param, Code, requestId));
}

public sealed record ErrorEnvelope([property: JsonPropertyName("error")] ErrorBody Error);

public sealed record ErrorBody(
    [property: JsonPropertyName("message")] string Message,
    [property: JsonPropertyName("type")] string Type,
    // OpenAI sends "param": null rather than leaving it out; clients read error.param without checking it is there.
    [property: JsonPropertyName("param"), JsonIgnore(Condition = JsonIgnoreCondition.Never)] string? Param,
    [property: JsonPropertyName("code")] string Code,
    [property: JsonPropertyName("request_id")] string RequestId);
