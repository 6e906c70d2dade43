using System.Net;
using System.Net.Http.Json;
using System.Text.Json;
using System.Text.RegularExpressions;
using Cortensor.Tests.Fixtures;
using Microsoft.Playwright;

namespace Cortensor.Tests.EndToEnd;

/// <summary>The customer's dashboard pages (issue 18): request log, charts, playground and every table at phone width.</summary>
public partial class BrowserTests
{
    private const int PhoneWidth = 390;
    /// <summary>Narrower than this, a cell's value wraps a character or two a line: unreadable.</summary>
    private const double ReadableCellWidth = 150;

    /// <summary>A signed-up customer with a key and two logged requests: one answered (its completion id returned), one for a model that does not exist.</summary>
    private async Task<(TestUser User, string Key, string CompletionId)> CustomerWithCallsAsync(string organization)
    {
        var user = await portal.SignUpAsync(organization);
        using var client = user.CreateClient();
        var created = await (await client.PostAsJsonAsync("/portal/api-keys", new { name = "phone key" })).Content.ReadFromJsonAsync<JsonElement>();
        var key = created.GetProperty("key").GetString()!;
        using var api = new HttpClient { BaseAddress = client.BaseAddress };
        api.DefaultRequestHeaders.Authorization = new("Bearer", key);
        var ok = await api.PostAsJsonAsync("/v1/chat/completions", new { model = "gpt-oss-20b", messages = new[] { new { role = "user", content = "hello log" } }, max_tokens = 6 });
        Assert.Equal(HttpStatusCode.OK, ok.StatusCode);
        var completionId = (await ok.Content.ReadFromJsonAsync<JsonElement>()).GetProperty("id").GetString()!;
        Assert.Equal(HttpStatusCode.NotFound, (await api.PostAsJsonAsync("/v1/chat/completions",
            new { model = "no-such-model", messages = new[] { new { role = "user", content = "hello" } }, max_tokens = 6 })).StatusCode);
        await Eventually.WaitForAsync(() => client.GetFromJsonAsync<JsonElement>("/portal/requests"),
            p => p.GetProperty("data").GetArrayLength() == 2, TimeSpan.FromSeconds(15), "the two requests never reached the log", TimeSpan.FromMilliseconds(200));
        return (user, key, completionId);
    }

    private static ILocator LogRows(IPage page) =>
        page.GetByRole(AriaRole.Grid, new() { Name = "Request log", Exact = true }).GetByLabel(new Regex("^Details of request "));

    [Fact]
    public async Task TheRequestLogFiltersFindsACompletionIdShowsItsDetailsAndDownloadsTheFilteredRangeAsCsv()
    {
        var (user, _, completionId) = await CustomerWithCallsAsync("Log Browser Co");
        var page = await NewPageAsync();
        await SignInAsync(page, user.Email, TestUser.Password);
        await GoAsync(page, "/usage");
        var log = page.GetByRole(AriaRole.Grid, new() { Name = "Request log", Exact = true });
        await Assertions.Expect(LogRows(page)).ToHaveCountAsync(2);
        // Every column is there and named; time says UTC; an unknown model is named, not a blank cell.
        foreach (var title in new[] { "Time (UTC)", "Request id", "Key", "Model", "Status", "Stream", "Prompt tokens", "Completion tokens", "Cost (USD)", "Latency (ms)" })
            await Assertions.Expect(log.Locator("thead")).ToContainTextAsync(title);
        await Assertions.Expect(log).ToContainTextAsync("unknown model: no-such-model");
        await Assertions.Expect(log).ToContainTextAsync("phone key");

        // The id the SDK returned finds the request and opens its details.
        await FillAsync(page, ("request-search", completionId));
        await page.Locator("#request-search-submit").ClickAsync();
        await Assertions.Expect(LogRows(page)).ToHaveCountAsync(1);
        var detail = page.Locator("#request-detail");
        await Assertions.Expect(detail).ToContainTextAsync(completionId);
        await Assertions.Expect(detail).ToContainTextAsync("gpt-oss-20b");
        await Assertions.Expect(detail).ToContainTextAsync("Prompt tokens");
        await ShotAsync(page, "request-log-detail");

        // Filters: failed requests only, then the CSV of exactly that range.
        await page.Locator("#request-clear").ClickAsync();
        await Assertions.Expect(LogRows(page)).ToHaveCountAsync(2);
        await page.Locator("#request-status").SelectOptionAsync("error");
        await page.Locator("#request-search-submit").ClickAsync();
        await Assertions.Expect(LogRows(page)).ToHaveCountAsync(1);
        await Assertions.Expect(log).ToContainTextAsync("model_not_found");
        var download = await page.RunAndWaitForDownloadAsync(() => page.Locator("#request-export").ClickAsync());
        Assert.EndsWith(".csv", download.SuggestedFilename);
        var csv = await File.ReadAllLinesAsync((await download.PathAsync())!);
        Assert.Equal(2, csv.Length);
        Assert.StartsWith("time_utc,request_id,completion_id,key_name", csv[0]);
        Assert.Contains(",no-such-model,false,", csv[1]);

        // The model filter, with the details of the other row opened from the table.
        await page.Locator("#request-status").SelectOptionAsync("");
        await page.Locator("#request-model").SelectOptionAsync("gpt-oss-20b");
        await page.Locator("#request-search-submit").ClickAsync();
        // The failed request's row is replaced, not merely one row left.
        await Assertions.Expect(log).Not.ToContainTextAsync("model_not_found");
        await Assertions.Expect(LogRows(page)).ToHaveCountAsync(1);
        await LogRows(page).First.ClickAsync();
        await Assertions.Expect(detail).ToContainTextAsync(completionId);
    }

    [Fact]
    public async Task TheUsageChartsHoldTheirPlaceSpanTheRangeWithZeroDaysShowDollarsAndFollowTheTheme()
    {
        var (user, _, _) = await CustomerWithCallsAsync("Chart Co");
        var page = await NewPageAsync();
        await SignInAsync(page, user.Email, TestUser.Password);
        // plotly.js held back: what shows until it arrives is a placeholder of the chart's size, not a gap.
        var release = new TaskCompletionSource();
        await page.RouteAsync("**/_content/Plotly.Blazor/**", async route => { await release.Task; await route.ContinueAsync(); });
        await GoAsync(page, "/usage");
        var day = page.Locator("figure[aria-label='Usage per day chart']").First;
        await Assertions.Expect(day.Locator(".portal-chart-placeholder")).ToBeVisibleAsync();
        // Read in one go: the figure is re-rendered when the figures arrive (loading, then drawing), never absent.
        var held = await page.EvaluateAsync<double[]>("""
            (() => {
                const figure = document.querySelector("figure[aria-label='Usage per day chart']");
                const placeholder = figure.querySelector('.portal-chart-placeholder');
                return [figure.getBoundingClientRect().height, placeholder.getBoundingClientRect().height];
            })()
            """);
        Assert.True(held[0] >= 300 && held[1] >= 250, $"the chart's place is {held[0]}px high while loading, its placeholder {held[1]}px");
        release.SetResult();
        await page.UnrouteAsync("**/_content/Plotly.Blazor/**");

        var plot = page.Locator("#usage-chart-day .main-svg").First;
        await Assertions.Expect(plot).ToBeVisibleAsync();
        await Assertions.Expect(page.Locator("#usage-chart-day .portal-chart-placeholder")).ToBeHiddenAsync();
        // Full width of its place from the first draw.
        var figure = (await page.Locator("#usage-chart-day").BoundingBoxAsync())!;
        Assert.True((await plot.BoundingBoxAsync())!.Width >= figure.Width * 0.95, "the chart was drawn narrower than its place");

        // Every day of the range (the default 14), days without usage as zero; an unknown model is named.
        var series = await page.EvaluateAsync<JsonElement>("[...document.querySelector('#usage-chart-day .js-plotly-plot').data].map(t => ({ name: t.name, x: t.x, y: t.y }))");
        Assert.All(series.EnumerateArray(), t => Assert.Equal(14, t.GetProperty("x").GetArrayLength()));
        Assert.Equal(DateTime.UtcNow.ToString("yyyy-MM-dd"), series[0].GetProperty("x")[13].GetString());
        var oss = series.EnumerateArray().Single(t => t.GetProperty("name").GetString() == "gpt-oss-20b");
        Assert.Equal(13, oss.GetProperty("y").EnumerateArray().Count(v => v.GetDouble() == 0));
        Assert.Contains(series.EnumerateArray(), t => t.GetProperty("name").GetString() == "unknown model: no-such-model");
        await Assertions.Expect(page.Locator("#usage-chart-day .legendtext", new() { HasText = "unknown model: no-such-model" })).ToBeVisibleAsync();

        // Cost in dollars on both charts, cost by model beside cost by day.
        await page.Locator("select[aria-label='Measure']").SelectOptionAsync("cost");
        await page.Locator("#usage-apply").ClickAsync();
        await Assertions.Expect(page.Locator("#usage-chart-day figcaption")).ToContainTextAsync("Cost (USD)");
        foreach (var chart in new[] { "#usage-chart-day", "#usage-chart-model" })
        {
            // Redrawn for the new measure first: until then the ticks are the old chart's.
            await Assertions.Expect(page.Locator($"{chart} .ytick text").Last).ToHaveTextAsync(new Regex(@"^\$"));
            foreach (var tick in await page.Locator($"{chart} .ytick text").AllTextContentsAsync())
                Assert.Matches(@"^\$[0-9.,]+$", tick);
        }
        var byModel = await page.EvaluateAsync<string[]>("document.querySelector('#usage-chart-model .js-plotly-plot').data[0].x");
        Assert.Contains("gpt-oss-20b", byModel);
        var beside = (await page.Locator("#usage-chart-model").BoundingBoxAsync())!;
        Assert.True(Math.Abs(beside.Y - (await page.Locator("#usage-chart-day").BoundingBoxAsync())!.Y) < 1, "cost by model is not beside cost by day");
        await ShotAsync(page, "usage-charts");

        // Axis text takes the theme's foreground colour, in either theme.
        const string tickAndToken = """
            () => {
                const tick = getComputedStyle(document.querySelector('#usage-chart-day .ytick text')).fill;
                const probe = document.createElement('span');
                probe.style.color = 'var(--colorNeutralForeground1)';
                document.querySelector('.portal-content').appendChild(probe);
                const token = getComputedStyle(probe).color;
                probe.remove();
                return [tick, token];
            }
            """;
        var light = await page.EvaluateAsync<string[]>(tickAndToken);
        Assert.Equal(light[1], light[0]);
        await page.GetByText("Theme", new() { Exact = true }).ClickAsync();
        await Eventually.WaitUntilAsync(async () => (await page.EvaluateAsync<string[]>(tickAndToken))[0] != light[0], TimeSpan.FromSeconds(5),
            "the chart's text kept its colour when the theme changed", TimeSpan.FromMilliseconds(100));
        var dark = await page.EvaluateAsync<string[]>(tickAndToken);
        Assert.Equal(dark[1], dark[0]);
        await ShotAsync(page, "usage-charts-other-theme");
    }

    [Fact]
    public async Task ThePlaygroundKeepsAConversationWithASystemPromptShowsTokensAndCostAndTheCurlItSent()
    {
        var (user, key, _) = await CustomerWithCallsAsync("Chat Co");
        var page = await NewPageAsync();
        await SignInAsync(page, user.Email, TestUser.Password);
        await GoAsync(page, "/playground");
        await Assertions.Expect(page.Locator("#playground-model")).ToHaveValueAsync("gpt-oss-20b");
        await FillAsync(page, ("playground-key", key), ("playground-system", "You are terse."), ("playground-prompt", "What is a router pool?"));
        await page.Locator("#playground-send").ClickAsync();
        var answers = page.Locator(".playground-turn[data-role=assistant]");
        await Assertions.Expect(answers).ToHaveCountAsync(1);
        await Assertions.Expect(answers.First.Locator(".playground-stats")).ToContainTextAsync(new Regex(@"\d+ prompt \+ \d+ completion tokens · .*\$\d"));
        await Assertions.Expect(page.Locator("#playground-answer")).ToContainTextAsync("What is a router pool?");

        await FillAsync(page, ("playground-prompt", "And a dedicated session?"));
        await page.Locator("#playground-send").ClickAsync();
        await Assertions.Expect(answers).ToHaveCountAsync(2);
        // The second turn shows while it streams; its figures come only when it has finished, and until then
        // "New conversation" is disabled.
        await Assertions.Expect(answers.Nth(1).Locator(".playground-stats")).ToContainTextAsync(new Regex(@"\d+ prompt \+ \d+ completion tokens"));
        await Assertions.Expect(page.Locator(".playground-turn[data-role=user]")).ToHaveCountAsync(2);
        await Assertions.Expect(page.Locator("#playground-answer")).ToContainTextAsync("And a dedicated session?");

        // "View code": the request just sent (system prompt, whole history, settings), the key as an environment variable.
        await page.Locator("#playground-view-code").ClickAsync();
        var code = await page.Locator("#playground-code").InnerTextAsync();
        Assert.Contains("Bearer $CORTENSOR_API_KEY", code);
        Assert.DoesNotContain(key, code);
        var body = JsonDocument.Parse(code[(code.IndexOf("-d '", StringComparison.Ordinal) + 4)..code.LastIndexOf('\'')]).RootElement;
        Assert.Equal(new[] { "system", "user", "assistant", "user" }, body.GetProperty("messages").EnumerateArray().Select(m => m.GetProperty("role").GetString()));
        Assert.Equal("You are terse.", body.GetProperty("messages")[0].GetProperty("content").GetString());
        Assert.Equal("And a dedicated session?", body.GetProperty("messages")[3].GetProperty("content").GetString());
        Assert.Equal(256, body.GetProperty("max_tokens").GetInt32());
        Assert.Equal(0.7, body.GetProperty("temperature").GetDouble());
        await ShotAsync(page, "playground-conversation");

        await page.Locator("#playground-new").ClickAsync();
        await Assertions.Expect(answers).ToHaveCountAsync(0);
    }

    [Fact]
    public async Task APlaygroundMessageTheApiCannotServeIsSentOnceAndItsErrorShown()
    {
        var (user, key, _) = await CustomerWithCallsAsync("Sent Once Co");
        using var client = user.CreateClient();
        var page = await NewPageAsync();
        await SignInAsync(page, user.Email, TestUser.Password);
        await GoAsync(page, "/playground");
        await page.Locator("#playground-model").SelectOptionAsync("gemma-4-26b");
        await FillAsync(page, ("playground-key", key), ("playground-prompt", "Is anyone there?"));
        await portal.SetRouterBehaviourAsync("router-gemma4-1", new { outage = "Error500" });
        try
        {
            await page.Locator("#playground-send").ClickAsync();
            await Assertions.Expect(page.Locator("#playground-error")).ToBeVisibleAsync(new() { Timeout = 30_000 });
        }
        finally
        {
            await portal.SetRouterBehaviourAsync("router-gemma4-1", new { outage = "None" });
        }

        // The Api's 5xx went to the page as it was: the Web's HTTP client sent the completion once, where its default
        // resilience handler sent it again three times (and the customer's log and limits counted four).
        using var api = new HttpClient { BaseAddress = client.BaseAddress };
        api.DefaultRequestHeaders.Authorization = new("Bearer", key);
        var marker = await api.PostAsJsonAsync("/v1/chat/completions", new { model = "gpt-oss-20b", messages = new[] { new { role = "user", content = "after" } }, max_tokens = 4 });
        Assert.Equal(HttpStatusCode.OK, marker.StatusCode);
        var logged = await Eventually.WaitForAsync(() => client.GetFromJsonAsync<JsonElement>("/portal/requests?limit=100"),
            p => p.GetProperty("data").EnumerateArray().Count(r => r.GetProperty("model").GetString() == "gemma-4-26b") >= 1 && p.GetProperty("data").GetArrayLength() >= 4,
            TimeSpan.FromSeconds(15), "the playground's request never reached the log", TimeSpan.FromMilliseconds(200));
        Assert.Single(logged.GetProperty("data").EnumerateArray(), r => r.GetProperty("model").GetString() == "gemma-4-26b");
    }

    [Fact]
    public async Task EveryTableReadsAsLabelledCardsWithReachableActionsAtPhoneWidth()
    {
        var (user, _, _) = await CustomerWithCallsAsync("Phone Tables Co");
        var page = await NewPhonePageAsync();
        await SignInAsync(page, user.Email, TestUser.Password);
        foreach (var (url, grids) in new[]
                 {
                     ("/api-keys", new[] { "API keys" }),
                     ("/usage", new[] { "Usage per day", "Request log" }),
                     ("/models", new[] { "Models" }),
                 })
        {
            await GoAsync(page, url);
            foreach (var grid in grids) await AssertReadableTableAsync(page, grid);
            await AssertFitsAsync(page, PhoneWidth, url);
            await ShotAsync(page, "phone" + url.Replace('/', '-'));
        }
        // A model the free plan lacks says which plans have it and links to Balance and plan, which says what the plan charges.
        await GoAsync(page, "/models");
        await Assertions.Expect(page.Locator("[data-model-plan='gpt-oss-120b']")).ToContainTextAsync("Not included — in the Pro, Scale plans");
        await page.GetByLabel("Balance and plan: how to get gpt-oss-120b").ClickAsync();
        await page.WaitForURLAsync("**/balance");
        await Assertions.Expect(page.Locator("#plan-charges")).ToContainTextAsync("nothing is charged");
        await Assertions.Expect(page.Locator("#plan-change")).ToContainTextAsync("Cortensor administrator");

        await GoAsync(page, "/api-keys");
        await AssertOnScreenAsync(page, page.GetByLabel("Revoke phone key"), PhoneWidth);
        await ShotAsync(page, "api-keys-phone");

        // The operator's tables too.
        var admin = await NewPhonePageAsync();
        await SignInAsync(admin, PortalAppFixture.AdminEmail, PortalAppFixture.AdminPassword);
        await GoAsync(admin, "/admin");
        await AssertReadableTableAsync(admin, "Models (admin)");
        await admin.GetByRole(AriaRole.Tab, new() { Name = "Pools and routers" }).ClickAsync();
        await AssertReadableTableAsync(admin, "Routers of oss-20b");
        await admin.GetByRole(AriaRole.Tab, new() { Name = "Organizations and keys" }).ClickAsync();
        await FillAsync(admin, ("org-search", "Phone Tables Co"));
        await admin.GetByText("Search", new() { Exact = true }).ClickAsync();
        // The tab first lists every organization; the search answer replaces that grid. Measuring before it
        // arrives would read cells that are about to be detached.
        var organizations = admin.GetByRole(AriaRole.Grid, new() { Name = "Organizations", Exact = true });
        await Assertions.Expect(organizations.Locator("tbody tr").Filter(new() { HasNotText = "Phone Tables Co" })).ToHaveCountAsync(0);
        await Assertions.Expect(organizations.Locator("tbody tr").Filter(new() { HasText = "Phone Tables Co" })).Not.ToHaveCountAsync(0);
        await AssertReadableTableAsync(admin, "Organizations");
        await admin.GetByRole(AriaRole.Tab, new() { Name = "Audit log" }).ClickAsync();
        await AssertReadableTableAsync(admin, "Audit log");
        await AssertFitsAsync(admin, PhoneWidth, "the admin page");
        await ShotAsync(admin, "admin-phone");
    }

    private async Task<IPage> NewPhonePageAsync()
    {
        var context = await _browser.NewContextAsync(new()
        {
            ViewportSize = new() { Width = PhoneWidth, Height = 844 }, BaseURL = (await WebReplicasAsync())[0], IsMobile = true, HasTouch = true,
        });
        var page = await context.NewPageAsync();
        page.SetDefaultTimeout(ActionTimeout);
        _pages.Add(page);
        return page;
    }

    /// <summary>
    /// Each visible cell is wide enough to read and carries its column's title; each action in the table is
    /// on screen, of a size a thumb can press, and named.
    /// </summary>
    private static async Task AssertReadableTableAsync(IPage page, string name)
    {
        var grid = page.GetByRole(AriaRole.Grid, new() { Name = name, Exact = true });
        await Assertions.Expect(grid).ToBeVisibleAsync();
        await Assertions.Expect(grid.Locator("tbody td").First).ToHaveAttributeAsync("data-label", new Regex(".+"));
        var cells = 0;
        foreach (var cell in await grid.Locator("tbody td").AllAsync())
        {
            if (!await cell.IsVisibleAsync()) continue;
            cells++;
            var box = await cell.BoundingBoxAsync();
            Assert.True(box is not null, $"a cell of '{name}' left the page while it was measured: the table re-rendered");
            Assert.True(box.Width >= ReadableCellWidth, $"a cell of '{name}' is {box.Width:0}px wide at phone width");
            Assert.True(box.X >= 0 && box.X + box.Width <= PhoneWidth + 0.5, $"a cell of '{name}' sticks out at x={box.X:0}, width {box.Width:0}");
            Assert.False(string.IsNullOrWhiteSpace(await cell.GetAttributeAsync("data-label")), $"a cell of '{name}' has no column title");
        }
        Assert.True(cells > 0, $"'{name}' showed no cells");
        foreach (var button in await grid.Locator("tbody fluent-button").AllAsync())
        {
            await AssertOnScreenAsync(page, button, PhoneWidth);
            var box = await button.BoundingBoxAsync();
            Assert.True(box is not null, $"an action in '{name}' left the page while it was measured: the table re-rendered");
            Assert.True(box.Width >= 44 && box.Height >= 24, $"an action in '{name}' is {box.Width:0}x{box.Height:0}px");
            var label = await button.GetAttributeAsync("aria-label") ?? await button.InnerTextAsync();
            Assert.False(string.IsNullOrWhiteSpace(label), $"an action in '{name}' has no name");
        }
    }
}
