using System.Text;
using System.Text.Json;
using Cortensor.Api.Catalog;
using Cortensor.Api.Inference;
using Cortensor.Api.Routing;
using Microsoft.AspNetCore.Http;
using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging.Abstractions;

using static Cortensor.Tests.Fixtures.ResultBodies;

namespace Cortensor.Tests.Unit;

/// <summary>Where the /v1 API answers as OpenAI does, checked without a server.</summary>
public class OpenAiFidelityTests
{
    [Fact]
    public async Task AReplicaThatHasNotLoadedTheCatalogAnswersTheModelListWithA503ToRetryNotAnEmptyList()
    {
        var services = new ServiceCollection().AddLogging().BuildServiceProvider();
        var catalog = new CatalogStore(services.GetRequiredService<IServiceScopeFactory>(), new ConfigurationBuilder().Build(), NullLogger<CatalogStore>.Instance);

        var (body, http) = await ExecuteAsync(InferenceApi.ListModels(new DefaultHttpContext(), catalog).Result, services);

        Assert.Equal(503, http.Response.StatusCode);
        Assert.Equal("1", http.Response.Headers.RetryAfter.ToString());
        Assert.Equal("dependency_unavailable", JsonDocument.Parse(body).RootElement.GetProperty("error").GetProperty("code").GetString());
    }

    [Theory]
    [InlineData("chat", 4294967296L)]
    [InlineData("chat", long.MaxValue)]
    [InlineData("text", long.MinValue)]
    [InlineData("text", 7L)]
    public async Task ASixtyFourBitSeedIsAcceptedAndReachesTheRouterUnchanged(string dialect, long seed)
    {
        var (request, error) = await ReadAsync(dialect, seed.ToString(System.Globalization.CultureInfo.InvariantCulture));

        Assert.Null(error);
        Assert.Equal(seed, request!.Seed);
        var body = new RouterCompletionRequest("x", 16, null, null, false, "req-1", request.Seed);
        var sent = JsonDocument.Parse(RouterRequestWriter.Write(body, PoolProtocol.From(1, true, false, false), new TaskTimeouts(120, 45))).RootElement;
        Assert.Equal(seed, sent.GetProperty("seed").GetInt64());
    }

    [Theory]
    [InlineData("chat", "1.5")]
    [InlineData("chat", "\"7\"")]
    [InlineData("text", "18446744073709551616")]
    [InlineData("text", "true")]
    public async Task ASeedThatIsNotASixtyFourBitIntegerIsRefusedNamingIt(string dialect, string seed)
    {
        var (request, error) = await ReadAsync(dialect, seed);

        Assert.Null(request);
        Assert.Equal((400, "invalid_value", "seed"), (error?.Status, error?.Code, error?.Param));
    }

    [Fact]
    public async Task AChatAnswerReportsItsPromptTokensDetailsAsTheOpenAiSdkReadsThem()
    {
        var (request, _) = Dialect.Chat.Read("""{"model":"m","messages":[{"role":"user","content":"x"}]}"""u8);
        var usage = new Usage(11, 16, 27, 0.0000075m, new CompletionTokensDetails(4));

        var (body, _) = await ExecuteAsync(Dialect.Chat.Answer(request!, "chatcmpl-1", "m", 1_700_000_000, "Hello.", "stop", usage),
            new ServiceCollection().AddLogging().BuildServiceProvider());

        var read = System.ClientModel.Primitives.ModelReaderWriter.Read<OpenAI.Chat.ChatCompletion>(BinaryData.FromBytes(body))!;
        Assert.Equal((11, 16, 4, 0), (read.Usage.InputTokenCount, read.Usage.OutputTokenCount,
            read.Usage.OutputTokenDetails.ReasoningTokenCount, read.Usage.InputTokenDetails.CachedTokenCount));
    }

    [Fact]
    public async Task EveryUsageObjectOfChatAndTextCarriesNoCachedPromptTokensStreamedOrNot()
    {
        var services = new ServiceCollection().AddLogging().BuildServiceProvider();
        var usage = new Usage(11, 16, 27, 0.0000075m, new CompletionTokensDetails(0));
        var (text, _) = Dialect.Text.Read("""{"model":"m","prompt":"x"}"""u8);
        var (whole, _) = await ExecuteAsync(Dialect.Text.Answer(text!, "cmpl-1", "m", 1_700_000_000, "Hello.", "stop", usage), services);
        var chatChunk = JsonSerializer.SerializeToUtf8Bytes((ChatCompletionChunk)Dialect.Chat.UsageChunk("chatcmpl-1", 1_700_000_000, "m", usage),
            Cortensor.Api.Infrastructure.PortalJsonContext.Default.ChatCompletionChunk);
        var textChunk = JsonSerializer.SerializeToUtf8Bytes((TextCompletion)Dialect.Text.UsageChunk("cmpl-1", 1_700_000_000, "m", usage),
            Cortensor.Api.Infrastructure.PortalJsonContext.Default.TextCompletion);

        foreach (var json in new[] { whole, chatChunk, textChunk })
        {
            var details = JsonDocument.Parse(json).RootElement.GetProperty("usage").GetProperty("prompt_tokens_details");
            Assert.Equal("""{"cached_tokens":0}""", details.GetRawText());
        }
    }

    private static async Task<(InferenceRequest? Request, Cortensor.Api.Errors.ApiError? Error)> ReadAsync(string dialect, string seed)
    {
        var json = dialect == "chat"
            ? $$"""{"model":"m","messages":[{"role":"user","content":"x"}],"seed":{{seed}}}"""
            : $$"""{"model":"m","prompt":"x","seed":{{seed}}}""";
        var http = new DefaultHttpContext();
        http.Request.ContentType = "application/json";
        http.Request.Body = new MemoryStream(Encoding.UTF8.GetBytes(json));
        var read = await RequestReader.ReadAsync(http, dialect == "chat" ? Dialect.Chat : Dialect.Text, 1 << 20);
        return (read.Request, read.Error);
    }
}
