namespace Cortensor.Api.Inference;

/// <summary>The router's text-completion answers to OpenAI objects, under the public model name.</summary>
public static class ResponseNormaliser
{
    /// <summary>Routers report eos/stop/length/max_tokens/...; OpenAI clients know stop, length, content_filter.</summary>
    public static string FinishReason(string? router) => router?.ToLowerInvariant() switch
    {
        "length" or "max_tokens" or "max_length" => "length",
        "content_filter" or "filtered" => "content_filter",
        _ => "stop",
    };

    /// <summary>
    /// Where the first stop sequence in <paramref name="text"/> starts (the answer is cut there; the router does not know
    /// about them) and ends (the model had generated up to there, which is what is billed); (-1, -1) when none occurs.
    /// </summary>
    public static (int Cut, int End) FindStop(ReadOnlySpan<char> text, IReadOnlyList<string> stop)
    {
        var (cut, end) = (-1, -1);
        foreach (var s in stop)
        {
            var at = text.IndexOf(s, StringComparison.Ordinal);
            if (at >= 0 && (cut < 0 || at < cut || (at == cut && at + s.Length < end))) (cut, end) = (at, at + s.Length);
        }
        return (cut, end);
    }

    public static ChatCompletion Chat(string id, string model, long created, string text, string finishReason, Usage usage) =>
        new(id, "chat.completion", created, model, [new ChatChoice(0, new AssistantMessage("assistant", text), finishReason, null)], usage, null);

    public static TextCompletion Text(string id, string model, long created, string text, string finishReason, Usage usage) =>
        new(id, "text_completion", created, model, [new TextChoice(text, 0, null, finishReason)], usage);
}

/// <summary>
/// Applies stop sequences to a stream without waiting for the whole answer: only the last
/// (longest stop - 1) characters are held back, because they could be the start of a stop sequence.
/// </summary>
public sealed class StreamingStopFilter(IReadOnlyList<string> stop)
{
    private readonly int _holdBack = stop.Count == 0 ? 0 : stop.Max(s => s.Length) - 1;
    private string _pending = "";
    private int _pushed;

    public bool Stopped => StopEnd is not null;

    /// <summary>Once stopped: how many characters of all that was pushed come before the end of the stop sequence.</summary>
    public int? StopEnd { get; private set; }

    /// <summary>Returns the text that can be sent now.</summary>
    public string Push(string piece)
    {
        if (Stopped) return "";
        if (stop.Count == 0) return piece;
        var start = _pushed - _pending.Length;
        _pushed += piece.Length;
        var text = _pending + piece;
        var (cut, end) = ResponseNormaliser.FindStop(text, stop);
        if (cut >= 0)
        {
            StopEnd = start + end;
            _pending = "";
            return text[..cut];
        }
        var safe = Math.Max(0, text.Length - _holdBack);
        _pending = text[safe..];
        return text[..safe];
    }

    /// <summary>What is still held back once the router has finished.</summary>
    public string Flush()
    {
        var rest = Stopped ? "" : _pending;
        _pending = "";
        return rest;
    }
}
