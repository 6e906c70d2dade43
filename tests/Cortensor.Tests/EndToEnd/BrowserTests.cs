using System.Net;
using System.Net.Http.Json;
using System.Text.Json;
using Aspire.Hosting.Testing;
using Cortensor.Tests.Fixtures;
using Microsoft.Playwright;

namespace Cortensor.Tests.EndToEnd;

/// <summary>
/// The dashboard in a real browser (Debian's Chromium, headless, driven by Playwright) against the
/// graph the fixture started. Screenshots of the pages go to a temp directory, or to docs/screenshots
/// with CORTENSOR_SCREENSHOTS=1.
/// </summary>
[Collection(PortalAppCollection.Name), Trait("Category", PortalAppCollection.Category)]
public partial class BrowserTests(PortalAppFixture portal) : IAsyncLifetime
{
    /// <summary>
    /// How long an action or an expectation may wait. A page here answers in under a second; on a CI machine under
    /// full load a Blazor circuit has needed more than 15 s to render, and a wait that ran out then said nothing about
    /// the page. Only a failing test waits this long.
    /// </summary>
    private const float ActionTimeout = 45_000, ExpectTimeout = 30_000, ScreenshotTimeout = 90_000;
    private IPlaywright _playwright = null!;
    private IBrowser _browser = null!;
    private readonly string _shots = Environment.GetEnvironmentVariable("CORTENSOR_SCREENSHOTS") == "1"
        ? Path.Combine(Repository.Root, "docs", "screenshots")
        : Path.Combine(Path.GetTempPath(), "cortensor-screenshots");

    public async Task InitializeAsync()
    {
        Directory.CreateDirectory(_shots);
        Directory.CreateDirectory(Path.Combine(Path.GetTempPath(), "cortensor-screenshots"));
        Assertions.SetDefaultExpectTimeout(ExpectTimeout);
        _playwright = await Playwright.CreateAsync();
        _browser = await _playwright.Chromium.LaunchAsync(new()
        {
            ExecutablePath = Environment.GetEnvironmentVariable("CHROMIUM_PATH") ?? "/usr/bin/chromium",
            Headless = true,
            Args = ["--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage"],
        });
    }

    private readonly List<IPage> _pages = [];

    public async Task DisposeAsync()
    {
        // Whatever the outcome, the last state of every page is kept for a look at what happened.
        for (var i = 0; i < _pages.Count; i++)
        {
            // Best effort: Playwright reports a capture that ran out of time as System.TimeoutException.
            try { await _pages[i].ScreenshotAsync(new() { Path = Path.Combine(Path.GetTempPath(), "cortensor-screenshots", $"last-{GetType().Name}-{Guid.NewGuid():N}-{i}.png"), FullPage = true, Timeout = ScreenshotTimeout }); }
            catch (Exception e) when (e is PlaywrightException or TimeoutException) { }
        }
        await _browser.DisposeAsync();
        _playwright.Dispose();
    }

    private IReadOnlyList<string>? _webReplicas;

    /// <summary>
    /// The Web replicas' own addresses. Browser tests talk to one replica at a time, as behind a load
    /// balancer with sticky sessions (Azure Container Apps' session affinity): a Blazor circuit lives in
    /// one process, and the AppHost's proxy would spread one page's connections over both.
    /// </summary>
    private async Task<IReadOnlyList<string>> WebReplicasAsync() => _webReplicas ??=
        [.. (await portal.ReplicaUrlsAsync(LaunchTopology.Web, PortalAppFixture.WebReplicas)).Select(u => u.ToString().TrimEnd('/'))];

    private async Task<IPage> NewPageAsync(string? web = null)
    {
        web ??= (await WebReplicasAsync())[0];
        var context = await _browser.NewContextAsync(new() { ViewportSize = new() { Width = 1360, Height = 1150 }, BaseURL = web });
        await context.GrantPermissionsAsync(["clipboard-read", "clipboard-write"], new() { Origin = web });
        var page = await context.NewPageAsync();
        page.SetDefaultTimeout(ActionTimeout);
        _pages.Add(page);
        return page;
    }

    /// <summary>Fluent inputs are web components; the real input is in their shadow root (Playwright's CSS pierces it).</summary>
    private static ILocator Input(IPage page, string id) => page.Locator($"#{id} input, #{id} textarea").First;

    /// <summary>
    /// Fills Fluent inputs and checks they kept the values: a Fluent input finishes initialising in its
    /// JS module shortly after the circuit connects and may reset what was typed before that.
    /// </summary>
    private static async Task FillAsync(IPage page, params (string Id, string Value)[] fields)
    {
        for (var attempt = 0; attempt < 5; attempt++)
        {
            foreach (var (id, value) in fields) await Input(page, id).FillAsync(value);
            await Task.Delay(300);
            var kept = true;
            foreach (var (id, value) in fields) kept &= await Input(page, id).InputValueAsync() == value;
            if (kept) return;
        }
        Assert.Fail("the form kept resetting its inputs");
    }

    private async Task ShotAsync(IPage page, string name)
    {
        await page.WaitForLoadStateAsync(LoadState.NetworkIdle);
        // A full-page capture is the slowest thing a test asks of the renderer: on a loaded CI machine it has taken over 20 s.
        await page.ScreenshotAsync(new() { Path = Path.Combine(_shots, name + ".png"), FullPage = true, Timeout = ScreenshotTimeout });
    }

    /// <summary>Opens a page and waits until its circuit is live: a click on the prerendered HTML would go nowhere.</summary>
    private static async Task GoAsync(IPage page, string url)
    {
        await page.GotoAsync(url);
        if (page.Url.Contains(url.Split('?')[0], StringComparison.Ordinal) || url == "/" || page.Url.Contains("/forbidden", StringComparison.Ordinal))
            await WaitUntilInteractiveAsync(page);
    }

    /// <summary>
    /// Waits until the page's circuit is live and, at phone width, until the layout has folded the navigation
    /// away: Fluent's script sets the layout's <c>mobile</c> attribute from a ResizeObserver a moment after the
    /// circuit connects, and measuring before that would see the desktop layout.
    /// </summary>
    private static async Task WaitUntilInteractiveAsync(IPage page)
    {
        await page.Locator("[data-interactive='yes']").WaitForAsync();
        if (page.ViewportSize is { Width: <= PhoneLayoutWidth })
            await page.Locator(".fluent-layout[mobile]").First.WaitForAsync(new() { State = WaitForSelectorState.Attached });
    }

    /// <summary>The width at or below which Fluent's layout folds its navigation (its default <c>breakdown-width</c>).</summary>
    private const int PhoneLayoutWidth = 768;

    private static async Task SignInAsync(IPage page, string email, string password)
    {
        await GoAsync(page, "/signin");
        await FillAsync(page, ("email", email), ("password", password));
        await page.Locator("#signin-submit").ClickAsync();
        await page.WaitForURLAsync(url => !url.Contains("/signin", StringComparison.Ordinal) && !url.Contains("/auth/", StringComparison.Ordinal));
    }

    [Fact]
    public async Task AnOwnerGivesAKeyABudgetAndRotatesItSeeingTheNewSecretOnce()
    {
        var user = await portal.SignUpAsync();
        using (var admin = portal.CreateAdminClient())
        {
            (await admin.PutAsJsonAsync($"/admin/organizations/{user.OrganizationId}/plan", new { plan = "pro" })).EnsureSuccessStatusCode();
            (await admin.PostAsJsonAsync($"/admin/organizations/{user.OrganizationId}/credits", new { amount = 5m, reason = "test" })).EnsureSuccessStatusCode();
        }
        using var owner = user.CreateClient();
        var created = await (await owner.PostAsJsonAsync("/portal/api-keys", new { name = "budget key" })).Content.ReadFromJsonAsync<JsonElement>();
        var keyId = created.GetProperty("id").GetGuid();
        using var api = new HttpClient { BaseAddress = portal.App.GetEndpoint(LaunchTopology.Api, "http") };
        api.DefaultRequestHeaders.Authorization = new("Bearer", created.GetProperty("key").GetString());
        Task<HttpResponseMessage> Ask() => api.PostAsJsonAsync("/v1/chat/completions", new { model = "gpt-oss-20b", messages = new[] { new { role = "user", content = "budget" } }, max_tokens = 4 });

        var page = await NewPageAsync();
        await SignInAsync(page, user.Email, TestUser.Password);
        await GoAsync(page, "/api-keys");
        await page.GetByLabel("Edit budget key").ClickAsync();
        await FillAsync(page, ("edit-key-budget-usd", "0.5"));
        await page.Locator("#edit-key-budget-period").SelectOptionAsync("day");
        await page.Locator("#edit-key-save").ClickAsync();
        await Assertions.Expect(page.GetByRole(AriaRole.Grid)).ToContainTextAsync("$0 of $0.5/day");
        var budget = (await owner.GetFromJsonAsync<JsonElement>($"/portal/api-keys/{keyId}")).GetProperty("budget");
        Assert.Equal((0.5m, "day"), (budget.GetProperty("limit_usd").GetDecimal(), budget.GetProperty("period").GetString()));
        Assert.Equal(HttpStatusCode.OK, (await Ask()).StatusCode);
        await GoAsync(page, "/api-keys");
        await Assertions.Expect(page.GetByRole(AriaRole.Grid)).Not.ToContainTextAsync("$0 of $0.5/day");
        await Assertions.Expect(page.GetByRole(AriaRole.Grid)).ToContainTextAsync("of $0.5/day");
        await ShotAsync(page, "api-keys-budget");

        await page.GetByLabel("Rotate budget key").ClickAsync();
        await page.Locator("#rotate-key-grace").SelectOptionAsync("0");
        await page.Locator("#rotate-key-submit").ClickAsync();
        var shown = page.Locator("#rotated-key");
        await Assertions.Expect(shown).ToContainTextAsync("ctr_live_");
        var secret = (await shown.TextContentAsync())!.Trim();
        await page.Locator("#close-rotate-dialog").ClickAsync();
        await Assertions.Expect(page.Locator("#rotated-key")).ToHaveCountAsync(0);
        Assert.DoesNotContain(secret, await page.ContentAsync());

        var rotated = await Eventually.WaitForAsync(Ask, r => r.StatusCode != HttpStatusCode.OK, Eventually.Propagation, "the rotated secret was still served");
        Assert.Equal("api_key_rotated", (await rotated.Content.ReadFromJsonAsync<JsonElement>()).GetProperty("error").GetProperty("code").GetString());
        api.DefaultRequestHeaders.Authorization = new("Bearer", secret);
        Assert.Equal(HttpStatusCode.OK, (await Ask()).StatusCode);
    }

    [Fact]
    public async Task ASignInTicketLinkOpenedInAnotherBrowserDoesNotSignItIn()
    {
        var user = await portal.SignUpAsync();
        var attacker = await NewPageAsync();
        // The attacker signs in to their own account but keeps the ticket link instead of following it.
        string? link = null;
        Func<string, bool> ticketLink = url => url.Contains("/auth/session?", StringComparison.Ordinal);
        await attacker.RouteAsync(ticketLink, async route => { link = route.Request.Url; await route.AbortAsync(); });
        await GoAsync(attacker, "/signin");
        await FillAsync(attacker, ("email", user.Email), ("password", TestUser.Password));
        await attacker.Locator("#signin-submit").ClickAsync();
        await Eventually.WaitUntilAsync(() => link is not null, TimeSpan.FromSeconds(30), "the sign-in never sent the browser to its ticket link");

        // The victim's browser opens the link: no session, back to sign-in.
        var victim = await NewPageAsync();
        await victim.GotoAsync(link!);
        await victim.WaitForURLAsync(url => url.Contains("/signin?expired=1", StringComparison.Ordinal));
        await GoAsync(victim, "/api-keys");
        await victim.WaitForURLAsync(url => url.Contains("/signin", StringComparison.Ordinal));
        var cookies = await victim.Context.CookiesAsync();
        Assert.DoesNotContain(cookies, c => c.Name == "cortensor.session");

        // The browser that signed in still signs in normally.
        await attacker.UnrouteAsync(ticketLink);
        await SignInAsync(attacker, user.Email, TestUser.Password);
        Assert.Contains(await attacker.Context.CookiesAsync(), c => c.Name == "cortensor.session");
    }

    [Fact]
    public async Task ACustomerSignsUpCreatesAndCopiesAKeySeesTheCallInUsageAndRevokesIt()
    {
        var page = await NewPageAsync();
        var email = $"browser-{Guid.NewGuid():N}@example.com";

        await GoAsync(page, "/signup");
        await ShotAsync(page, "signup");
        await FillAsync(page, ("email", email), ("password", TestUser.Password), ("organization", "Browser Labs"));
        await page.Locator("#signup-submit").ClickAsync();
        // Signed in but unverified: the profile says so, and the link comes by mail (read from the mail catcher).
        await page.WaitForURLAsync("**/profile");
        await Assertions.Expect(page.Locator("#verify-notice")).ToBeVisibleAsync();
        var mail = await portal.Mail.WaitForAsync(email, "Verify your e-mail");
        await GoAsync(page, mail.Link("/verify-email").PathAndQuery);
        await Assertions.Expect(page.Locator("#verify-result")).ToContainTextAsync("verified");
        await GoAsync(page, "/api-keys");
        await Assertions.Expect(page.GetByText("No keys yet")).ToBeVisibleAsync();

        await page.Locator("#create-key").ClickAsync();
        await FillAsync(page, ("key-name", "browser key"));
        await page.Locator("#create-key-submit").ClickAsync();
        var shown = page.Locator("#new-key");
        await Assertions.Expect(shown).ToContainTextAsync("ctr_live_");
        var key = (await shown.TextContentAsync())!.Trim();
        await page.Locator("#copy-key").ClickAsync();
        await Assertions.Expect(page.Locator("#copy-key")).ToContainTextAsync("Copied");
        Assert.Equal(key, await page.EvaluateAsync<string>("navigator.clipboard.readText()"));
        await page.Locator("#close-key-dialog").ClickAsync();
        await Assertions.Expect(page.GetByRole(AriaRole.Grid)).ToContainTextAsync("browser key");
        await ShotAsync(page, "api-keys");

        using var api = new HttpClient { BaseAddress = portal.App.GetEndpoint(LaunchTopology.Api, "http") };
        api.DefaultRequestHeaders.Authorization = new("Bearer", key);
        var requestId = "browser-" + Guid.NewGuid().ToString("N")[..12];
        using var call = new HttpRequestMessage(HttpMethod.Post, "/v1/chat/completions")
        {
            Content = JsonContent.Create(new { model = "gpt-oss-20b", messages = new[] { new { role = "user", content = "Hello from the browser test" } }, max_tokens = 8 }),
        };
        call.Headers.Add("X-Request-Id", requestId);
        Assert.Equal(HttpStatusCode.OK, (await api.SendAsync(call)).StatusCode);

        // The usage page shows the request once the ledger writers have it (well under a second).
        await GoAsync(page, "/usage");
        await Eventually.WaitUntilAsync(async () =>
        {
            await FillAsync(page, ("request-search", requestId));
            await page.Locator("#request-search-submit").ClickAsync();
            if (await page.GetByText(requestId).CountAsync() > 0) return true;
            await page.ReloadAsync();
            await WaitUntilInteractiveAsync(page);
            return false;
        }, TimeSpan.FromSeconds(20), $"the usage page never found {requestId}", TimeSpan.FromMilliseconds(500));
        await Assertions.Expect(page.GetByText(requestId).First).ToBeVisibleAsync();
        await GoAsync(page, "/usage");
        await Assertions.Expect(page.Locator("#usage-chart-day .js-plotly-plot")).ToBeVisibleAsync();
        await ShotAsync(page, "usage");

        await GoAsync(page, "/balance");
        await Assertions.Expect(page.GetByLabel("Credit balance")).ToBeVisibleAsync();
        await ShotAsync(page, "balance");

        // The playground streams through /v1 with a key the user pastes (the session keeps none).
        await GoAsync(page, "/playground");
        await Assertions.Expect(Input(page, "playground-key")).ToHaveValueAsync("");
        await Assertions.Expect(page.Locator("#playground-model")).ToHaveValueAsync("gpt-oss-20b");
        await FillAsync(page, ("playground-key", key));
        await page.Locator("#playground-send").ClickAsync();
        await Assertions.Expect(page.Locator("#playground-answer")).Not.ToBeEmptyAsync();
        await Assertions.Expect(page.GetByText("completion tokens")).ToBeVisibleAsync();
        await ShotAsync(page, "playground");

        await GoAsync(page, "/quickstart");
        await Assertions.Expect(page.Locator("#snippet-curl-plain")).ToContainTextAsync("/v1");
        await ShotAsync(page, "quickstart");

        await GoAsync(page, "/api-keys");
        await page.GetByLabel("Revoke browser key").ClickAsync();
        // The confirmation is a Fluent dialog (a web component): its buttons are found by their text inside it.
        await page.Locator("fluent-dialog").GetByText("Revoke", new() { Exact = true }).ClickAsync();
        await Assertions.Expect(page.GetByRole(AriaRole.Grid)).ToContainTextAsync("revoked");
        var rejected = await Eventually.WaitForAsync(
            () => api.PostAsJsonAsync("/v1/chat/completions", new { model = "gpt-oss-20b", messages = new[] { new { role = "user", content = "again" } } }),
            r => r.StatusCode != HttpStatusCode.OK, Eventually.Propagation, "the key revoked in the browser was still served");
        Assert.Equal(HttpStatusCode.Unauthorized, rejected.StatusCode);

        // A second organisation, made on the profile page, is reached through the switcher and starts empty.
        await GoAsync(page, "/profile");
        await FillAsync(page, ("new-org", "Second org"));
        await page.Locator("#create-org").ClickAsync();
        await Assertions.Expect(page.GetByText("Second org")).ToBeVisibleAsync();
        await ShotAsync(page, "profile");
        await GoAsync(page, "/api-keys");
        await page.Locator("select[aria-label='Organization']").SelectOptionAsync(new SelectOptionValue { Label = "Second org" });
        await Assertions.Expect(page.GetByText("No keys yet")).ToBeVisibleAsync();
        // The switch reloaded the page: wait for the new one to be live before switching back.
        await WaitUntilInteractiveAsync(page);
        await page.Locator("select[aria-label='Organization']").SelectOptionAsync(new SelectOptionValue { Label = "Browser Labs" });
        await Assertions.Expect(page.GetByRole(AriaRole.Grid)).ToContainTextAsync("browser key");
        await WaitUntilInteractiveAsync(page);

        await page.GetByText("Sign out", new() { Exact = true }).ClickAsync();
        await page.WaitForURLAsync("**/signin?signedout=1");
        await GoAsync(page, "/api-keys");
        await page.WaitForURLAsync("**/signin**");
    }

    [Fact]
    public async Task AnInvitedColleagueAcceptsTheMailedLinkAndJoinsTheOrganisation()
    {
        var owner = await portal.SignUpAsync("Invite Labs");
        var colleague = await portal.SignUpAsync();
        var page = await NewPageAsync();
        await SignInAsync(page, owner.Email, TestUser.Password);
        await GoAsync(page, "/profile");
        await FillAsync(page, ("member-email", colleague.Email));
        await page.Locator("#invite-member").ClickAsync();
        await Assertions.Expect(page.Locator("#pending-invitations")).ToContainTextAsync(colleague.Email);

        // The colleague opens the link from the mail signed out, signs in, and accepts.
        var mail = await portal.Mail.WaitForAsync(colleague.Email, "invited to Invite Labs");
        var theirs = await NewPageAsync();
        await theirs.GotoAsync(mail.Link("/invitations/accept").PathAndQuery);
        await theirs.WaitForURLAsync("**/signin**");
        await WaitUntilInteractiveAsync(theirs);
        await FillAsync(theirs, ("email", colleague.Email), ("password", TestUser.Password));
        await theirs.Locator("#signin-submit").ClickAsync();
        await theirs.WaitForURLAsync("**/invitations/accept**");
        await WaitUntilInteractiveAsync(theirs);
        await theirs.Locator("#accept-invitation").ClickAsync();
        await Assertions.Expect(theirs.Locator("#invitation-result")).ToContainTextAsync("member of Invite Labs");
        await ShotAsync(theirs, "invitation-accepted");

        var orgs = await colleague.CreateClient().GetFromJsonAsync<JsonElement>("/portal/organizations");
        Assert.Contains(orgs.EnumerateArray(), o => o.GetProperty("id").GetGuid() == owner.OrganizationId && o.GetProperty("role").GetString() == "member");
    }

    [Fact]
    public async Task AForgottenPasswordIsResetThroughTheMailedLinkAndTheOldOneStopsWorking()
    {
        var user = await portal.SignUpAsync();
        var page = await NewPageAsync();
        await GoAsync(page, "/signin");
        await page.Locator("#forgot-password").ClickAsync();
        await page.WaitForURLAsync("**/forgot-password");
        await WaitUntilInteractiveAsync(page);
        await FillAsync(page, ("email", user.Email));
        await page.Locator("#forgot-submit").ClickAsync();
        await Assertions.Expect(page.Locator("#forgot-result")).ToContainTextAsync("Check your mail");

        var mail = await portal.Mail.WaitForAsync(user.Email, "Reset your");
        await GoAsync(page, mail.Link("/reset-password").PathAndQuery);
        await FillAsync(page, ("new-password", "Reset-in-browser-5"));
        await page.Locator("#reset-submit").ClickAsync();
        await Assertions.Expect(page.Locator("#reset-result")).ToContainTextAsync("every session is signed out");
        await ShotAsync(page, "password-reset");

        using var anonymous = portal.CreateClientFrom(PortalAppFixture.RandomClientIp());
        Assert.Equal(HttpStatusCode.Unauthorized, (await anonymous.PostAsJsonAsync("/portal/auth/refresh", new { refresh_token = user.RefreshToken })).StatusCode);
        await SignInAsync(page, user.Email, "Reset-in-browser-5");
    }

    [Fact]
    public async Task ASignedInUserContinuesOnTheOtherWebReplicaAndSignsOutOfBoth()
    {
        var replicas = await WebReplicasAsync();
        Assert.Equal(2, replicas.Distinct().Count());
        var customer = await portal.SignUpAsync();

        // Signed in, and a key created, on the first replica...
        var page = await NewPageAsync(replicas[0]);
        await SignInAsync(page, customer.Email, TestUser.Password);
        await GoAsync(page, "/api-keys");
        await page.Locator("#create-key").ClickAsync();
        await FillAsync(page, ("key-name", "replica key"));
        await page.Locator("#create-key-submit").ClickAsync();
        await Assertions.Expect(page.Locator("#new-key")).ToContainTextAsync("ctr_live_");
        var key = (await page.Locator("#new-key").InnerTextAsync()).Trim();
        await page.Locator("#close-key-dialog").ClickAsync();

        // ...the same browser goes on with the second (cookies ignore the port): still signed in, same data.
        await GoAsync(page, replicas[1] + "/api-keys");
        Assert.StartsWith(replicas[1] + "/api-keys", page.Url);
        await Assertions.Expect(page.GetByRole(AriaRole.Grid)).ToContainTextAsync("replica key");
        // The playground there works with the key (pasted: the session keeps no key).
        await GoAsync(page, replicas[1] + "/playground");
        await Assertions.Expect(page.Locator("#playground-model")).ToHaveValueAsync("gpt-oss-20b");
        await FillAsync(page, ("playground-key", key));
        await page.Locator("#playground-send").ClickAsync();
        await Assertions.Expect(page.Locator("#playground-answer")).Not.ToBeEmptyAsync();

        // Signing out on the second replica ends the session on the first as well.
        await page.GetByText("Sign out", new() { Exact = true }).ClickAsync();
        await page.WaitForURLAsync("**/signin?signedout=1");
        await page.GotoAsync(replicas[0] + "/api-keys");
        await page.WaitForURLAsync("**/signin**");
    }

    [Fact]
    public async Task AnAdministratorDisablesAModelAndTheCatalogMarksIt()
    {
        var page = await NewPageAsync();
        await SignInAsync(page, PortalAppFixture.AdminEmail, PortalAppFixture.AdminPassword);
        await GoAsync(page, "/admin");
        await page.GetByLabel("Disable qwen-3-32b").ClickAsync();
        await Assertions.Expect(page.GetByText("qwen-3-32b disabled.")).ToBeVisibleAsync();
        try
        {
            await ShotAsync(page, "admin");
            // The other Api replica learns of the change through Redis a moment later; the page reads whichever answers.
            await Eventually.WaitUntilAsync(async () =>
            {
                await GoAsync(page, "/models");
                return await page.Locator("[data-model-status='qwen-3-32b']").InnerTextAsync() == "Disabled";
            }, TimeSpan.FromSeconds(15), "the catalog never marked qwen-3-32b disabled", TimeSpan.FromMilliseconds(250));
            await ShotAsync(page, "models");
            await GoAsync(page, "/admin");
            await page.GetByRole(AriaRole.Tab, new() { Name = "Pools and routers" }).ClickAsync();
            await Assertions.Expect(page.GetByLabel("Pool oss-20b")).ToContainTextAsync("router-oss20b-1");
            await ShotAsync(page, "admin-pools");
            await page.GetByRole(AriaRole.Tab, new() { Name = "Audit log" }).ClickAsync();
            await Assertions.Expect(page.GetByLabel("Audit log")).ToContainTextAsync("model.disable");
        }
        finally
        {
            using var admin = portal.CreateAdminClient();
            (await admin.PostAsync("/admin/models/qwen-3-32b/enable", null)).EnsureSuccessStatusCode();
            await FailoverTests.WaitUntilServedAsync(await portal.CreateCustomerAsync(), "qwen-3-32b");
        }
        // A customer's browser does not get the admin pages.
        var customer = await portal.SignUpAsync();
        var other = await NewPageAsync();
        await SignInAsync(other, customer.Email, TestUser.Password);
        await GoAsync(other, "/admin");
        await Assertions.Expect(other.GetByText("This page is for Portal administrators")).ToBeVisibleAsync();
        Assert.Contains("/forbidden", other.Url);
    }

    [Fact]
    public async Task TheDashboardIsUsableAtPhoneWidth()
    {
        const int width = 390;
        var user = await portal.SignUpAsync("Phone Co");
        var context = await _browser.NewContextAsync(new() { ViewportSize = new() { Width = width, Height = 844 }, BaseURL = (await WebReplicasAsync())[0], IsMobile = true, HasTouch = true });
        var page = await context.NewPageAsync();
        page.SetDefaultTimeout(ActionTimeout);
        _pages.Add(page);

        // Sign-in: nothing sticks out sideways, and the form's parts are on screen.
        await GoAsync(page, "/signin");
        await AssertFitsAsync(page, width, "the sign-in page");
        foreach (var part in new[] { Input(page, "email"), Input(page, "password"), page.Locator("#signin-submit") })
            await AssertOnScreenAsync(page, part, width);
        await ShotAsync(page, "signin-phone");

        // Keyboard only: Tab leads from the e-mail field to the password field and on to the button, which Enter presses.
        await FillAsync(page, ("email", user.Email));
        await Input(page, "email").FocusAsync();
        await page.Keyboard.PressAsync("Tab");
        Assert.Equal("password", await page.EvaluateAsync<string>("document.activeElement?.closest('[id]')?.id ?? ''"));
        await page.Keyboard.TypeAsync(TestUser.Password);
        await page.Keyboard.PressAsync("Tab");
        Assert.Equal("signin-submit", await page.EvaluateAsync<string>("document.activeElement?.closest('[id]')?.id ?? ''"));
        await page.Keyboard.PressAsync("Enter");
        await page.WaitForURLAsync(url => !url.Contains("/signin", StringComparison.Ordinal) && !url.Contains("/auth/", StringComparison.Ordinal));
        await WaitUntilInteractiveAsync(page);

        // Signed in, at phone width: the page still fits, and the navigation is reachable (behind the
        // hamburger when the layout folds it away) and takes the user to another page.
        await AssertFitsAsync(page, width, $"{page.Url} after sign-in");
        var usage = page.GetByRole(AriaRole.Link, new() { Name = "Usage", Exact = true });
        if (!await usage.IsVisibleAsync())
        {
            var hamburger = page.Locator(".fluent-layout-hamburger").First;
            await AssertOnScreenAsync(page, hamburger, width);
            await hamburger.ClickAsync();
        }
        await AssertOnScreenAsync(page, usage, width);
        await usage.ClickAsync();
        await page.WaitForURLAsync("**/usage");
        await WaitUntilInteractiveAsync(page);
        await AssertFitsAsync(page, width, "the usage page");
    }

    /// <summary>No horizontal scrolling: the document is no wider than the viewport.</summary>
    private static async Task AssertFitsAsync(IPage page, int width, string what)
    {
        var scrollWidth = await page.EvaluateAsync<int>("Math.max(document.documentElement.scrollWidth, document.body.scrollWidth)");
        Assert.True(scrollWidth <= width, $"{what} scrolls sideways at phone width ({scrollWidth}px > {width}px)");
    }

    /// <summary>Visible, and its whole box inside the viewport's width.</summary>
    private static async Task AssertOnScreenAsync(IPage page, ILocator element, int width)
    {
        await Assertions.Expect(element).ToBeVisibleAsync();
        var box = await element.BoundingBoxAsync();
        Assert.NotNull(box);
        Assert.True(box.X >= 0 && box.X + box.Width <= width + 0.5, $"{element} is off screen at x={box.X}, width {box.Width}");
        Assert.True(box.Width > 0 && box.Height > 0, $"{element} has no size");
    }
}
