using System.Net.ServerSentEvents;
using Cortensor.Api.Errors;

namespace Cortensor.Api.Inference;

/// <summary>
/// The server-sent events of one streamed answer in its dialect's shape. A new one per stream, because
/// some shapes number their events or repeat the whole text at the end (the Responses API does both).
/// </summary>
public abstract class StreamShape
{
    /// <summary>Written as the SSE terminator <c>data: [DONE]</c>.</summary>
    public static readonly object Done = new();

    /// <summary>What the stream opens with, before the first piece of text.</summary>
    public abstract IEnumerable<SseItem<object>> Opening();

    /// <summary>A piece of text, already past the stop filter.</summary>
    public abstract IEnumerable<SseItem<object>> Text(string piece);

    /// <summary>The tool calls of an answer read whole (<see cref="StructuredStream"/>), before its end.</summary>
    public abstract IEnumerable<SseItem<object>> ToolCalls(AnswerToolCall[] calls);

    /// <summary>The end of a whole answer: its finish reason and what it was charged.</summary>
    public abstract IEnumerable<SseItem<object>> Closing(string finish, Usage usage);

    /// <summary>The end of an answer that failed after its first byte was sent.</summary>
    public abstract IEnumerable<SseItem<object>> Failure(ApiError error, string requestId);
}

/// <summary>Chat and text completions: one chunk per piece, an optional usage chunk, then [DONE].</summary>
internal sealed class ChunkStream(Dialect dialect, string id, long created, string model, InferenceRequest request) : StreamShape
{
    public override IEnumerable<SseItem<object>> Opening()
    {
        if (dialect.Opening(id, created, model) is { } opening) yield return new(opening);
    }

    public override IEnumerable<SseItem<object>> Text(string piece)
    {
        yield return new(dialect.Delta(id, created, model, piece, null));
    }

    public override IEnumerable<SseItem<object>> ToolCalls(AnswerToolCall[] calls) =>
        dialect.ToolCallDeltas(id, created, model, calls).Select(chunk => new SseItem<object>(chunk));

    public override IEnumerable<SseItem<object>> Closing(string finish, Usage usage)
    {
        yield return new(dialect.Delta(id, created, model, null, finish));
        if (request.IncludeUsage) yield return new(dialect.UsageChunk(id, created, model, usage));
        yield return new(Done);
    }

    public override IEnumerable<SseItem<object>> Failure(ApiError error, string requestId)
    {
        yield return new(error.ToEnvelope(requestId));
    }
}
