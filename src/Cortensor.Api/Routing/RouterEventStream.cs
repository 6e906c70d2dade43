using System.Net.ServerSentEvents;

namespace Cortensor.Api.Routing;

/// <summary>
/// The events of one router answer, as the hot path consumes them: text pieces, then Done or Failed. Built over
/// a router's SSE body (with a silence deadline between events), or over a complete answer (a router that
/// answers a streamed request with one JSON body). Read by one consumer; never throws for the router's faults.
/// </summary>
public sealed class RouterEventStream : IAsyncDisposable
{
    private readonly Queue<RouterStreamEvent> _ahead = new();
    private readonly Stream? _body;
    private readonly IAsyncEnumerator<SseItem<byte[]>>? _items;
    private readonly CancellationTokenSource? _silence;
    private readonly TimeSpan _idle;
    private bool _ended;

    public RouterStreamReader Reader { get; } = new();

    private RouterEventStream(Stream body, TimeSpan idle, CancellationToken ct)
    {
        _body = body;
        _idle = idle;
        // One token for the client going away and for the router falling silent: the parser's reads are
        // cancelled themselves, so it is never disposed with a read still pending.
        _silence = CancellationTokenSource.CreateLinkedTokenSource(ct);
        _items = SseParser.Create(body, (_, data) => data.ToArray()).EnumerateAsync(_silence.Token).GetAsyncEnumerator(_silence.Token);
    }

    private RouterEventStream(RouterAnswer answer)
    {
        _idle = Timeout.InfiniteTimeSpan;
        _ahead.Enqueue(new RouterStreamEvent(RouterStreamEventKind.Text, answer.Text));
        _ahead.Enqueue(RouterStreamEvent.Done);
        Answer = answer;
    }

    /// <summary>Set when the router answered in one body: its usage, finish reason and task id.</summary>
    public RouterAnswer? Answer { get; }
    public string? TaskId => Answer?.TaskId ?? Reader.TaskId;
    public RouterUsageCounts? Usage => Answer?.Usage ?? Reader.Usage;
    public string? FinishReason => Answer?.FinishReason ?? Reader.FinishReason;
    public string Generated => Answer?.Text ?? Reader.Generated;
    public int GeneratedLength => Answer?.Text.Length ?? Reader.GeneratedLength;

    /// <summary>
    /// Over a router's SSE body. No line of it may be longer than <paramref name="longestLine"/> bytes: the parser holds a
    /// line until it ends, so one that never ends (a gigabyte sent as a single <c>data:</c> line took 1.8 GB) is a cut.
    /// </summary>
    public static RouterEventStream Over(Stream body, TimeSpan idle, int longestLine, CancellationToken ct) =>
        new(new BoundedLines(body, longestLine), idle, ct);

    public static RouterEventStream Of(RouterAnswer answer) => new(answer);

    /// <summary>
    /// Reads ahead to the first piece of text (or the end), within <paramref name="deadline"/>, and keeps what it
    /// read for <see cref="NextAsync"/>. A failure here has sent nothing to the client, so the request can move on.
    /// </summary>
    public async ValueTask<RouterStreamEvent> FirstAsync(TimeSpan deadline, CancellationToken ct)
    {
        while (true)
        {
            var next = await ReadAsync(deadline, ct);
            if (next.Kind == RouterStreamEventKind.None) continue;
            if (next.Kind == RouterStreamEventKind.Text) _ahead.Enqueue(next);
            return next;
        }
    }

    /// <summary>The next piece of text, or the end (Done or Failed); the client going away throws.</summary>
    public async ValueTask<RouterStreamEvent> NextAsync(CancellationToken ct)
    {
        if (_ahead.TryDequeue(out var buffered)) return buffered;
        while (true)
        {
            var next = await ReadAsync(_idle, ct);
            if (next.Kind != RouterStreamEventKind.None) return next;
        }
    }

    private async ValueTask<RouterStreamEvent> ReadAsync(TimeSpan wait, CancellationToken ct)
    {
        if (_items is null || _ended) return _ahead.TryDequeue(out var e) ? e : RouterStreamEvent.Done;
        bool more;
        try
        {
            _silence!.CancelAfter(wait);
            more = await _items.MoveNextAsync();
            _silence.CancelAfter(Timeout.InfiniteTimeSpan); // time spent writing to the client is not silence
        }
        catch (OperationCanceledException) when (!ct.IsCancellationRequested)
        {
            return End(new RouterStreamEvent(RouterStreamEventKind.Failed, Failure: new RouterFailure(RouterFailureKind.Timeout,
                Reader.HasText ? $"no event for {wait.TotalSeconds:0.#} s" : $"no text within {wait.TotalSeconds:0.#} s", Reader.TaskId)));
        }
        catch (Exception ex) when (ex is HttpRequestException or IOException && !ct.IsCancellationRequested)
        {
            return End(Reader.Closed());
        }
        if (!more) return End(Reader.Closed());
        var read = Reader.Read(_items.Current.Data);
        return read.Kind is RouterStreamEventKind.Done or RouterStreamEventKind.Failed ? End(read) : read;
    }

    private RouterStreamEvent End(RouterStreamEvent last)
    {
        _ended = true;
        return last;
    }

    public async ValueTask DisposeAsync()
    {
        if (_items is not null) await _items.DisposeAsync();
        if (_body is not null) await _body.DisposeAsync();
        _silence?.Dispose();
    }
}

/// <summary>A read-only stream that fails (an <see cref="IOException"/>, which the reader takes for a cut) once a line runs past its limit.</summary>
internal sealed class BoundedLines(Stream inner, int longestLine) : Stream
{
    private long _sinceNewline;

    public override async ValueTask<int> ReadAsync(Memory<byte> buffer, CancellationToken ct = default)
    {
        var n = await inner.ReadAsync(buffer, ct);
        return Counted(buffer.Span[..n]);
    }

    public override Task<int> ReadAsync(byte[] buffer, int offset, int count, CancellationToken ct) => ReadAsync(buffer.AsMemory(offset, count), ct).AsTask();
    public override int Read(byte[] buffer, int offset, int count) => Counted(buffer.AsSpan(offset, inner.Read(buffer, offset, count)));

    private int Counted(ReadOnlySpan<byte> read)
    {
        var last = read.LastIndexOf((byte)'\n');
        _sinceNewline = last < 0 ? _sinceNewline + read.Length : read.Length - last - 1;
        if (_sinceNewline > longestLine) throw new IOException($"a line of the router's stream is longer than {longestLine} bytes");
        return read.Length;
    }
    public override bool CanRead => true;
    public override bool CanSeek => false;
    public override bool CanWrite => false;
    public override long Length => throw new NotSupportedException();
    public override long Position { get => throw new NotSupportedException(); set => throw new NotSupportedException(); }
    public override void Flush() { }
    public override long Seek(long offset, SeekOrigin origin) => throw new NotSupportedException();
    public override void SetLength(long value) => throw new NotSupportedException();
    public override void Write(byte[] buffer, int offset, int count) => throw new NotSupportedException();

    protected override void Dispose(bool disposing)
    {
        if (disposing) inner.Dispose();
        base.Dispose(disposing);
    }

    public override ValueTask DisposeAsync() => inner.DisposeAsync();
}
