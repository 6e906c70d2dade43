using System.Text;
using System.Text.Json;
using Cortensor.Api.Catalog;
using Cortensor.Api.Routing;

namespace Cortensor.Tests.Unit;

public class RouterAnswerReaderTests
{
    private static RouterReading Read(string body) => RouterAnswerReader.Read(Encoding.UTF8.GetBytes(body));

    [Fact]
    public void AnOpenAiStyleTextCompletionIsAnAnswerWithItsTaskIdUsageAndFinishReason()
    {
        var reading = Read("""{"id":"cmpl-1","task_id":4711,"choices":[{"index":0,"text":"Paris.","finish_reason":"stop"}],"usage":{"prompt_tokens":5,"completion_tokens":2}}""");
        Assert.Null(reading.Failure);
        Assert.Equal(new RouterAnswer("Paris.", "stop", "4711", new RouterUsageCounts(5, 2)), reading.Answer);
    }

    [Theory]
    [InlineData("""{"choices":[{"message":{"content":"from message"}}]}""", "from message")]
    [InlineData("""{"output":"from output","task_id":"t-9"}""", "from output")]
    [InlineData("""{"text":"from text"}""", "from text")]
    [InlineData("""{"completion":"from completion"}""", "from completion")]
    [InlineData("""{"data":"from data"}""", "from data")]
    [InlineData("""{"status":"ok","data":{"task_id":3,"choices":[{"text":"from an envelope"}]}}""", "from an envelope")]
    [InlineData("\"a bare string\"", "a bare string")]
    public void TheTextIsFoundWhereThePublicClientsLookForIt(string body, string text)
    {
        Assert.Equal(text, Read(body).Answer?.Text);
    }

    [Theory]
    [InlineData("""{"task_id":12,"error":"all miners failed"}""", RouterFailureKind.RouterError)]
    [InlineData("""{"error":{"message":"session busy","code":"busy"}}""", RouterFailureKind.RouterError)]
    [InlineData("""{"success":false,"message":"no miners"}""", RouterFailureKind.RouterError)]
    [InlineData("""{"task_id":12,"status":"failed"}""", RouterFailureKind.RouterError)]
    [InlineData("""{"task_id":12,"status":"pending"}""", RouterFailureKind.Pending)]
    [InlineData("""{"task_id":12,"status":"QUEUED","choices":[{"text":"early"}]}""", RouterFailureKind.Pending)]
    [InlineData("""{"task_id":12,"choices":[{"text":"","finish_reason":"stop"}],"storage_ref":"urn:cortensor:offchain:12"}""", RouterFailureKind.NoText)]
    [InlineData("""{"choices":[{"text":"   "}]}""", RouterFailureKind.NoText)]
    [InlineData("""{"choices":[]}""", RouterFailureKind.NoText)]
    [InlineData("<html>502 Bad Gateway</html>", RouterFailureKind.Unreadable)]
    [InlineData("[1,2]", RouterFailureKind.Unreadable)]
    public void ATwoHundredThatIsNotAnAnswerIsAFailureOfItsKind(string body, RouterFailureKind kind)
    {
        var reading = Read(body);
        Assert.Null(reading.Answer);
        Assert.Equal(kind, reading.Failure?.Kind);
    }

    [Fact]
    public void AFailureKeepsTheTaskIdAndNamesTheStorageReference()
    {
        var failure = Read("""{"task_id":"77","choices":[{"text":""}],"storage_ref":"urn:x:77"}""").Failure!;
        Assert.Equal("77", failure.TaskId);
        Assert.Contains("urn:x:77", failure.Detail);
    }

    [Fact]
    public void ErrorNullOrAnOkStatusDoNotMakeAnAnswerAFailure()
    {
        Assert.Equal("fine", Read("""{"error":null,"status":"completed","choices":[{"text":"fine"}]}""").Answer?.Text);
    }

    [Theory]
    [InlineData("""{"choices":[{"text":"half an emoji \ud83d"}]}""")]
    [InlineData("""{"task_id":"t-\udc00","choices":[{"text":"fine"}]}""")]
    [InlineData("""{"error":"\ud800"}""")]
    [InlineData(""""
        "\udfff"
        """")]
    public void AnAnswerWhoseTextIsNotUnicodeIsUnreadableNotAnError(string body)
    {
        // Another router is tried, as for any answer that is not one; the reader itself never throws.
        Assert.Equal(RouterFailureKind.Unreadable, Read(body).Failure?.Kind);
    }
}

public class RouterStreamReaderTests
{
    private static RouterStreamEvent Feed(RouterStreamReader reader, string data) => reader.Read(Encoding.UTF8.GetBytes(data));

    [Fact]
    public void JsonChunksGiveTextThenUsageFinishAndTaskIdThenDone()
    {
        var reader = new RouterStreamReader();
        Assert.Equal(new RouterStreamEvent(RouterStreamEventKind.Text, "Hello"), Feed(reader, """{"task_id":9,"choices":[{"text":"Hello"}]}"""));
        Assert.Equal(new RouterStreamEvent(RouterStreamEventKind.Text, " world"), Feed(reader, """{"task_id":9,"choices":[{"text":" world"}]}"""));
        Assert.Equal(RouterStreamEvent.None, Feed(reader, """{"choices":[{"text":"","finish_reason":"length"}],"usage":{"prompt_tokens":3,"completion_tokens":2}}"""));
        Assert.Equal(RouterStreamEvent.Done, Feed(reader, "[DONE]"));
        Assert.Equal("9", reader.TaskId);
        Assert.Equal("length", reader.FinishReason);
        Assert.Equal(new RouterUsageCounts(3, 2), reader.Usage);
        Assert.Equal("Hello world", reader.Generated);
    }

    [Fact]
    public void ADataLineThatIsNotJsonIsTextAsThePublicClientsTreatIt()
    {
        var reader = new RouterStreamReader();
        Assert.Equal("Hello", Feed(reader, "Hello").Text);
        Assert.Equal(" {not json", Feed(reader, " {not json").Text);
        Assert.Equal(" ", Feed(reader, " ").Text);
        Assert.Equal(RouterStreamEvent.None, Feed(reader, ""));
        Assert.Equal(RouterStreamEvent.Done, Feed(reader, "[DONE]"));
        Assert.Equal("Hello {not json ", reader.Generated);
        Assert.Null(reader.Usage);
    }

    [Fact]
    public void AChunkWhoseTextIsNotUnicodeIsAFailureNotAnError()
    {
        var reader = new RouterStreamReader();
        Feed(reader, """{"task_id":6,"choices":[{"text":"partial"}]}""");
        var failed = Feed(reader, """{"choices":[{"text":"\ud83d"}]}""");
        Assert.Equal((RouterStreamEventKind.Failed, RouterFailureKind.Unreadable, "6"), (failed.Kind, failed.Failure!.Kind, failed.Failure.TaskId));
        Assert.Equal("partial", reader.Generated);
    }

    [Fact]
    public void AnErrorChunkIsAFailureEvenAfterText()
    {
        var reader = new RouterStreamReader();
        Feed(reader, """{"choices":[{"text":"partial"}]}""");
        var failed = Feed(reader, """{"task_id":5,"error":"miner dropped"}""");
        Assert.Equal(RouterStreamEventKind.Failed, failed.Kind);
        Assert.Equal(RouterFailureKind.RouterError, failed.Failure!.Kind);
        Assert.Equal("5", failed.Failure.TaskId);
    }

    [Fact]
    public void APendingStatusIsProgressAndAnEndWithoutTextIsAFailure()
    {
        var reader = new RouterStreamReader();
        Assert.Equal(RouterStreamEvent.None, Feed(reader, """{"task_id":1,"status":"queued"}"""));
        var end = Feed(reader, "[DONE]");
        Assert.Equal(RouterStreamEventKind.Failed, end.Kind);
        Assert.Equal(RouterFailureKind.NoText, end.Failure!.Kind);

        var storage = new RouterStreamReader();
        Feed(storage, """{"task_id":2,"choices":[{"text":"","finish_reason":"stop"}],"storage_ref":"urn:y"}""");
        Assert.Equal(RouterFailureKind.NoText, Feed(storage, "[DONE]").Failure!.Kind);
    }

    [Fact]
    public void AStreamClosedAfterAFinishReasonIsAnAnswerAndWithoutOneACut()
    {
        var finished = new RouterStreamReader();
        Feed(finished, """{"choices":[{"text":"all","finish_reason":"stop"}]}""");
        Assert.Equal(RouterStreamEvent.Done, finished.Closed());

        var cut = new RouterStreamReader();
        Feed(cut, """{"choices":[{"text":"half"}]}""");
        Assert.Equal(RouterFailureKind.Cut, cut.Closed().Failure!.Kind);
        Assert.Equal(RouterFailureKind.NoText, new RouterStreamReader().Closed().Failure!.Kind);
    }
}

public class RouterProtocolTests
{
    private static readonly RouterCompletionRequest Body = new("<|start|>user<|message|>hi<|end|>", 32, 0.5, null, true, "req-1", 7, 0.1, 0.2);

    [Fact]
    public void TheBodyIsRawWithTheTaskTimeoutsAndOnlyTheOptionalFieldsThePoolSupports()
    {
        var plain = JsonDocument.Parse(RouterRequestWriter.Write(Body, PoolProtocol.Default, new TaskTimeouts(120, 45))).RootElement;
        Assert.Equal(1, plain.GetProperty("prompt_type").GetInt32());
        Assert.Equal(120, plain.GetProperty("timeout").GetInt32());
        Assert.Equal(45, plain.GetProperty("precommit_timeout").GetInt32());
        Assert.Equal("req-1", plain.GetProperty("client_reference").GetString());
        Assert.Equal(32, plain.GetProperty("max_tokens").GetInt32());
        Assert.True(plain.GetProperty("stream").GetBoolean());
        Assert.False(plain.TryGetProperty("top_p", out _));
        Assert.False(plain.TryGetProperty("seed", out _));
        Assert.False(plain.TryGetProperty("presence_penalty", out _));

        var full = JsonDocument.Parse(RouterRequestWriter.Write(Body, PoolProtocol.From(3, true, true, true), new TaskTimeouts(120, 45))).RootElement;
        Assert.Equal(7, full.GetProperty("seed").GetInt32());
        Assert.Equal(0.1, full.GetProperty("presence_penalty").GetDouble());
        Assert.Equal(0.2, full.GetProperty("frequency_penalty").GetDouble());
    }

    [Fact]
    public void TheBodyCarriesTheTemplatedPromptExactlyAndEachCallGetsItsOwnBytes()
    {
        var templated = "<|start|>user<|message|>say \"hi\" & 'bye'\nthen 日本 \u0001 " + new string('x', 40_000) + "<|end|><|start|>assistant";
        var first = RouterRequestWriter.Write(Body with { Prompt = templated }, PoolProtocol.Default, new TaskTimeouts(120, 45));
        var firstCopy = first.ToArray();
        var second = RouterRequestWriter.Write(Body with { Prompt = "short" }, PoolProtocol.Default, new TaskTimeouts(120, 45));

        Assert.Equal(templated, JsonDocument.Parse(first).RootElement.GetProperty("prompt").GetString());
        Assert.Equal("short", JsonDocument.Parse(second).RootElement.GetProperty("prompt").GetString());
        Assert.Equal(firstCopy, first); // the reused buffer never shows through an earlier body
        // Template markers travel as written (no \u003C escapes); quotes and control characters are escaped.
        Assert.True(first.AsSpan().IndexOf("\"prompt\":\"<|start|>user<|message|>say \\\"hi\\\""u8) >= 0);
    }

    [Fact]
    public void ThePoolsApiVersionChoosesTheCompletionsRoute()
    {
        Assert.Equal("/api/v1/completions/2001", PoolProtocol.Default.CompletionsPath(2001));
        Assert.Equal("/api/v3/completions/2001", PoolProtocol.From(3, false, false, false).CompletionsPath(2001));
        Assert.Equal("/api/v1/completions/5", PoolProtocol.From(2, false, false, false).CompletionsPath(5));
    }

    [Fact]
    public void ASessionsAddressIsBuiltOnceAndFollowsTheRoutersAddressAndThePoolsApiVersion()
    {
        var v3 = PoolProtocol.From(3, false, false, false);

        var first = PoolProtocol.Default.CompletionsUri("http://router-a:5010", 2001);

        Assert.Equal("http://router-a:5010/api/v1/completions/2001", first.AbsoluteUri);
        Assert.Same(first, PoolProtocol.Default.CompletionsUri("http://router-a:5010", 2001));
        Assert.Equal("http://router-a:5010/api/v1/completions/2002", PoolProtocol.Default.CompletionsUri("http://router-a:5010", 2002).AbsoluteUri);
        Assert.Equal("http://router-a:5010/api/v3/completions/2001", v3.CompletionsUri("http://router-a:5010", 2001).AbsoluteUri);
        // A router moved to another address in the catalog is called there.
        Assert.Equal("http://10.0.0.9:5010/api/v1/completions/2001", PoolProtocol.Default.CompletionsUri("http://10.0.0.9:5010", 2001).AbsoluteUri);
    }

    [Fact]
    public void DeadlinesComeFromTheModelsTaskTimeoutsInSecondsAndATestCapOnlyShortensThem()
    {
        var model = new CatalogModel("m", "M", "gpt-oss", true, 0, 0, 1000, "p", "m", default) { TimeoutSeconds = 300, PrecommitTimeoutSeconds = 60 };
        var options = new RoutingOptions();
        var timeouts = RouterDeadlines.For(model, options);
        Assert.Equal(new TaskTimeouts(300, 60), timeouts);
        Assert.Equal(TimeSpan.FromSeconds(370), RouterDeadlines.FirstToken(timeouts, options));
        Assert.Equal(TimeSpan.FromSeconds(310), RouterDeadlines.Silence(timeouts, options));

        var unset = RouterDeadlines.For(model with { TimeoutSeconds = null, PrecommitTimeoutSeconds = null }, options);
        Assert.Equal(new TaskTimeouts(options.DefaultTimeoutSeconds, options.DefaultPrecommitTimeoutSeconds), unset);

        var capped = new RoutingOptions { UpstreamTimeoutMs = 4000, StreamIdleTimeoutMs = 900_000 };
        Assert.Equal(TimeSpan.FromSeconds(4), RouterDeadlines.FirstToken(timeouts, capped));
        Assert.Equal(TimeSpan.FromSeconds(310), RouterDeadlines.Silence(timeouts, capped));
    }

    [Theory]
    [InlineData("""{"load":3,"miners":[{"a":1},{"a":2}],"sessions":{"count":4}}""", 3L, 2L, 4L)]
    [InlineData("""{"status":"ok","data":{"active_tasks":5,"miner_count":7}}""", 5L, 7L, null)]
    [InlineData("""{"version":"1.2"}""", null, null, null)]
    [InlineData("router ok", null, null, null)]
    public void LivenessReadsLoadAndCountsWhenPresentAndNeedsNoHealthyField(string body, long? load, long? miners, long? sessions)
    {
        Assert.Equal(new RouterLiveness(load, miners, sessions), RouterLiveness.Read(Encoding.UTF8.GetBytes(body)));
    }

    [Fact]
    public void ARouterThatReportsNoConnectedMinerCannotServeAndOneThatDoesNotSayCan()
    {
        Assert.False(RouterLiveness.Read("""{"load":0,"miners":[]}"""u8).CanServe);
        Assert.False(RouterLiveness.Read("""{"miner_count":0}"""u8).CanServe);
        Assert.True(RouterLiveness.Read("""{"miners":2}"""u8).CanServe);
        Assert.True(RouterLiveness.Read("""{"version":"1"}"""u8).CanServe);
    }
}
