using System.Net;
using System.Net.Http.Json;
using System.Text;
using System.Text.Json;
using Aspire.Hosting.Testing;
using Cortensor.Tests.Fixtures;

namespace Cortensor.Tests.EndToEnd;

/// <summary>
/// What a careless or hostile customer sends to /portal: each is a 400 (or 409, 413) in the error shape that changes
/// nothing, never a 500; and limits hold when the requests that would pass them come all at once.
/// </summary>
[Collection(PortalAppCollection.Name), Trait("Category", PortalAppCollection.Category)]
public class ControlPlaneInputTests(PortalAppFixture portal)
{
    private static StringContent Json(string body) => new(body, Encoding.UTF8, "application/json");
    private static Task<string?> Code(HttpResponseMessage response) => EnforcementTests.Code(response);

    [Fact]
    public async Task ANulCharacterAnywhereIsA400ThatChangesNothing()
    {
        var user = await portal.SignUpAsync();
        using var client = user.CreateClient();
        var keysBefore = await client.GetStringAsync("/portal/api-keys");
        var meBefore = await client.GetStringAsync("/portal/me");

        foreach (var (method, path, body) in new (string, string, string?)[]
        {
            ("POST", "/portal/api-keys", """{"name":"back\u0000end"}"""),
            ("PATCH", "/portal/me", """{"display_name":"Ann\u0000"}"""),
            ("POST", "/portal/organizations", """{"name":"Acme\u0000"}"""),
            ("POST", "/portal/invitations", """{"email":"a\u0000b@example.com","role":"member"}"""),
            ("POST", "/portal/auth/login", """{"email":"x\u0000@example.com","password":"whatever-1"}"""),
            ("POST", "/portal/auth/password-reset", """{"email":"x\u0000@example.com"}"""),
            ("GET", "/portal/requests?search=req%00", null),
            ("GET", "/portal/requests.csv?model=gpt%00", null),
        })
        {
            using var request = new HttpRequestMessage(new HttpMethod(method), path) { Content = body is null ? null : Json(body) };
            var response = await client.SendAsync(request);
            Assert.True(response.StatusCode == HttpStatusCode.BadRequest, $"{method} {path}: {(int)response.StatusCode} {await response.Content.ReadAsStringAsync()}");
            Assert.Equal("invalid_value", await Code(response));
        }
        Assert.Equal(keysBefore, await client.GetStringAsync("/portal/api-keys"));
        Assert.Equal(meBefore, await client.GetStringAsync("/portal/me"));

        // The six characters \u0000 written with an escaped backslash are text like any other.
        var literal = await client.PostAsync("/portal/api-keys", Json("""{"name":"back\\u0000end"}"""));
        Assert.Equal(HttpStatusCode.Created, literal.StatusCode);
        Assert.Equal("back\\u0000end", (await literal.Content.ReadFromJsonAsync<JsonElement>()).GetProperty("name").GetString());
    }

    /// <summary>
    /// A name is one line of text: an organisation's goes into an invitation's subject and body, where a line break wrote
    /// the sender's own lines into the Portal's mail, and a direction override shows a name backwards.
    /// </summary>
    [Fact]
    public async Task ANameWithALineBreakControlCharacterOrDirectionOverrideIsA400ThatChangesNothing()
    {
        var user = await portal.SignUpAsync();
        using var client = user.CreateClient();
        var key = (await (await client.PostAsync("/portal/api-keys", Json("""{"name":"plain"}"""))).Content.ReadFromJsonAsync<JsonElement>()).GetProperty("id").GetGuid();
        var keysBefore = await client.GetStringAsync("/portal/api-keys");
        var meBefore = await client.GetStringAsync("/portal/me");
        var orgsBefore = await client.GetStringAsync("/portal/organizations");

        foreach (var name in new[] { @"Acme\r\nBcc: all@example.com", @"bell\u0007", @"evil\u202Egpj.exe", @"isolate\u2066x\u2069", @"line\u2028sep" })
            foreach (var (method, path, body) in new (string, string, string)[]
            {
                ("POST", "/portal/api-keys", $$"""{"name":"{{name}}"}"""),
                ("PATCH", $"/portal/api-keys/{key}", $$"""{"name":"{{name}}"}"""),
                ("PATCH", "/portal/me", $$"""{"display_name":"{{name}}"}"""),
                ("POST", "/portal/organizations", $$"""{"name":"{{name}}"}"""),
            })
            {
                using var request = new HttpRequestMessage(new HttpMethod(method), path) { Content = Json(body) };
                var response = await client.SendAsync(request);
                var text = await response.Content.ReadAsStringAsync();
                Assert.True(response.StatusCode == HttpStatusCode.BadRequest && text.Contains("\"invalid_value\"", StringComparison.Ordinal),
                    $"{method} {path} {name}: {(int)response.StatusCode} {text}");
            }
        Assert.Equal(keysBefore, await client.GetStringAsync("/portal/api-keys"));
        Assert.Equal(meBefore, await client.GetStringAsync("/portal/me"));
        Assert.Equal(orgsBefore, await client.GetStringAsync("/portal/organizations"));
        // Other scripts, emoji and punctuation are names like any other, and answers are not kept by caches.
        var accepted = await client.PostAsync("/portal/api-keys", Json("""{"name":"Équipe 東京 — שלום 🚀"}"""));
        Assert.Equal(HttpStatusCode.Created, accepted.StatusCode);
        Assert.True(accepted.Headers.CacheControl?.NoStore, "a shown-once key's answer may be cached");
    }

    [Fact]
    public async Task ABodyThatIsNotJsonIsInvalidJsonSayingWhereAndChangesNothing()
    {
        var user = await portal.SignUpAsync();
        using var client = user.CreateClient();
        foreach (var (path, body) in new[] { ("/portal/api-keys", """{"name":"x" """), ("/portal/organizations", """{"name":"x",}"""), ("/portal/api-keys", "name=x") })
        {
            var response = await client.PostAsync(path, Json(body));
            var text = await response.Content.ReadAsStringAsync();
            Assert.True(response.StatusCode == HttpStatusCode.BadRequest, $"{path} {body}: {(int)response.StatusCode} {text}");
            var error = JsonDocument.Parse(text).RootElement.GetProperty("error");
            Assert.Equal("invalid_json", error.GetProperty("code").GetString());
            Assert.Contains("near line 1, byte ", error.GetProperty("message").GetString(), StringComparison.Ordinal);
        }
        Assert.Equal(0, (await client.GetFromJsonAsync<JsonElement>("/portal/api-keys")).GetArrayLength());
        Assert.Single((await client.GetFromJsonAsync<JsonElement>("/portal/organizations")).EnumerateArray());
        // A byte order mark before the JSON is allowed (RFC 8259), as a file saved by some editors has one.
        var withMark = new ByteArrayContent([0xEF, 0xBB, 0xBF, .. Encoding.UTF8.GetBytes("""{"display_name":"Marked"}""")]);
        withMark.Headers.ContentType = new System.Net.Http.Headers.MediaTypeHeaderValue("application/json");
        var marked = await client.PatchAsync("/portal/me", withMark);
        Assert.True(marked.IsSuccessStatusCode, await marked.Content.ReadAsStringAsync());
        Assert.Equal("Marked", (await client.GetFromJsonAsync<JsonElement>("/portal/me")).GetProperty("display_name").GetString());
    }

    [Fact]
    public async Task HalfASurrogatePairIsA400()
    {
        var user = await portal.SignUpAsync();
        using var client = user.CreateClient();
        var response = await client.PostAsync("/portal/api-keys", Json("""{"name":"half \ud800 pair"}"""));
        Assert.Equal(HttpStatusCode.BadRequest, response.StatusCode);
        Assert.Equal("invalid_json", await Code(response));
        Assert.Equal(0, (await client.GetFromJsonAsync<JsonElement>("/portal/api-keys")).GetArrayLength());
    }

    [Fact]
    public async Task TimesInAnyOffsetAreTheInstantsTheyNameAndDatesOutOfRangeAreA400()
    {
        var user = await portal.SignUpAsync();
        using var client = user.CreateClient();

        var created = await client.PostAsJsonAsync("/portal/api-keys", new { name = "offset", expires_at = "2031-01-01T12:00:00+02:00" });
        Assert.True(created.StatusCode == HttpStatusCode.Created, await created.Content.ReadAsStringAsync());
        var expires = (await created.Content.ReadFromJsonAsync<JsonElement>()).GetProperty("expires_at").GetDateTimeOffset();
        Assert.Equal(new DateTimeOffset(2031, 1, 1, 10, 0, 0, TimeSpan.Zero), expires);
        Assert.Equal(TimeSpan.Zero, expires.Offset);

        Assert.Equal(HttpStatusCode.OK, (await client.GetAsync("/portal/requests?from=2026-01-01T00:00:00%2B02:00&to=2030-01-01T00:00:00-05:00")).StatusCode);
        var csv = await client.GetAsync("/portal/requests.csv?from=2026-01-01T00:00:00%2B02:00");
        Assert.Equal(HttpStatusCode.OK, csv.StatusCode);
        Assert.StartsWith("time_utc,", await csv.Content.ReadAsStringAsync());

        foreach (var (query, param) in new[] { ("to=0001-01-01", "to"), ("from=9999-12-31", "from"), ("to=0001-01-01T00:00:00Z", "to") })
        {
            var response = await client.GetAsync($"/portal/usage-summary?{query}");
            Assert.True(response.StatusCode == HttpStatusCode.BadRequest, $"{query}: {(int)response.StatusCode}");
            Assert.Equal(param, (await response.Content.ReadFromJsonAsync<JsonElement>()).GetProperty("error").GetProperty("param").GetString());
        }
        Assert.Equal(HttpStatusCode.BadRequest, (await client.GetAsync("/portal/requests?from=0001-01-01T00:00:00Z")).StatusCode);
    }

    [Fact]
    public async Task ABodyOverAMegabyteIsA413InTheErrorShape()
    {
        var user = await portal.SignUpAsync();
        using var client = user.CreateClient();
        // Refused on its Content-Length, before it is read: with Expect: 100-continue the client sends none of it.
        using var request = new HttpRequestMessage(HttpMethod.Post, "/portal/api-keys") { Content = Json($$"""{"name":"{{new string('x', 2 * 1024 * 1024)}}"}""") };
        request.Headers.ExpectContinue = true;
        var response = await client.SendAsync(request);
        Assert.Equal(HttpStatusCode.RequestEntityTooLarge, response.StatusCode);
        Assert.Equal("request_too_large", await Code(response));
    }

    [Fact]
    public async Task AnAddressLongerThanMailCanDeliverIsA400AtSignUpAndInvitation()
    {
        var local = new string('a', 60);
        var email = $"{local}.{local}.{local}.{local}@example.com"; // 256 characters
        using var anonymous = portal.CreateClientFrom(PortalAppFixture.RandomClientIp());
        var signUp = await anonymous.PostAsJsonAsync("/portal/auth/signup", new { email, password = TestUser.Password });
        Assert.Equal(HttpStatusCode.BadRequest, signUp.StatusCode);
        Assert.Equal("email", (await signUp.Content.ReadFromJsonAsync<JsonElement>()).GetProperty("error").GetProperty("param").GetString());

        var user = await portal.SignUpAsync();
        using var client = user.CreateClient();
        var invite = await client.PostAsJsonAsync("/portal/invitations", new { email, role = "member" });
        Assert.Equal(HttpStatusCode.BadRequest, invite.StatusCode);
    }

    [Fact]
    public async Task CreatesSentAllAtOnceStopAtTheCap()
    {
        var user = await portal.SignUpAsync();
        using var client = user.CreateClient();

        // A free organisation may hold 5 active keys.
        var keys = await Task.WhenAll(Enumerable.Range(0, 12).Select(i => client.PostAsJsonAsync("/portal/api-keys", new { name = $"burst {i}" })));
        Assert.Equal(5, keys.Count(r => r.StatusCode == HttpStatusCode.Created));
        Assert.All(keys.Where(r => r.StatusCode != HttpStatusCode.Created), r => Assert.Equal(HttpStatusCode.Conflict, r.StatusCode));
        Assert.Equal(5, (await client.GetFromJsonAsync<JsonElement>("/portal/api-keys")).GetArrayLength());

        // A user may own 3 free organisations; sign-up made the first.
        var orgs = await Task.WhenAll(Enumerable.Range(0, 8).Select(i => client.PostAsJsonAsync("/portal/organizations", new { name = $"Burst {i}" })));
        Assert.Equal(2, orgs.Count(r => r.StatusCode == HttpStatusCode.Created));
        Assert.Equal(3, (await client.GetFromJsonAsync<JsonElement>("/portal/organizations")).GetArrayLength());

        // One pending invitation per address.
        var invitee = $"invitee-{Guid.NewGuid():N}@example.com";
        var invitations = await Task.WhenAll(Enumerable.Range(0, 6).Select(_ => client.PostAsJsonAsync("/portal/invitations", new { email = invitee, role = "member" })));
        Assert.Equal(1, invitations.Count(r => r.StatusCode == HttpStatusCode.Created));
        Assert.All(invitations.Where(r => r.StatusCode != HttpStatusCode.Created), r => Assert.Equal(HttpStatusCode.Conflict, r.StatusCode));
    }

    [Fact]
    public async Task FailedSignInsUnderAnotherSpellingOfTheSameAddressCountTogether()
    {
        var tag = Guid.NewGuid().ToString("N")[..10];
        var plain = $"kelvin-{tag}@example.com";
        var kelvinSign = $"\u212Aelvin-{tag}@example.com"; // Identity normalises it to the same account as 'kelvin-…'
        using var script = portal.CreateClientFrom(PortalAppFixture.RandomClientIp());
        for (var i = 0; i < 5; i++)
            Assert.Equal(HttpStatusCode.Unauthorized, (await script.PostAsJsonAsync("/portal/auth/login", new { email = plain, password = "Wrong-password-" + i })).StatusCode);
        var other = await script.PostAsJsonAsync("/portal/auth/login", new { email = kelvinSign, password = "Wrong-password-9" });
        Assert.Equal(HttpStatusCode.TooManyRequests, other.StatusCode);
        Assert.Equal("too_many_attempts", await Code(other));
    }

    [Fact]
    public async Task APasswordTypedWhileSignedInIsCountedPerAccountAndLocksAfterFiveMisses()
    {
        var user = await portal.SignUpAsync();
        using var client = user.CreateClient();
        for (var i = 0; i < 5; i++)
        {
            var wrong = await client.PostAsJsonAsync("/portal/me/password", new { current_password = "Guess-number-" + i, new_password = "Another-horse-43" });
            Assert.Equal(HttpStatusCode.BadRequest, wrong.StatusCode);
        }
        // Locked for this account, whichever endpoint asks for the password and even with the right one.
        var locked = await client.PostAsJsonAsync("/portal/me/password", new { current_password = TestUser.Password, new_password = "Another-horse-43" });
        Assert.Equal(HttpStatusCode.TooManyRequests, locked.StatusCode);
        Assert.Equal("too_many_attempts", await Code(locked));
        Assert.NotNull(locked.Headers.RetryAfter);
        Assert.Equal(HttpStatusCode.TooManyRequests, (await client.PostAsJsonAsync("/portal/me/delete", new { password = TestUser.Password })).StatusCode);
        Assert.Equal(HttpStatusCode.OK, (await client.GetAsync("/portal/me")).StatusCode); // the account is still there

        // The owner signing in is not locked out by what a token's holder typed.
        using var elsewhere = portal.CreateClientFrom(PortalAppFixture.RandomClientIp());
        Assert.Equal(HttpStatusCode.OK, (await elsewhere.PostAsJsonAsync("/portal/auth/login", new { email = user.Email, password = TestUser.Password })).StatusCode);
    }

    [Fact]
    public async Task TwoOwnersLeavingAtOnceLeaveOneOwner()
    {
        var first = await portal.SignUpAsync();
        var second = await portal.SignUpAsync();
        using var firstClient = first.CreateClient();
        var team = await firstClient.PostAsJsonAsync("/portal/organizations", new { name = "Two owners" });
        var teamId = (await team.Content.ReadFromJsonAsync<JsonElement>()).GetProperty("id").GetGuid();
        using var inTeam = first.CreateClient(teamId);
        Assert.Equal(HttpStatusCode.Created, (await inTeam.PostAsJsonAsync("/portal/invitations", new { email = second.Email, role = "owner" })).StatusCode);
        var mail = await portal.Mail.WaitForAsync(second.Email, "invited to Two owners");
        using var secondClient = second.CreateClient();
        Assert.Equal(HttpStatusCode.OK, (await secondClient.PostAsJsonAsync("/portal/invitations/accept", new { token = mail.Query("/invitations/accept", "token") })).StatusCode);
        using var secondInTeam = second.CreateClient(teamId);

        var left = await Task.WhenAll(inTeam.DeleteAsync($"/portal/members/{first.Id}"), secondInTeam.DeleteAsync($"/portal/members/{second.Id}"));
        Assert.Equal(1, left.Count(r => r.StatusCode == HttpStatusCode.NoContent));
        var refused = Assert.Single(left, r => r.StatusCode != HttpStatusCode.NoContent);
        Assert.Equal(HttpStatusCode.Conflict, refused.StatusCode);
        Assert.Equal("last_owner", await Code(refused));
        var stayed = left[0].StatusCode == HttpStatusCode.NoContent ? secondInTeam : inTeam;
        var members = (await stayed.GetFromJsonAsync<JsonElement>("/portal/members")).EnumerateArray().ToList();
        Assert.Equal("owner", Assert.Single(members).GetProperty("role").GetString());
    }

    [Fact]
    public async Task TwoMembersDeletingTheirAccountsAtOnceLeaveNoOrganisationWithKeysAndNoMember()
    {
        // Several pairs at once, as each pair's two deletions overlap only when their password checks end together.
        var pairs = await Task.WhenAll(Enumerable.Range(0, 4).Select(_ => TwoMembersWithTwoTeamsAsync()));
        var deleted = await Task.WhenAll(pairs.SelectMany(p => new[] { p.First, p.Second })
            .Select(client => client.PostAsJsonAsync("/portal/me/delete", new { password = TestUser.Password })));
        Assert.All(deleted, r => Assert.Equal(HttpStatusCode.OK, r.StatusCode));

        // Whoever went second was then a team's last member and closed it: no team is left with working keys and nobody in it.
        var closed = new List<Guid>();
        foreach (var response in deleted)
            closed.AddRange((await response.Content.ReadFromJsonAsync<JsonElement>()).GetProperty("organizations").EnumerateArray()
                .Where(o => o.GetProperty("outcome").GetString() == "closed").Select(o => o.GetProperty("organization_id").GetGuid()));
        var teams = pairs.SelectMany(p => p.Teams).ToList();
        Assert.All(teams, t => Assert.Contains(t.Id, closed));
        using var api = new HttpClient { BaseAddress = portal.App.GetEndpoint(LaunchTopology.Api, "http") };
        foreach (var (_, key) in teams)
            await Eventually.WaitUntilAsync(async () =>
            {
                using var request = new HttpRequestMessage(HttpMethod.Get, "/v1/models") { Headers = { Authorization = new("Bearer", key) } };
                return (await api.SendAsync(request)).StatusCode == HttpStatusCode.Unauthorized;
            }, Eventually.Propagation, "a key of a team whose members are all gone still worked");
    }

    /// <summary>Two owners of one team; in another, the first owns it and the second, a member, is its heir. Each team has a key.</summary>
    private async Task<(HttpClient First, HttpClient Second, List<(Guid Id, string Key)> Teams)> TwoMembersWithTwoTeamsAsync()
    {
        var first = await portal.SignUpAsync();
        var second = await portal.SignUpAsync();
        var (firstClient, secondClient) = (first.CreateClient(), second.CreateClient());
        var teams = new List<(Guid Id, string Key)>();
        foreach (var (name, role) in new[] { ($"Both own {Guid.NewGuid():N}", "owner"), ($"One owns {Guid.NewGuid():N}", "member") })
        {
            var team = await firstClient.PostAsJsonAsync("/portal/organizations", new { name });
            var teamId = (await team.Content.ReadFromJsonAsync<JsonElement>()).GetProperty("id").GetGuid();
            using var inTeam = first.CreateClient(teamId);
            var key = (await (await inTeam.PostAsJsonAsync("/portal/api-keys", new { name = "team key" })).Content.ReadFromJsonAsync<JsonElement>())
                .GetProperty("key").GetString()!;
            Assert.Equal(HttpStatusCode.Created, (await inTeam.PostAsJsonAsync("/portal/invitations", new { email = second.Email, role })).StatusCode);
            var mail = await portal.Mail.WaitForAsync(second.Email, $"invited to {name}");
            Assert.Equal(HttpStatusCode.OK, (await secondClient.PostAsJsonAsync("/portal/invitations/accept", new { token = mail.Query("/invitations/accept", "token") })).StatusCode);
            teams.Add((teamId, key));
        }
        return (firstClient, secondClient, teams);
    }

    [Fact]
    public async Task InvitingOneAddressAgainAndAgainStopsAfterThreeMails()
    {
        var user = await portal.SignUpAsync();
        using var client = user.CreateClient();
        var invitee = $"invitee-{Guid.NewGuid():N}@example.com";
        for (var i = 0; i < 3; i++)
        {
            var invited = await client.PostAsJsonAsync("/portal/invitations", new { email = invitee, role = "member" });
            Assert.Equal(HttpStatusCode.Created, invited.StatusCode);
            var id = (await invited.Content.ReadFromJsonAsync<JsonElement>()).GetProperty("id").GetGuid();
            Assert.Equal(HttpStatusCode.NoContent, (await client.DeleteAsync($"/portal/invitations/{id}")).StatusCode);
        }
        var fourth = await client.PostAsJsonAsync("/portal/invitations", new { email = invitee, role = "member" });
        Assert.Equal(HttpStatusCode.TooManyRequests, fourth.StatusCode);
        Assert.Equal("too_many_attempts", await Code(fourth));
        Assert.Empty((await client.GetFromJsonAsync<JsonElement>("/portal/invitations")).EnumerateArray());
    }

    [Theory]
    [InlineData("18446744073709551616-0")]
    [InlineData("0-0")]
    [InlineData("1-18446744073709551616")]
    public async Task ADeadLetterCursorRedisCannotTakeIsA400(string before)
    {
        using var admin = portal.CreateAdminClient();
        var response = await admin.GetAsync($"/admin/usage/dead-letters?before={before}");
        Assert.Equal(HttpStatusCode.BadRequest, response.StatusCode);
        Assert.Equal(HttpStatusCode.OK, (await admin.GetAsync("/admin/usage/dead-letters?before=18446744073709551615-0")).StatusCode);
    }
}
