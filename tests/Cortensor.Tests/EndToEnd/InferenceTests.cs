using System.ClientModel;
using System.Net;
using System.Net.Http.Json;
using System.Text;
using System.Text.Json;
using Cortensor.Tests.Fixtures;
using OpenAI;
using OpenAI.Chat;
using OpenAI.Models;

namespace Cortensor.Tests.EndToEnd;

/// <summary>A customer's OpenAI SDK pointed at the Portal, answered by the router pools.</summary>
[Collection(PortalAppCollection.Name), Trait("Category", PortalAppCollection.Category)]
public class InferenceTests(PortalAppFixture portal)
{
    private static OpenAIClientOptions Options(TestCustomer c) => new() { Endpoint = new Uri(c.ApiBase, "/v1"), NetworkTimeout = TimeSpan.FromSeconds(60) };

    [Fact]
    public async Task TheOpenAiSdkGetsAChatCompletionUnderThePublicModelName()
    {
        var customer = await portal.CreateCustomerAsync();
        var chat = new ChatClient("gpt-oss-20b", new ApiKeyCredential(customer.Key), Options(customer));

        ChatCompletion completion = await chat.CompleteChatAsync(
            [new SystemChatMessage("You are terse."), new UserChatMessage("Name a Cortensor component.")],
            new ChatCompletionOptions { MaxOutputTokenCount = 8 });

        Assert.Equal("gpt-oss-20b", completion.Model);
        Assert.Equal(ChatFinishReason.Length, completion.FinishReason);
        Assert.Equal(8, completion.Usage.OutputTokenCount);
        Assert.True(completion.Usage.InputTokenCount > 0);
        Assert.Equal(8, Cortensor.Contracts.ModelTokenizer.ForFamily("gpt-oss").Count(completion.Content[0].Text));
        Assert.StartsWith("chatcmpl-", completion.Id);
    }

    [Fact]
    public async Task TheOpenAiSdkStreamsAChatCompletionEndingWithUsage()
    {
        var customer = await portal.CreateCustomerAsync();
        var chat = new ChatClient("gemma-4-26b", new ApiKeyCredential(customer.Key), Options(customer));

        var text = new System.Text.StringBuilder();
        ChatTokenUsage? usage = null;
        ChatFinishReason? finish = null;
        var updates = 0;
        await foreach (var update in chat.CompleteChatStreamingAsync(
            [new UserChatMessage("Stream a short answer")], new ChatCompletionOptions { MaxOutputTokenCount = 9 }))
        {
            updates++;
            foreach (var part in update.ContentUpdate) text.Append(part.Text);
            usage ??= update.Usage;
            finish ??= update.FinishReason;
        }

        Assert.True(updates >= 9, $"expected one update per token, got {updates}");
        Assert.Equal(ChatFinishReason.Length, finish);
        Assert.NotNull(usage);
        Assert.Equal(9, usage.OutputTokenCount);
        Assert.Equal(9, Cortensor.Contracts.ModelTokenizer.ForFamily("gemma").Count(text.ToString()));
    }

    [Fact]
    public async Task TextCompletionsAreNormalisedToTheOpenAiShape()
    {
        var customer = await portal.CreateCustomerAsync();
        using var client = customer.CreateClient();
        var response = await client.PostAsJsonAsync("/v1/completions", new { model = "qwen-3-32b", prompt = "Once upon a time", max_tokens = 6 });
        response.EnsureSuccessStatusCode();
        var body = await response.Content.ReadFromJsonAsync<JsonElement>();
        Assert.Equal("text_completion", body.GetProperty("object").GetString());
        Assert.Equal("qwen-3-32b", body.GetProperty("model").GetString());
        Assert.Equal("length", body.GetProperty("choices")[0].GetProperty("finish_reason").GetString());
        Assert.Equal(6, body.GetProperty("usage").GetProperty("completion_tokens").GetInt32());
        // An answer shown as generated spent nothing on reasoning.
        Assert.Equal(0, body.GetProperty("usage").GetProperty("completion_tokens_details").GetProperty("reasoning_tokens").GetInt32());
    }

    [Fact]
    public async Task AnUnknownModelIsTheSdksOwnErrorWithOurCode()
    {
        var customer = await portal.CreateCustomerAsync();
        var chat = new ChatClient("gpt-5-ultra", new ApiKeyCredential(customer.Key), Options(customer));
        var error = await Assert.ThrowsAsync<ClientResultException>(() => chat.CompleteChatAsync([new UserChatMessage("hi")]));
        Assert.Equal(404, error.Status);
        Assert.Contains("model_not_found", error.Message);
    }

    [Fact]
    public async Task TheSdkListsTheModelsTheKeyMayUse()
    {
        var customer = await portal.CreateCustomerAsync(plan: "free", credits: 0);
        var models = new OpenAIModelClient(new ApiKeyCredential(customer.Key), Options(customer));
        var list = (await models.GetModelsAsync()).Value.Select(m => m.Id).Order().ToList();
        // The free plan includes the free-tier models only.
        Assert.Equal(Requirements.Plan("free").Models, list);
    }

    [Fact]
    public async Task TheRequestIdIsEchoedWhenSaneAndMintedOtherwise()
    {
        var customer = await portal.CreateCustomerAsync();
        using var client = customer.CreateClient();
        using var sane = new HttpRequestMessage(HttpMethod.Get, "/v1/models");
        sane.Headers.Add("X-Request-Id", "client-abc.123");
        var echoed = await client.SendAsync(sane);
        Assert.Equal("client-abc.123", echoed.Headers.GetValues("X-Request-Id").Single());

        using var insane = new HttpRequestMessage(HttpMethod.Post, "/v1/chat/completions") { Content = JsonContent.Create(new { model = "x" }) };
        insane.Headers.TryAddWithoutValidation("X-Request-Id", "bad id with spaces <script>");
        var minted = await client.SendAsync(insane);
        var id = minted.Headers.GetValues("X-Request-Id").Single();
        Assert.StartsWith("req_", id);
        var error = (await minted.Content.ReadFromJsonAsync<JsonElement>()).GetProperty("error");
        Assert.Equal(id, error.GetProperty("request_id").GetString());
        Assert.Equal("messages", error.GetProperty("param").GetString());
    }

    [Theory]
    [InlineData("""{"model":"gpt-oss-20b","messages":[{"role":"user","content":"x"}],"temperature":3}""", "temperature")]
    [InlineData("""{"model":"gpt-oss-20b","messages":[{"role":"user","content":"x"}],"top_p":1.5}""", "top_p")]
    [InlineData("""{"model":"gpt-oss-20b","messages":[{"role":"user","content":"x"}],"n":3}""", "n")]
    [InlineData("""{"model":"gpt-oss-20b","messages":[{"role":"user","content":"x"}],"max_tokens":0}""", "max_tokens")]
    [InlineData("""{"model":"gpt-oss-20b","messages":[{"role":"user","content":"x"}],"stop":["a","b","c","d","e"]}""", "stop")]
    [InlineData("""{"model":"gpt-oss-20b","messages":[{"role":"user","content":"x"}],"stream_options":{"include_usage":true}}""", "stream_options")]
    [InlineData("""{"model":"gpt-oss-20b","messages":[{"role":"wizard","content":"x"}]}""", "messages[0].role")]
    [InlineData("""{"model":"gpt-oss-20b","messages":[{"role":"user"}]}""", "messages[0].content")]
    [InlineData("""{"messages":[{"role":"user","content":"x"}]}""", "model")]
    [InlineData("""{"model":"gpt-oss-20b","messages":[{"role":"user","content":"x"}],"stream":"yes"}""", "stream")]
    public async Task MalformedRequestsAre400sThatNameTheField(string json, string field)
    {
        var customer = await portal.CreateCustomerAsync();
        using var client = customer.CreateClient();
        var response = await client.PostAsync("/v1/chat/completions", new StringContent(json, Encoding.UTF8, "application/json"));
        Assert.Equal(HttpStatusCode.BadRequest, response.StatusCode);
        var error = (await response.Content.ReadFromJsonAsync<JsonElement>()).GetProperty("error");
        Assert.Equal(field, error.GetProperty("param").GetString());
        Assert.Equal("invalid_request_error", error.GetProperty("type").GetString());
    }

    [Fact]
    public async Task APromptNearTheContextWindowIsServedWithoutMaxTokensAndOneOverItIsOpenAisContextLengthError()
    {
        var customer = await portal.CreateCustomerAsync();
        using var client = customer.CreateClient();
        // o200k takes "word" and each " word" as one token: about 130,500 prompt tokens of gpt-oss-20b's 131,072.
        var nearlyFull = string.Concat(Enumerable.Repeat("word ", 130_500));

        // The default of 1,024 would not fit; a request that asked for no length is given what is left.
        var served = await client.PostAsJsonAsync("/v1/chat/completions", new { model = "gpt-oss-20b", messages = new[] { new { role = "user", content = nearlyFull } } });
        Assert.Equal(HttpStatusCode.OK, served.StatusCode);
        var prompt = (await served.Content.ReadFromJsonAsync<JsonElement>()).GetProperty("usage").GetProperty("prompt_tokens").GetInt32();
        Assert.InRange(131_072 - prompt, 1, 1_023);

        // Asking for more than is left is refused with OpenAI's code, naming the messages.
        var asked = await client.PostAsJsonAsync("/v1/chat/completions",
            new { model = "gpt-oss-20b", messages = new[] { new { role = "user", content = nearlyFull } }, max_tokens = 1_024 });
        await AssertContextLengthExceeded(asked, $"the prompt is {prompt} tokens and max_tokens asks for up to 1024 more");
        // Named as it was sent.
        var newer = await client.PostAsJsonAsync("/v1/chat/completions",
            new { model = "gpt-oss-20b", messages = new[] { new { role = "user", content = nearlyFull } }, max_completion_tokens = 1_024 });
        await AssertContextLengthExceeded(newer, "or lower max_completion_tokens.");

        // A prompt that alone is longer than the window is refused however little is asked for.
        var over = string.Concat(Enumerable.Repeat("word ", 131_100));
        var refused = await client.PostAsJsonAsync("/v1/chat/completions", new { model = "gpt-oss-20b", messages = new[] { new { role = "user", content = over } } });
        await AssertContextLengthExceeded(refused, "Shorten the conversation.");

        static async Task AssertContextLengthExceeded(HttpResponseMessage response, string says)
        {
            Assert.Equal(HttpStatusCode.BadRequest, response.StatusCode);
            var error = (await response.Content.ReadFromJsonAsync<JsonElement>()).GetProperty("error");
            Assert.Equal(("context_length_exceeded", "messages", "invalid_request_error"),
                (error.GetProperty("code").GetString(), error.GetProperty("param").GetString(), error.GetProperty("type").GetString()));
            Assert.Contains("maximum context length is 131072 tokens", error.GetProperty("message").GetString(), StringComparison.Ordinal);
            Assert.Contains(says, error.GetProperty("message").GetString(), StringComparison.Ordinal);
        }
    }

    [Fact]
    public async Task ABodyOverTheLimitIs413()
    {
        var customer = await portal.CreateCustomerAsync();
        using var client = customer.CreateClient();
        var huge = new string('a', 2 * 1024 * 1024);
        var response = await client.PostAsJsonAsync("/v1/chat/completions", new { model = "gpt-oss-20b", messages = new[] { new { role = "user", content = huge } } });
        Assert.Equal(HttpStatusCode.RequestEntityTooLarge, response.StatusCode);
        Assert.Equal("request_too_large", (await response.Content.ReadFromJsonAsync<JsonElement>()).GetProperty("error").GetProperty("code").GetString());
    }

    [Fact]
    public async Task ABodyJustUnderTheLimitThatArrivesInManyPiecesIsReadWholeWithOrWithoutItsLength()
    {
        var customer = await portal.CreateCustomerAsync();
        using var client = customer.CreateClient();
        // JSON's insignificant whitespace makes the body large (many reads, more than one buffer) and the prompt small.
        // A chunked body is refused a little before the limit (Kestrel's count; the reader before this one did the same),
        // so this one stays a few kilobytes under it.
        var padding = new string(' ', 1024 * 1024 - 8 * 1024);
        var json = $$"""{"model":"gpt-oss-20b",{{padding}}"messages":[{"role":"user","content":"Say hello"}],"max_tokens":8}""";
        Assert.InRange(Encoding.UTF8.GetByteCount(json), 1024 * 1024 - 8 * 1024, 1024 * 1024);

        using var withLength = new ByteArrayContent(Encoding.UTF8.GetBytes(json));
        withLength.Headers.ContentType = new("application/json");
        var sized = await client.PostAsync("/v1/chat/completions", withLength);
        Assert.Equal(HttpStatusCode.OK, sized.StatusCode);

        using var chunked = new StreamContent(new SlowStream(Encoding.UTF8.GetBytes(json), piece: 64 * 1024));
        chunked.Headers.ContentType = new("application/json");
        var streamed = await client.PostAsync("/v1/chat/completions", chunked);
        Assert.Equal(HttpStatusCode.OK, streamed.StatusCode);
        Assert.Equal(
            (await sized.Content.ReadFromJsonAsync<JsonElement>()).GetProperty("usage").GetProperty("prompt_tokens").GetInt32(),
            (await streamed.Content.ReadFromJsonAsync<JsonElement>()).GetProperty("usage").GetProperty("prompt_tokens").GetInt32());
    }

    [Theory]
    [InlineData("""{"model":"gpt-oss-20b","messages":[{"role":"user","content":"x"}]} {"more":1}""")]
    [InlineData("""{"model":"gpt-oss-20b","messages":[{"role":"user","content":"x"}]""")]
    [InlineData("")]
    [InlineData("null")]
    public async Task ABodyThatIsNotExactlyOneJsonObjectIsAMalformedJson400(string json)
    {
        var customer = await portal.CreateCustomerAsync();
        using var client = customer.CreateClient();
        var response = await client.PostAsync("/v1/chat/completions", new StringContent(json, Encoding.UTF8, "application/json"));
        Assert.Equal(HttpStatusCode.BadRequest, response.StatusCode);
        var error = (await response.Content.ReadFromJsonAsync<JsonElement>()).GetProperty("error");
        Assert.Equal("invalid_request_error", error.GetProperty("type").GetString());
        Assert.Equal("invalid_json", error.GetProperty("code").GetString());
    }

    /// <summary>A body the client sends in pieces and without a length (chunked), as a streaming upload does.</summary>
    private sealed class SlowStream(byte[] data, int piece) : Stream
    {
        private int _at;
        public override bool CanRead => true;
        public override bool CanSeek => false;
        public override bool CanWrite => false;
        public override long Length => throw new NotSupportedException();
        public override long Position { get => _at; set => throw new NotSupportedException(); }
        public override void Flush() { }
        public override int Read(byte[] buffer, int offset, int count)
        {
            var n = Math.Min(Math.Min(count, piece), data.Length - _at);
            Array.Copy(data, _at, buffer, offset, n);
            _at += n;
            return n;
        }
        public override async ValueTask<int> ReadAsync(Memory<byte> buffer, CancellationToken cancellationToken = default)
        {
            await Task.Yield();
            var n = Math.Min(Math.Min(buffer.Length, piece), data.Length - _at);
            data.AsMemory(_at, n).CopyTo(buffer);
            _at += n;
            return n;
        }
        public override long Seek(long offset, SeekOrigin origin) => throw new NotSupportedException();
        public override void SetLength(long value) => throw new NotSupportedException();
        public override void Write(byte[] buffer, int offset, int count) => throw new NotSupportedException();
    }

    [Fact]
    public async Task StopSequencesCutTheAnswerBothStreamedAndNot()
    {
        var customer = await portal.CreateCustomerAsync();
        using var client = customer.CreateClient();
        var full = await client.PostAsJsonAsync("/v1/completions", new { model = "qwen-3-32b", prompt = "stop test", max_tokens = 30 });
        var fullAnswer = await full.Content.ReadFromJsonAsync<JsonElement>();
        var text = fullAnswer.GetProperty("choices")[0].GetProperty("text").GetString()!;
        var words = text.Split(' ', StringSplitOptions.RemoveEmptyEntries);
        var stop = " " + words[3];
        var expected = text[..text.IndexOf(stop, StringComparison.Ordinal)];

        var cut = await client.PostAsJsonAsync("/v1/completions", new { model = "qwen-3-32b", prompt = "stop test", max_tokens = 30, stop });
        var cutAnswer = await cut.Content.ReadFromJsonAsync<JsonElement>();
        var choice = cutAnswer.GetProperty("choices")[0];
        Assert.Equal(expected, choice.GetProperty("text").GetString());
        Assert.Equal("stop", choice.GetProperty("finish_reason").GetString());

        var streamed = await client.PostAsJsonAsync("/v1/completions", new
        {
            model = "qwen-3-32b", prompt = "stop test", max_tokens = 30, stop, stream = true, stream_options = new { include_usage = true },
        });
        var events = await SseEvents(streamed);
        var chunks = events.Where(e => e != "[DONE]").Select(e => JsonDocument.Parse(e).RootElement).ToList();
        var streamedText = string.Concat(chunks.Where(c => c.GetProperty("choices").GetArrayLength() > 0).Select(c => c.GetProperty("choices")[0].GetProperty("text").GetString()));
        Assert.Equal(expected, streamedText);
        Assert.Equal("[DONE]", events[^1]);

        // Billed up to the stop sequence, as OpenAI bills, and alike streamed or not: the router, which does not apply stop
        // sequences, generated the rest, but the unstreamed answer was billed all of it (44 tokens against 4 streamed).
        int Completion(JsonElement answer) => answer.GetProperty("usage").GetProperty("completion_tokens").GetInt32();
        var whole = Completion(fullAnswer);
        var cutBilled = Completion(cutAnswer);
        var streamedBilled = Completion(chunks.Last(c => c.TryGetProperty("usage", out var u) && u.ValueKind == JsonValueKind.Object));
        Assert.InRange(cutBilled, 1, whole / 2);
        Assert.InRange(cutBilled, streamedBilled - 2, streamedBilled + 2);
    }

    internal static async Task<List<string>> SseEvents(HttpResponseMessage response) =>
        (await response.Content.ReadAsStringAsync()).Split("\n\n", StringSplitOptions.RemoveEmptyEntries)
            .Select(e => e.Trim()).Where(e => e.StartsWith("data: ")).Select(e => e["data: ".Length..]).ToList();
}
