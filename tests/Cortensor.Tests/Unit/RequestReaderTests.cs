using System.IO.Pipelines;
using System.Text;
using Cortensor.Api.Inference;
using Microsoft.AspNetCore.Http;
using Microsoft.AspNetCore.Http.Features;

namespace Cortensor.Tests.Unit;

/// <summary>
/// Bodies whose strings cannot become text, on every dialect and both ways a body arrives (whole in one piece, or
/// gathered from pieces): a 400 invalid_json naming the problem, never a 500 from wherever the text is first read.
/// </summary>
public class RequestReaderTests
{
    public static readonly TheoryData<string> Deliveries = new() { "whole", "pieces" };

    public static TheoryData<string, string, string> NotUnicode()
    {
        var data = new TheoryData<string, string, string>();
        // Each dialect keeps some of its text as JSON until validation reads it: chat content (string and parts),
        // the Responses input, and a plain prompt.
        string[] bodies =
        [
            """{"model":"gpt-oss-20b","messages":[{"role":"user","content":"<x>"}]}""",
            """{"model":"gpt-oss-20b","messages":[{"role":"user","content":[{"type":"text","text":"<x>"}]}]}""",
            """{"model":"gpt-oss-20b","input":"<x>"}""",
            """{"model":"gpt-oss-20b","input":[{"role":"user","content":[{"type":"input_text","text":"<x>"}]}]}""",
            """{"model":"gpt-oss-20b","prompt":"<x>"}""",
            """{"model":"gpt-oss-20b","messages":[{"role":"user","content":"hi"}],"tools":[{"type":"function","function":{"name":"f","description":"<x>","parameters":{"type":"object"}}}]}""",
        ];
        string[] strings = [@"\ud800", @"x\udc00y", @"\ud83d\ud83d", @"\uDBFF", "<FF>", "caf<FF>"];
        foreach (var body in bodies)
            foreach (var text in strings)
                data.Add(DialectOf(body), body.Replace("<x>", text), "whole");
        data.Add("chat", bodies[0].Replace("<x>", @"\ud800"), "pieces");
        data.Add("responses", bodies[2].Replace("<x>", @"\udfff"), "pieces");
        return data;
    }

    [Theory, MemberData(nameof(NotUnicode))]
    public async Task AStringThatIsNotUnicodeTextIsAnInvalidJson400(string dialect, string body, string delivery)
    {
        var bytes = Bytes(body);
        var (request, error) = await ReadAsync(Dialects[dialect], bytes, delivery);
        Assert.Null(request);
        Assert.Equal((400, "invalid_json"), (error?.Status, error?.Code));
        Assert.Contains("not Unicode text", error!.Message, StringComparison.Ordinal);
    }

    [Theory]
    [InlineData(@"a pair: \ud83d\ude00")]
    [InlineData(@"an escaped backslash before u: \\ud800")]
    [InlineData("plain UTF-8: héllo 😀")]
    [InlineData(@"escaped non-surrogates: \u00e9\u4e2d")]
    public async Task TextThatIsUnicodeHoweverItIsEscapedIsRead(string text)
    {
        foreach (var delivery in new[] { "whole", "pieces" })
        {
            var body = $$"""{"model":"gpt-oss-20b","messages":[{"role":"user","content":"{{text}}"}]}""";
            var (request, error) = await ReadAsync(Dialect.Chat, Encoding.UTF8.GetBytes(body), delivery);
            Assert.Null(error);
            Assert.NotNull(request);
        }
    }

    /// <summary>
    /// A message's content is read straight to text when it is a string, and kept as JSON otherwise: every shape reads
    /// to the same text, or is refused naming the same field, as when the whole content was kept as JSON.
    /// </summary>
    [Theory]
    [InlineData("user", "\"plain\"", "plain", null)]
    [InlineData("user", "\"esc\\u0061ped \\\"quote\\\" \\u003c|end|\\u003e\"", "escaped \"quote\" <|end|>", null)]
    [InlineData("user", "\"\"", "", null)]
    [InlineData("user", "[{\"type\":\"text\",\"text\":\"one\"},{\"type\":\"text\",\"text\":\"two\"}]", "one\ntwo", null)]
    [InlineData("user", "null", null, "messages[0].content")]
    [InlineData("user", "[]", null, "messages[0].content")]
    [InlineData("user", "42", null, "messages[0].content")]
    [InlineData("user", "{\"text\":\"x\"}", null, "messages[0].content")]
    [InlineData("user", "true", null, "messages[0].content")]
    [InlineData("user", "[{\"type\":\"image_url\"}]", null, "messages[0].content[0].type")]
    [InlineData("user", "[{\"type\":\"text\"}]", null, "messages[0].content[0].text")]
    [InlineData("assistant", "null", "", null)]
    [InlineData("assistant", "[]", "", null)]
    public async Task EveryShapeOfMessageContentReadsToItsTextOrNamesTheField(string role, string content, string? text, string? field)
    {
        foreach (var delivery in new[] { "whole", "pieces" })
        {
            var body = $$"""{"model":"gpt-oss-20b","messages":[{"role":"{{role}}","content":{{content}}}]}""";
            var (request, error) = await ReadAsync(Dialect.Chat, Encoding.UTF8.GetBytes(body), delivery);
            if (field is null)
            {
                Assert.Null(error);
                Assert.Equal(text, Assert.Single(request!.Messages).Content);
            }
            else
            {
                Assert.Null(request);
                Assert.Equal((400, field), (error?.Status, error?.Param));
            }
        }
    }

    [Theory]
    [InlineData("\"text with \\\" and \\u0000\"")]
    [InlineData("[{\"type\":\"text\",\"text\":\"a\"}]")]
    [InlineData("null")]
    [InlineData("7")]
    public void AMessagesContentIsWrittenBackAsItWasSent(string content)
    {
        var json = $$"""{"role":"user","content":{{content}}}""";
        var message = System.Text.Json.JsonSerializer.Deserialize(json, Cortensor.Api.Infrastructure.PortalJsonContext.Default.ChatMessage)!;
        var written = System.Text.Json.JsonSerializer.Serialize(message.Content, Cortensor.Api.Infrastructure.PortalJsonContext.Default.MessageContent);
        Assert.Equal(System.Text.Json.Nodes.JsonNode.Parse(content)?.ToJsonString(), System.Text.Json.Nodes.JsonNode.Parse(written)?.ToJsonString());
    }

    [Theory, MemberData(nameof(Deliveries))]
    public async Task ABodyThatStartsWithAByteOrderMarkIsRead(string delivery)
    {
        var body = Encoding.UTF8.GetPreamble().Concat(Encoding.UTF8.GetBytes("""{"model":"gpt-oss-20b","prompt":"hi"}""")).ToArray();
        var (request, error) = await ReadAsync(Dialect.Text, body, delivery);
        Assert.Null(error);
        Assert.NotNull(request);
    }

    [Theory, MemberData(nameof(Deliveries))]
    public async Task ABodyThatIsNotJsonIsStillNamedAsSuchWhenItHasASurrogateEscape(string delivery)
    {
        var (request, error) = await ReadAsync(Dialect.Chat, Encoding.UTF8.GetBytes("""{"model":"gpt-oss-20b","messages":[{"content":"\ud83d\ude00"}]""" + "}}"), delivery);
        Assert.Null(request);
        Assert.Equal((400, "invalid_json"), (error?.Status, error?.Code));
        Assert.DoesNotContain("Unicode", error!.Message, StringComparison.Ordinal);
    }

    [Fact]
    public async Task ALongConversationArrivingInPiecesOfAnySizeIsReadAsWhenWholeAndAByteOverTheLimitIsA413()
    {
        var random = new Random(33);
        var messages = Enumerable.Range(0, 40).Select(i => new
        {
            role = i % 2 == 0 ? "user" : "assistant",
            content = string.Concat(Enumerable.Range(0, random.Next(50, 600)).Select(_ => Letters[random.Next(Letters.Length)])),
        });
        // Sent as UTF-8, not escaped: the pieces cut characters of two, three and four bytes apart.
        var body = System.Text.Json.JsonSerializer.SerializeToUtf8Bytes(new { model = "gpt-oss-20b", messages },
            new System.Text.Json.JsonSerializerOptions { Encoder = System.Text.Encodings.Web.JavaScriptEncoder.UnsafeRelaxedJsonEscaping });
        Assert.InRange(body.Length, 16 * 1024, 1 << 20);
        var whole = (await ReadAsync(Dialect.Chat, body, "whole")).Request!;

        foreach (var largest in new[] { 1, 700, 5_000, 70_000 })
        {
            var (request, error) = await ReadInPiecesAsync(body, largest, limit: body.Length, random);
            Assert.Null(error);
            Assert.Equal(whole.Messages.Select(m => (m.Role, m.Content)), request!.Messages.Select(m => (m.Role, m.Content)));

            (request, error) = await ReadInPiecesAsync(body, largest, limit: body.Length - 1, random);
            Assert.Null(request);
            Assert.Equal(413, error?.Status);
        }
    }

    private static readonly string[] Letters = ["w", "ö", "r", "d", " ", "😀", "中", "\n"];

    /// <summary>The body written in pieces of 1 to <paramref name="largest"/> bytes, each handed over before the next is written.</summary>
    private static async Task<RequestRead> ReadInPiecesAsync(byte[] body, int largest, long limit, Random random)
    {
        var http = new DefaultHttpContext();
        http.Request.ContentType = "application/json";
        var pipe = new Pipe();
        http.Features.Set<IRequestBodyPipeFeature>(new BodyPipe(pipe.Reader));
        var reading = RequestReader.ReadAsync(http, Dialect.Chat, limit);
        for (var at = 0; at < body.Length && !reading.IsCompleted;)
        {
            var piece = Math.Min(random.Next(1, largest + 1), body.Length - at);
            await pipe.Writer.WriteAsync(body.AsMemory(at, piece));
            at += piece;
            await Task.Yield();
        }
        await pipe.Writer.CompleteAsync();
        return await reading;
    }

    /// <summary>The body's UTF-8, with each "&lt;FF&gt;" a lone 0xFF byte: not UTF-8, and no C# string can hold it.</summary>
    private static byte[] Bytes(string body) =>
        [.. body.Split("<FF>").Select(Encoding.UTF8.GetBytes).Aggregate((before, after) => [.. before, 0xFF, .. after])];

    [Theory]
    [InlineData("application/json", true)]
    [InlineData("application/json; charset=utf-8", true)]
    [InlineData("Application/JSON;charset=UTF-8", true)]
    [InlineData("application/json; charset=\"utf-8\"", true)]
    [InlineData("application/jsonfoo", false)]
    [InlineData("application/json-patch+json", false)]
    [InlineData("text/plain", false)]
    [InlineData("application/json; charset=latin1", false)]
    [InlineData("", false)]
    public async Task OnlyJsonInUtf8IsTaken(string contentType, bool taken)
    {
        var http = new DefaultHttpContext();
        http.Request.ContentType = contentType;
        http.Request.Body = new MemoryStream(Encoding.UTF8.GetBytes("""{"model":"gpt-oss-20b","prompt":"hi"}"""));
        var (request, error) = await RequestReader.ReadAsync(http, Dialect.Text, 1 << 20);
        Assert.Equal(taken, request is not null);
        if (!taken) Assert.Equal((415, "unsupported_media_type"), (error?.Status, error?.Code));
    }

    [Theory]
    [InlineData("gzip", false)]
    [InlineData("br", false)]
    [InlineData("gzip, identity", false)]
    [InlineData("identity", true)]
    [InlineData(" Identity ", true)]
    public async Task ACompressedBodyIsA415SayingSoNotABodyThatIsNotText(string encoding, bool taken)
    {
        var json = Encoding.UTF8.GetBytes("""{"model":"gpt-oss-20b","prompt":"hi"}""");
        var http = new DefaultHttpContext();
        http.Request.ContentType = "application/json";
        http.Request.Headers.ContentEncoding = encoding;
        var compressed = new MemoryStream();
        using (var gzip = new System.IO.Compression.GZipStream(compressed, System.IO.Compression.CompressionLevel.Fastest, leaveOpen: true)) gzip.Write(json);
        http.Request.Body = new MemoryStream(taken ? json : compressed.ToArray());
        var (request, error) = await RequestReader.ReadAsync(http, Dialect.Text, 1 << 20);
        Assert.Equal(taken, request is not null);
        if (!taken) Assert.Equal((415, "unsupported_content_encoding"), (error?.Status, error?.Code));
    }

    [Theory]
    [InlineData("chat", """{"model":"gpt-oss-20b","messages":[{"role":"user","content":"hel""")]
    [InlineData("chat", """{"model":"gpt-oss-20b","messages":[}""")]
    [InlineData("chat", """{"model":"gpt-oss-20b","messages":[{"role":"user","content":"x"}""")]
    [InlineData("chat", """{"model":""")]
    [InlineData("chat", """{"model":"gpt-oss-20b","messages":[{"role":"user","content":"x"}]} trailing""")]
    [InlineData("responses", """{"model":"gpt-oss-20b","input":[{"role":"user","content":"hel""")]
    [InlineData("text", """{"model":"gpt-oss-20b","prompt":["a",}""")]
    public async Task ABodyThatIsCutOffOrMisspeltIsInvalidJsonSayingWhereNotAFieldOfTheWrongType(string dialect, string body)
    {
        foreach (var delivery in new[] { "whole", "pieces" })
        {
            var (request, error) = await ReadAsync(Dialects[dialect], Encoding.UTF8.GetBytes(body), delivery);
            Assert.Null(request);
            Assert.Equal((400, "invalid_json", null), (error?.Status, error?.Code, error?.Param));
            Assert.Contains("near line 1, byte ", error!.Message, StringComparison.Ordinal);
        }
    }

    [Fact]
    public async Task AWellFormedBodyWithAFieldOfTheWrongTypeNamesTheField()
    {
        var (request, error) = await ReadAsync(Dialect.Chat, Encoding.UTF8.GetBytes("""{"model":"gpt-oss-20b","messages":[{"role":"user","content":"x"}],"max_tokens":"many"}"""), "whole");
        Assert.Null(request);
        Assert.Equal((400, "invalid_value", "max_tokens"), (error?.Status, error?.Code, error?.Param));
    }

    [Fact]
    public async Task ABodyThatEndsBeforeItsLengthIsA400NotAnError()
    {
        // What Kestrel throws when the client closes its side before the Content-Length it announced.
        var http = new DefaultHttpContext();
        http.Request.ContentType = "application/json";
        http.Request.Body = new EndsEarly(Encoding.UTF8.GetBytes("""{"model":"gpt-oss-20b","messages":["""));
        var (request, error) = await RequestReader.ReadAsync(http, Dialect.Chat, 1 << 20);
        Assert.Null(request);
        Assert.Equal((400, "bad_request", "Unexpected end of request content."), (error?.Status, error?.Code, error?.Message));
    }

    private sealed class EndsEarly(byte[] first) : MemoryStream(first)
    {
        public override async ValueTask<int> ReadAsync(Memory<byte> buffer, CancellationToken ct = default)
        {
            var n = await base.ReadAsync(buffer, ct);
            return n > 0 ? n : throw new BadHttpRequestException("Unexpected end of request content.", StatusCodes.Status400BadRequest);
        }
    }

    private static readonly Dictionary<string, Dialect> Dialects = new()
    {
        ["chat"] = Dialect.Chat, ["responses"] = Dialect.Responses, ["text"] = Dialect.Text,
    };

    private static string DialectOf(string body) =>
        body.Contains("\"messages\"", StringComparison.Ordinal) ? "chat" : body.Contains("\"input\"", StringComparison.Ordinal) ? "responses" : "text";

    /// <summary>"whole": the body is there in one piece at the first read, as Kestrel mostly has it; "pieces": it arrives a few bytes at a time.</summary>
    private static async Task<RequestRead> ReadAsync(Dialect dialect, byte[] body, string delivery)
    {
        var http = new DefaultHttpContext();
        http.Request.ContentType = "application/json";
        var pipe = new Pipe();
        http.Features.Set<IRequestBodyPipeFeature>(new BodyPipe(pipe.Reader));
        if (delivery == "whole")
        {
            await pipe.Writer.WriteAsync(body);
            await pipe.Writer.CompleteAsync();
            return await RequestReader.ReadAsync(http, dialect, 1 << 20);
        }
        var reading = RequestReader.ReadAsync(http, dialect, 1 << 20);
        for (var i = 0; i < body.Length; i += 7)
        {
            await pipe.Writer.WriteAsync(body.AsMemory(i, Math.Min(7, body.Length - i)));
            await Task.Yield();
        }
        await pipe.Writer.CompleteAsync();
        return await reading;
    }

    private sealed class BodyPipe(PipeReader reader) : IRequestBodyPipeFeature
    {
        public PipeReader Reader { get; } = reader;
    }
}
