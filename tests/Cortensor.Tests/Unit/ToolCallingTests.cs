using System.Text;
using System.Text.Json;
using Cortensor.Api.Inference;
using Cortensor.Contracts;
using Cortensor.RouterSim;

namespace Cortensor.Tests.Unit;

/// <summary>
/// Tools and response formats through each family's template, answered by the router simulator as a model would,
/// and read back by the Portal: calls with arguments that fit, final answers after results, JSON that validates.
/// </summary>
public class ToolCallingTests
{
    public static readonly TheoryData<string> Families = new() { "gpt-oss", "qwen", "gemma" };

    private static readonly JsonSerializerOptions Snake = new() { PropertyNamingPolicy = JsonNamingPolicy.SnakeCaseLower };

    private const string WeatherTool = """
        {"type":"function","function":{"name":"get_weather","description":"Current weather in a city","strict":true,
         "parameters":{"type":"object","properties":{"city":{"type":"string","description":"The city"},
           "unit":{"type":"string","enum":["celsius","fahrenheit"]},"days":{"type":"integer","minimum":1,"maximum":7}},
         "required":["city","unit","days"],"additionalProperties":false}}}
        """;
    private const string ClockTool = """{"type":"function","function":{"name":"read_clock","description":"The time now"}}""";

    public static InferenceRequest Request(string json)
    {
        var body = JsonSerializer.Deserialize<ChatCompletionRequest>(json, Snake)!;
        var error = RequestValidation.Validate(body, out var request);
        Assert.Null(error);
        return request!;
    }

    private static string Model(string family, InferenceRequest request, int maxTokens = 512) =>
        TextGenerator.Generate(ModelTokenizer.ForFamily(family), PromptTemplates.Render(family, request), 7, 1, maxTokens).Text;

    [Theory, MemberData(nameof(Families))]
    public void AQuestionAboutAToolGetsACallWhoseArgumentsFitItsStrictSchema(string family)
    {
        var request = Request($$$"""{"model":"m","messages":[{"role":"user","content":"What's the weather in Paris?"}],"tools":[{{{ClockTool}}},{{{WeatherTool}}}]}""");

        var answer = ModelOutput.Interpret(family, Model(family, request), request, AnswerCut.None);

        Assert.Null(answer.Error);
        var call = Assert.Single(answer.Calls!);
        Assert.Equal("get_weather", call.Function.Name);
        Assert.StartsWith("call_", call.Id);
        var args = JsonDocument.Parse(call.Function.Arguments).RootElement;
        Assert.Equal("Paris", args.GetProperty("city").GetString());
        Assert.Equal("celsius", args.GetProperty("unit").GetString());
        Assert.Equal(1, args.GetProperty("days").GetInt32());
        Assert.Equal("tool_calls", answer.Finish("stop"));
    }

    [Theory, MemberData(nameof(Families))]
    public void ANamedToolChoiceIsCalledEvenWhenTheQuestionIsAboutAnother(string family)
    {
        var request = Request($$$"""
            {"model":"m","messages":[{"role":"user","content":"What's the weather in Paris?"}],"tools":[{{{WeatherTool}}},{{{ClockTool}}}],
             "tool_choice":{"type":"function","function":{"name":"read_clock"} } }
            """);
        var answer = ModelOutput.Interpret(family, Model(family, request), request, AnswerCut.None);
        Assert.Equal("read_clock", Assert.Single(answer.Calls!).Function.Name);
    }

    [Theory, MemberData(nameof(Families))]
    public void AQuestionNoToolAnswersIsAnsweredWithTextAndToolChoiceNoneHidesTheTools(string family)
    {
        var unrelated = Request($$$"""{"model":"m","messages":[{"role":"user","content":"Tell me a joke"}],"tools":[{{{WeatherTool}}}]}""");
        var text = ModelOutput.Interpret(family, Model(family, unrelated), unrelated, AnswerCut.None);
        Assert.Null(text.Calls);
        Assert.Contains("simulated Cortensor router", text.Content);

        var none = Request($$$"""{"model":"m","messages":[{"role":"user","content":"Weather in Paris?"}],"tools":[{{{WeatherTool}}}],"tool_choice":"none"}""");
        Assert.DoesNotContain("get_weather", PromptTemplates.Render(family, none));
    }

    [Theory, MemberData(nameof(Families))]
    public void AfterAToolResultTheModelAnswersWithFinalText(string family)
    {
        var request = Request($$$"""
            {"model":"m","tools":[{{{WeatherTool}}}],"messages":[
              {"role":"user","content":"What's the weather in Paris?"},
              {"role":"assistant","content":null,"tool_calls":[{"id":"call_1","type":"function","function":{"name":"get_weather","arguments":"{\"city\":\"Paris\",\"unit\":\"celsius\",\"days\":1}"}}]},
              {"role":"tool","tool_call_id":"call_1","content":"{\"temperature\":21,\"sky\":\"clear\"}"}]}
            """);
        var answer = ModelOutput.Interpret(family, Model(family, request), request, AnswerCut.None);
        Assert.Null(answer.Calls);
        Assert.Contains("The tool answered", answer.Content);
        Assert.Contains("temperature", answer.Content);
    }

    [Theory, MemberData(nameof(Families))]
    public void AStrictJsonSchemaIsAnsweredWithADocumentThatValidates(string family)
    {
        var request = Request("""
            {"model":"m","messages":[{"role":"user","content":"Describe a city"}],
             "response_format":{"type":"json_schema","json_schema":{"name":"city","strict":true,"schema":{"type":"object",
               "properties":{"name":{"type":"string"},"population":{"type":"integer","minimum":1000},"tags":{"type":"array","items":{"type":"string"},"minItems":2},
                 "coast":{"type":"boolean"},"kind":{"enum":["capital","town"]}},
               "required":["name","population","tags","coast","kind"],"additionalProperties":false}}}}
            """);
        var answer = ModelOutput.Interpret(family, Model(family, request), request, AnswerCut.None);
        Assert.Null(answer.Error);
        var doc = JsonDocument.Parse(answer.Content!).RootElement;
        Assert.Equal(1000, doc.GetProperty("population").GetInt32());
        Assert.Equal(2, doc.GetProperty("tags").GetArrayLength());
        Assert.Equal("capital", doc.GetProperty("kind").GetString());
    }

    [Theory, MemberData(nameof(Families))]
    public void JsonObjectModeIsAnsweredWithAJsonObject(string family)
    {
        var request = Request("""{"model":"m","messages":[{"role":"user","content":"Say hi as JSON"}],"response_format":{"type":"json_object"}}""");
        var answer = ModelOutput.Interpret(family, Model(family, request), request, AnswerCut.None);
        Assert.Null(answer.Error);
        Assert.Equal(JsonValueKind.Object, JsonDocument.Parse(answer.Content!).RootElement.ValueKind);
    }

    [Theory, MemberData(nameof(Families))]
    public void AnAnswerCutByMaxTokensIsAnInvalidModelOutput(string family)
    {
        var request = Request("""
            {"model":"m","messages":[{"role":"user","content":"x"}],
             "response_format":{"type":"json_schema","json_schema":{"name":"s","strict":true,"schema":{"type":"object","properties":{"a":{"type":"string"},"b":{"type":"string"}},"required":["a","b"]}}}}
            """);
        var answer = ModelOutput.Interpret(family, Model(family, request, maxTokens: 4), request, AnswerCut.MaxTokens);
        Assert.Equal(("invalid_model_output", 502), (answer.Error!.Code, answer.Error.Status));
        Assert.Contains("max_tokens", answer.Error.Message);
        Assert.False(answer.Error.ShouldRetry);
    }

    [Theory, MemberData(nameof(Families))]
    public void ARequiredCallCutOffByMaxTokensSaysToRaiseMaxTokensNotToRetry(string family)
    {
        var request = Request("""
            {"model":"m","messages":[{"role":"user","content":"weather in Paris"}],"tool_choice":"required",
             "tools":[{"type":"function","function":{"name":"get_weather","parameters":{"type":"object","properties":{"city":{"type":"string"}},"required":["city"]}}}]}
            """);
        var answer = ModelOutput.Interpret(family, Model(family, request, maxTokens: 3), request, AnswerCut.MaxTokens);
        Assert.Equal("invalid_model_output", answer.Error!.Code);
        Assert.Contains("raise max_tokens", answer.Error.Message);
        Assert.DoesNotContain("retry the request", answer.Error.Message);
        Assert.False(answer.Error.ShouldRetry);
    }

    [Fact]
    public void ADocumentThatBreaksTheStrictSchemaOrTextWhereACallIsRequiredIsRefused()
    {
        var schema = Request("""
            {"model":"m","messages":[{"role":"user","content":"x"}],
             "response_format":{"type":"json_schema","json_schema":{"name":"s","strict":true,"schema":{"type":"object","properties":{"n":{"type":"integer"}},"required":["n"]}}}}
            """);
        var wrong = ModelOutput.Interpret("qwen", """{"n":"seven"}""", schema, AnswerCut.None);
        Assert.Equal("invalid_model_output", wrong.Error?.Code);
        // Sampled again, a whole answer may come out right: SDKs keep their own rule.
        Assert.Null(wrong.Error!.ShouldRetry);
        Assert.Contains("/n", wrong.Error!.Message);
        Assert.Null(ModelOutput.Interpret("qwen", """{"n":7}""", schema, AnswerCut.None).Error);
        Assert.Equal("invalid_model_output", ModelOutput.Interpret("qwen", "seven", schema, AnswerCut.None).Error?.Code);

        var required = Request($$$"""{"model":"m","messages":[{"role":"user","content":"x"}],"tools":[{{{WeatherTool}}}],"tool_choice":"required"}""");
        Assert.Equal("invalid_model_output", ModelOutput.Interpret("qwen", "No call today.", required, AnswerCut.None).Error?.Code);
        var badArgs = "<tool_call>\n{\"name\": \"get_weather\", \"arguments\": {\"city\": 3}}\n</tool_call>";
        Assert.Contains("strict parameters schema", ModelOutput.Interpret("qwen", badArgs, required, AnswerCut.None).Error?.Message);
    }

    [Fact]
    public void HarmonyShowsToolsAsAFunctionsNamespaceAndCallsGoToTheirRecipient()
    {
        var request = Request($$$"""
            {"model":"m","tools":[{{{WeatherTool}}}],"tool_choice":"required","messages":[{"role":"system","content":"Be brief."},
              {"role":"user","content":"Weather?"},
              {"role":"assistant","tool_calls":[{"id":"c1","type":"function","function":{"name":"get_weather","arguments":"{}"}}]},
              {"role":"tool","tool_call_id":"c1","content":"sunny"}]}
            """);
        var prompt = PromptTemplates.Render("gpt-oss", request, new DateOnly(2026, 11, 29));
        Assert.Equal(
            "<|start|>system<|message|>You are ChatGPT, a large language model trained by OpenAI.\nKnowledge cutoff: 2024-06\n" +
            "Current date: 2026-11-29\n\nReasoning: medium\n\n# Valid channels: analysis, commentary, final. Channel must be included for every message.\n" +
            "Calls to these tools must go to the commentary channel: 'functions'.<|end|>" +
            "<|start|>developer<|message|># Instructions\n\nBe brief.\n\nYou must call at least one of the functions.\n\n# Tools\n\n## functions\n\nnamespace functions {\n\n" +
            "// Current weather in a city\ntype get_weather = (_: {\n// The city\ncity: string,\nunit: \"celsius\" | \"fahrenheit\",\ndays: number,\n}) => any;\n\n" +
            "} // namespace functions<|end|>" +
            "<|start|>user<|message|>Weather?<|end|>" +
            "<|start|>assistant<|channel|>commentary to=functions.get_weather <|constrain|>json<|message|>{}<|call|>" +
            "<|start|>functions.get_weather to=assistant<|channel|>commentary<|message|>sunny<|end|>" +
            "<|start|>assistant", prompt);
    }

    [Fact]
    public void HarmonyShowsAReferencedOrIntersectedTypeAsItsShapeAndARecursiveOneOnce()
    {
        // As Pydantic writes a nested model ($defs, allOf around a $ref) and zod a reused one (definitions).
        var request = Request("""
            {"model":"m","messages":[{"role":"user","content":"Save Ann"}],"tools":[{"type":"function","function":{"name":"save",
              "parameters":{"type":"object","required":["name","address"],"properties":{
                "name":{"type":"string"},
                "address":{"$ref":"#/$defs/Address"},
                "billing":{"allOf":[{"$ref":"#/$defs/Address"},{"type":"object","properties":{"vat":{"type":"string"}}}],"description":"Invoice address"},
                "tree":{"$ref":"#/definitions/Node"},
                "gone":{"$ref":"#/$defs/Missing"}},
              "$defs":{"Address":{"type":"object","required":["city"],"properties":{"city":{"type":"string"},"zip":{"anyOf":[{"type":"string"},{"type":"null"}]}}}},
              "definitions":{"Node":{"type":"object","properties":{"children":{"type":"array","items":{"$ref":"#/definitions/Node"}}}}}}}}]}
            """);
        var prompt = PromptTemplates.Render("gpt-oss", request);
        Assert.Contains(
            "type save = (_: {\nname: string,\naddress: {\ncity: string,\nzip?: string | null,\n},\n" +
            "// Invoice address\nbilling?: {\ncity: string,\nzip?: string | null,\n} & {\nvat?: string,\n},\n" +
            "tree?: {\nchildren?: any[],\n},\ngone?: any,\n}) => any;", prompt);
    }

    [Theory]
    [InlineData("chain")]
    [InlineData("wide")]
    public void ReferencesCopyOutAtMostAboutTheSchemasOwnSizeHoweverTheyAreArranged(string shape)
    {
        string parameters;
        if (shape == "chain")
        {
            // Each definition refers four times to the next: followed in full, 30 links would render 4^30 copies.
            var defs = string.Join(",", Enumerable.Range(0, 30).Select(i =>
                """ "DI":{"type":"object","properties":{"a":{"$ref":"#/$defs/DN"},"b":{"$ref":"#/$defs/DN"},"c":{"$ref":"#/$defs/DN"},"d":{"$ref":"#/$defs/DN"}}} """
                    .Replace("DI", $"D{i}").Replace("DN", $"D{i + 1}")));
            parameters = """{"type":"object","properties":{"root":{"$ref":"#/$defs/D0"}},"$defs":{DEFS,"D30":{"type":"string"}}}""".Replace("DEFS", defs);
        }
        else
        {
            // 64 references to one definition that holds a 200 KB description: 64 copies of it would be 12.8 MB.
            var properties = string.Join(",", Enumerable.Range(0, 64).Select(i => $$"""  "p{{i}}":{"$ref":"#/$defs/Big"}  """));
            parameters = """{"type":"object","properties":{PROPS},"$defs":{"Big":{"type":"object","properties":{"x":{"type":"string","description":"TEXT"}}}}}"""
                .Replace("PROPS", properties).Replace("TEXT", new string('d', 200_000));
        }
        var request = Request("""{"model":"m","messages":[{"role":"user","content":"x"}],"tools":[{"type":"function","function":{"name":"deep","parameters":PARAMS}}]}"""
            .Replace("PARAMS", parameters));
        var prompt = PromptTemplates.Render("gpt-oss", request);
        Assert.InRange(prompt.Length, 100, 3 * Math.Max(parameters.Length, 64 * 1024));
        Assert.Contains("?: any,", prompt); // what is past the budget
    }

    [Fact]
    public void AllowedToolsLimitWhatTheModelIsShownAndMayCallInChatAndResponsesAlike()
    {
        var chat = Request("""
            {"model":"m","messages":[{"role":"user","content":"What's the weather in Paris?"}],"tools":[WEATHER,CLOCK],
             "tool_choice":{"type":"allowed_tools","allowed_tools":{"mode":"required","tools":[{"type":"function","function":{"name":"read_clock"}}]}}}
            """.Replace("WEATHER", WeatherTool).Replace("CLOCK", ClockTool));
        var (responses, error) = Dialect.Responses.Read(System.Text.Encoding.UTF8.GetBytes("""
            {"model":"m","input":"What's the weather in Paris?","tools":[{"type":"function","name":"get_weather","parameters":{"type":"object","properties":{}}},
              {"type":"function","name":"read_clock"}],
             "tool_choice":{"type":"allowed_tools","mode":"required","tools":[{"type":"function","name":"read_clock"}]}}
            """));
        Assert.Null(error);
        foreach (var request in new[] { chat, responses! })
        {
            Assert.Equal(["read_clock"], request.Tools!.Tools.Select(t => t.Name));
            Assert.Equal(ToolChoiceMode.Required, request.Tools.Choice);
            var prompt = PromptTemplates.Render("gpt-oss", request);
            Assert.Contains("type read_clock", prompt);
            Assert.DoesNotContain("get_weather", prompt);
            Assert.Equal("read_clock", Assert.Single(ModelOutput.Interpret("gpt-oss", Model("gpt-oss", request), request, AnswerCut.None).Calls!).Function.Name);
        }

        foreach (var (choice, param) in new[]
        {
            ("""{"type":"allowed_tools","allowed_tools":{"mode":"sometimes","tools":[{"type":"function","function":{"name":"read_clock"}}]}}""", "tool_choice.allowed_tools.mode"),
            ("""{"type":"allowed_tools","allowed_tools":{"mode":"auto","tools":[]}}""", "tool_choice.allowed_tools.tools"),
            ("""{"type":"allowed_tools","allowed_tools":{"mode":"auto","tools":[{"type":"function","function":{"name":"nope"}}]}}""", "tool_choice.allowed_tools.tools[0].function.name"),
            ("""{"type":"allowed_tools"}""", "tool_choice.allowed_tools"),
        })
        {
            var body = JsonSerializer.Deserialize<ChatCompletionRequest>("""{"model":"m","messages":[{"role":"user","content":"x"}],"tools":[WEATHER,CLOCK],"tool_choice":CHOICE}"""
                .Replace("WEATHER", WeatherTool).Replace("CLOCK", ClockTool).Replace("CHOICE", choice), Snake)!;
            Assert.Equal(param, RequestValidation.Validate(body, out _)?.Param);
        }
    }

    [Fact]
    public void QwenShowsToolsInsideToolsTagsAndResultsAsToolResponses()
    {
        var request = Request($$$"""
            {"model":"m","tools":[{{{ClockTool}}}],"messages":[{"role":"user","content":"Time?"},
              {"role":"assistant","content":"","tool_calls":[{"id":"c1","type":"function","function":{"name":"read_clock","arguments":"{}"}}]},
              {"role":"tool","tool_call_id":"c1","content":"noon"}]}
            """);
        Assert.Equal(
            "<|im_start|>system\n# Tools\n\nYou may call one or more functions to assist with the user query.\n\n" +
            "You are provided with function signatures within <tools></tools> XML tags:\n<tools>\n" +
            "{\"type\":\"function\",\"function\":{\"name\":\"read_clock\",\"description\":\"The time now\",\"parameters\":{\"type\":\"object\",\"properties\":{}}}}\n</tools>\n\n" +
            "For each function call, return a json object with function name and arguments within <tool_call></tool_call> XML tags:\n" +
            "<tool_call>\n{\"name\": <function-name>, \"arguments\": <args-json-object>}\n</tool_call><|im_end|>\n" +
            "<|im_start|>user\nTime?<|im_end|>\n" +
            "<|im_start|>assistant\n<tool_call>\n{\"name\": \"read_clock\", \"arguments\": {}}\n</tool_call><|im_end|>\n" +
            "<|im_start|>user\n<tool_response>\nnoon\n</tool_response><|im_end|>\n" +
            "<|im_start|>assistant\n", PromptTemplates.Render("qwen", request));
    }

    [Fact]
    public void GemmaListsFunctionsAsJsonInTheFirstUserTurnAndResultsAsToolOutput()
    {
        var request = Request($$$"""
            {"model":"m","tools":[{{{ClockTool}}}],"messages":[{"role":"system","content":"Be brief."},{"role":"user","content":"Time?"},
              {"role":"assistant","tool_calls":[{"id":"c1","type":"function","function":{"name":"read_clock","arguments":"{}"}}]},
              {"role":"tool","tool_call_id":"c1","content":"noon"}]}
            """);
        Assert.Equal(
            "<start_of_turn>user\nYou have access to functions. If you decide to invoke any of the function(s),\nyou MUST put it in the format of\n" +
            "{\"name\": function name, \"parameters\": dictionary of argument name and its value}\n\n" +
            "You SHOULD NOT include any other text in the response if you call a function\n" +
            "[{\"name\":\"read_clock\",\"description\":\"The time now\",\"parameters\":{\"type\":\"object\",\"properties\":{}}}]\n\n" +
            "Be brief.\n\nTime?<end_of_turn>\n" +
            "<start_of_turn>model\n{\"name\": \"read_clock\", \"parameters\": {}}<end_of_turn>\n" +
            "<start_of_turn>user\n```tool_output\nnoon\n```<end_of_turn>\n" +
            "<start_of_turn>model\n", PromptTemplates.Render("gemma", request));
    }

    [Fact]
    public void AStreamPassesTextOnAtOnceButHoldsWhatCouldBeACall()
    {
        var tools = Request($$$"""{"model":"m","messages":[{"role":"user","content":"x"}],"tools":[{{{ClockTool}}}]}""");
        var text = new StructuredStream("qwen", tools);
        Assert.Equal("", text.Push("  "));
        Assert.Equal("  Hello", text.Push("Hello"));
        Assert.Equal(" there", text.Push(" there"));
        Assert.Null(text.Finish(AnswerCut.None));

        var call = new StructuredStream("qwen", tools);
        foreach (var piece in new[] { "<tool", "_call>\n{\"name\": \"read_clock\",", " \"arguments\": {}}\n</tool_call>" }) Assert.Equal("", call.Push(piece));
        Assert.Equal("read_clock", Assert.Single(call.Finish(AnswerCut.None)!.Calls!).Function.Name);
    }

    [Fact]
    public void AtMostAHundredAndTwentyEightToolsAreReadAsOpenAiAllows()
    {
        const string StrictTool = """{"type":"function","function":{"name":"NAME","strict":true,"parameters":{"type":"object","properties":{"a":{"type":"string","pattern":"^x+$"}},"required":["a"],"additionalProperties":false}}}""";
        Cortensor.Api.Errors.ApiError? Validate(int count) => RequestValidation.Validate(JsonSerializer.Deserialize<ChatCompletionRequest>(
            """{"model":"m","messages":[{"role":"user","content":"x"}],"tools":[""" + string.Join(",", Enumerable.Range(0, count).Select(i => StrictTool.Replace("NAME", $"f{i}"))) + "]}",
            Snake)!, out _);

        Assert.Null(Validate(128));
        var refused = Validate(129);
        Assert.Equal(("tools", 400), (refused?.Param, refused?.Status));
        Assert.Contains("128", refused!.Message);
    }

    [Fact]
    public void ToolMessagesMustAnswerACallMadeBefore()
    {
        var body = JsonSerializer.Deserialize<ChatCompletionRequest>("""
            {"model":"m","messages":[{"role":"user","content":"x"},{"role":"tool","tool_call_id":"nope","content":"y"}]}
            """, Snake)!;
        Assert.Equal("messages[1].tool_call_id", RequestValidation.Validate(body, out _)?.Param);
    }

    // A streamed answer and the same answer whole must tell the client the same: the streamed content joined, the calls,
    // the error and the finish reason. Call ids are new each time, so calls are compared by name and arguments.
    private const string Said = "I'll check the clock.";
    private const string HermesClock = "<tool_call>\n{\"name\": \"read_clock\", \"arguments\": {}}\n</tool_call>";
    private const string HermesWeather = "<tool_call>\n{\"name\": \"get_weather\", \"arguments\": {\"city\": \"Paris\", \"unit\": \"celsius\", \"days\": 1}}\n</tool_call>";
    private const string HarmonyClock = "<|start|>assistant<|channel|>commentary to=functions.read_clock <|constrain|>json<|message|>{}<|call|>";
    private const string HarmonyWeather = "<|start|>assistant to=functions.get_weather<|channel|>commentary json<|message|>{\"city\": \"Paris\", \"unit\": \"celsius\", \"days\": 1}<|call|>";

    private static readonly InferenceRequest Auto = Request($$$"""{"model":"m","messages":[{"role":"user","content":"x"}],"tools":[{{{ClockTool}}},{{{WeatherTool}}}]}""");
    private static readonly InferenceRequest[] Choices =
    [
        Auto,
        Request($$$"""{"model":"m","messages":[{"role":"user","content":"x"}],"tools":[{{{ClockTool}}},{{{WeatherTool}}}],"parallel_tool_calls":false}"""),
        Request($$$"""{"model":"m","messages":[{"role":"user","content":"x"}],"tools":[{{{ClockTool}}},{{{WeatherTool}}}],"tool_choice":"required"}"""),
        Request($$$"""{"model":"m","messages":[{"role":"user","content":"x"}],"tools":[{{{ClockTool}}},{{{WeatherTool}}}],"tool_choice":{"type":"function","function":{"name":"read_clock"} } }"""),
    ];

    private sealed record Delivered(string Content, string Calls, string? Error, string Finish);

    private static Delivered Whole(string family, string answer, InferenceRequest request)
    {
        var read = ModelOutput.Interpret(family, answer, request, AnswerCut.None);
        return read.Error is { } error ? new("", "", error.Message, "error") : new(read.Content ?? "", Calls(read.Calls), null, read.Finish("stop"));
    }

    private static Delivered Streamed(string family, IEnumerable<string> pieces, InferenceRequest request)
    {
        var stream = new StructuredStream(family, request);
        var sent = new StringBuilder();
        foreach (var piece in pieces) sent.Append(stream.Push(piece));
        var read = stream.Finish(AnswerCut.None);
        // What was sent before an error stays sent; the whole answer's error is what the stream must end with.
        if (read?.Error is { } error) return new("", "", error.Message, "error");
        return new(sent + read?.Content, Calls(read?.Calls), null, read?.Finish("stop") ?? "stop");
    }

    private static string Calls(AnswerToolCall[]? calls) => string.Join(" ", (calls ?? []).Select(c => $"{c.Function.Name}{c.Function.Arguments}"));

    /// <summary>The answer whole, a character at a time, cut at every point, and (when short) cut at every two points.</summary>
    private static IEnumerable<string[]> Chunkings(string answer)
    {
        yield return [answer];
        yield return [.. answer.Select(c => c.ToString())];
        for (var i = 1; i < answer.Length; i++)
        {
            yield return [answer[..i], answer[i..]];
            if (answer.Length > 160) continue;
            for (var j = i + 1; j < answer.Length; j++) yield return [answer[..i], answer[i..j], answer[j..]];
        }
    }

    /// <summary>The streamed answer, however it is cut, tells the client what the whole one does; returns the whole one's.</summary>
    private static Delivered StreamsAsItReadsWhole(string family, string answer, InferenceRequest request)
    {
        var whole = Whole(family, answer, request);
        foreach (var pieces in Chunkings(answer))
        {
            var streamed = Streamed(family, pieces, request);
            Assert.True(streamed == whole, $"{family}, pieces [{string.Join("|", pieces)}]: streamed {streamed}, whole {whole}");
        }
        return whole;
    }

    [Theory]
    [InlineData("qwen")]
    [InlineData("gpt-oss")]
    public void WhitespaceBeforeTheTextIsKeptStreamedOrWholeAsInAnAnswerWithoutCalls(string family)
    {
        var answer = "\n\n " + Said + "\n" + (family == "qwen" ? HermesClock : HarmonyClock);
        foreach (var request in Choices)
            Assert.Equal(new Delivered("\n\n " + Said, "read_clock{}", null, "tool_calls"), StreamsAsItReadsWhole(family, answer, request));
    }

    [Theory]
    [InlineData("qwen", Said + "\n" + HermesClock)]
    [InlineData("gpt-oss", Said + HarmonyClock)]
    [InlineData("gpt-oss", Said + "\n" + HarmonyClock)]
    public void TextBeforeACallStreamsAsContentAndTheCallComesAsToolCallsHoweverTheStreamIsCut(string family, string answer)
    {
        foreach (var request in Choices)
            Assert.Equal(new Delivered(Said, "read_clock{}", null, "tool_calls"), StreamsAsItReadsWhole(family, answer, request));

        // Under tool_choice auto the text is not held to the end: it goes out as soon as the call's opener begins.
        var stream = new StructuredStream(family, Auto);
        var sent = string.Concat(answer[..(answer.IndexOf('<') + 1)].Select(c => stream.Push(c.ToString())));
        Assert.Equal(Said, sent);
    }

    [Theory]
    [InlineData("qwen", Said + "\n" + HermesClock + "\n" + HermesWeather)]
    [InlineData("qwen", Said + HermesClock + HermesWeather)]
    [InlineData("gpt-oss", Said + HarmonyClock + HarmonyWeather)]
    public void TextBeforeTwoCallsStreamsAsContentAndBothCallsComeAsToolCalls(string family, string answer)
    {
        var weather = "get_weather{\"city\": \"Paris\", \"unit\": \"celsius\", \"days\": 1}";
        Assert.Equal(new Delivered(Said, "read_clock{} " + weather, null, "tool_calls"), StreamsAsItReadsWhole(family, answer, Choices[0]));
        Assert.Equal(new Delivered(Said, "read_clock{}", null, "tool_calls"), StreamsAsItReadsWhole(family, answer, Choices[1]));
        Assert.Equal(new Delivered(Said, "read_clock{} " + weather, null, "tool_calls"), StreamsAsItReadsWhole(family, answer, Choices[2]));
        Assert.Contains("but the model called 'get_weather'", StreamsAsItReadsWhole(family, answer, Choices[3]).Error);
    }

    [Theory]
    [InlineData("qwen", Said + "\n" + HermesClock + "\nDone, it is noon.")]
    [InlineData("qwen", Said + " " + HermesClock + " And " + HermesWeather + " done.")]
    [InlineData("gpt-oss", Said + HarmonyClock + "Done, it is noon.")]
    public void TextAfterTheLastCallIsReadAsTheWholeAnswerReadsIt(string family, string answer)
    {
        var whole = StreamsAsItReadsWhole(family, answer, Auto);
        Assert.Equal((Said, "tool_calls"), (whole.Content, whole.Finish));
    }

    [Theory]
    [InlineData("qwen", "Not <tool, nor <tool_calls>, nor <tool_call but:\n" + HermesClock, "Not <tool, nor <tool_calls>, nor <tool_call but:")]
    [InlineData("qwen", "<tool_calls are nice>", null)]
    [InlineData("qwen", "It ends with <tool", null)]
    [InlineData("qwen", "It ends with <tool_call", null)]
    [InlineData("qwen", "a < b, a <t b\n\n", null)]
    [InlineData("gpt-oss", "Say to=functions or <|start|> first, then:" + HarmonyClock, "Say to=functions or <|start|> first, then:")]
    [InlineData("gpt-oss", "It ends with to=func", null)]
    [InlineData("gpt-oss", "Write to=functions.read_clock yourself.", null)]
    [InlineData("gpt-oss", "Hello <|start|>assistant<|channel|>commentary to=functions. not a call", null)]
    public void TextThatOnlyLooksLikeTheStartOfACallIsSentAsText(string family, string answer, string? content)
    {
        var whole = StreamsAsItReadsWhole(family, answer, Auto);
        // Nothing held back is lost: an answer with no call is all content, down to its last characters.
        Assert.Equal(content ?? answer, whole.Content);
    }

    [Theory]
    [InlineData("qwen", Said + "\n<tool_call>{\"name\": \"read_clock\", \"arguments\": {</tool_call>", "is not JSON")]
    [InlineData("qwen", Said + "\n<tool_call>{\"arguments\": {}}</tool_call>", "without a function name")]
    [InlineData("qwen", Said + "\n<tool_call>{\"name\": \"get_weather\", \"arguments\": {\"city\": 3}}</tool_call>", "strict parameters schema")]
    [InlineData("qwen", Said + "\n<tool_call>{\"name\": \"set_clock\", \"arguments\": {}}</tool_call>", "not one of the tools")]
    [InlineData("gpt-oss", Said + "<|start|>assistant<|channel|>commentary to=functions.read_clock <|constrain|>json<|message|>{\"a\": <|call|>", "are not JSON")]
    public void ACallAfterTextThatCannotBeReadEndsTheStreamWithTheWholeAnswersError(string family, string answer, string why)
    {
        Assert.Contains(why, StreamsAsItReadsWhole(family, answer, Auto).Error);
    }

    [Theory]
    [InlineData("qwen", HermesClock)]
    [InlineData("qwen", " \n" + HermesClock + "\nDone.")]
    [InlineData("gpt-oss", HarmonyClock)]
    [InlineData("gpt-oss", "<|channel|>commentary to=functions.read_clock <|constrain|>json<|message|>{}")]
    [InlineData("gemma", "{\"name\": \"read_clock\", \"parameters\": {}}")]
    [InlineData("gemma", "```json\n[{\"name\": \"read_clock\", \"parameters\": {}}]\n```")]
    public void ACallAtTheStartIsHeldWholeAndSentAsToolCallsAsBefore(string family, string answer)
    {
        Assert.Equal(new Delivered("", "read_clock{}", null, "tool_calls"), StreamsAsItReadsWhole(family, answer, Auto));
        var stream = new StructuredStream(family, Auto);
        Assert.All(Chunkings(answer).First(p => p.Length == answer.Length), piece => Assert.Equal("", stream.Push(piece)));
    }

    [Fact]
    public void GemmaReadsJsonAfterTextAsTextStreamedOrWhole()
    {
        // Gemma's call is its whole answer (ReadCalls reads the body as JSON), so text first means there is no call.
        var whole = StreamsAsItReadsWhole("gemma", Said + " {\"name\": \"read_clock\", \"parameters\": {}}", Auto);
        Assert.Equal("stop", whole.Finish);
    }

    [Theory, MemberData(nameof(Families))]
    public void WithoutToolsInUseAStreamIsPassedOnPieceByPieceUntouched(string family)
    {
        var none = Request($$$"""{"model":"m","messages":[{"role":"user","content":"x"}],"tools":[{{{ClockTool}}}],"tool_choice":"none"}""");
        var plain = Request("""{"model":"m","messages":[{"role":"user","content":"x"}]}""");
        // The relay makes no StructuredStream for these: nothing of the answer is looked at or copied.
        Assert.False(none.Structured);
        Assert.False(plain.Structured);
        foreach (var request in new[] { none, plain })
        {
            var stream = new StructuredStream(family, request);
            foreach (var piece in new[] { "<tool", "_call>{\"name\": \"read_clock\", \"arguments\": {}}", "</tool_call>", " to=functions.", "x" })
                Assert.Same(piece, stream.Push(piece));
            Assert.Null(stream.Finish(AnswerCut.None));
        }
    }
}
