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
    };

    /// <summary>(endpoint, field, value) for every refused field of the table, on every endpoint it exists on.</summary>
    public static TheoryData<string, string, string> RefusedFields()
    {
        var data = new TheoryData<string, string, string>();
        foreach (var f in RequestFields.All.Where(f => f.Handling == FieldHandling.Refused))
        {
            if (f.Surfaces.HasFlag(ApiSurface.Chat)) data.Add("chat", f.Name, Asking[f.Name]);
            if (f.Surfaces.HasFlag(ApiSurface.Text)) data.Add("text", f.Name, Asking[f.Name]);
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
    public void FieldsThatAskForNothingAreAccepted(string endpoint, string extra) => Assert.Null(Validate(endpoint, extra));

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
