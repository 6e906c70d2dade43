using System.ClientModel;
using System.Net;
using System.Net.Http.Json;
using System.Text.Json;
using Cortensor.Tests.Fixtures;
using OpenAI.Responses;

// The SDK marks its Responses client as evaluation-only (OPENAI001); it is what customers use.
#pragma warning disable OPENAI001

namespace Cortensor.Tests.EndToEnd;

/// <summary>The OpenAI SDK's Responses client pointed at the Portal: the same hot path, the Responses shapes.</summary>
[Collection(PortalAppCollection.Name), Trait("Category", PortalAppCollection.Category)]
public class ResponsesApiTests(PortalAppFixture portal)
{
    private static ResponsesClient Client(TestCustomer c) =>
        new(new ApiKeyCredential(c.Key), new ResponsesClientOptions { Endpoint = new Uri(c.ApiBase, "/v1"), NetworkTimeout = TimeSpan.FromSeconds(60) });

    [Fact]
    public async Task TheOpenAiSdkGetsAResponseToMessagesAndInstructionsWithUsage()
    {
        var customer = await portal.CreateCustomerAsync();
        var client = Client(customer);
        CreateResponseOptions Ask(string? instructions) => new("gpt-oss-20b", [ResponseItem.CreateUserMessageItem("Name a Cortensor component, please.")])
        {
            Instructions = instructions, MaxOutputTokenCount = 200, StoredOutputEnabled = false,
        };

        ResponseResult plain = await client.CreateResponseAsync(Ask(null));
        ResponseResult instructed = await client.CreateResponseAsync(Ask("Answer in one word, like a pirate would."));

        Assert.StartsWith("resp_", instructed.Id);
        Assert.Equal("gpt-oss-20b", instructed.Model);
        Assert.Equal(ResponseStatus.Completed, instructed.Status);
        var message = Assert.IsAssignableFrom<MessageResponseItem>(Assert.Single(instructed.OutputItems));
        Assert.Equal(MessageRole.Assistant, message.Role);
        // The simulated router echoes the last user turn: the message reached the model as a user turn.
        Assert.Contains("Name a Cortensor component", instructed.GetOutputText());
        Assert.Equal(Cortensor.Contracts.ModelTokenizer.ForFamily("gpt-oss").Count(instructed.GetOutputText()), instructed.Usage.OutputTokenCount);
        Assert.Equal(instructed.Usage.InputTokenCount + instructed.Usage.OutputTokenCount, instructed.Usage.TotalTokenCount);
        // The instructions are a turn of the prompt (harmony counts exactly): the same input costs more tokens with them.
        Assert.True(instructed.Usage.InputTokenCount > plain.Usage.InputTokenCount + 5,
            $"instructions should add input tokens: {instructed.Usage.InputTokenCount} vs {plain.Usage.InputTokenCount}");
    }

    [Fact]
    public async Task TheOpenAiSdkStreamsAResponseAsNumberedEventsEndingWithUsage()
    {
        var customer = await portal.CreateCustomerAsync();
        var client = Client(customer);
        var options = new CreateResponseOptions("gemma-4-26b", [ResponseItem.CreateUserMessageItem("Stream a short answer")])
        {
            Instructions = "Be brief.", MaxOutputTokenCount = 9, StreamingEnabled = true,
        };

        var kinds = new List<StreamingResponseUpdateKind>();
        var sequence = new List<int>();
        var text = new System.Text.StringBuilder();
        ResponseResult? final = null;
        await foreach (var update in await client.CreateResponseStreamingAsync(options))
        {
            kinds.Add(update.Kind);
            sequence.Add(update.SequenceNumber);
            if (update is StreamingResponseOutputTextDeltaUpdate delta) text.Append(delta.Delta);
            if (update is StreamingResponseIncompleteUpdate incomplete) final = incomplete.Response;
            if (update is StreamingResponseCompletedUpdate completed) final = completed.Response;
        }

        Assert.Equal(Enumerable.Range(0, sequence.Count), sequence);
        Assert.Equal([StreamingResponseUpdateKind.ResponseCreated, StreamingResponseUpdateKind.ResponseInProgress,
            StreamingResponseUpdateKind.ResponseOutputItemAdded, StreamingResponseUpdateKind.ResponseContentPartAdded], kinds[..4]);
        Assert.Equal(9, kinds.Count(k => k == StreamingResponseUpdateKind.ResponseOutputTextDelta));
        Assert.Equal([StreamingResponseUpdateKind.ResponseOutputTextDone, StreamingResponseUpdateKind.ResponseContentPartDone,
            StreamingResponseUpdateKind.ResponseOutputItemDone, StreamingResponseUpdateKind.ResponseIncomplete], kinds[^4..]);
        // Cut by max_output_tokens: incomplete, as OpenAI reports it, with the whole text and the usage.
        Assert.NotNull(final);
        Assert.Equal(ResponseStatus.Incomplete, final.Status);
        Assert.Equal(text.ToString(), final.GetOutputText());
        Assert.Equal(9, final.Usage.OutputTokenCount);
        Assert.Equal(9, Cortensor.Contracts.ModelTokenizer.ForFamily("gemma").Count(text.ToString()));
    }

    [Fact]
    public async Task TextInputGetsAResponseObjectInOpenAisShape()
    {
        var customer = await portal.CreateCustomerAsync();
        using var client = customer.CreateClient();
        var response = await client.PostAsJsonAsync("/v1/responses", new
        {
            model = "qwen-3-32b", input = "Once upon a time", instructions = "Tell a story.", max_output_tokens = 500, store = false,
            temperature = 0.5, metadata = new { ticket = "T-1" },
        });
        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        var body = await response.Content.ReadFromJsonAsync<JsonElement>();

        Assert.Equal("response", body.GetProperty("object").GetString());
        Assert.Equal("completed", body.GetProperty("status").GetString());
        Assert.Equal("Tell a story.", body.GetProperty("instructions").GetString());
        Assert.Equal("T-1", body.GetProperty("metadata").GetProperty("ticket").GetString());
        Assert.False(body.GetProperty("store").GetBoolean());
        var item = body.GetProperty("output")[0];
        Assert.Equal("message", item.GetProperty("type").GetString());
        Assert.Equal("assistant", item.GetProperty("role").GetString());
        var part = item.GetProperty("content")[0];
        Assert.Equal("output_text", part.GetProperty("type").GetString());
        Assert.Contains("Once upon a time", part.GetProperty("text").GetString());
        Assert.Equal(0, part.GetProperty("annotations").GetArrayLength());
        var usage = body.GetProperty("usage");
        Assert.True(usage.GetProperty("input_tokens").GetInt32() > 0);
        Assert.Equal(usage.GetProperty("input_tokens").GetInt32() + usage.GetProperty("output_tokens").GetInt32(), usage.GetProperty("total_tokens").GetInt32());
        // What the request cost, as chat and completions tell it: the same figure as the header, the ledger's.
        Assert.True(usage.GetProperty("cost").GetDecimal() > 0m);
        Assert.Equal(decimal.Parse(response.Headers.GetValues("x-cortensor-cost").Single(), System.Globalization.CultureInfo.InvariantCulture),
            usage.GetProperty("cost").GetDecimal());
    }

    private static readonly FunctionTool Weather = ResponseTool.CreateFunctionTool("get_weather",
        BinaryData.FromString("""{"type":"object","properties":{"city":{"type":"string"}},"required":["city"],"additionalProperties":false}"""),
        true, "The weather in a city");

    [Theory]
    [InlineData(false)]
    [InlineData(true)]
    public async Task AFunctionToolRoundTripsThroughTheOpenAiSdk(bool stream)
    {
        var customer = await portal.CreateCustomerAsync();
        var client = Client(customer);
        var question = ResponseItem.CreateUserMessageItem("What is the weather in Paris?");
        var ask = new CreateResponseOptions("qwen-3-32b", [question]) { Tools = { Weather }, ToolChoice = ResponseToolChoice.CreateRequiredChoice(), MaxOutputTokenCount = 300 };

        var first = await RespondAsync(client, ask, stream);
        var call = Assert.IsType<FunctionCallResponseItem>(Assert.Single(first.OutputItems));
        Assert.Equal("get_weather", call.FunctionName);
        Assert.StartsWith("call_", call.CallId);
        Assert.Equal(JsonValueKind.String, JsonDocument.Parse(call.FunctionArguments).RootElement.GetProperty("city").ValueKind);
        Assert.Equal(ResponseStatus.Completed, first.Status);

        // The call and its result go back as input items; the model answers from the result.
        var answer = new CreateResponseOptions("qwen-3-32b", [question, call, ResponseItem.CreateFunctionCallOutputItem(call.CallId, "Sunny and 21 C")])
        {
            Tools = { Weather }, MaxOutputTokenCount = 300,
        };
        var final = await RespondAsync(client, answer, stream);
        Assert.IsAssignableFrom<MessageResponseItem>(Assert.Single(final.OutputItems));
        Assert.Contains("Sunny and 21 C", final.GetOutputText());
    }

    private static async Task<ResponseResult> RespondAsync(ResponsesClient client, CreateResponseOptions options, bool stream)
    {
        if (!stream) return await client.CreateResponseAsync(options);
        options.StreamingEnabled = true;
        ResponseResult? final = null;
        var done = new List<ResponseItem>();
        await foreach (var update in await client.CreateResponseStreamingAsync(options))
        {
            if (update is StreamingResponseOutputItemDoneUpdate item) done.Add(item.Item);
            if (update is StreamingResponseCompletedUpdate completed) final = completed.Response;
        }
        Assert.NotNull(final);
        // Each item as it was finished in the stream is the item of the final response.
        Assert.Equal(final.OutputItems.Select(i => i.Id), done.Select(i => i.Id));
        return final;
    }

    [Theory]
    [InlineData("""{"model":"qwen-3-32b","input":"hi","store":true}""", "store")]
    [InlineData("""{"model":"qwen-3-32b","input":"hi","previous_response_id":"resp_123"}""", "previous_response_id")]
    [InlineData("""{"model":"qwen-3-32b","input":"hi","reasoning":{"effort":"low"}}""", "reasoning")]
    [InlineData("""{"model":"qwen-3-32b","input":"hi","tools":[{"type":"web_search"}]}""", "tools[0].type")]
    [InlineData("""{"model":"qwen-3-32b","input":[{"role":"user","content":[{"type":"input_image","image_url":"https://x/y.png"}]}]}""", "input[0].content[0].type")]
    public async Task FieldsThePortalCannotHonourAreRefusedByName(string json, string param)
    {
        var customer = await portal.CreateCustomerAsync();
        using var client = customer.CreateClient();
        var response = await client.PostAsync("/v1/responses", new StringContent(json, System.Text.Encoding.UTF8, "application/json"));

        Assert.Equal(HttpStatusCode.BadRequest, response.StatusCode);
        var error = (await response.Content.ReadFromJsonAsync<JsonElement>()).GetProperty("error");
        Assert.Equal("unsupported_parameter", error.GetProperty("code").GetString());
        Assert.Equal(param, error.GetProperty("param").GetString());
    }
}
