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

    public override (InferenceRequest?, ApiError?) Read(ReadOnlySpan<byte> json)
    {
        var request = JsonSerializer.Deserialize(json, PortalJsonContext.Default.ResponseRequest);
        if (request is null) return (null, ApiError.MalformedJson(null, "the body must be a JSON object."));
        return Validated(ResponsesTranslation.Translate(request, out var r), r);
    }

    public override string Render(CatalogModel model, InferenceRequest request) => PromptTemplates.Render(model.Family, request);

    public override IResult Answer(InferenceRequest request, string id, string model, long created, string text, string finish, Usage usage) =>
        Answer(request, id, model, created, new StructuredAnswer(text, null, null), finish, usage);

    /// <summary>A message item with the text (when there is any, or nothing else), then a function_call item per call.</summary>
    public override IResult Answer(InferenceRequest request, string id, string model, long created, StructuredAnswer answer, string finish, Usage usage)
    {
        var (responseId, itemId) = Ids(id);
        var output = new List<ResponseOutputItem>();
        if (answer.Content is { Length: > 0 } || answer.Calls is not { Length: > 0 }) output.Add(Message(itemId, Status(finish), answer.Content ?? ""));
        foreach (var call in answer.Calls ?? []) output.Add(FunctionCall(call, output.Count, "completed"));
        return JsonAnswer.Of(Response(request, responseId, model, created, Status(finish), Incomplete(finish), [.. output], usage, null),
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

    /// <summary>A function_call item: its own id (fc_…), the call id the client answers with a function_call_output.</summary>
    private static ResponseOutputItem FunctionCall(AnswerToolCall call, int index, string status, string? arguments = null) =>
        new("function_call", $"fc_{call.Id[(call.Id.IndexOf('_') + 1)..]}_{index}", status, CallId: call.Id, Name: call.Function.Name,
            Arguments: arguments ?? call.Function.Arguments);

    private static ResponseObject Response(InferenceRequest request, string id, string model, long created, string status,
        ResponseIncompleteDetails? incomplete, ResponseOutputItem[] output, Usage? usage, ResponseErrorBody? error)
    {
        var s = request.Responses!;
        return new ResponseObject(id, "response", created, status, error, incomplete, s.Instructions, s.MaxOutputTokens, model, output,
            s.ParallelToolCalls, null, false, s.Temperature, new ResponseTextOptions(s.TextFormat), s.ToolChoice, s.Tools, s.TopP, "disabled",
            usage is null ? null : new ResponseUsage(usage.PromptTokens, new(0), usage.CompletionTokens, new(usage.CompletionTokensDetails?.ReasoningTokens ?? 0), usage.TotalTokens, usage.Cost), s.Metadata);
    }

    /// <summary>
    /// One streamed response: created and in_progress; the message item and its output_text part opened with the
    /// first piece of text, a delta per piece, then closed; a function_call item per call with its arguments; then
    /// the terminal event with the whole response and its usage. Every event carries its type as the SSE event
    /// name and a sequence_number.
    /// </summary>
    private sealed class EventStream(InferenceRequest request, string completionId, long created, string model) : StreamShape
    {
        private readonly StringBuilder _text = new();
        private readonly List<ResponseOutputItem> _output = [];
        private int _sequence;
        private int _messageIndex = -1;

        private string ResponseId => Ids(completionId).Response;
        private string ItemId => Ids(completionId).Item;

        public override IEnumerable<SseItem<object>> Opening()
        {
            var pending = Response(request, ResponseId, model, created, "in_progress", null, [], null, null);
            yield return Event("response.created", n => new ResponseLifecycleEvent("response.created", n, pending));
            yield return Event("response.in_progress", n => new ResponseLifecycleEvent("response.in_progress", n, pending));
        }

        public override IEnumerable<SseItem<object>> Text(string piece)
        {
            foreach (var e in OpenMessage()) yield return e;
            _text.Append(piece);
            yield return Event("response.output_text.delta", n => new ResponseTextDeltaEvent("response.output_text.delta", n, ItemId, _messageIndex, 0, piece, []));
        }

        public override IEnumerable<SseItem<object>> ToolCalls(AnswerToolCall[] calls)
        {
            foreach (var e in CloseMessage("completed")) yield return e;
            foreach (var call in calls)
            {
                var index = _output.Count;
                var item = FunctionCall(call, index, "completed");
                _output.Add(item);
                yield return Event("response.output_item.added", n => new ResponseItemEvent("response.output_item.added", n, index, FunctionCall(call, index, "in_progress", "")));
                yield return Event("response.function_call_arguments.delta",
                    n => new ResponseArgumentsDeltaEvent("response.function_call_arguments.delta", n, item.Id, index, call.Function.Arguments));
                yield return Event("response.function_call_arguments.done",
                    n => new ResponseArgumentsDoneEvent("response.function_call_arguments.done", n, item.Id, index, call.Function.Name, call.Function.Arguments));
                yield return Event("response.output_item.done", n => new ResponseItemEvent("response.output_item.done", n, index, item));
            }
        }

        public override IEnumerable<SseItem<object>> Closing(string finish, Usage usage)
        {
            var status = Status(finish);
            // An answer with neither text nor calls is still one (empty) message, as in the whole answer.
            if (_output.Count == 0) foreach (var e in OpenMessage()) yield return e;
            foreach (var e in CloseMessage(status)) yield return e;
            var terminal = status == "completed" ? "response.completed" : "response.incomplete";
            var response = Response(request, ResponseId, model, created, status, Incomplete(finish), [.. _output], usage, null);
            yield return Event(terminal, n => new ResponseLifecycleEvent(terminal, n, response));
        }

        public override IEnumerable<SseItem<object>> Failure(ApiError error, string requestId)
        {
            // What was sent stays in the failed response's message item, so a client can show it.
            foreach (var e in CloseMessage("incomplete")) yield return e;
            var response = Response(request, ResponseId, model, created, "failed", null, [.. _output], null, new ResponseErrorBody(error.Code, error.Message));
            yield return Event("error", n => new ResponseErrorEvent("error", n, error.Code, $"{error.Message} (request {requestId})", error.Param));
            yield return Event("response.failed", n => new ResponseLifecycleEvent("response.failed", n, response));
        }

        private IEnumerable<SseItem<object>> OpenMessage()
        {
            if (_messageIndex >= 0) yield break;
            _messageIndex = _output.Count;
            _output.Add(Message(ItemId, "in_progress", null));
            yield return Event("response.output_item.added", n => new ResponseItemEvent("response.output_item.added", n, _messageIndex, _output[_messageIndex]));
            yield return Event("response.content_part.added", n => new ResponsePartEvent("response.content_part.added", n, ItemId, _messageIndex, 0, Part("")));
        }

        private IEnumerable<SseItem<object>> CloseMessage(string status)
        {
            if (_messageIndex < 0 || _output[_messageIndex].Status != "in_progress") yield break;
            var text = _text.ToString();
            var item = Message(ItemId, status, text);
            _output[_messageIndex] = item;
            yield return Event("response.output_text.done", n => new ResponseTextDoneEvent("response.output_text.done", n, ItemId, _messageIndex, 0, text, []));
            yield return Event("response.content_part.done", n => new ResponsePartEvent("response.content_part.done", n, ItemId, _messageIndex, 0, Part(text)));
            yield return Event("response.output_item.done", n => new ResponseItemEvent("response.output_item.done", n, _messageIndex, item));
        }

        private SseItem<object> Event(string type, Func<int, object> payload) => new(payload(_sequence++), type);
    }
}
