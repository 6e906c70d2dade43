using Cortensor.Api.Catalog;
using Cortensor.Api.Routing;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Hosting;
using Microsoft.AspNetCore.Http;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Logging.Abstractions;
using Microsoft.Extensions.Options;

namespace Cortensor.Tests.Unit;

/// <summary>A router that sends more than any answer, or an error body without end, costs the Api a bounded read.</summary>
public sealed class HostileRouterTests : IAsyncLifetime
{
    private WebApplication _routers = null!;
    private string _base = "";

    public async Task InitializeAsync()
    {
        var builder = WebApplication.CreateSlimBuilder();
        builder.WebHost.UseUrls("http://127.0.0.1:0");
        builder.Logging.ClearProviders();
        _routers = builder.Build();
        _routers.MapPost("/{behaviour}/api/v1/completions/{session}", async (string behaviour, HttpContext http) =>
        {
            if (behaviour == "answers") return Results.Text("\"Hello from the router\"", "application/json");
            // Four megabytes of one JSON string: a well-formed answer, only far too long.
            http.Response.ContentType = "application/json";
            await http.Response.WriteAsync("\"" + new string('x', 4 * 1024 * 1024) + "\"");
            return Results.Empty;
        });
        await _routers.StartAsync();
        _base = _routers.Urls.Single();
    }

    public async Task DisposeAsync() => await _routers.DisposeAsync();

    [Fact]
    public async Task AnAnswerOverTheLimitIsACutAnswerAndTheNextRouterAnswers()
    {
        var pool = new CatalogPool("pool-h", Draining: false, [new CatalogRouter("router-huge", "pool-h", $"{_base}/huge", [1]), new CatalogRouter("router-ok", "pool-h", $"{_base}/answers", [1])]);
        var options = Options.Create(new RoutingOptions { RouterToken = "t", MaxAnswerBytes = 1024 * 1024 });
        using var client = new RouterHttpClient(options);
        var forwarder = new RouterForwarder(new RouterBalancer(options, TimeProvider.System), client, options, NullLogger<RouterForwarder>.Instance);
        var model = new CatalogModel("gpt-oss-20b", "gpt-oss-20b", "gpt-oss", true, 0.1m, 0.1m, 8192, "pool-h", "gpt-oss-20b", DateTimeOffset.UnixEpoch);

        // Whichever router is tried first, the answer is the one that fits.
        for (var i = 0; i < 4; i++)
        {
            var (response, error) = await forwarder.SendAsync(pool, model, new RouterCompletionRequest("Say hello", 16, null, null, false, "req_h", null), new RouterWait(), CancellationToken.None);
            Assert.Null(error);
            using (response) Assert.Equal("Hello from the router", response!.Answer!.Text);
        }
    }

    [Fact(Timeout = 30_000)]
    public async Task AnErrorBodyWithoutEndIsReadForTwoKilobytesOrTwoSeconds()
    {
        using var content = new StreamContent(new EndlessStream());
        var started = System.Diagnostics.Stopwatch.StartNew();
        var detail = await RouterErrorDetail.ReadAsync(content, CancellationToken.None);
        Assert.Equal(RouterErrorDetail.MaxBytes, detail.Length);
        Assert.True(started.Elapsed < TimeSpan.FromSeconds(20), "the read stopped at its size, not at the test's timeout");

        using var silent = new StreamContent(new SilentStream());
        Assert.Equal("", await RouterErrorDetail.ReadAsync(silent, CancellationToken.None)); // the two seconds end it
    }

    // Without the limit, the parser holds the endless line until memory runs out: the timeout tells that from an answer.
    [Fact(Timeout = 60_000)]
    public async Task AStreamLineWithoutEndIsACutAfterTheLimitNotAnEndlessBuffer()
    {
        var body = new PrefixedStream("data: {\"choices\":[{\"text\":\"hi\"}]}\n\ndata: "u8.ToArray(), new EndlessStream());
        await using var events = RouterEventStream.Over(body, TimeSpan.FromSeconds(30), 1024 * 1024, CancellationToken.None);
        var first = await events.FirstAsync(TimeSpan.FromSeconds(30), CancellationToken.None);
        Assert.Equal((RouterStreamEventKind.Text, "hi"), (first.Kind, first.Text));
        Assert.Equal(RouterStreamEventKind.Text, (await events.NextAsync(CancellationToken.None)).Kind); // the piece read ahead
        var cut = await events.NextAsync(CancellationToken.None);
        Assert.Equal(RouterStreamEventKind.Failed, cut.Kind);
        Assert.Equal(RouterFailureKind.Cut, cut.Failure!.Kind);
    }

    private sealed class PrefixedStream(byte[] prefix, Stream rest) : ReadOnlyStream
    {
        private int _at;
        public override int Read(byte[] buffer, int offset, int count)
        {
            if (_at >= prefix.Length) return rest.Read(buffer, offset, count);
            var n = Math.Min(count, prefix.Length - _at);
            prefix.AsSpan(_at, n).CopyTo(buffer.AsSpan(offset));
            _at += n;
            return n;
        }
    }

    private sealed class EndlessStream : ReadOnlyStream
    {
        public override int Read(byte[] buffer, int offset, int count) { buffer.AsSpan(offset, count).Fill((byte)'e'); return count; }
    }

    /// <summary>A router that sent its status and then nothing: each read waits until it is cancelled.</summary>
    private sealed class SilentStream : ReadOnlyStream
    {
        public override int Read(byte[] buffer, int offset, int count) => throw new NotSupportedException();
        public override async ValueTask<int> ReadAsync(Memory<byte> buffer, CancellationToken ct = default)
        {
            await Task.Delay(Timeout.Infinite, ct);
            return 0;
        }
    }

    /// <summary>What every stream of these tests shares: read-only, unseekable.</summary>
    private abstract class ReadOnlyStream : Stream
    {
        public override bool CanRead => true;
        public override bool CanSeek => false;
        public override bool CanWrite => false;
        public override long Length => throw new NotSupportedException();
        public override long Position { get => 0; set => throw new NotSupportedException(); }
        public override void Flush() { }
        public override long Seek(long offset, SeekOrigin origin) => throw new NotSupportedException();
        public override void SetLength(long value) => throw new NotSupportedException();
        public override void Write(byte[] buffer, int offset, int count) => throw new NotSupportedException();
    }
}
