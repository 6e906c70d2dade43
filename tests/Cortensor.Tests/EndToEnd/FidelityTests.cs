using System.ClientModel;
using System.Net;
using System.Net.Http.Json;
using System.Text.Json;
using Cortensor.Tests.Fixtures;
using Cortensor.Tests.Unit;
using OpenAI;
using OpenAI.Chat;

namespace Cortensor.Tests.EndToEnd;

/// <summary>
/// What an agent framework relies on, through the official OpenAI SDK: tools called and answered in each model family's
/// own format (streamed and not), JSON output that parses and validates, and every field the Portal cannot honour refused by name.
/// </summary>
[Collection(PortalAppCollection.Name), Trait("Category", PortalAppCollection.Category)]
public class FidelityTests(PortalAppFixture portal)
{
    private static OpenAIClientOptions Options(TestCustomer c) => new() { Endpoint = new Uri(c.ApiBase, "/v1"), NetworkTimeout = TimeSpan.FromSeconds(60) };

    public static readonly TheoryData<string, bool> ModelsStreamedOrNot = new()
    {
        { "gpt-oss-20b", false }, { "gpt-oss-20b", true }, { "qwen-3-32b", false }, { "qwen-3-32b", true }, { "gemma-4-26b", false }, { "gemma-4-26b", true },
    };

    public static readonly TheoryData<string> Models = new() { "gpt-oss-20b", "qwen-3-32b", "gemma-4-26b" };

    private static readonly ChatTool Weather = ChatTool.CreateFunctionTool("get_weather", "Current weather in a city", BinaryData.FromString("""
        {"type":"object","properties":{"city":{"type":"string"},"unit":{"type":"string","enum":["celsius","fahrenheit"]}},
         "required":["city","unit"],"additionalProperties":false}
        """), functionSchemaIsStrict: true);

    [Theory, MemberData(nameof(ModelsStreamedOrNot))]
    public async Task AToolRoundTripCallsTheToolThenAnswersWithItsResult(string model, bool stream)
    {
        var customer = await portal.CreateCustomerAsync();
        var chat = new ChatClient(model, new ApiKeyCredential(customer.Key), Options(customer));
        var options = new ChatCompletionOptions { Tools = { Weather }, MaxOutputTokenCount = 200 };
        List<ChatMessage> messages = [new UserChatMessage("What's the weather in Paris?")];

        var (text, calls, finish) = await AskAsync(chat, messages, options, stream);

        Assert.Equal(ChatFinishReason.ToolCalls, finish);
        var call = Assert.Single(calls);
        Assert.Equal("get_weather", call.FunctionName);
        Assert.StartsWith("call_", call.Id);
        var args = JsonDocument.Parse(call.FunctionArguments).RootElement;
        Assert.Equal("Paris", args.GetProperty("city").GetString());
        Assert.Equal("celsius", args.GetProperty("unit").GetString());
        Assert.True(string.IsNullOrEmpty(text));

        messages.Add(new AssistantChatMessage(calls));
        messages.Add(new ToolChatMessage(call.Id, """{"temperature": 21, "sky": "clear"}"""));
        var (final, more, finalFinish) = await AskAsync(chat, messages, options, stream);

        Assert.Equal(ChatFinishReason.Stop, finalFinish);
        Assert.Empty(more);
        Assert.Contains("The tool answered", final);
        Assert.Contains("temperature", final);
    }

    /// <summary>One answer as the SDK sees it, streamed (tool calls assembled from their deltas) or not.</summary>
    private static async Task<(string Text, List<ChatToolCall> Calls, ChatFinishReason? Finish)> AskAsync(
        ChatClient chat, List<ChatMessage> messages, ChatCompletionOptions options, bool stream)
    {
        if (!stream)
        {
            ChatCompletion completion = await chat.CompleteChatAsync(messages, options);
            return (string.Concat(completion.Content.Select(c => c.Text)), completion.ToolCalls.ToList(), completion.FinishReason);
        }
        var text = new System.Text.StringBuilder();
        var ids = new Dictionary<int, (string Id, string Name)>();
        var args = new Dictionary<int, System.Text.StringBuilder>();
        ChatFinishReason? finish = null;
        await foreach (var update in chat.CompleteChatStreamingAsync(messages, options))
        {
            foreach (var part in update.ContentUpdate) text.Append(part.Text);
            foreach (var t in update.ToolCallUpdates)
            {
                if (t.ToolCallId is not null)
                {
                    // OpenAI's shape: the first delta of a call names it, with empty arguments.
                    Assert.Equal("", t.FunctionArgumentsUpdate?.ToString() ?? "");
                    ids[t.Index] = (t.ToolCallId, t.FunctionName);
                    args[t.Index] = new();
                }
                else args[t.Index].Append(t.FunctionArgumentsUpdate);
            }
            finish ??= update.FinishReason;
        }
        var calls = ids.OrderBy(kv => kv.Key)
            .Select(kv => ChatToolCall.CreateFunctionToolCall(kv.Value.Id, kv.Value.Name, BinaryData.FromString(args[kv.Key].ToString()))).ToList();
        return (text.ToString(), calls, finish);
    }

    [Theory, MemberData(nameof(Models))]
    public async Task AStrictJsonSchemaAnswerParsesAndValidates(string model)
    {
        var customer = await portal.CreateCustomerAsync();
        var chat = new ChatClient(model, new ApiKeyCredential(customer.Key), Options(customer));
        var format = ChatResponseFormat.CreateJsonSchemaFormat("city", BinaryData.FromString("""
            {"type":"object","properties":{"name":{"type":"string","minLength":3},"population":{"type":"integer","minimum":1000},
             "landmarks":{"type":"array","items":{"type":"string"},"minItems":2}},"required":["name","population","landmarks"],"additionalProperties":false}
            """), jsonSchemaIsStrict: true);

        ChatCompletion completion = await chat.CompleteChatAsync([new UserChatMessage("Describe a city")],
            new ChatCompletionOptions { ResponseFormat = format, MaxOutputTokenCount = 200 });

        var doc = JsonDocument.Parse(completion.Content[0].Text).RootElement;
        Assert.True(doc.GetProperty("name").GetString()!.Length >= 3);
        Assert.True(doc.GetProperty("population").GetInt32() >= 1000);
        Assert.Equal(2, doc.GetProperty("landmarks").GetArrayLength());
        Assert.Equal(ChatFinishReason.Stop, completion.FinishReason);
    }

    [Fact]
    public async Task JsonObjectModeAnswersWithAJsonObjectStreamedAndNot()
    {
        var customer = await portal.CreateCustomerAsync();
        var chat = new ChatClient("qwen-3-32b", new ApiKeyCredential(customer.Key), Options(customer));
        var options = new ChatCompletionOptions { ResponseFormat = ChatResponseFormat.CreateJsonObjectFormat(), MaxOutputTokenCount = 200 };

        ChatCompletion completion = await chat.CompleteChatAsync([new UserChatMessage("Say hello as JSON")], options);
        Assert.Equal(JsonValueKind.Object, JsonDocument.Parse(completion.Content[0].Text).RootElement.ValueKind);

        var streamed = new System.Text.StringBuilder();
        await foreach (var update in chat.CompleteChatStreamingAsync([new UserChatMessage("Say hello as JSON")], options))
            foreach (var part in update.ContentUpdate) streamed.Append(part.Text);
        // The same document either way, up to the router session that answered (two sessions serve the pool).
        var (whole, pieces) = (JsonDocument.Parse(completion.Content[0].Text).RootElement, JsonDocument.Parse(streamed.ToString()).RootElement);
        Assert.Equal(JsonValueKind.Object, pieces.ValueKind);
        Assert.Contains("Say hello as JSON", whole.GetProperty("answer").GetString());
        Assert.Contains("Say hello as JSON", pieces.GetProperty("answer").GetString());
    }

    private static readonly object CityFormat = new
    {
        type = "json_schema",
        json_schema = new { name = "city", strict = true, schema = JsonDocument.Parse("""{"type":"object","properties":{"name":{"type":"string"}},"required":["name"]}""").RootElement },
    };

    private static async Task<JsonElement> InvalidModelOutputAsync(HttpResponseMessage response)
    {
        Assert.Equal(HttpStatusCode.BadGateway, response.StatusCode);
        var error = (await response.Content.ReadFromJsonAsync<JsonElement>()).GetProperty("error");
        Assert.Equal("invalid_model_output", error.GetProperty("code").GetString());
        return error;
    }

    [Fact]
    public async Task AnAnswerThatIsNotTheRequestedJsonIsA502InvalidModelOutputAndItsTokensAreCharged()
    {
        var customer = await portal.CreateCustomerAsync();
        using var client = customer.CreateClient();
        // Cut by max_tokens, the model's document is not JSON.
        var body = new
        {
            model = "gpt-oss-20b", max_tokens = 3, messages = new[] { new { role = "user", content = "Describe a city" } },
            response_format = CityFormat,
        };

        var response = await client.PostAsJsonAsync("/v1/chat/completions", body);
        var error = await InvalidModelOutputAsync(response);
        Assert.Contains("max_tokens", error.GetProperty("message").GetString());
        // Cut off by max_tokens, the same request fails (and is charged) the same way again: SDKs are told not to retry it.
        Assert.Equal("false", response.Headers.GetValues("x-should-retry").Single());
        Assert.DoesNotContain("retry the request", error.GetProperty("message").GetString());
        var requestId = response.Headers.GetValues("X-Request-Id").Single();

        var streamed = await client.PostAsJsonAsync("/v1/chat/completions", new
        {
            body.model, body.max_tokens, body.messages, body.response_format, stream = true,
        });
        var events = await InferenceTests.SseEvents(streamed);
        Assert.DoesNotContain("[DONE]", events);
        Assert.Equal("invalid_model_output", JsonDocument.Parse(events[^1]).RootElement.GetProperty("error").GetProperty("code").GetString());

        // The generated tokens are billed: the usage record has the 502 with its 3 completion tokens and a cost.
        using var admin = portal.CreateAdminClient();
        var lookup = await Eventually.WaitForAsync(() => admin.GetAsync($"/admin/requests/{requestId}"), r => r.StatusCode == HttpStatusCode.OK,
            TimeSpan.FromSeconds(15), $"request {requestId} was not recorded", TimeSpan.FromMilliseconds(250));
        var found = (await lookup.Content.ReadFromJsonAsync<JsonElement>())[0];
        Assert.Equal("invalid_model_output", found.GetProperty("log").GetProperty("error_code").GetString());
        var usage = found.GetProperty("usage");
        Assert.Equal(502, usage.GetProperty("status").GetInt32());
        Assert.Equal(3, usage.GetProperty("completion_tokens").GetInt32());
        Assert.True(usage.GetProperty("cost").GetDecimal() > 0m);
    }

    [Fact]
    public async Task AJsonAnswerCutByTheRequestsOwnStopSequenceSaysSoAndTellsSdksNotToRetry()
    {
        var customer = await portal.CreateCustomerAsync();
        using var client = customer.CreateClient();
        // Every member name of the document is quoted: a stop of '"' cuts it after its first character, every time.
        var body = new
        {
            model = "qwen-3-32b", stop = new[] { "\"" }, messages = new[] { new { role = "user", content = "Describe a city" } },
            response_format = CityFormat,
        };

        var response = await client.PostAsJsonAsync("/v1/chat/completions", body);
        var error = await InvalidModelOutputAsync(response);
        Assert.Contains("stop sequences", error.GetProperty("message").GetString());
        Assert.Equal("false", response.Headers.GetValues("x-should-retry").Single());

        var streamed = await client.PostAsJsonAsync("/v1/chat/completions", new { body.model, body.stop, body.messages, body.response_format, stream = true });
        var events = await InferenceTests.SseEvents(streamed);
        var streamError = JsonDocument.Parse(events[^1]).RootElement.GetProperty("error");
        Assert.Equal("invalid_model_output", streamError.GetProperty("code").GetString());
        Assert.Contains("stop sequences", streamError.GetProperty("message").GetString());
    }

    /// <summary>Every refused field of the table (RequestFields), on every endpoint it exists on, plus an unknown one.</summary>
    public static TheoryData<string, string, string> RefusedFields()
    {
        var data = RequestFieldTests.RefusedFields();
        data.Add("chat", "frobnicate", "1");
        data.Add("text", "tools", "[]");
        return data;
    }

    [Theory, MemberData(nameof(RefusedFields))]
    public async Task EveryFieldThePortalCannotHonourIsA400NamingIt(string endpoint, string field, string value)
    {
        var customer = await portal.CreateCustomerAsync();
        using var client = customer.CreateClient();
        var json = endpoint == "chat"
            ? $$"""{"model":"qwen-3-32b","messages":[{"role":"user","content":"x"}],"{{field}}":{{value}}}"""
            : $$"""{"model":"qwen-3-32b","prompt":"x","{{field}}":{{value}}}""";

        var response = await client.PostAsync(endpoint == "chat" ? "/v1/chat/completions" : "/v1/completions",
            new StringContent(json, System.Text.Encoding.UTF8, "application/json"));

        Assert.Equal(HttpStatusCode.BadRequest, response.StatusCode);
        var error = (await response.Content.ReadFromJsonAsync<JsonElement>()).GetProperty("error");
        Assert.Equal(field, error.GetProperty("param").GetString());
        Assert.Equal("unsupported_parameter", error.GetProperty("code").GetString());
    }
}
