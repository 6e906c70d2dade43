using System.Text;
using System.Text.Json;

namespace Cortensor.Api.Routing;

public enum RouterStreamEventKind
{
    /// <summary>Nothing for the client: a keep-alive, a progress status, a chunk with only metadata.</summary>
    None,
    /// <summary>A piece of the answer.</summary>
    Text,
    /// <summary>The router finished with an answer.</summary>
    Done,
    /// <summary>The router failed; see <see cref="RouterStreamEvent.Failure"/>.</summary>
    Failed,
}

public readonly record struct RouterStreamEvent(RouterStreamEventKind Kind, string? Text = null, RouterFailure? Failure = null)
{
    public static readonly RouterStreamEvent None = new(RouterStreamEventKind.None);
    public static readonly RouterStreamEvent Done = new(RouterStreamEventKind.Done);
}

/// <summary>
/// Turns the <c>data:</c> payloads of a router's SSE stream into text pieces, usage, finish reason and task id.
/// A payload that is not JSON is text, as the public clients treat it; a payload with <c>error</c> is a failure;
/// a pending/queued status is progress (the first-token deadline bounds it); <c>[DONE]</c>, or the end of the
/// stream after a finish reason, ends it, and an end without any text is a failure (docs/router-contract.md).
/// One instance per stream; not thread-safe.
/// </summary>
public sealed class RouterStreamReader
{
    private static readonly byte[] DoneMarker = "[DONE]"u8.ToArray();
    private readonly StringBuilder _text = new();

    public string? TaskId { get; private set; }
    public RouterUsageCounts? Usage { get; private set; }
    public string? FinishReason { get; private set; }
    /// <summary>Everything generated so far: what the tokenizer counts when the router reports no usage.</summary>
    public string Generated => _text.ToString();
    public int GeneratedLength => _text.Length;
    public bool HasText => _text.Length > 0;

    public RouterStreamEvent Read(ReadOnlySpan<byte> data)
    {
        if (data.IsEmpty) return RouterStreamEvent.None;
        var trimmed = Trim(data);
        // A whitespace token sent as a plain line is text: dropping it would join the words around it.
        if (trimmed.IsEmpty) return Piece(Encoding.UTF8.GetString(data));
        if (trimmed.SequenceEqual(DoneMarker)) return End();

        if (trimmed[0] is (byte)'{' or (byte)'"')
        {
            try
            {
                using var document = JsonDocument.Parse(trimmed.ToArray());
                return Read(document.RootElement);
            }
            catch (JsonException)
            {
                // Looked like JSON but is not: it is text like any other non-JSON line.
            }
            catch (InvalidOperationException)
            {
                // JSON whose string is not text (an unpaired surrogate escape): not a piece any client could be sent.
                return new RouterStreamEvent(RouterStreamEventKind.Failed, Failure: new RouterFailure(RouterFailureKind.Unreadable, "a chunk's text is not Unicode", TaskId));
            }
        }
        return Piece(Encoding.UTF8.GetString(data));
    }

    /// <summary>The stream closed without <c>[DONE]</c>: an answer if the router said it had finished, a cut otherwise.</summary>
    public RouterStreamEvent Closed() => FinishReason is not null ? End()
        : new RouterStreamEvent(RouterStreamEventKind.Failed, Failure: new RouterFailure(
            HasText ? RouterFailureKind.Cut : RouterFailureKind.NoText, HasText ? "the stream closed before it finished" : "the stream closed without any text", TaskId));

    private RouterStreamEvent Read(JsonElement root)
    {
        if (root.ValueKind == JsonValueKind.String) return Piece(root.GetString() ?? "");
        if (root.ValueKind != JsonValueKind.Object) return Piece(root.GetRawText());

        TaskId ??= RouterJson.TaskId(root);
        if (RouterJson.Error(root) is { } error)
            return new RouterStreamEvent(RouterStreamEventKind.Failed, Failure: new RouterFailure(RouterFailureKind.RouterError, error, TaskId));
        if (RouterJson.Usage(root) is { } usage) Usage = usage;
        if (RouterJson.FinishReason(root) is { } finish) FinishReason = finish;
        if (RouterJson.PendingStatus(root) is not null) return RouterStreamEvent.None;
        return RouterJson.Text(root) is { Length: > 0 } text ? Piece(text) : RouterStreamEvent.None;
    }

    private RouterStreamEvent Piece(string text)
    {
        if (text.Length == 0) return RouterStreamEvent.None;
        _text.Append(text);
        return new RouterStreamEvent(RouterStreamEventKind.Text, text);
    }

    private RouterStreamEvent End() => HasText
        ? RouterStreamEvent.Done
        : new RouterStreamEvent(RouterStreamEventKind.Failed, Failure: new RouterFailure(RouterFailureKind.NoText, "the stream finished without any text", TaskId));

    private static ReadOnlySpan<byte> Trim(ReadOnlySpan<byte> data)
    {
        var start = 0;
        var end = data.Length;
        while (start < end && data[start] is (byte)' ' or (byte)'\t' or (byte)'\r' or (byte)'\n') start++;
        while (end > start && data[end - 1] is (byte)' ' or (byte)'\t' or (byte)'\r' or (byte)'\n') end--;
        return data[start..end];
    }
}
