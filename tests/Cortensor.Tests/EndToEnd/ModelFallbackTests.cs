using System.Net;
using System.Net.Http.Json;
using System.Text.Json;
using Cortensor.Tests.Fixtures;

namespace Cortensor.Tests.EndToEnd;

/// <summary>The <c>models</c> array (OpenRouter's convention) and GET /v1/models/{id}, as an SDK user meets them.</summary>
[Collection(PortalAppCollection.Name), Trait("Category", PortalAppCollection.Category)]
public class ModelFallbackTests(PortalAppFixture portal)
{
    [Fact]
    public async Task ADrainedFirstModelFallsBackToTheNextWhichServesNamesItselfAndIsBilledAtItsOwnPrice()
    {
        var customer = await portal.CreateCustomerAsync();
        using var client = customer.CreateClient();
        using var admin = portal.CreateAdminClient();
        (await admin.PostAsync("/admin/pools/qwen/drain", null)).EnsureSuccessStatusCode();
        try
        {
            await customer.WaitUntilEveryReplicaAnswersAsync(DrainedModelAlone, HttpStatusCode.ServiceUnavailable, "not every replica saw the drain");
            var requestId = "fb-" + Guid.NewGuid().ToString("N");
            using var call = new HttpRequestMessage(HttpMethod.Post, "/v1/chat/completions")
            {
                Content = JsonContent.Create(new
                {
                    model = "qwen-3-32b", models = new[] { "gpt-oss-20b" },
                    messages = new[] { new { role = "user", content = "Which model answers this?" } }, max_tokens = 8,
                }),
            };
            call.Headers.Add("X-Request-Id", requestId);
            var answered = await client.SendAsync(call);
            Assert.Equal(HttpStatusCode.OK, answered.StatusCode);
            var body = await answered.Content.ReadFromJsonAsync<JsonElement>();
            Assert.Equal("gpt-oss-20b", body.GetProperty("model").GetString());
            var usage = body.GetProperty("usage");

            var logged = await Eventually.WaitForAsync(() => admin.GetAsync($"/admin/requests/{requestId}"), r => r.StatusCode == HttpStatusCode.OK,
                TimeSpan.FromSeconds(15), $"request {requestId} was not recorded", TimeSpan.FromMilliseconds(250));
            var record = (await logged.Content.ReadFromJsonAsync<JsonElement>())[0].GetProperty("usage");
            Assert.Equal("gpt-oss-20b", record.GetProperty("model_id").GetString());
            var served = Requirements.Model("gpt-oss-20b");
            var price = (usage.GetProperty("prompt_tokens").GetInt32() * served.InputPricePer1K
                + usage.GetProperty("completion_tokens").GetInt32() * served.OutputPricePer1K) / 1000m;
            // The ledger keeps 1e-10 USD, rounded up.
            Assert.Equal(decimal.Ceiling(price * 10_000_000_000m) / 10_000_000_000m, record.GetProperty("cost").GetDecimal());

            // Without a fallback the drained model is still the 503 it was.
            Assert.Equal(HttpStatusCode.ServiceUnavailable, (await DrainedModelAlone(client)).StatusCode);
        }
        finally
        {
            (await admin.PostAsync("/admin/pools/qwen/undrain", null)).EnsureSuccessStatusCode();
            await FailoverTests.WaitUntilServedAsync(customer, "qwen-3-32b");
        }
    }

    private static Task<HttpResponseMessage> DrainedModelAlone(HttpClient client) => client.PostAsJsonAsync("/v1/chat/completions",
        new { model = "qwen-3-32b", messages = new[] { new { role = "user", content = "hi" } }, max_tokens = 2 });

    [Fact]
    public async Task ModelsTheKeyMayNotUseAreSkippedAndWhenNoneCanServeTheFirstModelsRefusalIsTheAnswer()
    {
        var customer = await portal.CreateCustomerAsync(keyOptions: new { name = "only gemma", models = new[] { "gemma-4-26b" } });
        using var client = customer.CreateClient();

        var served = await client.PostAsJsonAsync("/v1/completions",
            new { models = new[] { "gpt-oss-20b", "no-such-model", "gemma-4-26b" }, prompt = "Say hello.", max_tokens = 4 });
        Assert.Equal(HttpStatusCode.OK, served.StatusCode);
        Assert.Equal("gemma-4-26b", (await served.Content.ReadFromJsonAsync<JsonElement>()).GetProperty("model").GetString());

        var refused = await client.PostAsJsonAsync("/v1/completions",
            new { model = "gpt-oss-20b", models = new[] { "qwen-3-32b" }, prompt = "Say hello.", max_tokens = 4 });
        Assert.Equal(HttpStatusCode.Forbidden, refused.StatusCode);
        var error = (await refused.Content.ReadFromJsonAsync<JsonElement>()).GetProperty("error");
        Assert.Equal("model_not_entitled", error.GetProperty("code").GetString());
        Assert.Contains("gpt-oss-20b", error.GetProperty("message").GetString());
    }

    [Fact]
    public async Task AModelWhoseOnlyRouterIsDownFallsBackOnceTheRouterIsOutOfRotation()
    {
        var customer = await portal.CreateCustomerAsync();
        using var client = customer.CreateClient();
        await portal.SetRouterBehaviourAsync("router-oss120b-1", new { outage = "Error500" });
        try
        {
            // The probe and the breaker take the router out within seconds; from then on the fallback serves.
            var served = await Eventually.WaitForAsync(() => client.PostAsJsonAsync("/v1/chat/completions", new
                {
                    model = "gpt-oss-120b", models = new[] { "gpt-oss-20b" },
                    messages = new[] { new { role = "user", content = "anyone there?" } }, max_tokens = 4,
                }),
                r => r.StatusCode == HttpStatusCode.OK, TimeSpan.FromSeconds(30), "the fallback never served while gpt-oss-120b was down",
                TimeSpan.FromMilliseconds(500));
            Assert.Equal("gpt-oss-20b", (await served.Content.ReadFromJsonAsync<JsonElement>()).GetProperty("model").GetString());
        }
        finally
        {
            await portal.SetRouterBehaviourAsync("router-oss120b-1", new { outage = "None" });
        }
        await FailoverTests.WaitUntilServedAsync(customer, "gpt-oss-120b");
    }

    [Theory]
    [InlineData("""{"model":"gpt-oss-20b","models":"gemma-4-26b","prompt":"x"}""", "models")]
    [InlineData("""{"model":"gpt-oss-20b","models":[],"prompt":"x"}""", "models")]
    [InlineData("""{"model":"gpt-oss-20b","models":["a","b","c","d","e","f"],"prompt":"x"}""", "models")]
    [InlineData("""{"model":"gpt-oss-20b","models":["gemma-4-26b",5],"prompt":"x"}""", "models[1]")]
    [InlineData("""{"models":[""],"prompt":"x"}""", "models[0]")]
    [InlineData("""{"prompt":"x"}""", "model")]
    public async Task AMalformedModelsFieldIsA400NamingIt(string json, string param)
    {
        var customer = await portal.CreateCustomerAsync();
        using var client = customer.CreateClient();
        var response = await client.PostAsync("/v1/completions", new StringContent(json, System.Text.Encoding.UTF8, "application/json"));
        Assert.Equal(HttpStatusCode.BadRequest, response.StatusCode);
        Assert.Equal(param, (await response.Content.ReadFromJsonAsync<JsonElement>()).GetProperty("error").GetProperty("param").GetString());
    }

    [Fact]
    public async Task OneModelCanBeRetrievedByIdAsOpenAiDoes()
    {
        var customer = await portal.CreateCustomerAsync(keyOptions: new { name = "only gemma", models = new[] { "gemma-4-26b" } });
        using var client = customer.CreateClient();

        var model = await client.GetFromJsonAsync<JsonElement>("/v1/models/gemma-4-26b");
        Assert.Equal("gemma-4-26b", model.GetProperty("id").GetString());
        Assert.Equal("model", model.GetProperty("object").GetString());
        Assert.Equal("cortensor", model.GetProperty("owned_by").GetString());
        Assert.True(model.GetProperty("created").GetInt64() > 0);

        // As the OpenAI SDK asks for it.
        var sdk = new OpenAI.Models.OpenAIModelClient(new System.ClientModel.ApiKeyCredential(customer.Key),
            new OpenAI.OpenAIClientOptions { Endpoint = new Uri(customer.ApiBase, "/v1") });
        var card = (await sdk.GetModelAsync("gemma-4-26b")).Value;
        Assert.Equal("gemma-4-26b", card.Id);
        Assert.Equal("cortensor", card.OwnedBy);

        var unknown = await client.GetAsync("/v1/models/gpt-5");
        Assert.Equal(HttpStatusCode.NotFound, unknown.StatusCode);
        Assert.Equal("model_not_found", (await unknown.Content.ReadFromJsonAsync<JsonElement>()).GetProperty("error").GetProperty("code").GetString());
        var other = await client.GetAsync("/v1/models/gpt-oss-20b");
        Assert.Equal(HttpStatusCode.Forbidden, other.StatusCode);

        using var anonymous = new HttpClient { BaseAddress = client.BaseAddress };
        Assert.Equal(HttpStatusCode.Unauthorized, (await anonymous.GetAsync("/v1/models/gemma-4-26b")).StatusCode);
    }
}
