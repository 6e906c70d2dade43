using System.Buffers;
using System.Net.ServerSentEvents;
using System.Runtime.CompilerServices;
using System.Text;
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
    RouterResponse upstream, UsageTracker usage, UsageBounds.Prompt prompt, int maxTokens, TimeSpan idle, ILogger log)
{
    private static readonly object Done = new();
    private readonly StringBuilder _text = new();
    private RouterUsage? _reported;

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
        var counted = prompt.Tokenizer.Count(_text.ToString());
        var (p, c) = UsageBounds.Bound(prompt, _reported?.PromptTokens, _reported?.CompletionTokens, counted, maxTokens, upstream.Route.Router.Id, log);
        usage.Charge(p, c);
    }

    private async IAsyncEnumerable<SseItem<object>> Events([EnumeratorCancellation] CancellationToken deadline)
    {
        var id = usage.CompletionId(dialect.IdPrefix);
        var created = usage.Created;
        var stop = new StreamingStopFilter(request.Stop);
        var chunks = 0;
        string? finish = null;
        ApiError? failure = null;

        if (dialect.Opening(id, created, model.Id) is { } opening) yield return Item(opening);

        await using var body = await upstream.Message.Content.ReadAsStreamAsync(deadline);
        // One token for the client going away, the request's deadline and the router falling silent:
        // the parser's reads are cancelled themselves, so it is never disposed with a read pending.
        using var silence = CancellationTokenSource.CreateLinkedTokenSource(deadline);
        var reader = SseParser.Create(body, (_, data) => data.ToArray()).EnumerateAsync(silence.Token).GetAsyncEnumerator(silence.Token);
        try
        {
            while (true)
            {
                bool more;
                try
                {
                    silence.CancelAfter(idle);
                    more = await reader.MoveNextAsync();
                    silence.CancelAfter(Timeout.InfiniteTimeSpan); // time spent writing to the client is not silence
                }
                catch (OperationCanceledException) when (!http.RequestAborted.IsCancellationRequested)
                {
                    failure = ApiError.UpstreamTimeout();
                    break;
                }
                catch (Exception ex) when (ex is HttpRequestException or IOException)
                {
                    failure = http.RequestAborted.IsCancellationRequested ? throw new OperationCanceledException(http.RequestAborted) : ApiError.UpstreamFailed();
                    break;
                }
                if (!more)
                {
                    // The router closed the stream without its [DONE]: a cut, not an answer.
                    failure = ApiError.UpstreamFailed();
                    break;
                }
                var data = reader.Current.Data;
                if (data.AsSpan().SequenceEqual("[DONE]"u8)) break;
                RouterCompletion? chunk;
                try
                {
                    chunk = JsonSerializer.Deserialize(data, PortalJsonContext.Default.RouterCompletion);
                }
                catch (JsonException)
                {
                    failure = ApiError.UpstreamFailed();
                    break;
                }
                if (chunk?.Usage is not null) _reported = chunk.Usage;
                var choice = chunk?.Choices is { Length: > 0 } c ? c[0] : null;
                if (choice?.Text is { Length: > 0 } piece)
                {
                    chunks++;
                    _text.Append(piece);
                    if (chunks == 1) usage.FirstToken();
                    usage.Progress(prompt.Estimate, Math.Min(chunks, maxTokens));
                    var send = stop.Push(piece);
                    if (send.Length > 0) yield return Item(Delta(id, created, send, null));
                    if (stop.Stopped) { finish = "stop"; break; }
                }
                if (choice?.FinishReason is { } reason) finish = ResponseNormaliser.FinishReason(reason);
            }
        }
        finally
        {
            await reader.DisposeAsync();
        }

        if (failure is not null)
        {
            upstream.Lease.Failed();
            usage.Failed(failure);
            yield return new SseItem<object>(failure.ToEnvelope(http.GetRequestId()));
            yield break;
        }
        upstream.Lease.Succeeded();
        Charge();

        var rest = stop.Flush();
        if (rest.Length > 0) yield return Item(Delta(id, created, rest, null));
        yield return Item(Delta(id, created, null, finish ?? "stop"));
        if (request.IncludeUsage) yield return Item(dialect.UsageChunk(id, created, model.Id, usage.Tokens));
        yield return new SseItem<object>(Done);
    }

    private static SseItem<object> Item(object payload) => new(payload);

    private object Delta(string id, long created, string? text, string? finish) => dialect.Delta(id, created, model.Id, text, finish);

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
}
