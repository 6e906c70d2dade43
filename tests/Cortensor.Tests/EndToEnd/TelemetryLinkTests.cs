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
        // The caller starts the trace (as an instrumented client would): the Api continues it, so its id is known here.
        var traceId = ActivityTraceId.CreateRandom().ToHexString();
        using var request = new HttpRequestMessage(HttpMethod.Post, "/v1/chat/completions")
        {
            Content = JsonContent.Create(new { model = "gpt-oss-20b", messages = new[] { new { role = "user", content = "trace me" } }, max_tokens = 3 }),
        };
        request.Headers.Add("traceparent", $"00-{traceId}-{ActivitySpanId.CreateRandom().ToHexString()}-01");
        using var response = await client.SendAsync(request);
        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        var requestId = response.Headers.GetValues("X-Request-Id").Single();

        using var admin = portal.CreateAdminClient();
        var lookup = await Eventually.WaitForAsync(() => admin.GetAsync($"/admin/requests/{requestId}"), r => r.StatusCode == HttpStatusCode.OK,
            TimeSpan.FromSeconds(15), $"request {requestId} was not recorded", TimeSpan.FromMilliseconds(250));
        var found = Assert.Single((await lookup.Content.ReadFromJsonAsync<JsonElement>()).EnumerateArray());
        Assert.Equal(traceId, TraceIdOf(found.GetProperty("log")));
        Assert.Equal(traceId, TraceIdOf(found.GetProperty("usage")));
        // A customer quoting the completion id their SDK saw leads the operator to the same request.
        var completionId = (await response.Content.ReadFromJsonAsync<JsonElement>()).GetProperty("id").GetString();
        var byCompletion = Assert.Single((await admin.GetFromJsonAsync<JsonElement>($"/admin/requests/{completionId}")).EnumerateArray());
        Assert.Equal(requestId, byCompletion.GetProperty("log").GetProperty("request_id").GetString());
    }

    private static string? TraceIdOf(JsonElement entry) => entry.TryGetProperty("trace_id", out var id) ? id.GetString() : null;
}
