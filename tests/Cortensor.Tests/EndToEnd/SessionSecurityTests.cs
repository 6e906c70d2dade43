using System.Net;
using System.Net.Http.Json;
using System.Text.Json;
using Cortensor.Tests.Fixtures;

namespace Cortensor.Tests.EndToEnd;

/// <summary>
/// Access tokens stop working on every replica soon after a sign-out, a stolen refresh token's
/// reuse, or a role change. The Api runs two replicas behind the proxy, which spreads requests over them.
/// </summary>
[Collection(PortalAppCollection.Name)]
[Trait("Category", PortalAppCollection.Category)]
public class SessionSecurityTests(PortalAppFixture portal)
{
    private const int RequestsPerCheck = 8;

    [Fact]
    public async Task ASignedOutSessionsAccessTokenIsRefusedOnEveryReplica()
    {
        var user = await portal.SignUpAsync();
        using var client = user.CreateClient();
        await AssertStatusAsync(client, "/portal/me", HttpStatusCode.OK);

        using var anonymous = portal.CreateClient(LaunchTopology.Api);
        Assert.Equal(HttpStatusCode.NoContent, (await anonymous.PostAsJsonAsync("/portal/auth/logout", new { refresh_token = user.RefreshToken })).StatusCode);
        await UntilEveryReplicaAnswersAsync(client, "/portal/me", HttpStatusCode.Unauthorized, "session_revoked");
    }

    [Fact]
    public async Task ReusingARotatedRefreshTokenEndsTheSessionsAccessTokensToo()
    {
        var user = await portal.SignUpAsync();
        using var anonymous = portal.CreateClient(LaunchTopology.Api);
        var first = await anonymous.PostAsJsonAsync("/portal/auth/refresh", new { refresh_token = user.RefreshToken });
        var rotated = (await first.Content.ReadFromJsonAsync<JsonElement>()).GetProperty("access_token").GetString()!;
        using var client = portal.CreateClientWithToken(rotated);
        await AssertStatusAsync(client, "/portal/me", HttpStatusCode.OK);

        // The old refresh token again: someone else holds a copy, so the whole sign-in ends.
        Assert.Equal(HttpStatusCode.Unauthorized, (await anonymous.PostAsJsonAsync("/portal/auth/refresh", new { refresh_token = user.RefreshToken })).StatusCode);
        await UntilEveryReplicaAnswersAsync(client, "/portal/me", HttpStatusCode.Unauthorized, "session_revoked");
    }

    [Fact]
    public async Task ADemotedAdministratorLosesAdminOnEveryReplica()
    {
        var user = await portal.SignUpAsync();
        using var admin = portal.CreateAdminClient();
        (await admin.PostAsync($"/admin/users/{user.Id}/make-admin", null)).EnsureSuccessStatusCode();
        using var promoted = portal.CreateClientWithToken(await portal.SignInAsync(user.Email, TestUser.Password));
        await AssertStatusAsync(promoted, "/admin/audit", HttpStatusCode.OK);

        (await admin.PostAsync($"/admin/users/{user.Id}/remove-admin", null)).EnsureSuccessStatusCode();
        await UntilEveryReplicaAnswersAsync(promoted, "/admin/audit", HttpStatusCode.Unauthorized, "session_revoked");
        // Signing in again gives a token without the role.
        using var again = portal.CreateClientWithToken(await portal.SignInAsync(user.Email, TestUser.Password));
        await AssertStatusAsync(again, "/admin/audit", HttpStatusCode.Forbidden);
        await AssertStatusAsync(again, "/portal/me", HttpStatusCode.OK);
        var audit = await admin.GetFromJsonAsync<JsonElement>($"/admin/audit?target_id={user.Id}");
        Assert.Contains(audit.EnumerateArray(), e => e.GetProperty("action").GetString() == "user.remove_admin");
    }

    [Fact]
    public async Task OnlyAdministratorsChangeRolesAndUnknownUsersAre404()
    {
        using var admin = portal.CreateAdminClient();
        Assert.Equal(HttpStatusCode.NotFound, (await admin.PostAsync($"/admin/users/{Guid.NewGuid()}/remove-admin", null)).StatusCode);
        var customer = await portal.SignUpAsync();
        using var customerClient = customer.CreateClient();
        Assert.Equal(HttpStatusCode.Forbidden, (await customerClient.PostAsync($"/admin/users/{customer.Id}/make-admin", null)).StatusCode);
    }

    /// <summary>Waits until a whole check passes, then checks again: the change reached both replicas and stays.</summary>
    private static async Task UntilEveryReplicaAnswersAsync(HttpClient client, string path, HttpStatusCode expected, string code)
    {
        await Eventually.WaitUntilAsync(async () =>
        {
            for (var i = 0; i < RequestsPerCheck; i++)
            {
                var response = await client.GetAsync(path);
                if (response.StatusCode != expected
                    || (await response.Content.ReadFromJsonAsync<JsonElement>()).GetProperty("error").GetProperty("code").GetString() != code) return false;
            }
            return true;
        }, Eventually.Propagation, $"{path} did not answer {(int)expected} {code} on every replica");
        await AssertStatusAsync(client, path, expected, code);
    }

    /// <summary>Several requests, so that both replicas answer (the proxy spreads them).</summary>
    private static async Task AssertStatusAsync(HttpClient client, string path, HttpStatusCode expected, string? code = null)
    {
        for (var i = 0; i < RequestsPerCheck; i++)
        {
            var response = await client.GetAsync(path);
            Assert.Equal(expected, response.StatusCode);
            if (code is not null)
                Assert.Equal(code, (await response.Content.ReadFromJsonAsync<JsonElement>()).GetProperty("error").GetProperty("code").GetString());
        }
    }
}
