using System.Buffers;
using System.Net.ServerSentEvents;
using System.Runtime.CompilerServices;
using System.Text.Json;
using Cortensor.Api.Catalog;
using Cortensor.Api.Errors;
using Cortensor.Api.Infrastructure;
using Cortensor.Api.Metering;
using Cortensor.Api.Routing;
using Microsoft.AspNetCore.Http.Features;

namespace Cortensor.Api.Inference;

/// <summary>
/// Relays a router's stream to the client as OpenAI chunks. Whatever ends it — the router's [DONE],
/// a cut, silence, the request's deadline or the client going away — what was generated is charged
/// (counted with the family's tokenizer when the router reports no usage) and the router lease is
/// closed once, with the right verdict.
/// </summary>
internal sealed class StreamRelay(HttpContext http, Dialect dialect, CatalogModel model, InferenceRequest request,
    RouterResponse upstream, UsageTracker usage, UsageBounds.Prompt prompt, int maxTokens, ILogger log)
{
    private RouterEventStream? _events;
    private readonly StreamingStopFilter _stop = new(request.Stop);
    // What the customer is shown of a gpt-oss answer (its final channel); the stop filter reads that, billing the generated text.
    private readonly HarmonyChannels? _channels = HarmonyChannels.For(model.Family);

    public async Task RelayAsync(CancellationToken deadline)
    {
        http.Response.ContentType = "text/event-stream";
        http.Response.Headers.CacheControl = "no-cache";
        http.Response.Headers["X-Accel-Buffering"] = "no";
        http.Features.Get<IHttpResponseBodyFeature>()?.DisableBuffering();
        try
        {
            await SseFormatter.WriteAsync(Events(deadline), http.Response.Body, WriteEvent, http.RequestAborted);
        }
        finally
        {
            // Every exit, the client's disconnect included, charges what was generated.
            Charge();
        }
    }

    private void Charge()
    {
        var reported = _events?.Usage;
        var stopEnd = _stop.StopEnd is { } end ? HarmonyChannels.GeneratedIndex(_channels, end) : (int?)null;
        var (completion, counted) = UsageBounds.Completion(prompt.Tokenizer, _events?.Generated ?? "", reported?.CompletionTokens, stopEnd);
        var (p, c) = UsageBounds.Bound(prompt, reported?.PromptTokens, completion, counted, maxTokens, upstream.Route.Router.Id, log);
        usage.Charge(p, c);
    }

    private async IAsyncEnumerable<SseItem<object>> Events([EnumeratorCancellation] CancellationToken deadline)
    {
        var id = usage.CompletionId(dialect.IdPrefix);
        var created = usage.Created;
        // Tool calls and JSON are held and read whole (ModelOutput); plain text passes as it comes.
        var structured = request.Structured ? new StructuredStream(model.Family, request) : null;
        var chunks = 0;
        string? finish = null;
        ApiError? failure = null;

        // No token is longer than this many characters: a router still sending past max_tokens of them is not stopping,
        // and the stream ends there as one cut by its limit, instead of relaying (and holding) whatever it sends.
        var mostCharacters = (long)maxTokens * MostCharactersPerToken + 1024;
        var overran = false;
        var shape = dialect.Stream(id, created, model.Id, request);
        foreach (var item in shape.Opening()) yield return item;

        // The forwarder has read up to the first piece of text (RouterEventStream); events are text, then Done or Failed.
        await using var events = upstream.Events!;
        _events = events;
        using var relay = Telemetry.StartStep("relay");
        while (true)
        {
            RouterStreamEvent next;
            try
            {
                next = await events.NextAsync(deadline);
            }
            catch (OperationCanceledException) when (!http.RequestAborted.IsCancellationRequested)
            {
                next = new RouterStreamEvent(RouterStreamEventKind.Failed, Failure: new RouterFailure(RouterFailureKind.Timeout, "the request's deadline passed"));
            }
            if (next.Kind == RouterStreamEventKind.Done) break;
            if (next.Kind == RouterStreamEventKind.Failed)
            {
                failure = next.Failure!.Kind == RouterFailureKind.Timeout ? ApiError.UpstreamTimeout() : ApiError.UpstreamFailed();
                InferenceLog.StreamFailed(log, upstream.Route.Router.Id, next.Failure.ToString());
                break;
            }
            chunks++;
            if (chunks == 1)
            {
                usage.FirstToken();
                relay?.AddEvent(new System.Diagnostics.ActivityEvent("first-token"));
                relay?.SetTag("cortensor.ttft_ms", (int)System.Diagnostics.Stopwatch.GetElapsedTime(upstream.Lease.StartedAt).TotalMilliseconds);
            }
            usage.Progress(prompt.Estimate, Math.Min(chunks, maxTokens));
            var send = _stop.Push(_channels is null ? next.Text! : _channels.Push(next.Text!));
            if (structured is not null) send = structured.Push(send);
            if (send.Length > 0) foreach (var item in shape.Text(send)) yield return item;
            if (_stop.Stopped) { finish = "stop"; break; }
            if (events.GeneratedLength > mostCharacters)
            {
                (finish, overran) = ("length", true);
                InferenceLog.StreamFailed(log, upstream.Route.Router.Id, $"the stream went on past max_tokens ({maxTokens}): cut at {events.GeneratedLength} characters");
                break;
            }
        }
        finish ??= events.FinishReason is { } reason ? ResponseNormaliser.FinishReason(reason) : null;
        usage.KeepTaskId(events.TaskId);

        if (failure is not null)
        {
            upstream.Lease.Failed();
            usage.Failed(failure);
            foreach (var item in shape.Failure(failure, http.GetRequestId())) yield return item;
            yield break;
        }
        // A router that overran max_tokens answered, but not as a router should: its breaker counts it.
        if (overran) upstream.Lease.Failed(); else upstream.Lease.Succeeded();
        // What the channels held back (a '<' that began no control token) is shown, and may complete a stop sequence.
        var tail = _channels is null || _stop.Stopped ? "" : _stop.Push(_channels.Flush());
        if (_stop.Stopped) finish = "stop";
        Charge();
        // Counted once, for the usage the stream ends with (a client gone before it is told nothing).
        var generated = events.Generated;
        usage.Reasoned(HarmonyChannels.HiddenTokens(_channels, generated,
            _stop.StopEnd is { } shownEnd ? HarmonyChannels.GeneratedIndex(_channels, shownEnd) : generated.Length, prompt.Tokenizer));

        var rest = tail + _stop.Flush();
        if (structured is not null) rest = structured.Push(rest);
        if (rest.Length > 0) foreach (var item in shape.Text(rest)) yield return item;
        if (structured?.Finish(_stop.Stopped ? AnswerCut.StopSequence : finish == "length" ? AnswerCut.MaxTokens : AnswerCut.None) is { } read)
        {
            if (read.Error is { } invalid)
            {
                // The tokens were generated: they stay charged, and the stream ends with the error instead of its normal end.
                usage.Failed(invalid);
                foreach (var item in shape.Failure(invalid, http.GetRequestId())) yield return item;
                yield break;
            }
            if (read.Content is { Length: > 0 } content) foreach (var item in shape.Text(content)) yield return item;
            if (read.Calls is { Length: > 0 } calls)
            {
                foreach (var item in shape.ToolCalls(calls)) yield return item;
                finish = "tool_calls";
            }
        }
        foreach (var item in shape.Closing(finish ?? "stop", usage.Tokens)) yield return item;
    }

    /// <summary>Twice the characters of o200k's longest token (128, measured over its vocabulary), as a margin for the families whose vocabularies we cannot load.</summary>
    internal const int MostCharactersPerToken = 256;

    private static void WriteEvent(SseItem<object> item, IBufferWriter<byte> buffer)
    {
        if (ReferenceEquals(item.Data, StreamShape.Done))
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
            // The other shapes' events (Responses API), each a type of the source-generated context.
            default: JsonSerializer.Serialize(json, item.Data, item.Data.GetType(), PortalJsonContext.Default); break;
        }
    }
}
