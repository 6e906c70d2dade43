using System.Buffers;
using System.Diagnostics;
using System.Globalization;
using System.Net.ServerSentEvents;
using System.Runtime.CompilerServices;
using System.Text.Json;
using Cortensor.Api.Catalog;
using Cortensor.Api.Errors;
using Cortensor.Api.Infrastructure;
using Cortensor.Api.Keys;
using Cortensor.Api.Limits;
using Cortensor.Api.Metering;
using Cortensor.Api.Routing;
using Microsoft.AspNetCore.Http.Features;
using Microsoft.Extensions.Options;

namespace Cortensor.Api.Inference;

/// <summary>
/// The hot path after the key check: entitlement, rate limit, quota, route and forward, normalise,
/// settle and meter. One instance per process; every step is a named span.
/// </summary>
public sealed class InferenceHandler(
    CatalogStore catalog, AdmissionGate admissions, RouterForwarder forwarder, UsageMeter meter,
    IOptions<InferenceOptions> options, TimeProvider clock, ILogger<InferenceHandler> log)
{
    public async Task<IResult> HandleAsync(HttpContext http, InferenceKind kind)
    {
        var key = http.GetKey();
        var ct = http.RequestAborted;
        // Every authenticated request leaves exactly one usage record, whatever happens below.
        var usage = new UsageTracker(http, key, clock);
        try
        {
            var (request, invalid) = await ReadAsync(http, kind);
            if (invalid is not null) return usage.Fail(invalid);
            usage.Requested(request!.Model, request.Stream);

            // Step 3: entitlement. Internal names (pool, router, backend model) never reach the client.
            var snapshot = catalog.Current;
            if (!snapshot.Models.TryGetValue(request.Model, out var model)) return usage.Fail(ApiError.UnknownModel(request.Model));
            usage.Model = model;
            if (!model.Enabled) return usage.Fail(ApiError.ModelDisabled(model.Id));
            if (!key.MayUse(model.Id)) return usage.Fail(ApiError.ModelNotEntitled(model.Id));
            var maxTokens = request.MaxTokens ?? options.Value.DefaultMaxTokens;
            if (maxTokens > model.ContextWindow)
                return usage.Fail(ApiError.InvalidField("max_tokens", $"'max_tokens' must be at most {model.ContextWindow} for {model.Id}; got {maxTokens}."));

            // Steps 4-5: rate limits and quota or credits, one atomic reservation shared by every replica.
            var promptEstimate = request.EstimatedPromptTokens;
            var (admission, refused) = await admissions.AdmitAsync(key, model, promptEstimate, maxTokens, ct);
            WriteRateLimitHeaders(http, admission);
            if (refused is not null) return usage.Fail(refused);
            usage.Admission = admission;

            if (!snapshot.Pools.TryGetValue(model.PoolId, out var pool) || pool.Routers.Count == 0)
                return usage.Fail(ApiError.NoCapacity($"The model '{model.Id}' has no capacity right now. Retry shortly."));
            if (pool.Draining)
                return usage.Fail(ApiError.NoCapacity($"The model '{model.Id}' is paused for maintenance. Retry later.", 30));

            // Steps 6-7: route to a healthy router of the pool and forward in the router's own API.
            string prompt;
            using (Telemetry.StartStep("normalise-request"))
                prompt = kind == InferenceKind.Chat ? PromptTemplates.Render(model.Family, request.Messages) : request.RawPrompt!;
            var body = new RouterCompletionRequest(prompt, maxTokens, request.Temperature, request.TopP, request.Stream,
                http.GetRequestId(), request.Seed, request.PresencePenalty, request.FrequencyPenalty);
            var (response, failed) = await forwarder.SendAsync(pool, model, body, ct);
            if (failed is not null) return usage.Fail(failed);
            using var upstream = response!;
            usage.Route = upstream.Route;
            KeepTaskId(usage, upstream.TaskId);
            if (!upstream.Message.IsSuccessStatusCode)
            {
                var detail = await upstream.Message.Content.ReadAsStringAsync(ct);
                log.LogError("Router {Router} rejected a request with {Status}: {Detail}", upstream.Route.Router.Id, (int)upstream.Message.StatusCode, detail);
                upstream.Route.State.Finish(false, 0);
                return usage.Fail(ApiError.UpstreamFailed());
            }

            if (request.Stream)
            {
                await StreamAsync(http, kind, model, request, upstream, usage);
                return Results.Empty;
            }
            return await CompleteAsync(kind, model, request, upstream, usage, promptEstimate, ct);
        }
        catch (Exception ex) when (ct.IsCancellationRequested && ex is OperationCanceledException or IOException)
        {
            usage.ClientDisconnected();
            return Results.Empty;
        }
        finally
        {
            usage.Complete(admissions, meter);
        }
    }

    private static async Task<IResult> CompleteAsync(InferenceKind kind, CatalogModel model, InferenceRequest request,
        RouterResponse upstream, UsageTracker usage, int promptEstimate, CancellationToken ct)
    {
        // The forwarder has read and checked the whole answer (RouterAnswerReader): it is text, not an error or a pending task.
        var answer = upstream.Answer!;
        upstream.Route.State.Finish(true, Stopwatch.GetElapsedTime(upstream.StartedAt).TotalMilliseconds);

        using var _ = Telemetry.StartStep("normalise-response");
        var (text, stopped) = ResponseNormaliser.ApplyStop(answer.Text, request.Stop);
        var finish = stopped ? "stop" : ResponseNormaliser.FinishReason(answer.FinishReason);
        var tokens = RouterUsageCounts.Resolve(answer.Usage, promptEstimate, answer.Text, model.Family);
        usage.Succeeded(tokens.PromptTokens, tokens.CompletionTokens);
        var created = usage.Created;
        return kind == InferenceKind.Chat
            ? TypedResults.Json(ResponseNormaliser.Chat(usage.CompletionId("chatcmpl"), model.Id, created, text, finish, tokens), PortalJsonContext.Default.ChatCompletion)
            : TypedResults.Json(ResponseNormaliser.Text(usage.CompletionId("cmpl"), model.Id, created, text, finish, tokens), PortalJsonContext.Default.TextCompletion);
    }

    private async Task StreamAsync(HttpContext http, InferenceKind kind, CatalogModel model, InferenceRequest request,
        RouterResponse upstream, UsageTracker usage)
    {
        http.Response.ContentType = "text/event-stream";
        http.Response.Headers.CacheControl = "no-cache";
        http.Response.Headers["X-Accel-Buffering"] = "no";
        http.Features.Get<IHttpResponseBodyFeature>()?.DisableBuffering();
        var events = NormaliseStream(http, kind, model, request, upstream, usage, http.RequestAborted);
        await SseFormatter.WriteAsync(events, http.Response.Body, WriteEvent, http.RequestAborted);
    }

    private async IAsyncEnumerable<SseItem<object>> NormaliseStream(HttpContext http, InferenceKind kind, CatalogModel model,
        InferenceRequest request, RouterResponse upstream, UsageTracker usage, [EnumeratorCancellation] CancellationToken ct)
    {
        var id = usage.CompletionId(kind == InferenceKind.Chat ? "chatcmpl" : "cmpl");
        var created = usage.Created;
        var stop = new StreamingStopFilter(request.Stop);
        var chunks = 0;
        string? finish = null;
        ApiError? failure = null;

        if (kind == InferenceKind.Chat)
            yield return Item(ChatChunk(id, created, model.Id, new ChunkDelta("assistant", ""), null, request.IncludeUsage));

        // The forwarder has read up to the first piece of text (RouterEventStream); events are text, then Done or Failed.
        var events = upstream.Events!;
        try
        {
            while (true)
            {
                var next = await events.NextAsync(ct);
                if (next.Kind == RouterStreamEventKind.Done) break;
                if (next.Kind == RouterStreamEventKind.Failed)
                {
                    failure = next.Failure!.Kind == RouterFailureKind.Timeout ? ApiError.UpstreamTimeout() : ApiError.UpstreamFailed();
                    log.LogWarning("Router {Router} stream failed after output: {Failure}", upstream.Route.Router.Id, next.Failure);
                    break;
                }
                chunks++;
                if (chunks == 1) usage.FirstToken();
                usage.Progress(request.EstimatedPromptTokens, chunks);
                var send = stop.Push(next.Text!);
                if (send.Length > 0) yield return Item(Delta(kind, id, created, model.Id, send, null, request.IncludeUsage));
                if (stop.Stopped) { finish = "stop"; break; }
            }
        }
        finally
        {
            await events.DisposeAsync();
        }
        finish ??= events.FinishReason is { } reason ? ResponseNormaliser.FinishReason(reason) : null;
        KeepTaskId(usage, events.TaskId);

        // Billing counts what was generated, even when the stream ends badly.
        var tokens = RouterUsageCounts.Resolve(events.Usage, request.EstimatedPromptTokens, events.Generated, model.Family);
        if (failure is not null)
        {
            upstream.Route.State.Finish(false, 0);
            usage.StreamFailed(failure, tokens.PromptTokens, tokens.CompletionTokens);
            yield return new SseItem<object>(failure.ToEnvelope(http.GetRequestId()));
            yield break;
        }
        upstream.Route.State.Finish(true, Stopwatch.GetElapsedTime(upstream.StartedAt).TotalMilliseconds);
        usage.Succeeded(tokens.PromptTokens, tokens.CompletionTokens);

        var rest = stop.Flush();
        if (rest.Length > 0) yield return Item(Delta(kind, id, created, model.Id, rest, null, request.IncludeUsage));
        yield return Item(Delta(kind, id, created, model.Id, null, finish ?? "stop", request.IncludeUsage));
        if (request.IncludeUsage)
            yield return Item(kind == InferenceKind.Chat
                ? new ChatCompletionChunk(id, "chat.completion.chunk", created, model.Id, [], tokens)
                : new TextCompletion(id, "text_completion", created, model.Id, [], tokens));
        yield return new SseItem<object>(Done);
    }

    private static readonly object Done = new();

    /// <summary>The router's task id goes into the usage record, the request log and the trace.</summary>
    private static void KeepTaskId(UsageTracker usage, string? taskId)
    {
        if (taskId is null) return;
        usage.TaskId = taskId;
        Activity.Current?.SetTag("cortensor.task_id", taskId);
    }

    private static SseItem<object> Item(object payload) => new(payload);

    private static object Delta(InferenceKind kind, string id, long created, string model, string? text, string? finish, bool includeUsage) =>
        kind == InferenceKind.Chat
            ? ChatChunk(id, created, model, finish is null ? new ChunkDelta(null, text) : new ChunkDelta(null, null), finish, includeUsage)
            : new TextCompletion(id, "text_completion", created, model, [new TextChoice(text ?? "", 0, null, finish)], null);

    private static ChatCompletionChunk ChatChunk(string id, long created, string model, ChunkDelta delta, string? finish, bool includeUsage) =>
        new(id, "chat.completion.chunk", created, model, [new ChunkChoice(0, delta, finish)], null);

    private static void WriteEvent(SseItem<object> item, IBufferWriter<byte> buffer)
    {
        if (ReferenceEquals(item.Data, Done))
        {
            buffer.Write("[DONE]"u8);
            return;
        }
        using var json = new Utf8JsonWriter(buffer);
        switch (item.Data)
        {
            case ChatCompletionChunk chunk: JsonSerializer.Serialize(json, chunk, PortalJsonContext.Default.ChatCompletionChunk); break;
            case TextCompletion text: JsonSerializer.Serialize(json, text, PortalJsonContext.Default.TextCompletion); break;
            case ErrorEnvelope error: JsonSerializer.Serialize(json, error, PortalJsonContext.Default.ErrorEnvelope); break;
        }
    }

    private static void WriteRateLimitHeaders(HttpContext http, Admission d)
    {
        var h = http.Response.Headers;
        var reset = d.Reset.TotalSeconds.ToString("0", CultureInfo.InvariantCulture) + "s";
        h["x-ratelimit-limit-requests"] = d.RequestLimit.ToString(CultureInfo.InvariantCulture);
        h["x-ratelimit-remaining-requests"] = d.RequestsRemaining.ToString(CultureInfo.InvariantCulture);
        h["x-ratelimit-reset-requests"] = reset;
        h["x-ratelimit-limit-tokens"] = d.TokenLimit.ToString(CultureInfo.InvariantCulture);
        h["x-ratelimit-remaining-tokens"] = d.TokensRemaining.ToString(CultureInfo.InvariantCulture);
        h["x-ratelimit-reset-tokens"] = reset;
    }

    private async Task<(InferenceRequest? Request, ApiError? Error)> ReadAsync(HttpContext http, InferenceKind kind)
    {
        var limit = options.Value.MaxRequestBytes;
        if (http.Request.ContentLength > limit) return (null, ApiError.BodyTooLarge(limit));
        if (http.Features.Get<IHttpMaxRequestBodySizeFeature>() is { IsReadOnly: false } size) size.MaxRequestBodySize = limit;
        if (http.Request.ContentType is not { } type || !type.StartsWith("application/json", StringComparison.OrdinalIgnoreCase))
            return (null, new ApiError(400, "invalid_request_error", "invalid_content_type", "Send the request body as JSON with 'Content-Type: application/json'."));
        try
        {
            if (kind == InferenceKind.Chat)
            {
                var body = await JsonSerializer.DeserializeAsync(http.Request.Body, PortalJsonContext.Default.ChatCompletionRequest, http.RequestAborted);
                if (body is null) return (null, ApiError.MalformedJson(null, "the body must be a JSON object."));
                return (RequestValidation.Validate(body, out var r) is { } e ? (null, e) : (r, null));
            }
            else
            {
                var body = await JsonSerializer.DeserializeAsync(http.Request.Body, PortalJsonContext.Default.CompletionRequest, http.RequestAborted);
                if (body is null) return (null, ApiError.MalformedJson(null, "the body must be a JSON object."));
                return (RequestValidation.Validate(body, out var r) is { } e ? (null, e) : (r, null));
            }
        }
        catch (JsonException ex)
        {
            var path = ex.Path is { Length: > 2 } p ? p.TrimStart('$', '.') : null;
            return (null, path is null
                ? ApiError.MalformedJson(null, "check the syntax of the body.")
                : ApiError.InvalidField(path, $"'{path}' has the wrong type or is malformed."));
        }
        catch (BadHttpRequestException ex) when (ex.StatusCode == StatusCodes.Status413PayloadTooLarge)
        {
            return (null, ApiError.BodyTooLarge(limit));
        }
    }
}
