using System.Diagnostics;
using System.Net.ServerSentEvents;
using System.Text;
using System.Text.Json;
using Cortensor.Api.Catalog;
using Cortensor.Api.Errors;
using Cortensor.Api.Infrastructure;

namespace Cortensor.Api.Inference;

/// <summary>
/// The OpenAI Responses API (POST /v1/responses) as a translation onto the chat path: instructions and
/// input items become chat messages rendered with the family's template, and the answer comes back as a
/// response object (or its numbered stream events). Nothing is stored: a response cannot be fetched or
/// continued by id later, so store:true and previous_response_id are refused rather than ignored.
/// </summary>
internal sealed class ResponsesDialect : Dialect
{
    public override string IdPrefix => "resp";

    public override async ValueTask<(InferenceRequest?, ApiError?)> ReadAsync(Stream body, CancellationToken ct)
    {
        var request = await JsonSerializer.DeserializeAsync(body, PortalJsonContext.Default.ResponseRequest, ct);
        if (request is null) return (null, ApiError.MalformedJson(null, "the body must be a JSON object."));
        return Validated(ResponsesTranslation.Translate(request, out var r), r);
    }

    public override string Render(CatalogModel model, InferenceRequest request) => PromptTemplates.Render(model.Family, request.Messages);

    public override IResult Answer(InferenceRequest request, string id, string model, long created, string text, string finish, Usage usage)
    {
        var (responseId, itemId) = Ids(id);
        var item = Message(itemId, "completed", text);
        return TypedResults.Json(Response(request, responseId, model, created, Status(finish), Incomplete(finish), [item], usage, null),
            PortalJsonContext.Default.ResponseObject);
    }

    public override StreamShape Stream(string id, long created, string model, InferenceRequest request) => new EventStream(request, id, created, model);

    // Chunks are the other dialects' stream shape; this one streams numbered events (EventStream) instead.
    public override object? Opening(string id, long created, string model) => throw new UnreachableException();
    public override object Delta(string id, long created, string model, string? text, string? finish) => throw new UnreachableException();
    public override object UsageChunk(string id, long created, string model, Usage usage) => throw new UnreachableException();

    /// <summary>resp_… and msg_… from the request's completion id, so the ids of one request share their suffix.</summary>
    private static (string Response, string Item) Ids(string completionId)
    {
        var suffix = completionId[(completionId.IndexOf('-') + 1)..];
        return ("resp_" + suffix, "msg_" + suffix);
    }

    /// <summary>OpenAI's statuses: an answer cut by max_output_tokens (or a filter) is incomplete, not completed.</summary>
    private static string Status(string finish) => finish is "length" or "content_filter" ? "incomplete" : "completed";

    private static ResponseIncompleteDetails? Incomplete(string finish) => finish switch
    {
        "length" => new("max_output_tokens"),
        "content_filter" => new("content_filter"),
        _ => null,
    };

    private static ResponseOutputItem Message(string id, string status, string? text) =>
        new("message", id, status, "assistant", text is null ? [] : [Part(text)]);

    private static ResponseContentPart Part(string text) => new("output_text", text, []);

    private static ResponseObject Response(InferenceRequest request, string id, string model, long created, string status,
        ResponseIncompleteDetails? incomplete, ResponseOutputItem[] output, Usage? usage, ResponseErrorBody? error)
    {
        var s = request.Responses!;
        return new ResponseObject(id, "response", created, status, error, incomplete, s.Instructions, s.MaxOutputTokens, model, output,
            s.ParallelToolCalls, null, false, s.Temperature, new ResponseTextOptions(s.TextFormat), s.ToolChoice, s.Tools, s.TopP, "disabled",
            usage is null ? null : new ResponseUsage(usage.PromptTokens, new(0), usage.CompletionTokens, new(0), usage.TotalTokens), s.Metadata);
    }

    /// <summary>
    /// One streamed response: created, in_progress, the message item and its output_text part opened,
    /// a delta per piece, then the part and item closed and the terminal event with the whole response
    /// and its usage. Every event carries its type as the SSE event name and a sequence_number.
    /// </summary>
    private sealed class EventStream(InferenceRequest request, string completionId, long created, string model) : StreamShape
    {
        private readonly StringBuilder _text = new();
        private int _sequence;

        private string ResponseId => Ids(completionId).Response;
        private string ItemId => Ids(completionId).Item;

        public override IEnumerable<SseItem<object>> Opening()
        {
            var pending = Response(request, ResponseId, model, created, "in_progress", null, [], null, null);
            yield return Event("response.created", n => new ResponseLifecycleEvent("response.created", n, pending));
            yield return Event("response.in_progress", n => new ResponseLifecycleEvent("response.in_progress", n, pending));
            yield return Event("response.output_item.added", n => new ResponseItemEvent("response.output_item.added", n, 0, Message(ItemId, "in_progress", null)));
            yield return Event("response.content_part.added", n => new ResponsePartEvent("response.content_part.added", n, ItemId, 0, 0, Part("")));
        }

        public override IEnumerable<SseItem<object>> Text(string piece)
        {
            _text.Append(piece);
            yield return Event("response.output_text.delta", n => new ResponseTextDeltaEvent("response.output_text.delta", n, ItemId, 0, 0, piece, []));
        }

        public override IEnumerable<SseItem<object>> Closing(string finish, Usage usage)
        {
            var text = _text.ToString();
            var status = Status(finish);
            var item = Message(ItemId, status, text);
            yield return Event("response.output_text.done", n => new ResponseTextDoneEvent("response.output_text.done", n, ItemId, 0, 0, text, []));
            yield return Event("response.content_part.done", n => new ResponsePartEvent("response.content_part.done", n, ItemId, 0, 0, Part(text)));
            yield return Event("response.output_item.done", n => new ResponseItemEvent("response.output_item.done", n, 0, item));
            var terminal = status == "completed" ? "response.completed" : "response.incomplete";
            var response = Response(request, ResponseId, model, created, status, Incomplete(finish), [item], usage, null);
            yield return Event(terminal, n => new ResponseLifecycleEvent(terminal, n, response));
        }

        public override IEnumerable<SseItem<object>> Failure(ApiError error, string requestId)
        {
            // What was sent stays in the failed response's message item, so a client can show it.
            var item = Message(ItemId, "incomplete", _text.ToString());
            var response = Response(request, ResponseId, model, created, "failed", null, [item], null, new ResponseErrorBody(error.Code, error.Message));
            yield return Event("error", n => new ResponseErrorEvent("error", n, error.Code, $"{error.Message} (request {requestId})", error.Param));
            yield return Event("response.failed", n => new ResponseLifecycleEvent("response.failed", n, response));
        }

        private SseItem<object> Event(string type, Func<int, object> payload) => new(payload(_sequence++), type);
    }
}
