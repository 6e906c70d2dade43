using System.Text.Json;
using Cortensor.Api.Inference;

namespace Cortensor.Tests.Unit;

/// <summary>Every OpenAI request field is honoured or refused by name: none is dropped without a word.</summary>
public class RequestFieldTests
{
    private static readonly JsonSerializerOptions Snake = new() { PropertyNamingPolicy = JsonNamingPolicy.SnakeCaseLower };

    /// <summary>A value of each refused field that asks for something the Portal does not do.</summary>
    public static readonly Dictionary<string, string> Asking = new()
    {
        ["store"] = "true", ["service_tier"] = "\"flex\"", ["logprobs"] = "true", ["top_logprobs"] = "3",
        ["logit_bias"] = "{\"50256\": -100}", ["modalities"] = "[\"text\",\"audio\"]", ["audio"] = "{\"voice\":\"alloy\",\"format\":\"wav\"}",
        ["prediction"] = "{\"type\":\"content\",\"content\":\"x\"}", ["reasoning_effort"] = "\"high\"", ["verbosity"] = "\"low\"",
        ["web_search_options"] = "{}", ["functions"] = "[{\"name\":\"f\"}]", ["function_call"] = "\"auto\"",
        ["echo"] = "true", ["best_of"] = "3", ["suffix"] = "\"end\"",
        ["reasoning"] = "{\"effort\":\"high\"}", ["conversation"] = "\"conv_1\"", ["max_tool_calls"] = "3",
    };

    /// <summary>(endpoint, field, value) for every refused field of the table, on every endpoint it exists on.</summary>
    public static TheoryData<string, string, string> RefusedFields()
    {
        var data = new TheoryData<string, string, string>();
        foreach (var f in RequestFields.All.Where(f => f.Handling == FieldHandling.Refused))
        {
            if (f.Surfaces.HasFlag(ApiSurface.Chat)) data.Add("chat", f.Name, Asking[f.Name]);
            if (f.Surfaces.HasFlag(ApiSurface.Text)) data.Add("text", f.Name, Asking[f.Name]);
            if (f.Surfaces.HasFlag(ApiSurface.Responses)) data.Add("responses", f.Name, Asking[f.Name]);
        }
        return data;
    }

    public static Cortensor.Api.Errors.ApiError? Validate(string endpoint, string extra)
    {
        if (endpoint == "chat")
        {
            var chat = JsonSerializer.Deserialize<ChatCompletionRequest>($$"""{"model":"m","messages":[{"role":"user","content":"x"}]{{extra}}}""", Snake)!;
            return RequestValidation.Validate(chat, out _);
        }
        if (endpoint == "responses")
            return Dialect.Responses.Read(System.Text.Encoding.UTF8.GetBytes($$"""{"model":"m","input":"x"{{extra}}}""")).Error;
        var text = JsonSerializer.Deserialize<CompletionRequest>($$"""{"model":"m","prompt":"x"{{extra}}}""", Snake)!;
        return RequestValidation.Validate(text, out _);
    }

    [Theory, MemberData(nameof(RefusedFields))]
    public void ARefusedFieldIsA400UnsupportedParameterNamingIt(string endpoint, string field, string value)
    {
        var error = Validate(endpoint, $",\"{field}\":{value}");
        Assert.Equal((400, "unsupported_parameter", field), (error?.Status, error?.Code, error?.Param));
    }

    [Theory]
    [InlineData("chat", ",\"store\":false,\"logprobs\":false,\"top_logprobs\":0,\"logit_bias\":{},\"modalities\":[\"text\"],\"service_tier\":\"auto\",\"audio\":null")]
    [InlineData("chat", ",\"user\":\"u-1\",\"metadata\":{\"k\":\"v\"},\"safety_identifier\":\"s\",\"prompt_cache_key\":\"p\"")]
    [InlineData("text", ",\"echo\":false,\"best_of\":1,\"suffix\":\"\",\"logprobs\":0,\"user\":\"u\"")]
    [InlineData("responses", ",\"store\":false,\"service_tier\":\"auto\",\"reasoning\":{\"effort\":null,\"summary\":null},\"top_logprobs\":0,\"prompt_cache_retention\":\"24h\",\"stream_options\":{\"include_obfuscation\":false}")]
    public void FieldsThatAskForNothingAreAccepted(string endpoint, string extra) => Assert.Null(Validate(endpoint, extra));

    /// <summary>
    /// What the SDKs send for a field left unset: null, on every field OpenAI defines for the endpoint, refused or not
    /// (the Responses API's own fields included, and text.verbosity inside text).
    /// </summary>
    [Theory]
    [InlineData("chat", "store,service_tier,logprobs,top_logprobs,logit_bias,modalities,audio,prediction,reasoning_effort,verbosity,web_search_options,functions,function_call,user,metadata,safety_identifier,prompt_cache_key,prompt_cache_retention,seed,stop,tools,tool_choice,response_format,stream_options,n,max_tokens,max_completion_tokens,temperature,top_p,presence_penalty,frequency_penalty,parallel_tool_calls")]
    [InlineData("text", "echo,best_of,suffix,logprobs,logit_bias,user,seed,stop,stream_options,n,max_tokens,temperature,top_p,presence_penalty,frequency_penalty")]
    [InlineData("responses", "reasoning,conversation,max_tool_calls,prompt_cache_retention,prompt,stream_options,store,service_tier,top_logprobs,previous_response_id,background,include,truncation,user,metadata,safety_identifier,prompt_cache_key,tools,tool_choice,parallel_tool_calls,instructions,max_output_tokens,temperature,top_p,text")]
    public void EveryFieldSentAsNullIsAccepted(string endpoint, string fields)
    {
        foreach (var field in fields.Split(','))
            Assert.True(Validate(endpoint, $",\"{field}\":null") is null, $"{endpoint}: {field}: null was refused: {Validate(endpoint, $",\"{field}\":null")?.Message}");
        Assert.Null(Validate("responses", ",\"text\":{\"format\":null,\"verbosity\":null}"));
        Assert.Equal("text.verbosity", Validate("responses", ",\"text\":{\"verbosity\":\"low\"}")?.Param);
        Assert.Equal("prompt", Validate("responses", ",\"prompt\":{\"id\":\"pmpt_1\"}")?.Param);
    }

    [Theory]
    [InlineData("chat", "frobnicate")]
    [InlineData("text", "frobnicate")]
    [InlineData("text", "tools")]
    [InlineData("text", "response_format")]
    [InlineData("chat", "echo")]
    public void AnUnknownFieldOrOneOfAnotherEndpointIsRefusedByName(string endpoint, string field)
    {
        var error = Validate(endpoint, $",\"{field}\":1");
        Assert.Equal((400, "unsupported_parameter", field), (error?.Status, error?.Code, error?.Param));
    }

    [Fact]
    public void EveryRefusedFieldHasAnExampleHere() =>
        Assert.All(RequestFields.All.Where(f => f.Handling == FieldHandling.Refused), f => Assert.True(Asking.ContainsKey(f.Name), f.Name));
}
