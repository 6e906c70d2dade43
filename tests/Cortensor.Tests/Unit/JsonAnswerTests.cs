using Cortensor.Api.Inference;
using Cortensor.Api.Infrastructure;
using Microsoft.AspNetCore.Http;
using static Cortensor.Tests.Fixtures.ResultBodies;

namespace Cortensor.Tests.Unit;

/// <summary>A whole answer (or an error) is the same JSON the framework's JSON result writes, sent with its length instead of chunked.</summary>
public sealed class JsonAnswerTests
{
    private static readonly ChatCompletion Answer = new("chatcmpl-1", "chat.completion", 1_700_000_000, "gpt-oss-20b",
        [new ChatChoice(0, new AssistantMessage("assistant", "Grüße <b>&</b> \"quotes\" 🙂", null), "stop", null)],
        new Usage(11, 16, 27, 0.0000075m), null);

    [Fact]
    public async Task AWholeAnswerIsTheFrameworksJsonWithItsLengthSet()
    {
        var (expected, _) = await ExecuteAsync(TypedResults.Json(Answer, PortalJsonContext.Default.ChatCompletion));
        var (actual, http) = await ExecuteAsync(JsonAnswer.Of(Answer, PortalJsonContext.Default.ChatCompletion));

        Assert.Equal(expected, actual);
        Assert.Equal(actual.Length, http.Response.ContentLength);
        Assert.Equal(StatusCodes.Status200OK, http.Response.StatusCode);
        Assert.Equal("application/json; charset=utf-8", http.Response.ContentType);
    }

    [Fact]
    public async Task AnAnswerLargerThanTheKeptBufferIsWrittenWhole()
    {
        var text = new string('x', 2 * 1024 * 1024);
        var big = Answer with { Choices = [new ChatChoice(0, new AssistantMessage("assistant", text, null), "length", null)] };
        var (body, http) = await ExecuteAsync(JsonAnswer.Of(big, PortalJsonContext.Default.ChatCompletion));
        Assert.Equal(body.Length, http.Response.ContentLength);
        Assert.Contains(text, System.Text.Encoding.UTF8.GetString(body));

        // The buffer of the thread is not kept at that size, and the next answer is whole again.
        var (small, _) = await ExecuteAsync(JsonAnswer.Of(Answer, PortalJsonContext.Default.ChatCompletion));
        Assert.DoesNotContain("xxxx", System.Text.Encoding.UTF8.GetString(small));
    }

    [Fact]
    public async Task AnErrorIsWrittenWholeWithItsLengthStatusAndRetryAfter()
    {
        var error = Cortensor.Api.Errors.ApiError.UnknownModel("no-such-model");
        var (body, http) = await ExecuteAsync(Cortensor.Api.Errors.ErrorResults.ToResult(error));
        Assert.Equal(body.Length, http.Response.ContentLength);
        Assert.Equal(error.Status, http.Response.StatusCode);
        var envelope = System.Text.Json.JsonDocument.Parse(body).RootElement.GetProperty("error");
        Assert.Equal(error.Code, envelope.GetProperty("code").GetString());
    }
}
