using System.Text.Json;
using Cortensor.Api.Catalog;
using Cortensor.Api.Data;
using Cortensor.Api.Inference;
using Cortensor.Api.Limits;
using Cortensor.Api.Routing;

namespace Cortensor.Tests.Unit;

/// <summary>The hot path's rules, each on its own, without a server.</summary>
public class HotPathRuleTests
{
    private static readonly CatalogRouter Router = new("router-1", "pool", "http://router-1", [1]);

    [Fact]
    public void ARouterLeaseIsReleasedExactlyOnceWhicheverWayTheRequestEnds()
    {
        var state = new RouterState("router-1", new RoutingOptions());
        var leases = new[] { new RouterLease(new RouteChoice(Router, state, 1)), new RouterLease(new RouteChoice(Router, state, 1)), new RouterLease(new RouteChoice(Router, state, 1)) };
        Assert.Equal(3, state.InFlight);

        leases[0].Succeeded(); leases[0].Failed(); leases[0].Dispose();   // answered, then every other exit runs too
        leases[1].Failed(); leases[1].Dispose();                         // the router failed
        leases[2].Dispose(); leases[2].Dispose();                        // the client went away

        Assert.Equal(0, state.InFlight);
        Assert.Equal(1, state.Completed);
        Assert.Equal(1, state.Failed); // a client going away is not held against the router
    }

    [Theory]
    [InlineData(AdmissionVerdict.KeyRequestsExhausted, 429, "requests per minute on this key")]
    [InlineData(AdmissionVerdict.OrganizationTokensExhausted, 429, "shared by all its keys")]
    [InlineData(AdmissionVerdict.TooManyConcurrent, 429, "concurrent requests of your organization (limit 4)")]
    [InlineData(AdmissionVerdict.InsufficientFunds, 402, "Your credit balance is $0.0001")]
    [InlineData(AdmissionVerdict.OutageAllowanceSpent, 503, "temporarily unavailable")]
    public void EachRefusalSaysWhichLimitAndWhatToDo(AdmissionVerdict verdict, int status, string says)
    {
        var admission = new Admission(verdict, TimeSpan.FromSeconds(12), 1, 10, 10, 100, 90, 60, 60, 1000, 900, 4, 50,
            Pricing.ToUnits(0.01m), Pricing.ToUnits(0.0001m), null, false);
        var error = Refusals.For(admission, BillingMode.PrepaidCredits, null)!;
        Assert.Equal(status, error.Status);
        Assert.Contains(says, error.Message);
        if (status == 429) Assert.True(error.RetryAfterSeconds >= 1);
    }

    [Fact]
    public void AnAdmittedRequestIsNotRefused() =>
        Assert.Null(Refusals.For(new Admission(AdmissionVerdict.Admitted, TimeSpan.FromSeconds(1), 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, null, false),
            BillingMode.MonthlyQuota, 1000));

    [Fact]
    public void TheRateLimitHeadersReportWhicheverLimitBindsFirst()
    {
        var admission = new Admission(AdmissionVerdict.Admitted, TimeSpan.FromSeconds(30), 1,
            KeyRequestLimit: 10, KeyRequests: 3, KeyTokenLimit: 5000, KeyTokens: 100,
            OrganizationRequestLimit: 60, OrganizationRequests: 58, OrganizationTokenLimit: 100_000, OrganizationTokens: 100,
            ConcurrencyLimit: 8, ReservedTokens: 50, Amount: 50, Balance: 0, Hold: null, Local: false);
        Assert.Equal((10, 2, 5000, 4900), (admission.RequestLimit, admission.RequestsRemaining, admission.TokenLimit, admission.TokensRemaining));
    }

    [Theory]
    [InlineData("Hello world. END more", "END", "Hello world. ")]
    [InlineData("no stop here", "END", "no stop here")]
    [InlineData("one END two END", "END", "one ")]
    [InlineData("a longer stop: STOP HERE and on", "STOP HERE", "a longer stop: ")]
    public void StopSequencesCutStreamsAtTheSamePlaceWhateverTheChunking(string text, string stop, string expected)
    {
        for (var size = 1; size <= text.Length; size++)
        {
            var filter = new StreamingStopFilter([stop]);
            var sent = "";
            for (var i = 0; i < text.Length && !filter.Stopped; i += size) sent += filter.Push(text.Substring(i, Math.Min(size, text.Length - i)));
            sent += filter.Flush();
            Assert.Equal(expected, sent);
            // What is billed ends where the stop sequence ends in the whole text, however it was cut.
            var (cut, end) = ResponseNormaliser.FindStop(text, [stop]);
            Assert.Equal(cut < 0 ? null : end, filter.StopEnd);
        }
    }

    [Theory]
    [InlineData("ab END cd", new[] { "END" }, 3, 6)]
    [InlineData("ab END cd", new[] { "cd", "END" }, 3, 6)]
    [InlineData("ab ENDING", new[] { "ENDING", "END" }, 3, 6)]
    [InlineData("ab", new[] { "END" }, -1, -1)]
    public void TheFirstStopSequenceCutsTheAnswerAndTheShortestOneThereEndsWhatIsBilled(string text, string[] stop, int cut, int end) =>
        Assert.Equal((cut, end), ResponseNormaliser.FindStop(text, stop));

    [Theory]
    [InlineData("""{"model":"m","messages":[]}""", "messages")]
    [InlineData("""{"model":"m","messages":[{"role":"robot","content":"x"}]}""", "messages[0].role")]
    [InlineData("""{"model":"m","messages":[{"role":"user","content":"x"}],"temperature":3}""", "temperature")]
    [InlineData("""{"model":"m","messages":[{"role":"user","content":"x"}],"n":2}""", "n")]
    [InlineData("""{"model":"m","messages":[{"role":"user","content":"x"}],"stop":["a","b","c","d","e"]}""", "stop")]
    [InlineData("""{"messages":[{"role":"user","content":"x"}]}""", "model")]
    public void InvalidChatRequestsNameTheOffendingField(string json, string field)
    {
        var body = JsonSerializer.Deserialize<ChatCompletionRequest>(json, new JsonSerializerOptions { PropertyNamingPolicy = JsonNamingPolicy.SnakeCaseLower })!;
        var error = RequestValidation.Validate(body, out var request);
        Assert.Null(request);
        Assert.Equal(400, error!.Status);
        Assert.Equal(field, error.Param);
    }

    [Theory]
    [InlineData("""{"model":"m","messages":[{"role":"user","content":"x"}],"seed":7}""", "seed")]
    [InlineData("""{"model":"m","messages":[{"role":"user","content":"x"}],"presence_penalty":0.5}""", "presence_penalty")]
    [InlineData("""{"model":"m","messages":[{"role":"user","content":"x"}],"frequency_penalty":-1}""", "frequency_penalty")]
    [InlineData("""{"model":"m","messages":[{"role":"user","content":"x"}],"presence_penalty":0,"frequency_penalty":0}""", null)]
    public void FieldsAPoolCannotHonourAreRefusedNamingThemNeverDropped(string json, string? field)
    {
        var body = JsonSerializer.Deserialize<ChatCompletionRequest>(json, new JsonSerializerOptions { PropertyNamingPolicy = JsonNamingPolicy.SnakeCaseLower })!;
        Assert.Null(RequestValidation.Validate(body, out var request));
        var model = new CatalogModel("m", "M", "gpt-oss", true, 0.1m, 0.1m, 1000, "pool", "m", DateTimeOffset.UnixEpoch);
        var plain = new CatalogPool("pool", false, [Router]);
        var error = Entitlement.Honoured(model, plain, request!);
        Assert.Equal(field, error?.Param);
        if (field is not null) Assert.Equal(("unsupported_parameter", 400), (error!.Code, error.Status));
        var capable = new CatalogPool("pool", false, [Router]) { Protocol = new PoolProtocol(RouterApiVersion.V1, true, true, false) };
        Assert.Null(Entitlement.Honoured(model, capable, request!));
    }
}
