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
    public void ToolMessagesMustAnswerACallMadeBefore()
    {
        var body = JsonSerializer.Deserialize<ChatCompletionRequest>("""
            {"model":"m","messages":[{"role":"user","content":"x"},{"role":"tool","tool_call_id":"nope","content":"y"}]}
            """, Snake)!;
        Assert.Equal("messages[1].tool_call_id", RequestValidation.Validate(body, out _)?.Param);
    }
}
