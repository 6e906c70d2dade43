using System.Net;
using System.Net.Http.Json;
using System.Text;
using System.Text.Json;
using System.Text.RegularExpressions;
using Cortensor.Tests.Fixtures;

namespace Cortensor.Tests.EndToEnd;

/// <summary>The API reference customers read at /reference and the OpenAPI document behind it.</summary>
[Collection(PortalAppCollection.Name), Trait("Category", PortalAppCollection.Category)]
public class ReferenceTests(PortalAppFixture portal)
{
    private async Task<JsonElement> DocumentAsync()
    {
        using var client = portal.CreateClient(LaunchTopology.Api);
        return await client.GetFromJsonAsync<JsonElement>("/openapi/v1.json");
    }

    private static JsonElement Schema(JsonElement document, string name) => document.GetProperty("components").GetProperty("schemas").GetProperty(name);

    private static JsonElement Example(JsonElement document, string path) =>
        document.GetProperty("paths").GetProperty(path).GetProperty("post").GetProperty("requestBody").GetProperty("content")
            .GetProperty("application/json").GetProperty("example");

    [Fact]
    public async Task RequestSchemasMarkWhatIsRequiredAndTypeNumbersAsNumbersOnly()
    {
        var document = await DocumentAsync();
        var chat = Schema(document, "ChatCompletionRequest");
        Assert.Equal(["messages", "model"], chat.GetProperty("required").EnumerateArray().Select(r => r.GetString()!).Order());
        Assert.Equal(["model", "prompt"], Schema(document, "CompletionRequest").GetProperty("required").EnumerateArray().Select(r => r.GetString()!).Order());
        var properties = chat.GetProperty("properties");
        Assert.Equal("integer", properties.GetProperty("max_tokens").GetProperty("type").GetString());
        Assert.Equal("number", properties.GetProperty("temperature").GetProperty("type").GetString());
        Assert.Equal("boolean", properties.GetProperty("stream").GetProperty("type").GetString());
        // Nowhere in the document is a number also a string with a digits pattern.
        var text = document.GetRawText();
        Assert.DoesNotContain("\"pattern\"", text);
        Assert.DoesNotMatch(new Regex("\"type\":\\s*\\[[^\\]]*\"string\"[^\\]]*\\]"), Regex.Replace(text, "\"type\":\\s*\\[\\s*\"null\",\\s*\"string\"\\s*\\]", ""));
    }

    [Fact]
    public async Task TheExampleBodiesInTheReferenceSucceedAsSent()
    {
        var document = await DocumentAsync();
        var customer = await portal.CreateCustomerAsync(plan: "free", credits: 0);
        using var api = customer.CreateClient();
        foreach (var path in new[] { "/v1/chat/completions", "/v1/completions" })
        {
            var example = Example(document, path).GetRawText();
            Assert.DoesNotContain("null", example);
            var response = await api.PostAsync(path, new StringContent(example, Encoding.UTF8, "application/json"));
            Assert.True(response.StatusCode == HttpStatusCode.OK, $"{path} {example}: {await response.Content.ReadAsStringAsync()}");
        }

        var user = await portal.SignUpAsync();
        using var signedIn = user.CreateClient();
        var key = await signedIn.PostAsync("/portal/api-keys", new StringContent(Example(document, "/portal/api-keys").GetRawText(), Encoding.UTF8, "application/json"));
        Assert.Equal(HttpStatusCode.Created, key.StatusCode);
    }

    [Fact]
    public async Task TheReferencePageServesItsOwnScriptWithoutFontCdnsOrTheDeveloperToolbar()
    {
        using var client = portal.CreateClient(LaunchTopology.Api);
        var page = await client.GetAsync("/reference");
        Assert.Equal(HttpStatusCode.OK, page.StatusCode);
        var html = await page.Content.ReadAsStringAsync();
        Assert.DoesNotContain("fonts.scalar.com", html);
        Assert.DoesNotContain("cdn.jsdelivr.net", html);
        Assert.DoesNotContain("unpkg.com", html);
        Assert.Matches("\"showDeveloperTools\":\\s*\"never\"", html);
        Assert.Matches("\"withDefaultFonts\":\\s*false", html);
        var scripts = Regex.Matches(html, "<script[^>]+src=\"([^\"]+)\"").Select(m => m.Groups[1].Value).ToList();
        Assert.NotEmpty(scripts);
        foreach (var src in scripts)
        {
            Assert.False(Uri.TryCreate(src, UriKind.Absolute, out var absolute) && absolute.Host != page.RequestMessage!.RequestUri!.Host, $"script from elsewhere: {src}");
            var script = await client.GetAsync(new Uri(page.RequestMessage!.RequestUri!, src));
            Assert.Equal(HttpStatusCode.OK, script.StatusCode);
        }
    }
}
