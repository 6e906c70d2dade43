namespace Cortensor.Api.Idempotency;

/// <summary>
/// The response body on its way to the client, with a copy kept (up to a bound) to store for replays.
/// Hand-written: ASP.NET Core has no tee for response bodies (its response-caching middleware keeps a
/// private one of the same kind). A whole answer (one with a Content-Length) is held back until
/// <see cref="ReleaseAsync"/>: sent at once, it would reach the client complete before its record is stored,
/// and a retry sent the moment it arrived would find the key still in progress. A stream flows as it is written.
/// </summary>
internal sealed class CapturingStream(Stream inner, HttpResponse response, int limit) : Stream
{
    private MemoryStream? _copy = new();
    private MemoryStream? _held;

    private bool Holding => _held is not null || response.ContentLength is not null;

    /// <summary>Sends what was held back (a whole answer) to the client.</summary>
    public async Task ReleaseAsync(CancellationToken cancellationToken)
    {
        if (_held is not { } held) return;
        _held = null;
        await inner.WriteAsync(held.GetBuffer().AsMemory(0, (int)held.Length), cancellationToken);
        await inner.FlushAsync(cancellationToken);
    }

    /// <summary>The copy, or null when the answer went past the bound.</summary>
    public byte[]? Captured => _copy?.ToArray();

    private void Keep(ReadOnlySpan<byte> buffer)
    {
        if (_copy is null) return;
        if (_copy.Length + buffer.Length > limit)
        {
            _copy = null;
            return;
        }
        _copy.Write(buffer);
    }

    public override void Write(byte[] buffer, int offset, int count) => Write(buffer.AsSpan(offset, count));

    public override void Write(ReadOnlySpan<byte> buffer)
    {
        Keep(buffer);
        if (Holding) (_held ??= new MemoryStream()).Write(buffer);
        else inner.Write(buffer);
    }

    public override Task WriteAsync(byte[] buffer, int offset, int count, CancellationToken cancellationToken) =>
        WriteAsync(buffer.AsMemory(offset, count), cancellationToken).AsTask();

    public override ValueTask WriteAsync(ReadOnlyMemory<byte> buffer, CancellationToken cancellationToken = default)
    {
        Keep(buffer.Span);
        if (!Holding) return inner.WriteAsync(buffer, cancellationToken);
        (_held ??= new MemoryStream()).Write(buffer.Span);
        return ValueTask.CompletedTask;
    }

    public override void Flush()
    {
        if (!Holding) inner.Flush();
    }

    public override Task FlushAsync(CancellationToken cancellationToken) => Holding ? Task.CompletedTask : inner.FlushAsync(cancellationToken);

    public override bool CanRead => false;
    public override bool CanSeek => false;
    public override bool CanWrite => true;
    public override long Length => throw new NotSupportedException();
    public override long Position { get => throw new NotSupportedException(); set => throw new NotSupportedException(); }
    public override int Read(byte[] buffer, int offset, int count) => throw new NotSupportedException();
    public override long Seek(long offset, SeekOrigin origin) => throw new NotSupportedException();
    public override void SetLength(long value) => throw new NotSupportedException();
}
