using System.Net;
using System.Net.Http.Json;
using System.Text.Json;
using Aspire.Hosting.Testing;
using Cortensor.Tests.Fixtures;

namespace Cortensor.Tests.EndToEnd;

/// <summary>The request log a customer can use: filters, search by the id their SDK saw, CSV of the same range, a chart series with every day.</summary>
[Collection(PortalAppCollection.Name), Trait("Category", PortalAppCollection.Category)]
public class RequestLogTests(PortalAppFixture portal)
{
    private static object Chat(string model, bool stream = false) => stream
        ? new { model, messages = new[] { new { role = "user", content = "log me" } }, max_tokens = 6, stream = true, stream_options = new { include_usage = true } }
        : new { model, messages = new[] { new { role = "user", content = "log me" } }, max_tokens = 6 };

    /// <summary>A free-plan customer with two keys and five requests: ok, streamed, unknown model, text completion, model not in plan.</summary>
    private async Task<(TestUser User, HttpClient Portal, Guid KeyA, Guid KeyB, string CompletionId, string TextCompletionId, HttpResponseMessage Refused)> CustomerWithTrafficAsync()
    {
        var user = await portal.SignUpAsync("Log Co");
        var client = user.CreateClient();
        async Task<(Guid Id, HttpClient Api)> KeyAsync(string name)
        {
            var created = await (await client.PostAsJsonAsync("/portal/api-keys", new { name })).Content.ReadFromJsonAsync<JsonElement>();
            var api = new HttpClient { BaseAddress = client.BaseAddress };
            api.DefaultRequestHeaders.Authorization = new("Bearer", created.GetProperty("key").GetString());
            return (created.GetProperty("id").GetGuid(), api);
        }
        var (keyA, a) = await KeyAsync("key alpha");
        var (keyB, b) = await KeyAsync("key beta");
        using (a)
        using (b)
        {
            var ok = await a.PostAsJsonAsync("/v1/chat/completions", Chat("gpt-oss-20b"));
            Assert.Equal(HttpStatusCode.OK, ok.StatusCode);
            var completionId = (await ok.Content.ReadFromJsonAsync<JsonElement>()).GetProperty("id").GetString()!;
            Assert.Equal(HttpStatusCode.OK, (await a.PostAsJsonAsync("/v1/chat/completions", Chat("gpt-oss-20b", stream: true))).StatusCode);
            Assert.Equal(HttpStatusCode.NotFound, (await b.PostAsJsonAsync("/v1/chat/completions", Chat("no-such-model"))).StatusCode);
            var text = await b.PostAsJsonAsync("/v1/completions", new { model = "gemma-4-26b", prompt = "log me too", max_tokens = 5 });
            Assert.Equal(HttpStatusCode.OK, text.StatusCode);
            var textId = (await text.Content.ReadFromJsonAsync<JsonElement>()).GetProperty("id").GetString()!;
            var refused = await b.PostAsJsonAsync("/v1/chat/completions", Chat("gpt-oss-120b"));
            await Eventually.WaitForAsync(() => client.GetFromJsonAsync<JsonElement>("/portal/requests"),
                page => page.GetProperty("data").GetArrayLength() == 5, TimeSpan.FromSeconds(15), "the five requests never reached the log", TimeSpan.FromMilliseconds(200));
            return (user, client, keyA, keyB, completionId, textId, refused);
        }
    }

    private static async Task<JsonElement[]> Rows(HttpClient client, string query) =>
        [.. (await client.GetFromJsonAsync<JsonElement>("/portal/requests?" + query)).GetProperty("data").EnumerateArray()];

    [Fact]
    public async Task TheRequestLogFiltersByKeyModelStatusAndTimeAndFindsARequestByTheCompletionIdTheSdkSaw()
    {
        var (_, client, keyA, keyB, completionId, textId, _) = await CustomerWithTrafficAsync();
        using var _c = client;

        var found = Assert.Single(await Rows(client, $"search={completionId}"));
        Assert.Equal(completionId, found.GetProperty("completion_id").GetString());
        Assert.Equal("key alpha", found.GetProperty("key_name").GetString());
        Assert.False(found.GetProperty("streamed").GetBoolean());
        Assert.True(found.GetProperty("prompt_tokens").GetInt32() > 0);
        Assert.True(found.GetProperty("completion_tokens").GetInt32() > 0);
        Assert.True(found.GetProperty("cost").GetDecimal() > 0);
        Assert.Equal(textId, Assert.Single(await Rows(client, $"search={textId}")).GetProperty("completion_id").GetString());
        // The request id works in the same box, and an id of the right shape that is not ours finds nothing.
        Assert.Single(await Rows(client, $"search={found.GetProperty("request_id").GetString()}"));
        Assert.Empty(await Rows(client, $"search=chatcmpl-{Guid.NewGuid():N}"));

        Assert.Equal(2, (await Rows(client, $"key_id={keyA}")).Length);
        Assert.All(await Rows(client, $"key_id={keyB}"), r => Assert.Equal("key beta", r.GetProperty("key_name").GetString()));
        var streamed = await Rows(client, "model=gpt-oss-20b");
        Assert.Equal(2, streamed.Length);
        Assert.Single(streamed, r => r.GetProperty("streamed").GetBoolean());
        Assert.Equal(3, (await Rows(client, "status=2xx")).Length);
        var failed = await Rows(client, "status=error");
        Assert.Equal(2, failed.Length);
        var unknown = Assert.Single(failed, r => r.GetProperty("status").GetInt32() == 404);
        Assert.False(unknown.GetProperty("model_known").GetBoolean());
        Assert.Equal("unknown model: no-such-model", unknown.GetProperty("model_label").GetString());
        Assert.False(unknown.TryGetProperty("completion_id", out _));
        Assert.Single(await Rows(client, $"status=403&key_id={keyB}"));
        Assert.Empty(await Rows(client, $"from={DateTime.UtcNow.AddMinutes(5):O}"));
        var all = await Rows(client, $"from={DateTime.UtcNow.AddHours(-1):O}&to={DateTime.UtcNow.AddMinutes(5):O}");
        Assert.Equal(5, all.Length);
        // A day given as 'to' includes that day: each request is found under its own UTC day, as the usage summary counts it.
        var days = all.Select(r => r.GetProperty("created_at").GetDateTimeOffset().UtcDateTime.ToString("yyyy-MM-dd")).Distinct().ToList();
        var byDay = 0;
        foreach (var day in days) byDay += (await Rows(client, $"from={day}&to={day}")).Length;
        Assert.Equal(5, byDay);
    }

    [Fact]
    public async Task PagingLosesNoRequestLoggedInTheSameMicrosecondAsAPagesLast()
    {
        var (user, client, _, _, _, _, _) = await CustomerWithTrafficAsync();
        using var _c = client;
        var all = await Eventually.WaitForAsync(() => Rows(client, "limit=500"), rows => rows.Length == 5, TimeSpan.FromSeconds(15), "the five requests were not logged");
        // As at thousands of requests a second: every entry at the same instant.
        await using var postgres = Npgsql.NpgsqlDataSource.Create((await portal.App.GetConnectionStringAsync("postgres"))!);
        await using (var same = postgres.CreateCommand("UPDATE request_logs SET created_at = date_trunc('second', now()) WHERE organization_id = $1"))
        {
            same.Parameters.Add(new Npgsql.NpgsqlParameter { Value = user.OrganizationId });
            Assert.Equal(5, await same.ExecuteNonQueryAsync());
        }
        var seen = new List<string>();
        var query = "limit=2";
        for (var pages = 0; pages < 10; pages++)
        {
            var page = await client.GetFromJsonAsync<JsonElement>("/portal/requests?" + query);
            seen.AddRange(page.GetProperty("data").EnumerateArray().Select(r => r.GetProperty("request_id").GetString()!));
            if (!page.GetProperty("has_more").GetBoolean()) break;
            query = $"limit=2&before={Uri.EscapeDataString(page.GetProperty("next_before").GetString()!)}&before_event={page.GetProperty("next_before_event").GetString()}";
        }
        Assert.Equal(all.Select(r => r.GetProperty("request_id").GetString()).Order(), seen.Order());
    }

    [Fact]
    public async Task TheCsvExportStreamsTheSameFilteredRangeAndRefusesABadFilterLikeThePage()
    {
        var (_, client, _, keyB, _, textId, _) = await CustomerWithTrafficAsync();
        using var _c = client;

        var response = await client.GetAsync($"/portal/requests.csv?key_id={keyB}");
        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        Assert.Equal("text/csv", response.Content.Headers.ContentType?.MediaType);
        Assert.Equal("attachment", response.Content.Headers.ContentDisposition?.DispositionType);
        var lines = (await response.Content.ReadAsStringAsync()).Split("\r\n", StringSplitOptions.RemoveEmptyEntries);
        Assert.StartsWith("time_utc,request_id,completion_id,key_name,key_id,model,model_known,method,path,status,error_code,stream,prompt_tokens,completion_tokens,cost_usd", lines[0]);
        Assert.Equal(1 + 3, lines.Length);
        Assert.All(lines[1..], l => Assert.Contains("key beta", l));
        Assert.Contains(lines, l => l.Contains(textId) && l.Contains(",gemma-4-26b,true,"));
        Assert.Contains(lines, l => l.Contains(",no-such-model,false,") && l.Contains(",404,model_not_found,"));

        // The page and the file agree row for row under the same filters.
        var page = await Rows(client, "status=2xx");
        var csv = (await client.GetStringAsync("/portal/requests.csv?status=2xx")).Split("\r\n", StringSplitOptions.RemoveEmptyEntries)[1..];
        Assert.Equal(page.Select(r => r.GetProperty("request_id").GetString()), csv.Select(l => l.Split(',')[1]));

        foreach (var (query, param) in new[] { ("status=teapot", "status"), ("key_id=abc", "key_id"), ("from=soon", "from"), ("before_event=evt_1", "before_event"), ($"key_id={Guid.NewGuid()}", null) })
        {
            var bad = await client.GetAsync("/portal/requests.csv?" + query);
            Assert.Equal(param is null ? HttpStatusCode.NotFound : HttpStatusCode.BadRequest, bad.StatusCode);
            var error = (await bad.Content.ReadFromJsonAsync<JsonElement>()).GetProperty("error");
            if (param is not null) Assert.Equal(param, error.GetProperty("param").GetString());
        }
    }

    [Fact]
    public async Task ARequestRefusedForItsFieldsIsLoggedUnderTheModelItNamed()
    {
        var customer = await portal.CreateCustomerAsync();
        using var client = customer.CreateClient();
        using var admin = portal.CreateAdminClient();
        var messages = new[] { new { role = "user", content = "log me" } };
        foreach (var (body, stream) in new (object Body, bool Stream)[]
        {
            (new { model = "gemma-4-26b", messages, temperature = 7 }, false),
            // Refused by the serializer (a field of the wrong type) rather than by the checks after it.
            (new { model = "gemma-4-26b", messages = "not a list", stream = true }, true),
            (new { model = "gemma-4-26b", messages, response_format = new { type = "json_schema", json_schema = new { name = "x", strict = true, schema = new { not = new { } } } } }, false),
        })
        {
            var requestId = Guid.NewGuid().ToString("N");
            using var call = new HttpRequestMessage(HttpMethod.Post, "/v1/chat/completions") { Content = JsonContent.Create(body) };
            call.Headers.Add("X-Request-Id", requestId);
            Assert.Equal(HttpStatusCode.BadRequest, (await client.SendAsync(call)).StatusCode);
            var logged = await Eventually.WaitForAsync(() => admin.GetAsync($"/admin/requests/{requestId}"), r => r.StatusCode == HttpStatusCode.OK,
                TimeSpan.FromSeconds(15), $"request {requestId} was not recorded", TimeSpan.FromMilliseconds(250));
            var found = (await logged.Content.ReadFromJsonAsync<JsonElement>())[0];
            Assert.Equal(("gemma-4-26b", 400), (found.GetProperty("log").GetProperty("model_id").GetString(), found.GetProperty("log").GetProperty("status").GetInt32()));
            Assert.Equal(stream, found.GetProperty("usage").GetProperty("streamed").GetBoolean());
            Assert.Equal(0m, found.GetProperty("usage").GetProperty("cost").GetDecimal());
        }
    }

    [Fact]
    public async Task AnInferenceRequestWithAPausedOrRevokedKeyIsLoggedAsTheRefusalItWas()
    {
        var customer = await portal.CreateCustomerAsync();
        using var client = customer.CreateClient();
        using var admin = portal.CreateAdminClient();
        var chat = new { model = "gemma-4-26b", messages = new[] { new { role = "user", content = "log me" } }, max_tokens = 4 };

        async Task<string> SendAsync(string path, HttpStatusCode expected)
        {
            var requestId = Guid.NewGuid().ToString("N");
            using var call = new HttpRequestMessage(path.EndsWith("models") ? HttpMethod.Get : HttpMethod.Post, path);
            if (call.Method == HttpMethod.Post) call.Content = JsonContent.Create(chat);
            call.Headers.Add("X-Request-Id", requestId);
            Assert.Equal(expected, (await client.SendAsync(call)).StatusCode);
            return requestId;
        }
        async Task<JsonElement> LoggedAsync(string requestId)
        {
            var logged = await Eventually.WaitForAsync(() => admin.GetAsync($"/admin/requests/{requestId}"), r => r.StatusCode == HttpStatusCode.OK,
                TimeSpan.FromSeconds(15), $"request {requestId} was not recorded", TimeSpan.FromMilliseconds(250));
            return Assert.Single((await logged.Content.ReadFromJsonAsync<JsonElement>()).EnumerateArray());
        }

        (await admin.PostAsync($"/admin/api-keys/{customer.KeyId}/pause", null)).EnsureSuccessStatusCode();
        await Eventually.WaitUntilAsync(async () => (await client.GetAsync("/v1/models")).StatusCode == HttpStatusCode.Forbidden,
            Eventually.Propagation, "the paused key was still served", TimeSpan.FromMilliseconds(50));
        var listing = await SendAsync("/v1/models", HttpStatusCode.Forbidden);
        foreach (var (path, expected, code) in new[] { ("/v1/chat/completions", HttpStatusCode.Forbidden, "api_key_paused"), ("/v1/responses", HttpStatusCode.Forbidden, "api_key_paused") })
        {
            var found = await LoggedAsync(await SendAsync(path, expected));
            Assert.Equal((403, code, path), (found.GetProperty("log").GetProperty("status").GetInt32(), found.GetProperty("log").GetProperty("error_code").GetString(),
                found.GetProperty("log").GetProperty("path").GetString()));
            Assert.Equal(customer.KeyId, found.GetProperty("log").GetProperty("api_key_id").GetGuid());
            Assert.Equal((0, 0m), (found.GetProperty("usage").GetProperty("prompt_tokens").GetInt32(), found.GetProperty("usage").GetProperty("cost").GetDecimal()));
        }
        // As with an active key, listing models is not an inference request and is not in the log.
        Assert.Equal(HttpStatusCode.NotFound, (await admin.GetAsync($"/admin/requests/{listing}")).StatusCode);

        (await admin.PostAsync($"/admin/api-keys/{customer.KeyId}/revoke", null)).EnsureSuccessStatusCode();
        await Eventually.WaitUntilAsync(async () => (await client.GetAsync("/v1/models")).StatusCode == HttpStatusCode.Unauthorized,
            Eventually.Propagation, "the revoked key was still served", TimeSpan.FromMilliseconds(50));
        var revoked = await LoggedAsync(await SendAsync("/v1/completions", HttpStatusCode.Unauthorized));
        Assert.Equal((401, "api_key_revoked"), (revoked.GetProperty("log").GetProperty("status").GetInt32(), revoked.GetProperty("log").GetProperty("error_code").GetString()));

        // A key that is no one's leaves nothing behind in anyone's log.
        using var stranger = new HttpClient { BaseAddress = customer.ApiBase };
        stranger.DefaultRequestHeaders.Authorization = new("Bearer", Cortensor.Api.Keys.ApiKeyFormat.Generate("live"));
        var unknownId = Guid.NewGuid().ToString("N");
        using var unknown = new HttpRequestMessage(HttpMethod.Post, "/v1/chat/completions") { Content = JsonContent.Create(chat) };
        unknown.Headers.Add("X-Request-Id", unknownId);
        Assert.Equal(HttpStatusCode.Unauthorized, (await stranger.SendAsync(unknown)).StatusCode);
        await LoggedAsync(await SendAsync("/v1/chat/completions", HttpStatusCode.Unauthorized));
        Assert.Equal(HttpStatusCode.NotFound, (await admin.GetAsync($"/admin/requests/{unknownId}")).StatusCode);
    }

    [Fact]
    public async Task TheUsageSeriesCoversEveryDayOfTheRangeWithZerosAndNamesAnUnknownModel()
    {
        var (user, client, _, _, _, _, refused) = await CustomerWithTrafficAsync();
        using var _c = client;
        // The refusal says which plan has the model and where plans are seen.
        Assert.Equal(HttpStatusCode.Forbidden, refused.StatusCode);
        var message = (await refused.Content.ReadFromJsonAsync<JsonElement>()).GetProperty("error").GetProperty("message").GetString()!;
        Assert.Contains("Pro", message);
        Assert.Contains("/balance", message);

        var today = DateOnly.FromDateTime(DateTime.UtcNow);
        var summary = await Eventually.WaitForAsync(
            () => client.GetFromJsonAsync<JsonElement>($"/portal/usage-summary?from={today.AddDays(-6):yyyy-MM-dd}&to={today:yyyy-MM-dd}&group_by=day,model"),
            s => s.GetProperty("totals").GetProperty("requests").GetInt64() == 5, TimeSpan.FromSeconds(15), "usage_daily never had the five requests");
        var days = summary.GetProperty("days").EnumerateArray().Select(d => d.GetString()).ToArray();
        Assert.Equal(Enumerable.Range(0, 7).Select(i => today.AddDays(i - 6).ToString("yyyy-MM-dd")), days);
        var series = summary.GetProperty("series").EnumerateArray().ToDictionary(s => s.GetProperty("name").GetString()!);
        Assert.Equal(new[] { "gemma-4-26b", "gpt-oss-120b", "gpt-oss-20b", "unknown model: no-such-model" }, series.Keys.Order(StringComparer.Ordinal));
        var oss = series["gpt-oss-20b"];
        Assert.Equal(new long[] { 0, 0, 0, 0, 0, 0, 2 }, oss.GetProperty("requests").EnumerateArray().Select(v => v.GetInt64()));
        Assert.Equal(7, oss.GetProperty("cost").GetArrayLength());
        Assert.True(oss.GetProperty("cost")[6].GetDecimal() > 0);
        Assert.True(oss.GetProperty("model_known").GetBoolean());
        Assert.False(series["unknown model: no-such-model"].GetProperty("model_known").GetBoolean());

        // Grouped by day alone: one series of every day.
        var all = Assert.Single((await client.GetFromJsonAsync<JsonElement>($"/portal/usage-summary?from={today.AddDays(-2):yyyy-MM-dd}&to={today:yyyy-MM-dd}&group_by=day"))
            .GetProperty("series").EnumerateArray());
        Assert.Equal(new long[] { 0, 0, 5 }, all.GetProperty("requests").EnumerateArray().Select(v => v.GetInt64()));
        _ = user;
    }
}
