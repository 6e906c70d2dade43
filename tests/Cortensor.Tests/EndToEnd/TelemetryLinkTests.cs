using System.Diagnostics;
using System.Net;
using System.Net.Http.Json;
using System.Text.Json;
using Cortensor.Tests.Fixtures;

namespace Cortensor.Tests.EndToEnd;

/// <summary>An operator goes from a request id to its trace: the admin lookup holds the request's W3C trace id.</summary>
[Collection(PortalAppCollection.Name), Trait("Category", PortalAppCollection.Category)]
public class TelemetryLinkTests(PortalAppFixture portal)
{
    [Fact]
    public async Task ARequestsTraceIdIsInTheAdminLookupAndIsTheTraceItRanIn()
    {
        var customer = await portal.CreateCustomerAsync();
        using var client = customer.CreateClient();
        // The caller starts the trace, as an instrumented client would: its span is current while it calls, and the Api
        // continues the trace, so its id is known here. The header alone is not enough in this process: while a test host
        // with OpenTelemetry's HttpClient instrumentation runs beside this test (the ServiceDefaults unit tests), that
        // instrumentation replaces a request's traceparent with its own client span's, a child of the current span.
        var traceId = ActivityTraceId.CreateRandom();
        var callerSpan = ActivitySpanId.CreateRandom();
        using var request = new HttpRequestMessage(HttpMethod.Post, "/v1/chat/completions")
        {
            Content = JsonContent.Create(new { model = "gpt-oss-20b", messages = new[] { new { role = "user", content = "trace me" } }, max_tokens = 3 }),
        };
        request.Headers.Add("traceparent", $"00-{traceId.ToHexString()}-{callerSpan.ToHexString()}-01");
        using var caller = new Activity("customer call").SetParentId(traceId, callerSpan, ActivityTraceFlags.Recorded).Start();
        using var response = await client.SendAsync(request);
        caller.Stop();
        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        var requestId = response.Headers.GetValues("X-Request-Id").Single();

        using var admin = portal.CreateAdminClient();
        var lookup = await Eventually.WaitForAsync(() => admin.GetAsync($"/admin/requests/{requestId}"), r => r.StatusCode == HttpStatusCode.OK,
            TimeSpan.FromSeconds(15), $"request {requestId} was not recorded", TimeSpan.FromMilliseconds(250));
        var found = Assert.Single((await lookup.Content.ReadFromJsonAsync<JsonElement>()).EnumerateArray());
        Assert.Equal(traceId.ToHexString(), TraceIdOf(found.GetProperty("log")));
        Assert.Equal(traceId.ToHexString(), TraceIdOf(found.GetProperty("usage")));
        // A customer quoting the completion id their SDK saw leads the operator to the same request.
        var completionId = (await response.Content.ReadFromJsonAsync<JsonElement>()).GetProperty("id").GetString();
        var byCompletion = Assert.Single((await admin.GetFromJsonAsync<JsonElement>($"/admin/requests/{completionId}")).EnumerateArray());
        Assert.Equal(requestId, byCompletion.GetProperty("log").GetProperty("request_id").GetString());
    }

    private static string? TraceIdOf(JsonElement entry) => entry.TryGetProperty("trace_id", out var id) ? id.GetString() : null;
}
