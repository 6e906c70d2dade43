using System.Net;
using System.Net.Http.Json;
using System.Text.Json;
using Aspire.Hosting.Testing;
using Cortensor.Tests.Fixtures;
using OtpNet;

namespace Cortensor.Tests.EndToEnd;

/// <summary>A customer's own account: password change, two-factor sign-in, deletion, and the words of validation messages.</summary>
[Collection(PortalAppCollection.Name), Trait("Category", PortalAppCollection.Category)]
public class AccountSecurityTests(PortalAppFixture portal)
{
    private static async Task<JsonElement> ErrorOf(HttpResponseMessage response) =>
        (await response.Content.ReadFromJsonAsync<JsonElement>()).GetProperty("error");

    private static async Task<HttpResponseMessage> LogInAsync(HttpClient anonymous, string email, string password, string? code = null) =>
        await anonymous.PostAsJsonAsync("/portal/auth/login", new { email, password, two_factor_code = code });

    [Fact]
    public async Task ChangingThePasswordNeedsTheCurrentOneSaysWhatIsWeakAndSignsOutEveryOtherSession()
    {
        var user = await portal.SignUpAsync();
        using var anonymous = portal.CreateClientFrom(PortalAppFixture.RandomClientIp());
        var elsewhere = await (await LogInAsync(anonymous, user.Email, TestUser.Password)).Content.ReadFromJsonAsync<JsonElement>();
        using var client = user.CreateClient();

        var wrong = await client.PostAsJsonAsync("/portal/me/password", new { current_password = "Not-my-password-1", new_password = "Another-horse-43" });
        Assert.Equal(HttpStatusCode.BadRequest, wrong.StatusCode);
        var wrongError = await ErrorOf(wrong);
        Assert.Equal("current_password", wrongError.GetProperty("param").GetString());
        Assert.Equal("Your current password is not right.", wrongError.GetProperty("message").GetString());

        var weak = await client.PostAsJsonAsync("/portal/me/password", new { current_password = TestUser.Password, new_password = "short" });
        Assert.Equal(HttpStatusCode.BadRequest, weak.StatusCode);
        Assert.Equal("Choose a stronger password: Use at least 10 characters. Add a digit (0-9). Add a capital letter (A-Z).",
            (await ErrorOf(weak)).GetProperty("message").GetString());

        Assert.Equal(HttpStatusCode.NoContent,
            (await client.PostAsJsonAsync("/portal/me/password", new { current_password = TestUser.Password, new_password = "Another-horse-43" })).StatusCode);
        // This session goes on; the other one ends (its refresh token is refused).
        Assert.Equal(HttpStatusCode.OK, (await client.GetAsync("/portal/me")).StatusCode);
        Assert.Equal(HttpStatusCode.Unauthorized,
            (await anonymous.PostAsJsonAsync("/portal/auth/refresh", new { refresh_token = elsewhere.GetProperty("refresh_token").GetString() })).StatusCode);
        Assert.Equal(HttpStatusCode.Unauthorized, (await LogInAsync(anonymous, user.Email, TestUser.Password)).StatusCode);
        Assert.Equal(HttpStatusCode.OK, (await LogInAsync(anonymous, user.Email, "Another-horse-43")).StatusCode);
    }

    [Fact]
    public async Task TwoFactorSignInAsksForTheAuthenticatorCodeAndTakesEachRecoveryCodeOnce()
    {
        var user = await portal.SignUpAsync();
        using var client = user.CreateClient();
        using var anonymous = portal.CreateClientFrom(PortalAppFixture.RandomClientIp());

        var setup = await (await client.PostAsync("/portal/me/two-factor/setup", null)).Content.ReadFromJsonAsync<JsonElement>();
        var sharedKey = setup.GetProperty("shared_key").GetString()!;
        Assert.StartsWith("otpauth://totp/Cortensor%20Portal:", setup.GetProperty("authenticator_uri").GetString());
        var totp = new Totp(Base32Encoding.ToBytes(sharedKey.Replace(" ", "").ToUpperInvariant()));
        // Not on until a code is confirmed.
        Assert.Equal(HttpStatusCode.OK, (await LogInAsync(anonymous, user.Email, TestUser.Password)).StatusCode);

        var wrongCode = await client.PostAsJsonAsync("/portal/me/two-factor/enable", new { code = totp.ComputeTotp(DateTime.UtcNow.AddMinutes(-10)) });
        Assert.Equal(HttpStatusCode.BadRequest, wrongCode.StatusCode);
        Assert.Equal("code", (await ErrorOf(wrongCode)).GetProperty("param").GetString());
        var enabled = await client.PostAsJsonAsync("/portal/me/two-factor/enable", new { code = totp.ComputeTotp() });
        Assert.Equal(HttpStatusCode.OK, enabled.StatusCode);
        var recovery = (await enabled.Content.ReadFromJsonAsync<JsonElement>()).GetProperty("recovery_codes").EnumerateArray().Select(c => c.GetString()!).ToList();
        Assert.Equal(10, recovery.Count);

        var asked = await LogInAsync(anonymous, user.Email, TestUser.Password);
        Assert.Equal(HttpStatusCode.Unauthorized, asked.StatusCode);
        Assert.Equal("two_factor_required", (await ErrorOf(asked)).GetProperty("code").GetString());
        var refused = await LogInAsync(anonymous, user.Email, TestUser.Password, totp.ComputeTotp(DateTime.UtcNow.AddMinutes(-10)));
        Assert.Equal("invalid_two_factor_code", (await ErrorOf(refused)).GetProperty("code").GetString());
        // A right code with a wrong password is still a wrong password.
        Assert.Equal("invalid_credentials", (await ErrorOf(await LogInAsync(anonymous, user.Email, "Wrong-password-9", totp.ComputeTotp()))).GetProperty("code").GetString());

        var code = totp.ComputeTotp();
        Assert.Equal(HttpStatusCode.OK, (await LogInAsync(anonymous, user.Email, TestUser.Password, code)).StatusCode);
        // A code that signed in once does not sign in again, though Identity would still accept it for minutes.
        var replayed = await LogInAsync(anonymous, user.Email, TestUser.Password, code);
        Assert.Equal(HttpStatusCode.Unauthorized, replayed.StatusCode);
        Assert.Equal("two_factor_code_used", (await ErrorOf(replayed)).GetProperty("code").GetString());
        Assert.Equal(HttpStatusCode.OK, (await LogInAsync(anonymous, user.Email, TestUser.Password, recovery[0])).StatusCode);
        Assert.Equal(HttpStatusCode.Unauthorized, (await LogInAsync(anonymous, user.Email, TestUser.Password, recovery[0])).StatusCode);
        var status = await client.GetFromJsonAsync<JsonElement>("/portal/me/two-factor");
        Assert.True(status.GetProperty("enabled").GetBoolean());
        Assert.Equal(9, status.GetProperty("recovery_codes_left").GetInt32());

        Assert.Equal(HttpStatusCode.BadRequest, (await client.PostAsJsonAsync("/portal/me/two-factor/disable", new { password = "Wrong-password-9" })).StatusCode);
        Assert.Equal(HttpStatusCode.NoContent, (await client.PostAsJsonAsync("/portal/me/two-factor/disable", new { password = TestUser.Password })).StatusCode);
        Assert.Equal(HttpStatusCode.OK, (await LogInAsync(anonymous, user.Email, TestUser.Password)).StatusCode);
    }

    [Fact]
    public async Task DeletingAnAccountClosesOrganisationsItAloneBelongedToAndHandsSharedOnesToTheNextAdmin()
    {
        var owner = await portal.SignUpAsync();
        var colleague = await portal.SignUpAsync();
        using var client = owner.CreateClient();
        var key = (await (await client.PostAsJsonAsync("/portal/api-keys", new { name = "solo key" })).Content.ReadFromJsonAsync<JsonElement>())
            .GetProperty("key").GetString()!;
        var team = await client.PostAsJsonAsync("/portal/organizations", new { name = "Shared team" });
        var teamId = (await team.Content.ReadFromJsonAsync<JsonElement>()).GetProperty("id").GetGuid();
        using (var inTeam = owner.CreateClient(teamId))
            Assert.Equal(HttpStatusCode.Created, (await inTeam.PostAsJsonAsync("/portal/invitations", new { email = colleague.Email, role = "admin" })).StatusCode);
        var mail = await portal.Mail.WaitForAsync(colleague.Email, "invited to Shared team");
        using (var colleagueClient = colleague.CreateClient())
            (await colleagueClient.PostAsJsonAsync("/portal/invitations/accept", new { token = mail.Query("/invitations/accept", "token") })).EnsureSuccessStatusCode();

        var plan = (await client.GetFromJsonAsync<JsonElement>("/portal/me/deletion")).GetProperty("organizations").EnumerateArray()
            .ToDictionary(o => o.GetProperty("organization_id").GetGuid());
        Assert.Equal("closed", plan[owner.OrganizationId].GetProperty("outcome").GetString());
        Assert.Equal(1, plan[owner.OrganizationId].GetProperty("active_keys").GetInt32());
        Assert.Equal("handed_over", plan[teamId].GetProperty("outcome").GetString());
        Assert.Equal(colleague.Email, plan[teamId].GetProperty("new_owner").GetString());

        using var api = new HttpClient { BaseAddress = portal.App.GetEndpoint(LaunchTopology.Api, "http") };
        api.DefaultRequestHeaders.Authorization = new("Bearer", key);
        var chat = new { model = "gpt-oss-20b", messages = new[] { new { role = "user", content = "hi" } }, max_tokens = 4 };
        Assert.Equal(HttpStatusCode.OK, (await api.PostAsJsonAsync("/v1/chat/completions", chat)).StatusCode);

        var refused = await client.PostAsJsonAsync("/portal/me/delete", new { password = "Wrong-password-9" });
        Assert.Equal(HttpStatusCode.BadRequest, refused.StatusCode);
        Assert.Equal(HttpStatusCode.OK, (await client.GetAsync("/portal/me")).StatusCode);

        var deleted = await client.PostAsJsonAsync("/portal/me/delete", new { password = TestUser.Password });
        Assert.Equal(HttpStatusCode.OK, deleted.StatusCode);
        Assert.True((await deleted.Content.ReadFromJsonAsync<JsonElement>()).GetProperty("deleted").GetBoolean());

        await Eventually.WaitUntilAsync(async () => (await api.PostAsJsonAsync("/v1/chat/completions", chat)).StatusCode == HttpStatusCode.Unauthorized,
            Eventually.Propagation, "the deleted account's key still worked");
        await Eventually.WaitUntilAsync(async () => (await client.GetAsync("/portal/me")).StatusCode == HttpStatusCode.Unauthorized,
            Eventually.Propagation, "the deleted account's access token still worked");
        using var anonymous = portal.CreateClientFrom(PortalAppFixture.RandomClientIp());
        Assert.Equal(HttpStatusCode.Unauthorized, (await LogInAsync(anonymous, owner.Email, TestUser.Password)).StatusCode);
        using var colleagueAfter = colleague.CreateClient();
        var orgs = await colleagueAfter.GetFromJsonAsync<JsonElement>("/portal/organizations");
        Assert.Equal("owner", orgs.EnumerateArray().Single(o => o.GetProperty("id").GetGuid() == teamId).GetProperty("role").GetString());
    }

    [Fact]
    public async Task ValidationMessagesSayWhatIsWrongInPlainWords()
    {
        var user = await portal.SignUpAsync();
        using var client = user.CreateClient();
        var longName = await client.PostAsJsonAsync("/portal/api-keys", new { name = new string('k', 300) });
        Assert.Equal(HttpStatusCode.BadRequest, longName.StatusCode);
        Assert.Equal("Name must be at most 100 characters.", (await ErrorOf(longName)).GetProperty("message").GetString());
        var blank = await client.PostAsJsonAsync("/portal/api-keys", new { name = "  " });
        Assert.Equal("Name is required.", (await ErrorOf(blank)).GetProperty("message").GetString());
        var longOrg = await client.PostAsJsonAsync("/portal/organizations", new { name = new string('o', 201) });
        Assert.Equal("Name must be at most 200 characters.", (await ErrorOf(longOrg)).GetProperty("message").GetString());

        using var anonymous = portal.CreateClientFrom(PortalAppFixture.RandomClientIp());
        var weak = await anonymous.PostAsJsonAsync("/portal/auth/signup", new { email = $"weak-{Guid.NewGuid():N}@example.com", password = "alllowercase" });
        Assert.Equal(HttpStatusCode.BadRequest, weak.StatusCode);
        Assert.Equal("Choose a stronger password: Add a digit (0-9). Add a capital letter (A-Z).", (await ErrorOf(weak)).GetProperty("message").GetString());
    }
}
