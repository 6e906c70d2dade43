using System.Text.Json;
using Cortensor.Api.Catalog;
using Cortensor.Api.Errors;
using Cortensor.Api.Infrastructure;

namespace Cortensor.Api.Inference;

/// <summary>
/// One public API shape (chat completions, text completions, responses): how its body is read, how its prompt
/// reaches the router, and what its answers and stream chunks look like. The hot path is the same
/// for every dialect and never branches on which one it serves.
/// </summary>
public abstract class Dialect
{
    public static readonly Dialect Chat = new ChatDialect();
    public static readonly Dialect Text = new TextDialect();
    public static readonly Dialect Responses = new ResponsesDialect();

    /// <summary>The prefix of completion ids (chatcmpl-…, cmpl-…).</summary>
    public abstract string IdPrefix { get; }

    /// <summary>Deserialises and validates the whole body; a null body is the caller's error.</summary>
    public abstract (InferenceRequest? Request, ApiError? Error) Read(ReadOnlySpan<byte> json);

    /// <summary>The single prompt string a router session takes.</summary>
    public abstract string Render(CatalogModel model, InferenceRequest request);

    public abstract IResult Answer(InferenceRequest request, string id, string model, long created, string text, string finish, Usage usage);

    /// <summary>The events of one streamed answer; chat and text send chunks built by the three methods below.</summary>
    public virtual StreamShape Stream(string id, long created, string model, InferenceRequest request) => new ChunkStream(this, id, created, model, request);

    /// <summary>What a stream opens with, if anything (chat announces the assistant role).</summary>
    public abstract object? Opening(string id, long created, string model);

    /// <summary>A piece of text, or (with <paramref name="finish"/>) the end of the answer.</summary>
    public abstract object Delta(string id, long created, string model, string? text, string? finish);

    public abstract object UsageChunk(string id, long created, string model, Usage usage);

    /// <summary>A whole answer read as the request asked (tool calls or a checked JSON document). Only chat takes tools.</summary>
    public virtual IResult Answer(InferenceRequest request, string id, string model, long created, StructuredAnswer answer, string finish, Usage usage) =>
        Answer(request, id, model, created, answer.Content ?? "", finish, usage);

    /// <summary>The stream chunks of an answer's tool calls, before the chunk that ends the answer.</summary>
    public virtual IEnumerable<object> ToolCallDeltas(string id, long created, string model, AnswerToolCall[] calls) => [];

    protected static (InferenceRequest?, ApiError?) Validated(ApiError? error, InferenceRequest? request) =>
        error is not null ? (null, error) : (request, null);

    private sealed class ChatDialect : Dialect
    {
        public override string IdPrefix => "chatcmpl";

        public override (InferenceRequest?, ApiError?) Read(ReadOnlySpan<byte> json)
        {
            var request = JsonSerializer.Deserialize(json, PortalJsonContext.Default.ChatCompletionRequest);
            if (request is null) return (null, ApiError.MalformedJson(null, "the body must be a JSON object."));
            return Validated(RequestValidation.Validate(request, out var r), r);
        }

        public override string Render(CatalogModel model, InferenceRequest request) => PromptTemplates.Render(model.Family, request);

        public override IResult Answer(InferenceRequest request, string id, string model, long created, string text, string finish, Usage usage) =>
            JsonAnswer.Of(ResponseNormaliser.Chat(id, model, created, text, finish, usage), PortalJsonContext.Default.ChatCompletion);

        public override IResult Answer(InferenceRequest request, string id, string model, long created, StructuredAnswer answer, string finish, Usage usage) =>
            JsonAnswer.Of(new ChatCompletion(id, "chat.completion", created, model,
                [new ChatChoice(0, new AssistantMessage("assistant", answer.Content, answer.Calls), finish, null)], usage, null),
                PortalJsonContext.Default.ChatCompletion);

        /// <summary>As OpenAI streams calls: index, id, type and name with empty arguments first, then pieces of the arguments.</summary>
        public override IEnumerable<object> ToolCallDeltas(string id, long created, string model, AnswerToolCall[] calls)
        {
            const int Piece = 24;
            for (var i = 0; i < calls.Length; i++)
            {
                var call = calls[i];
                yield return Chunk(id, created, model, new ChunkDelta(null, null, [new ChunkToolCall(i, call.Id, "function", new ChunkFunction(call.Function.Name, ""))]), null);
                var args = call.Function.Arguments;
                for (var at = 0; at < args.Length; at += Piece)
                    yield return Chunk(id, created, model,
                        new ChunkDelta(null, null, [new ChunkToolCall(i, null, null, new ChunkFunction(null, args.Substring(at, Math.Min(Piece, args.Length - at))))]), null);
            }
        }

        public override object? Opening(string id, long created, string model) => Chunk(id, created, model, new ChunkDelta("assistant", ""), null);

        public override object Delta(string id, long created, string model, string? text, string? finish) =>
            Chunk(id, created, model, finish is null ? new ChunkDelta(null, text) : new ChunkDelta(null, null), finish);

        public override object UsageChunk(string id, long created, string model, Usage usage) =>
            new ChatCompletionChunk(id, "chat.completion.chunk", created, model, [], usage);

        private static ChatCompletionChunk Chunk(string id, long created, string model, ChunkDelta delta, string? finish) =>
            new(id, "chat.completion.chunk", created, model, [new ChunkChoice(0, delta, finish)], null);
    }

    private sealed class TextDialect : Dialect
    {
        public override string IdPrefix => "cmpl";

        public override (InferenceRequest?, ApiError?) Read(ReadOnlySpan<byte> json)
        {
            var request = JsonSerializer.Deserialize(json, PortalJsonContext.Default.CompletionRequest);
            if (request is null) return (null, ApiError.MalformedJson(null, "the body must be a JSON object."));
            return Validated(RequestValidation.Validate(request, out var r), r);
        }

        public override string Render(CatalogModel model, InferenceRequest request) => request.RawPrompt!;

        public override IResult Answer(InferenceRequest request, string id, string model, long created, string text, string finish, Usage usage) =>
            JsonAnswer.Of(ResponseNormaliser.Text(id, model, created, text, finish, usage), PortalJsonContext.Default.TextCompletion);

        public override object? Opening(string id, long created, string model) => null;

        public override object Delta(string id, long created, string model, string? text, string? finish) =>
            new TextCompletion(id, "text_completion", created, model, [new TextChoice(text ?? "", 0, null, finish)], null);

        public override object UsageChunk(string id, long created, string model, Usage usage) =>
            new TextCompletion(id, "text_completion", created, model, [], usage);
    }
}
