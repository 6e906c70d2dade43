using System.Net;
using System.Net.Http.Json;
using System.Text.Json;
using Cortensor.Tests.Fixtures;

namespace Cortensor.Tests.EndToEnd;

/// <summary>Accounts, organisations, keys and usage through /portal, as a customer's browser or script calls them.</summary>
[Collection(PortalAppCollection.Name), Trait("Category", PortalAppCollection.Category)]
public class ControlPlaneTests(PortalAppFixture portal)
{
    private static object Chat(string model = "gpt-oss-20b") =>
        new { model, messages = new[] { new { role = "user", content = "hello there" } }, max_tokens = 6 };

    [Fact]
    public async Task ACustomerSignsUpCreatesAKeyCallsTheApiSeesTheRequestAndUsageAndRevokesIt()
    {
        var user = await portal.SignUpAsync("Acme Robotics");
        using var client = user.CreateClient();

        var me = await client.GetFromJsonAsync<JsonElement>("/portal/me");
        Assert.Equal(user.Email, me.GetProperty("email").GetString());
        var org = me.GetProperty("organizations")[0];
        Assert.Equal("Acme Robotics", org.GetProperty("name").GetString());
        Assert.Equal("owner", org.GetProperty("role").GetString());
        Assert.Equal("free", org.GetProperty("plan").GetString());

        var created = await client.PostAsJsonAsync("/portal/api-keys", new { name = "backend" });
        Assert.True(created.StatusCode == HttpStatusCode.Created, await created.Content.ReadAsStringAsync());
        var key = await created.Content.ReadFromJsonAsync<JsonElement>();
        var plaintext = key.GetProperty("key").GetString()!;
        var keyId = key.GetProperty("id").GetGuid();
        Assert.StartsWith("ctr_live_", plaintext);
        Assert.StartsWith(key.GetProperty("start").GetString()!, plaintext);

        // The plaintext is shown once: neither the list nor the key itself carries it again.
        var listed = await client.GetStringAsync("/portal/api-keys");
        Assert.DoesNotContain(plaintext, listed);
        Assert.DoesNotContain(plaintext, await client.GetStringAsync($"/portal/api-keys/{keyId}"));

        using var api = new HttpClient { BaseAddress = client.BaseAddress };
        api.DefaultRequestHeaders.Authorization = new("Bearer", plaintext);
        var requestId = "cp-" + Guid.NewGuid().ToString("N");
        using var call = new HttpRequestMessage(HttpMethod.Post, "/v1/chat/completions") { Content = JsonContent.Create(Chat()) };
        call.Headers.Add("X-Request-Id", requestId);
        var dayBefore = DateOnly.FromDateTime(DateTime.UtcNow);
        var answered = await api.SendAsync(call);
        Assert.Equal(HttpStatusCode.OK, answered.StatusCode);
        var usage = (await answered.Content.ReadFromJsonAsync<JsonElement>()).GetProperty("usage");

        var logged = (await Eventually.WaitForAsync(() => client.GetFromJsonAsync<JsonElement>($"/portal/requests?request_id={requestId}"),
            page => page.GetProperty("data").GetArrayLength() == 1, TimeSpan.FromSeconds(15), $"request {requestId} is not in the request log",
            TimeSpan.FromMilliseconds(200))).GetProperty("data")[0];
        Assert.Equal(200, logged.GetProperty("status").GetInt32());
        Assert.Equal(keyId, logged.GetProperty("key_id").GetGuid());
        Assert.Equal("gpt-oss-20b", logged.GetProperty("model").GetString());
        Assert.Equal(usage.GetProperty("completion_tokens").GetInt32(), logged.GetProperty("completion_tokens").GetInt32());

        var summary = await client.GetFromJsonAsync<JsonElement>("/portal/usage-summary?group_by=day,model");
        var row = Assert.Single(summary.GetProperty("data").EnumerateArray());
        Assert.Equal("gpt-oss-20b", row.GetProperty("model").GetString());
        // The UTC day of the request: the one before or after it, should the run cross midnight.
        Assert.Contains(row.GetProperty("day").GetString(), new[] { dayBefore, DateOnly.FromDateTime(DateTime.UtcNow) }.Select(d => d.ToString("yyyy-MM-dd")));
        Assert.Equal(1, row.GetProperty("requests").GetInt64());
        Assert.Equal(usage.GetProperty("total_tokens").GetInt64(), row.GetProperty("total_tokens").GetInt64());
        var byKey = await client.GetFromJsonAsync<JsonElement>("/portal/usage-summary?group_by=key");
        Assert.Equal("backend", byKey.GetProperty("data")[0].GetProperty("key_name").GetString());

        var withUse = await client.GetFromJsonAsync<JsonElement>($"/portal/api-keys/{keyId}");
        Assert.Equal(JsonValueKind.String, withUse.GetProperty("last_used_at").ValueKind);

        var balance = await client.GetFromJsonAsync<JsonElement>("/portal/balance");
        Assert.Equal("monthly_quota", balance.GetProperty("plan").GetProperty("billing_mode").GetString());
        Assert.Equal(60, balance.GetProperty("plan").GetProperty("requests_per_minute").GetInt32());
        Assert.Equal(usage.GetProperty("total_tokens").GetInt64(), balance.GetProperty("quota").GetProperty("tokens_used").GetInt64());
        Assert.Equal(1_000_000 - usage.GetProperty("total_tokens").GetInt64(), balance.GetProperty("quota").GetProperty("tokens_left").GetInt64());

        var revoked = await client.DeleteAsync($"/portal/api-keys/{keyId}");
        Assert.Equal(HttpStatusCode.OK, revoked.StatusCode);
        Assert.Equal("revoked", (await revoked.Content.ReadFromJsonAsync<JsonElement>()).GetProperty("status").GetString());
        await Eventually.WaitUntilAsync(async () => (await api.PostAsJsonAsync("/v1/chat/completions", Chat())).StatusCode == HttpStatusCode.Unauthorized,
            Eventually.Propagation, "the revoked key was still served");
        for (var i = 0; i < 4; i++)
        {
            var rejected = await api.PostAsJsonAsync("/v1/chat/completions", Chat());
            Assert.Equal(HttpStatusCode.Unauthorized, rejected.StatusCode);
        }
    }

    [Fact]
    public async Task RefreshTokensRotateAndAReusedOneEndsTheWholeSignIn()
    {
        var user = await portal.SignUpAsync();
        using var anonymous = portal.CreateClient("api");

        var first = await anonymous.PostAsJsonAsync("/portal/auth/refresh", new { refresh_token = user.RefreshToken });
        Assert.Equal(HttpStatusCode.OK, first.StatusCode);
        var rotated = (await first.Content.ReadFromJsonAsync<JsonElement>()).GetProperty("refresh_token").GetString()!;
        Assert.NotEqual(user.RefreshToken, rotated);

        // The old token presented again looks like theft: it fails, and so does the one rotated from it.
        Assert.Equal(HttpStatusCode.Unauthorized, (await anonymous.PostAsJsonAsync("/portal/auth/refresh", new { refresh_token = user.RefreshToken })).StatusCode);
        Assert.Equal(HttpStatusCode.Unauthorized, (await anonymous.PostAsJsonAsync("/portal/auth/refresh", new { refresh_token = rotated })).StatusCode);

        var login = await anonymous.PostAsJsonAsync("/portal/auth/login", new { email = user.Email, password = TestUser.Password });
        Assert.Equal(HttpStatusCode.OK, login.StatusCode);
        var tokens = await login.Content.ReadFromJsonAsync<JsonElement>();
        Assert.Equal(900, tokens.GetProperty("expires_in").GetInt32());
        var refresh = tokens.GetProperty("refresh_token").GetString()!;
        Assert.Equal(HttpStatusCode.NoContent, (await anonymous.PostAsJsonAsync("/portal/auth/logout", new { refresh_token = refresh })).StatusCode);
        var afterLogout = await anonymous.PostAsJsonAsync("/portal/auth/refresh", new { refresh_token = refresh });
        Assert.Equal(HttpStatusCode.Unauthorized, afterLogout.StatusCode);
        Assert.Equal("invalid_refresh_token", await Code(afterLogout));
    }

    [Fact]
    public async Task SignUpRejectsWeakPasswordsAndBadAddressesNamingTheFieldAndAnswersATakenAddressLikeAFreeOne()
    {
        using var anonymous = portal.CreateClientFrom(PortalAppFixture.RandomClientIp());
        var email = $"x-{Guid.NewGuid():N}@example.com";
        await AssertInvalid(await anonymous.PostAsJsonAsync("/portal/auth/signup", new { email, password = "short" }), "password");
        await AssertInvalid(await anonymous.PostAsJsonAsync("/portal/auth/signup", new { email, password = "alllowercase123" }), "password");
        await AssertInvalid(await anonymous.PostAsJsonAsync("/portal/auth/signup", new { email = "not-an-address", password = TestUser.Password }), "email");
        await AssertInvalid(await anonymous.PostAsJsonAsync("/portal/auth/signup", new { password = TestUser.Password }), "email");
        await AssertInvalid(await anonymous.PostAsJsonAsync("/portal/auth/signup", new { email, password = TestUser.Password, organization = new string('x', 201) }), "organization");
        await AssertInvalid(await anonymous.PostAsJsonAsync("/portal/auth/login", new { email }), "password");
        // None of those created the account.
        Assert.Equal(HttpStatusCode.Unauthorized, (await anonymous.PostAsJsonAsync("/portal/auth/login", new { email, password = TestUser.Password })).StatusCode);

        var first = await anonymous.PostAsJsonAsync("/portal/auth/signup", new { email, password = TestUser.Password });
        Assert.Equal(HttpStatusCode.Accepted, first.StatusCode);
        // A taken address gets the very same answer; only its owner's mailbox learns that it was taken.
        var taken = await anonymous.PostAsJsonAsync("/portal/auth/signup", new { email, password = "Another-password-9" });
        Assert.Equal(HttpStatusCode.Accepted, taken.StatusCode);
        Assert.Equal(await first.Content.ReadAsStringAsync(), await taken.Content.ReadAsStringAsync());
        await portal.Mail.WaitForAsync(email, "already have a Cortensor Portal account");
        // The second sign-up changed nothing: its password does not open the account.
        Assert.Equal(HttpStatusCode.Unauthorized, (await anonymous.PostAsJsonAsync("/portal/auth/login", new { email, password = "Another-password-9" })).StatusCode);
        Assert.Equal(HttpStatusCode.OK, (await anonymous.PostAsJsonAsync("/portal/auth/login", new { email, password = TestUser.Password })).StatusCode);
    }

    [Fact]
    public async Task AnotherOrganisationsKeysUsageLogsAndMembersAnswer404OnEveryEndpoint()
    {
        var alice = await portal.SignUpAsync();
        var mallory = await portal.SignUpAsync();
        using var aliceClient = alice.CreateClient();
        var aliceKeyCreated = await aliceClient.PostAsJsonAsync("/portal/api-keys", new { name = "alice's" });
        Assert.Equal(HttpStatusCode.Created, aliceKeyCreated.StatusCode);
        var aliceKey = await aliceKeyCreated.Content.ReadFromJsonAsync<JsonElement>();
        var aliceKeyId = aliceKey.GetProperty("id").GetGuid();

        using var mal = mallory.CreateClient();
        Assert.Equal(HttpStatusCode.NotFound, (await mal.GetAsync($"/portal/api-keys/{aliceKeyId}")).StatusCode);
        Assert.Equal(HttpStatusCode.NotFound, (await mal.DeleteAsync($"/portal/api-keys/{aliceKeyId}")).StatusCode);
        Assert.Equal(HttpStatusCode.NotFound, (await mal.GetAsync($"/portal/requests?key_id={aliceKeyId}")).StatusCode);
        Assert.Equal(HttpStatusCode.NotFound, (await mal.DeleteAsync($"/portal/members/{alice.Id}")).StatusCode);
        var malloryKeys = await mal.GetAsync("/portal/api-keys");
        Assert.Equal(HttpStatusCode.OK, malloryKeys.StatusCode);
        Assert.DoesNotContain(aliceKeyId.ToString(), await malloryKeys.Content.ReadAsStringAsync());

        // Naming Alice's organisation gets Mallory nowhere, on every org-scoped endpoint.
        using var intoAlice = mallory.CreateClient(alice.OrganizationId);
        foreach (var (method, path, body) in new (HttpMethod, string, object?)[]
        {
            (HttpMethod.Get, "/portal/api-keys", null), (HttpMethod.Post, "/portal/api-keys", new { name = "sneaky" }),
            (HttpMethod.Get, $"/portal/api-keys/{aliceKeyId}", null), (HttpMethod.Delete, $"/portal/api-keys/{aliceKeyId}", null),
            (HttpMethod.Get, "/portal/usage-summary", null), (HttpMethod.Get, "/portal/requests", null), (HttpMethod.Get, "/portal/balance", null),
            (HttpMethod.Get, "/portal/members", null), (HttpMethod.Post, "/portal/invitations", new { email = mallory.Email, role = "owner" }),
            (HttpMethod.Get, "/portal/invitations", null), (HttpMethod.Delete, $"/portal/invitations/{Guid.NewGuid()}", null),
            (HttpMethod.Delete, $"/portal/members/{alice.Id}", null), (HttpMethod.Get, "/portal/models", null),
        })
        {
            using var request = new HttpRequestMessage(method, path) { Content = body is null ? null : JsonContent.Create(body) };
            var response = await intoAlice.SendAsync(request);
            Assert.True(response.StatusCode == HttpStatusCode.NotFound, $"{method} {path}: {response.StatusCode}");
        }

        // Nothing changed for Alice.
        var keys = await aliceClient.GetFromJsonAsync<JsonElement>("/portal/api-keys");
        Assert.Equal("active", Assert.Single(keys.EnumerateArray()).GetProperty("status").GetString());
        Assert.Single((await aliceClient.GetFromJsonAsync<JsonElement>("/portal/members")).EnumerateArray());
    }

    [Fact]
    public async Task OwnersInviteMembersByEmailTheyJoinByAcceptingAndMembersCannotManageTheOrganisation()
    {
        var owner = await portal.SignUpAsync();
        var colleague = await portal.SignUpAsync();
        using var client = owner.CreateClient();
        var team = await client.PostAsJsonAsync("/portal/organizations", new { name = "Team" });
        Assert.Equal(HttpStatusCode.Created, team.StatusCode);
        var teamId = (await team.Content.ReadFromJsonAsync<JsonElement>()).GetProperty("id").GetGuid();

        using var inTeam = owner.CreateClient(teamId);
        Assert.Equal(HttpStatusCode.Created, (await inTeam.PostAsJsonAsync("/portal/invitations", new { email = colleague.Email, role = "member" })).StatusCode);
        var twice = await inTeam.PostAsJsonAsync("/portal/invitations", new { email = colleague.Email, role = "admin" });
        Assert.Equal(HttpStatusCode.Conflict, twice.StatusCode);
        Assert.Equal("already_invited", await Code(twice));
        var pending = Assert.Single((await inTeam.GetFromJsonAsync<JsonElement>("/portal/invitations")).EnumerateArray());
        Assert.Equal(colleague.Email, pending.GetProperty("email").GetString());
        // Inviting is not joining: the colleague is not a member until they accept.
        Assert.DoesNotContain((await colleague.CreateClient().GetFromJsonAsync<JsonElement>("/portal/organizations")).EnumerateArray(), o => o.GetProperty("id").GetGuid() == teamId);

        var mail = await portal.Mail.WaitForAsync(colleague.Email, "invited to Team");
        using var colleagueClient = colleague.CreateClient();
        var accepted = await colleagueClient.PostAsJsonAsync("/portal/invitations/accept", new { token = mail.Query("/invitations/accept", "token") });
        Assert.True(accepted.StatusCode == HttpStatusCode.OK, await accepted.Content.ReadAsStringAsync());
        Assert.Equal("member", (await accepted.Content.ReadFromJsonAsync<JsonElement>()).GetProperty("role").GetString());
        Assert.Empty((await inTeam.GetFromJsonAsync<JsonElement>("/portal/invitations")).EnumerateArray());

        var orgs = await colleagueClient.GetFromJsonAsync<JsonElement>("/portal/organizations");
        Assert.Contains(orgs.EnumerateArray(), o => o.GetProperty("id").GetGuid() == teamId && o.GetProperty("role").GetString() == "member");

        using var asMember = colleague.CreateClient(teamId);
        var ownerKeyCreated = await inTeam.PostAsJsonAsync("/portal/api-keys", new { name = "owner's" });
        Assert.Equal(HttpStatusCode.Created, ownerKeyCreated.StatusCode);
        var ownerKey = await ownerKeyCreated.Content.ReadFromJsonAsync<JsonElement>();
        Assert.Equal(HttpStatusCode.Forbidden, (await asMember.DeleteAsync($"/portal/api-keys/{ownerKey.GetProperty("id").GetGuid()}")).StatusCode);
        Assert.Equal(HttpStatusCode.Forbidden, (await asMember.PostAsJsonAsync("/portal/invitations", new { email = "friend-" + Guid.NewGuid().ToString("N") + "@example.com" })).StatusCode);
        Assert.Equal(HttpStatusCode.Forbidden, (await asMember.GetAsync("/portal/invitations")).StatusCode);
        Assert.Equal(HttpStatusCode.Forbidden, (await asMember.DeleteAsync($"/portal/members/{owner.Id}")).StatusCode);
        // A member's own key is theirs to revoke.
        var memberKeyCreated = await asMember.PostAsJsonAsync("/portal/api-keys", new { name = "mine" });
        Assert.Equal(HttpStatusCode.Created, memberKeyCreated.StatusCode);
        var memberKey = await memberKeyCreated.Content.ReadFromJsonAsync<JsonElement>();
        var memberKeyPath = $"/portal/api-keys/{memberKey.GetProperty("id").GetGuid()}";
        // The owner caps it; the member may tighten the caps further, not undo them.
        Assert.Equal(HttpStatusCode.OK, (await inTeam.PatchAsJsonAsync(memberKeyPath,
            new { budget = new { usd = 1, period = "month" }, requests_per_minute = 10, models = new[] { "gpt-oss-20b" }, expires_at = DateTimeOffset.UtcNow.AddDays(7) })).StatusCode);
        foreach (var loosen in new object[]
        {
            new { budget = (object?)null }, new { budget = new { usd = 2, period = "month" } }, new { budget = new { usd = 1, period = "day" } },
            new { requests_per_minute = (int?)null }, new { requests_per_minute = 11 }, new { models = (string[]?)null }, new { models = new[] { "gpt-oss-20b", "gemma-4-26b" } },
            new { expires_at = (DateTimeOffset?)null }, new { expires_at = DateTimeOffset.UtcNow.AddDays(30) },
        })
        {
            var refused = await asMember.PatchAsJsonAsync(memberKeyPath, loosen);
            Assert.True(refused.StatusCode == HttpStatusCode.Forbidden, $"{JsonSerializer.Serialize(loosen)}: {(int)refused.StatusCode}");
            Assert.Equal("insufficient_role", await Code(refused));
        }
        var tightened = await asMember.PatchAsJsonAsync(memberKeyPath,
            new { name = "mine, capped", budget = new { usd = 0.5, period = "month" }, requests_per_minute = 5, expires_at = DateTimeOffset.UtcNow.AddDays(1) });
        Assert.Equal(HttpStatusCode.OK, tightened.StatusCode);
        var capped = await tightened.Content.ReadFromJsonAsync<JsonElement>();
        Assert.Equal((5, 0.5m), (capped.GetProperty("requests_per_minute").GetInt32(), capped.GetProperty("budget").GetProperty("limit_usd").GetDecimal()));
        // The owner may loosen it again.
        Assert.Equal(HttpStatusCode.OK, (await inTeam.PatchAsJsonAsync(memberKeyPath, new { budget = (object?)null, requests_per_minute = (int?)null })).StatusCode);
        Assert.Equal(HttpStatusCode.OK, (await asMember.DeleteAsync(memberKeyPath)).StatusCode);

        var lastOwner = await inTeam.DeleteAsync($"/portal/members/{owner.Id}");
        Assert.Equal(HttpStatusCode.Conflict, lastOwner.StatusCode);
        Assert.Equal(HttpStatusCode.NoContent, (await asMember.DeleteAsync($"/portal/members/{colleague.Id}")).StatusCode);
        Assert.Equal(HttpStatusCode.NotFound, (await asMember.GetAsync("/portal/api-keys")).StatusCode);
    }

    [Fact]
    public async Task BadInputOnEveryControlPlaneEndpointAnswers400NamingTheFieldAndChangesNothing()
    {
        var user = await portal.SignUpAsync();
        using var client = user.CreateClient();
        var cases = new (HttpMethod Method, string Path, object? Body, string Param)[]
        {
            (HttpMethod.Post, "/portal/api-keys", new { name = "" }, "name"),
            (HttpMethod.Post, "/portal/api-keys", new { name = new string('k', 101) }, "name"),
            (HttpMethod.Post, "/portal/api-keys", new { name = "k", expires_at = "2001-01-01T00:00:00Z" }, "expires_at"),
            (HttpMethod.Post, "/portal/api-keys", new { name = "k", models = new[] { "gpt-5" } }, "models"),
            (HttpMethod.Post, "/portal/api-keys", new { name = "k", environment = "prod" }, "environment"),
            (HttpMethod.Post, "/portal/api-keys", new { name = 5 }, "$.name"),
            (HttpMethod.Get, "/portal/usage-summary?from=yesterday", null, "from"),
            (HttpMethod.Get, "/portal/usage-summary?from=2026-11-20&to=2026-11-01", null, "from"),
            (HttpMethod.Get, "/portal/usage-summary?group_by=week", null, "group_by"),
            (HttpMethod.Get, "/portal/requests?key_id=abc", null, "key_id"),
            (HttpMethod.Get, "/portal/requests?status=teapot", null, "status"),
            (HttpMethod.Get, "/portal/requests?limit=0", null, "limit"),
            (HttpMethod.Get, "/portal/requests?from=soon", null, "from"),
            (HttpMethod.Get, "/portal/requests?key=abc", null, "key"),
            (HttpMethod.Get, "/portal/requests.csv?limit=5", null, "limit"),
            (HttpMethod.Get, "/portal/usage-summary?groupby=model", null, "groupby"),
            (HttpMethod.Post, "/portal/invitations", new { email = "friend@example.com", role = "king" }, "role"),
            (HttpMethod.Post, "/portal/invitations", new { role = "member" }, "email"),
            (HttpMethod.Post, "/portal/invitations", new { email = "not an address" }, "email"),
            (HttpMethod.Post, "/portal/invitations/accept", new { }, "token"),
            (HttpMethod.Post, "/portal/organizations", new { name = "" }, "name"),
            (HttpMethod.Patch, "/portal/me", new { display_name = "" }, "display_name"),
            (HttpMethod.Post, "/portal/auth/refresh", new { }, "refresh_token"),
        };
        foreach (var (method, path, body, param) in cases)
        {
            using var request = new HttpRequestMessage(method, path) { Content = body is null ? null : JsonContent.Create(body) };
            var response = await client.SendAsync(request);
            Assert.True(response.StatusCode == HttpStatusCode.BadRequest, $"{method} {path}: {response.StatusCode} {await response.Content.ReadAsStringAsync()}");
            var error = (await response.Content.ReadFromJsonAsync<JsonElement>()).GetProperty("error");
            Assert.Equal(param, error.GetProperty("param").GetString());
        }
        using var badOrg = new HttpRequestMessage(HttpMethod.Get, "/portal/api-keys");
        badOrg.Headers.Add("X-Organization-Id", "not-a-uuid");
        await AssertInvalid(await client.SendAsync(badOrg), "X-Organization-Id");

        Assert.Empty((await client.GetFromJsonAsync<JsonElement>("/portal/api-keys")).EnumerateArray());
        Assert.Single((await client.GetFromJsonAsync<JsonElement>("/portal/organizations")).EnumerateArray());
        Assert.Single((await client.GetFromJsonAsync<JsonElement>("/portal/members")).EnumerateArray());
        Assert.Empty((await client.GetFromJsonAsync<JsonElement>("/portal/invitations")).EnumerateArray());
    }

    [Fact]
    public async Task TheCatalogSaysWhichModelsTheOrganisationMayUse()
    {
        var user = await portal.SignUpAsync();
        using var anonymous = portal.CreateClient("api");
        var open = await anonymous.GetFromJsonAsync<JsonElement>("/portal/models");
        Assert.All(open.EnumerateArray(), m => Assert.False(m.TryGetProperty("allowed", out _)));

        var mine = await user.CreateClient().GetFromJsonAsync<JsonElement>("/portal/models");
        var allowed = mine.EnumerateArray().ToDictionary(m => m.GetProperty("id").GetString()!, m => m.GetProperty("allowed").GetBoolean());
        Assert.True(allowed["gpt-oss-20b"]);
        Assert.False(allowed["gpt-oss-120b"]); // not on the free plan
        Assert.True(mine[0].GetProperty("input_price_per_1k").GetDecimal() > 0);
    }

    [Fact]
    public async Task ASupabaseTokenIsAcceptedAndMapsToOnePortalUserOnFirstSight()
    {
        var subject = Guid.NewGuid().ToString();
        var email = $"supa-{Guid.NewGuid():N}@example.com";
        var idp = portal.IdentityProvider;

        using var first = portal.CreateClientWithToken(idp.IssueToken(subject, email));
        var firstMe = await first.GetAsync("/portal/me");
        Assert.True(firstMe.IsSuccessStatusCode, await firstMe.Content.ReadAsStringAsync());
        var me = await firstMe.Content.ReadFromJsonAsync<JsonElement>();
        Assert.Equal(email, me.GetProperty("email").GetString());
        Assert.Equal("supabase", me.GetProperty("identity_provider").GetString());
        Assert.Single(me.GetProperty("organizations").EnumerateArray());
        // The external user is a full customer: keys work as for anyone else.
        Assert.Equal(HttpStatusCode.Created, (await first.PostAsJsonAsync("/portal/api-keys", new { name = "from supabase" })).StatusCode);

        using var again = portal.CreateClientWithToken(idp.IssueToken(subject, email));
        Assert.Equal(me.GetProperty("id").GetGuid(), (await again.GetFromJsonAsync<JsonElement>("/portal/me")).GetProperty("id").GetGuid());
        Assert.Single((await again.GetFromJsonAsync<JsonElement>("/portal/api-keys")).EnumerateArray());

        foreach (var (token, code) in new[]
        {
            (idp.IssueToken(subject, email, signWithOtherKey: true), "invalid_token"),
            (idp.IssueToken(subject, email, audience: "someone-else"), "invalid_token"),
            (idp.IssueToken(subject, email, lifetime: TimeSpan.FromMinutes(-2)), "token_expired"),
        })
        {
            using var forged = portal.CreateClientWithToken(token);
            var response = await forged.GetAsync("/portal/me");
            Assert.Equal(HttpStatusCode.Unauthorized, response.StatusCode);
            Assert.Equal(code, await Code(response));
        }
        // An external token never opens the admin API, whatever it claims.
        using var external = portal.CreateClientWithToken(idp.IssueToken(subject, email));
        Assert.Equal(HttpStatusCode.Forbidden, (await external.GetAsync("/admin/pools")).StatusCode);
    }

    [Fact]
    public async Task TheAdminApiNeedsAnAdministrator()
    {
        var user = await portal.SignUpAsync();
        using var anonymous = portal.CreateClient("api");
        var missing = await anonymous.GetAsync("/admin/pools");
        Assert.Equal(HttpStatusCode.Unauthorized, missing.StatusCode);
        Assert.Equal("missing_token", await Code(missing));
        var customer = await user.CreateClient().PostAsync($"/admin/organizations/{user.OrganizationId}/pause", null);
        Assert.Equal(HttpStatusCode.Forbidden, customer.StatusCode);
        Assert.Equal("admin_only", await Code(customer));
        // An API key is not an access token.
        var keyed = await portal.CreateCustomerAsync();
        Assert.Equal(HttpStatusCode.Unauthorized, (await keyed.CreateClient().GetAsync("/admin/pools")).StatusCode);

        using var admin = portal.CreateAdminClient();
        var adminMe = await admin.GetFromJsonAsync<JsonElement>("/portal/me");
        Assert.True(adminMe.GetProperty("is_admin").GetBoolean());
    }

    [Fact]
    public async Task OperatorActionsReachTheHotPathAndAreAuditedWithWhoWhatAndBeforeAfter()
    {
        var customer = await portal.CreateCustomerAsync(plan: "pro", credits: 0m);
        using var api = customer.CreateClient();
        using var admin = portal.CreateAdminClient();
        var noCredit = await api.PostAsJsonAsync("/v1/chat/completions", Chat());
        Assert.Equal(HttpStatusCode.PaymentRequired, noCredit.StatusCode);

        (await admin.PostAsJsonAsync($"/admin/organizations/{customer.OrganizationId}/credits", new { amount = 1.5m, reason = "welcome" })).EnsureSuccessStatusCode();
        await Eventually.WaitUntilAsync(async () => (await api.PostAsJsonAsync("/v1/chat/completions", Chat())).StatusCode == HttpStatusCode.OK,
            Eventually.Propagation, "the credit did not reach the hot path");

        (await admin.PostAsync($"/admin/organizations/{customer.OrganizationId}/pause", null)).EnsureSuccessStatusCode();
        await Eventually.WaitUntilAsync(async () => (await api.PostAsJsonAsync("/v1/chat/completions", Chat())).StatusCode == HttpStatusCode.Forbidden,
            Eventually.Propagation, "the paused organisation was still served");
        for (var i = 0; i < 4; i++) Assert.Equal(HttpStatusCode.Forbidden, (await api.PostAsJsonAsync("/v1/chat/completions", Chat())).StatusCode);
        (await admin.PostAsync($"/admin/organizations/{customer.OrganizationId}/resume", null)).EnsureSuccessStatusCode();

        (await admin.PostAsync("/admin/pools/gemma4/drain", null)).EnsureSuccessStatusCode();
        try
        {
            var drained = await Eventually.WaitForAsync(() => api.PostAsJsonAsync("/v1/chat/completions", Chat("gemma-4-26b")),
                r => r.StatusCode != HttpStatusCode.OK, Eventually.Propagation, "the drained pool still took requests");
            Assert.Equal(HttpStatusCode.ServiceUnavailable, drained.StatusCode);
        }
        finally
        {
            (await admin.PostAsync("/admin/pools/gemma4/undrain", null)).EnsureSuccessStatusCode();
            await FailoverTests.WaitUntilServedAsync(customer, "gemma-4-26b");
        }

        var audit = await admin.GetFromJsonAsync<JsonElement>($"/admin/audit?target_id={customer.OrganizationId}");
        var actions = audit.EnumerateArray().Select(a => a.GetProperty("action").GetString()).ToList();
        Assert.Contains("credits.adjust", actions);
        Assert.Contains("organization.pause", actions);
        Assert.Contains("organization.resume", actions);
        var pause = audit.EnumerateArray().First(a => a.GetProperty("action").GetString() == "organization.pause");
        Assert.Equal(PortalAppFixture.AdminEmail, pause.GetProperty("actor").GetString());
        Assert.Equal(JsonValueKind.String, pause.GetProperty("actor_user_id").ValueKind);
        Assert.Contains("Active", pause.GetProperty("before").GetString());
        Assert.Contains("Paused", pause.GetProperty("after").GetString());
        var drains = await admin.GetFromJsonAsync<JsonElement>("/admin/audit?target_id=gemma4");
        Assert.Contains(drains.EnumerateArray(), a => a.GetProperty("action").GetString() == "pool.drain" && a.GetProperty("actor").GetString() == PortalAppFixture.AdminEmail);
        Assert.Contains(drains.EnumerateArray(), a => a.GetProperty("action").GetString() == "pool.undrain");

        // The log is read in pages, and an actor is found by the id the log shows or by address in any case.
        var entries = audit.EnumerateArray().Select(a => a.GetProperty("id").GetInt64()).ToList();
        var firstPage = await admin.GetFromJsonAsync<JsonElement>($"/admin/audit?target_id={customer.OrganizationId}&limit=1");
        var secondPage = await admin.GetFromJsonAsync<JsonElement>($"/admin/audit?target_id={customer.OrganizationId}&limit=1&before={firstPage[0].GetProperty("id").GetInt64()}");
        Assert.Equal(entries.Take(2), [firstPage[0].GetProperty("id").GetInt64(), secondPage[0].GetProperty("id").GetInt64()]);
        var byAdmin = audit.EnumerateArray().Where(a => a.GetProperty("actor").GetString() == PortalAppFixture.AdminEmail).Select(a => a.GetProperty("id").GetInt64()).ToList();
        Assert.NotEmpty(byAdmin);
        foreach (var actor in new[] { PortalAppFixture.AdminEmail.ToUpperInvariant(), pause.GetProperty("actor_user_id").GetString()! })
            Assert.Equal(byAdmin, (await admin.GetFromJsonAsync<JsonElement>($"/admin/audit?target_id={customer.OrganizationId}&actor={Uri.EscapeDataString(actor)}"))
                .EnumerateArray().Select(a => a.GetProperty("id").GetInt64()));
    }

    [Fact]
    public async Task APlanChangeReachesTheHotPathOfEveryReplicaWithoutARestart()
    {
        var customer = await portal.CreateCustomerAsync(plan: "free", credits: 1m);
        // Every replica has the free plan's snapshot in memory, and refuses the model.
        var before = await customer.OnEveryReplicaAsync(c => c.PostAsJsonAsync("/v1/chat/completions", Chat("gpt-oss-120b")));
        foreach (var notOnFree in before)
        {
            Assert.Equal(HttpStatusCode.Forbidden, notOnFree.StatusCode);
            Assert.Equal("model_not_entitled", await Code(notOnFree));
        }

        using var admin = portal.CreateAdminClient();
        (await admin.PutAsJsonAsync($"/admin/organizations/{customer.OrganizationId}/plan", new { plan = "pro" })).EnsureSuccessStatusCode();
        using var api = customer.CreateClientAcrossReplicas();
        var servedBy = new HashSet<string>();
        await Eventually.WaitUntilAsync(async () =>
        {
            var response = await api.PostAsJsonAsync("/v1/chat/completions", Chat("gpt-oss-120b"));
            if (response.StatusCode == HttpStatusCode.OK) servedBy.Add(PortalAppFixture.ReplicaOf(response));
            return servedBy.SetEquals(customer.Replicas);
        }, Eventually.Propagation, $"not every replica served the new plan's model (served by: {string.Join(", ", servedBy)})", TimeSpan.FromMilliseconds(20));
        var after = await customer.OnEveryReplicaAsync(c => c.PostAsJsonAsync("/v1/chat/completions", Chat("gpt-oss-120b")));
        Assert.All(after, r => Assert.Equal(HttpStatusCode.OK, r.StatusCode));
        var audit = await admin.GetFromJsonAsync<JsonElement>($"/admin/audit?target_id={customer.OrganizationId}&action=organization.plan");
        var change = Assert.Single(audit.EnumerateArray());
        Assert.Contains("free", change.GetProperty("before").GetString());
        Assert.Contains("pro", change.GetProperty("after").GetString());
    }

    [Fact]
    public async Task BadAdminInputNamesTheFieldAndChangesNothing()
    {
        var customer = await portal.CreateCustomerAsync(plan: "pro", credits: 2m);
        using var admin = portal.CreateAdminClient();
        var auditBefore = (await admin.GetFromJsonAsync<JsonElement>($"/admin/audit?target_id={customer.OrganizationId}")).GetArrayLength();
        var cases = new (HttpMethod Method, string Path, object? Body, string Param)[]
        {
            (HttpMethod.Post, $"/admin/organizations/{customer.OrganizationId}/credits", new { amount = 0 }, "amount"),
            (HttpMethod.Post, $"/admin/organizations/{customer.OrganizationId}/credits", new { amount = 0.00000000001m }, "amount"),
            (HttpMethod.Put, $"/admin/organizations/{customer.OrganizationId}/plan", new { plan = "platinum" }, "plan"),
            (HttpMethod.Post, $"/admin/organizations/{customer.OrganizationId}/api-keys", new { name = "k", models = new[] { "nope" } }, "models"),
            (HttpMethod.Post, "/admin/organizations", new { name = "" }, "name"),
            (HttpMethod.Get, "/admin/organizations?limit=zero", null, "limit"),
            (HttpMethod.Get, "/admin/audit?limit=-1", null, "limit"),
            // A misspelt filter would otherwise list everything, as if it had applied.
            (HttpMethod.Get, $"/admin/audit?target={customer.OrganizationId}", null, "target"),
            (HttpMethod.Get, "/admin/organizations?q=acme", null, "q"),
            (HttpMethod.Get, "/admin/usage/dead-letters?after=0", null, "after"),
            (HttpMethod.Post, $"/admin/organizations/{customer.OrganizationId}/credits", new { amount = 1, reason = new string('r', 501) }, "reason"),
            (HttpMethod.Post, $"/admin/organizations/{customer.OrganizationId}/credits", new { amount = 1, reason = "refund\r\nApproved-By: ceo" }, "reason"),
        };
        foreach (var (method, path, body, param) in cases)
        {
            using var request = new HttpRequestMessage(method, path) { Content = body is null ? null : JsonContent.Create(body) };
            var response = await admin.SendAsync(request);
            Assert.True(response.StatusCode == HttpStatusCode.BadRequest, $"{method} {path}: {response.StatusCode}");
            Assert.Equal(param, (await response.Content.ReadFromJsonAsync<JsonElement>()).GetProperty("error").GetProperty("param").GetString());
        }
        Assert.Equal(auditBefore, (await admin.GetFromJsonAsync<JsonElement>($"/admin/audit?target_id={customer.OrganizationId}")).GetArrayLength());
        var balance = await admin.GetFromJsonAsync<JsonElement>($"/admin/organizations/{customer.OrganizationId}/balance");
        Assert.Equal(2m, balance.GetProperty("ledger_balance").GetDecimal());
        Assert.Single((await admin.GetFromJsonAsync<JsonElement>($"/admin/organizations/{customer.OrganizationId}/api-keys")).EnumerateArray());
    }

    [Fact]
    public async Task AnOperatorSetsAndSeesAKeysBudgetInAnOrganisationWithoutMembers()
    {
        // Created by an operator, the organisation has no owner who could set a budget through the portal.
        var customer = await portal.CreateCustomerAsync(plan: "pro", credits: 2m);
        using var admin = portal.CreateAdminClient();
        var patched = await admin.PatchAsJsonAsync($"/admin/api-keys/{customer.KeyId}", new { budget = new { usd = 0.0000001m, period = "day" }, requests_per_minute = 50 });
        Assert.True(patched.IsSuccessStatusCode, await patched.Content.ReadAsStringAsync());
        var listed = Assert.Single((await admin.GetFromJsonAsync<JsonElement>($"/admin/organizations/{customer.OrganizationId}/api-keys")).EnumerateArray());
        Assert.Equal(0.0000001m, listed.GetProperty("budget").GetProperty("limit_usd").GetDecimal());
        Assert.Equal(50, listed.GetProperty("requests_per_minute").GetInt32());
        using var client = customer.CreateClient();
        await Eventually.WaitUntilAsync(async () =>
        {
            var response = await client.PostAsJsonAsync("/v1/chat/completions", Chat());
            return response.StatusCode == HttpStatusCode.PaymentRequired && await Code(response) == "key_budget_exceeded";
        }, Eventually.Propagation, "the key's budget set by an operator was not applied");

        (await admin.PostAsync($"/admin/api-keys/{customer.KeyId}/revoke", null)).EnsureSuccessStatusCode();
        var refused = await admin.PatchAsJsonAsync($"/admin/api-keys/{customer.KeyId}", new { name = "again" });
        Assert.Equal(HttpStatusCode.Conflict, refused.StatusCode);
        Assert.Equal("api_key_revoked", await Code(refused));
        Assert.Equal(HttpStatusCode.NotFound, (await admin.PatchAsJsonAsync($"/admin/api-keys/{Guid.NewGuid()}", new { name = "nobody's" })).StatusCode);
    }

    [Fact]
    public async Task TheOpenApiDocumentCoversV1AndPortalWithTheirErrorsAndTheAdminDocumentOnlyAnswersAdmins()
    {
        using var anonymous = portal.CreateClient("api");
        var document = await anonymous.GetFromJsonAsync<JsonElement>("/openapi/v1.json");
        var paths = document.GetProperty("paths");
        foreach (var path in new[] { "/v1/chat/completions", "/portal/auth/signup", "/portal/api-keys", "/portal/usage-summary", "/portal/requests", "/portal/balance" })
            Assert.True(paths.TryGetProperty(path, out _), path);
        Assert.DoesNotContain(paths.EnumerateObject(), p => p.Name.StartsWith("/admin", StringComparison.Ordinal));
        var keys = paths.GetProperty("/portal/api-keys").GetProperty("post");
        Assert.True(keys.GetProperty("responses").TryGetProperty("400", out _));
        Assert.True(keys.GetProperty("responses").TryGetProperty("401", out _));
        Assert.True(keys.TryGetProperty("security", out _));
        Assert.True(document.GetProperty("components").GetProperty("securitySchemes").TryGetProperty("access_token", out _));
        var reference = await anonymous.GetAsync("/reference");
        Assert.Equal(HttpStatusCode.OK, reference.StatusCode);
        Assert.DoesNotContain("/admin/", await (await anonymous.GetAsync("/openapi/v1.json")).Content.ReadAsStringAsync(), StringComparison.Ordinal);

        // The operator document: not to strangers, not to customers, to administrators.
        Assert.Equal(HttpStatusCode.Unauthorized, (await anonymous.GetAsync("/openapi/admin.json")).StatusCode);
        var customer = await portal.SignUpAsync();
        using var customerClient = customer.CreateClient();
        Assert.Equal(HttpStatusCode.Forbidden, (await customerClient.GetAsync("/openapi/admin.json")).StatusCode);
        using var admin = portal.CreateAdminClient();
        var adminPaths = (await admin.GetFromJsonAsync<JsonElement>("/openapi/admin.json")).GetProperty("paths");
        foreach (var path in new[] { "/admin/audit", "/admin/pools", "/admin/users/{id}/remove-admin" })
            Assert.True(adminPaths.TryGetProperty(path, out _), path);
        Assert.DoesNotContain(adminPaths.EnumerateObject(), p => !p.Name.StartsWith("/admin", StringComparison.Ordinal));
    }

    private static async Task AssertInvalid(HttpResponseMessage response, string param)
    {
        Assert.Equal(HttpStatusCode.BadRequest, response.StatusCode);
        Assert.Equal(param, (await response.Content.ReadFromJsonAsync<JsonElement>()).GetProperty("error").GetProperty("param").GetString());
    }

    private static async Task<string?> Code(HttpResponseMessage response) =>
        (await response.Content.ReadFromJsonAsync<JsonElement>()).GetProperty("error").GetProperty("code").GetString();
}
