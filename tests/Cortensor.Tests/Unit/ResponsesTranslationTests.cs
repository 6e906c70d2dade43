using Microsoft.Extensions.DependencyInjection;
using System.Text;
using System.Text.Json;
using Cortensor.Api.Idempotency;
using Cortensor.Api.Inference;

namespace Cortensor.Tests.Unit;

/// <summary>A Responses API request becomes the chat request the hot path serves, or a 400 naming what cannot be honoured.</summary>
public class ResponsesTranslationTests
{
    private static Task<(InferenceRequest? Request, Cortensor.Api.Errors.ApiError? Error)> Read(string json) =>
        Task.FromResult(Dialect.Responses.Read(Encoding.UTF8.GetBytes(json)));

    [Fact]
    public async Task InstructionsComeFirstAsTheDeveloperTurnThenTheInputItemsInOrder()
    {
        var (request, error) = await Read("""
            {"model":"qwen-3-32b","instructions":"Be terse.","input":[
              {"role":"system","content":"House rules."},
              {"type":"message","role":"user","content":[{"type":"input_text","text":"Hello"},{"type":"input_text","text":"there"}]},
              {"role":"assistant","content":[{"type":"output_text","text":"Hi."}]},
              {"role":"user","content":"And now?"}],
             "max_output_tokens":33,"temperature":0.2,"top_p":0.9,"stream":true,"store":false,"metadata":{"a":"b"}}
            """);

        Assert.Null(error);
        Assert.Equal([new("developer", "Be terse."), new("system", "House rules."), new("user", "Hello\nthere"), new("assistant", "Hi."), new PromptMessage("user", "And now?")],
            request!.Messages);
        Assert.Equal((33, 0.2, 0.9, true, true), (request.MaxTokens, request.Temperature, request.TopP, request.Stream, request.IncludeUsage));
        Assert.Equal("b", request.Responses!.Metadata["a"]);
    }

    [Fact]
    public async Task TextInputIsOneUserTurn()
    {
        var (request, error) = await Read("""{"model":"m","input":"Tell me"}""");
        Assert.Null(error);
        Assert.Equal([new PromptMessage("user", "Tell me")], request!.Messages);
    }

    [Theory]
    [InlineData("""{"model":"m","input":"x","store":true}""", "unsupported_parameter", "store")]
    [InlineData("""{"model":"m","input":"x","previous_response_id":"resp_1"}""", "unsupported_parameter", "previous_response_id")]
    [InlineData("""{"model":"m","input":"x","conversation":"conv_1"}""", "unsupported_parameter", "conversation")]
    [InlineData("""{"model":"m","input":"x","background":true}""", "unsupported_parameter", "background")]
    [InlineData("""{"model":"m","input":"x","include":["reasoning.encrypted_content"]}""", "unsupported_parameter", "include")]
    [InlineData("""{"model":"m","input":"x","truncation":"auto"}""", "unsupported_parameter", "truncation")]
    [InlineData("""{"model":"m","input":"x","text":{"verbosity":"low"}}""", "unsupported_parameter", "text.verbosity")]
    [InlineData("""{"model":"m","input":[{"type":"item_reference","id":"msg_1"}]}""", "unsupported_parameter", "input[0].type")]
    [InlineData("""{"model":"m","input":[{"role":"user","content":[{"type":"input_file","file_id":"f"}]}]}""", "unsupported_parameter", "input[0].content[0].type")]
    [InlineData("""{"model":"m","input":[{"role":"tool","content":"x"}]}""", "invalid_value", "input[0].role")]
    [InlineData("""{"model":"m","input":[]}""", "invalid_value", "input")]
    [InlineData("""{"model":"m"}""", "missing_required_parameter", "input")]
    [InlineData("""{"input":"x"}""", "missing_required_parameter", "model")]
    [InlineData("""{"model":"m","input":"x","max_output_tokens":0}""", "invalid_value", "max_output_tokens")]
    [InlineData("""{"model":"m","input":"x","temperature":3}""", "invalid_value", "temperature")]
    public async Task WhatCannotBeHonouredIsRefusedByName(string json, string code, string param)
    {
        var (request, error) = await Read(json);
        Assert.Null(request);
        Assert.Equal((400, code, param), (error!.Status, error.Code, error.Param));
    }

    [Fact]
    public async Task FlatFunctionToolsAndEarlierCallsMapOntoTheChatToolModel()
    {
        var (request, error) = await Read("""
            {"model":"m","tools":[{"type":"function","name":"get_weather","parameters":{"type":"object","properties":{"city":{"type":"string"}}},"strict":true}],
             "tool_choice":{"type":"function","name":"get_weather"},"parallel_tool_calls":false,
             "input":[{"role":"user","content":"Weather in Paris?"},
                      {"type":"function_call","id":"fc_1","call_id":"call_1","name":"get_weather","arguments":"{\"city\":\"Paris\"}","status":"completed"},
                      {"type":"function_call_output","call_id":"call_1","output":"Sunny"}]}
            """);

        Assert.Null(error);
        var tools = request!.Tools!;
        Assert.Equal((ToolChoiceMode.Named, "get_weather", false), (tools.Choice, tools.Named, tools.ParallelCalls));
        Assert.NotNull(Assert.Single(tools.Tools).Schema);
        Assert.Equal([new PromptToolCall("call_1", "get_weather", "{\"city\":\"Paris\"}")], request.Messages[1].ToolCalls);
        Assert.Equal(("assistant", "tool", "call_1", "get_weather", "Sunny"),
            (request.Messages[1].Role, request.Messages[2].Role, request.Messages[2].ToolCallId, request.Messages[2].Name, request.Messages[2].Content));
    }

    [Fact]
    public async Task AJsonSchemaTextFormatIsChatsResponseFormat()
    {
        var (request, error) = await Read("""
            {"model":"m","input":"x","text":{"format":{"type":"json_schema","name":"city","schema":{"type":"object","properties":{"name":{"type":"string"}}},"strict":true}}}
            """);
        Assert.Null(error);
        Assert.Equal((OutputKind.JsonSchema, "city"), (request!.Format!.Kind, request.Format.Name));
        Assert.NotNull(request.Format.Compiled);
    }

    [Theory]
    [InlineData("""{"model":"m","input":"x","tools":[{"type":"function","parameters":{}}]}""", "tools[0].name")]
    [InlineData("""{"model":"m","input":"x","tools":[{"type":"function","name":"f"}],"tool_choice":{"type":"function","name":"g"}}""", "tool_choice.name")]
    [InlineData("""{"model":"m","input":"x","tool_choice":"required"}""", "tool_choice")]
    [InlineData("""{"model":"m","input":[{"type":"function_call_output","call_id":"call_9","output":"x"}]}""", "input[0].call_id")]
    [InlineData("""{"model":"m","input":"x","text":{"format":{"type":"json_schema","schema":{}}}}""", "text.format.name")]
    public async Task ToolAndFormatErrorsNameTheResponsesField(string json, string param)
    {
        var (_, error) = await Read(json);
        Assert.Equal(param, error!.Param);
        Assert.DoesNotContain("function.name", error.Message);
    }

    [Fact]
    public void TheSameRequestInAnotherMemberOrderIsTheSameBodyAndAnotherValueIsNot()
    {
        var a = CanonicalBody.Hash("""{"model":"m","messages":[{"role":"user","content":"x"}],"max_tokens":5}"""u8.ToArray());
        var b = CanonicalBody.Hash("""{ "max_tokens": 5, "messages": [ { "content": "x", "role": "user" } ], "model": "m" }"""u8.ToArray());
        var c = CanonicalBody.Hash("""{"model":"m","messages":[{"role":"user","content":"x"}],"max_tokens":6}"""u8.ToArray());
        var notJson = CanonicalBody.Hash("{not json"u8.ToArray());

        Assert.Equal(a, b);
        Assert.NotEqual(a, c);
        Assert.Equal(64, notJson.Length);
    }

    [Fact]
    public void ABodyWhoseStringsAreNotTextIsComparedAsSentNotRefusedWithAnError()
    {
        // The endpoint answers these with a 400; the idempotency check before it must not fail on them first.
        var surrogate = CanonicalBody.Hash("""{"model":"m","messages":[{"role":"user","content":"\ud800"}]}"""u8.ToArray());
        var other = CanonicalBody.Hash("""{"model":"m","messages":[{"role":"user","content":"\udc00"}]}"""u8.ToArray());
        var bytes = CanonicalBody.Hash((byte[])[.. """{"model":"m","content":" """u8, 0xFF, .. "\"}"u8]);

        Assert.Equal(64, surrogate.Length);
        Assert.NotEqual(surrogate, other);
        Assert.Equal(64, bytes.Length);
    }
}

/// <summary>The Responses stream's events in OpenAI's order, numbered from 0, whatever the answer holds.</summary>
public class ResponsesStreamTests
{
    private static Task<InferenceRequest> Request() =>
        Task.FromResult(Dialect.Responses.Read("""{"model":"m","input":"x","stream":true}"""u8).Request!);

    private static List<string> Types(IEnumerable<System.Net.ServerSentEvents.SseItem<object>> events, List<int> sequence) =>
        [.. events.Select(e =>
        {
            sequence.Add((int)e.Data.GetType().GetProperty("SequenceNumber")!.GetValue(e.Data)!);
            return e.EventType;
        })];

    [Fact]
    public async Task TextThenACallAreOneMessageItemThenOneFunctionCallItem()
    {
        var shape = Dialect.Responses.Stream("resp-abc", 1, "m", await Request());
        var sequence = new List<int>();
        var types = Types(shape.Opening().Concat(shape.Text("Hel")).Concat(shape.Text("lo"))
            .Concat(shape.ToolCalls([new AnswerToolCall("call_1", "function", new AnswerFunction("f", "{}"))]))
            .Concat(shape.Closing("tool_calls", new Usage(3, 4, 7, 0.0000019m))).ToList(), sequence);

        Assert.Equal([
            "response.created", "response.in_progress",
            "response.output_item.added", "response.content_part.added", "response.output_text.delta", "response.output_text.delta",
            "response.output_text.done", "response.content_part.done", "response.output_item.done",
            "response.output_item.added", "response.function_call_arguments.delta", "response.function_call_arguments.done", "response.output_item.done",
            "response.completed"], types);
        Assert.Equal(Enumerable.Range(0, types.Count), sequence);
    }

    [Fact]
    public async Task AFailureAfterTextClosesTheMessageAndEndsWithResponseFailed()
    {
        var shape = Dialect.Responses.Stream("resp-abc", 1, "m", await Request());
        var events = shape.Opening().Concat(shape.Text("partial")).Concat(shape.Failure(Cortensor.Api.Errors.ApiError.UpstreamFailed(), "req_1")).ToList();

        Assert.Equal(["error", "response.failed"], events[^2..].Select(e => e.EventType));
        var failed = Assert.IsType<ResponseLifecycleEvent>(events[^1].Data);
        Assert.Equal(("failed", "upstream_error", "partial"), (failed.Response.Status, failed.Response.Error!.Code, failed.Response.Output[0].Content![0].Text));
    }
}

/// <summary>What the Portal writes is what the OpenAI SDK reads: its own deserialiser, no server.</summary>
public class ResponsesShapeTests
{
    [Fact]
    public async Task TheOpenAiSdkReadsAResponseWithTextAndAFunctionCall()
    {
        var (request, _) = Dialect.Responses.Read("""
            {"model":"m","input":"x","instructions":"Be brief.","metadata":{"k":"v"},
             "tools":[{"type":"function","name":"f","parameters":{"type":"object","properties":{}}}],"tool_choice":"auto"}
            """u8);
        var answer = new StructuredAnswer("Calling f.", [new AnswerToolCall("call_1", "function", new AnswerFunction("f", "{}"))], null);
        var result = Dialect.Responses.Answer(request!, "resp-abc", "m", 1700000000, answer, "tool_calls", new Usage(3, 4, 7, 0.0000019m));
        var http = new Microsoft.AspNetCore.Http.DefaultHttpContext { RequestServices = new ServiceCollection().AddLogging().BuildServiceProvider() };
        http.Response.Body = new MemoryStream();
        await result.ExecuteAsync(http);

#pragma warning disable OPENAI001 // the SDK's Responses types are marked for evaluation
        var read = System.ClientModel.Primitives.ModelReaderWriter.Read<OpenAI.Responses.ResponseResult>(
            BinaryData.FromBytes(((MemoryStream)http.Response.Body).ToArray()))!;
        Assert.Equal(("resp_abc", OpenAI.Responses.ResponseStatus.Completed, "Calling f."), (read.Id, read.Status, read.GetOutputText()));
        var call = Assert.IsAssignableFrom<OpenAI.Responses.FunctionCallResponseItem>(read.OutputItems[1]);
        Assert.Equal(("call_1", "f"), (call.CallId, call.FunctionName));
        Assert.Equal((3, 4, 7), (read.Usage.InputTokenCount, read.Usage.OutputTokenCount, read.Usage.TotalTokenCount));
        Assert.Equal("v", read.Metadata["k"]);
#pragma warning restore OPENAI001
    }
}
