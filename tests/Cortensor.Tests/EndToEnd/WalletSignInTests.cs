using System.Net;
using System.Net.Http.Json;
using System.Text.Json;
using Aspire.Hosting.Testing;
using Cortensor.Api.Accounts.Siwe;
using Cortensor.Tests.Fixtures;
using Microsoft.IdentityModel.JsonWebTokens;
using Nethereum.Signer;

namespace Cortensor.Tests.EndToEnd;

/// <summary>
/// Sign-In with Ethereum against the whole graph, with wallets made in the test (Nethereum keys): the happy path,
/// and replays, foreign domains and chains, stale messages and other signers, as an attacker would try them.
/// </summary>
[Collection(PortalAppCollection.Name)]
[Trait("Category", PortalAppCollection.Category)]
public class WalletSignInTests(PortalAppFixture portal)
{
    /// <summary>The Api's own origin, which the AppHost lists among the allowed ones.</summary>
    private Uri ApiOrigin => portal.App.GetEndpoint(LaunchTopology.Api, "http");

    private async Task<string> NonceAsync(HttpClient client)
    {
        var response = await client.PostAsync("/portal/auth/siwe/nonce", null);
        Assert.True(response.StatusCode == HttpStatusCode.OK, await response.Content.ReadAsStringAsync());
        var body = await response.Content.ReadFromJsonAsync<JsonElement>();
        Assert.Contains(1L, body.GetProperty("chain_ids").EnumerateArray().Select(c => c.GetInt64()));
        return body.GetProperty("nonce").GetString()!;
    }

    private SiweMessage Message(EthECKey key, string nonce, string? statement = "Sign in to the Cortensor Portal.") => new(
        ApiOrigin.Scheme, ApiOrigin.Authority, key.GetPublicAddress(), statement, new Uri(ApiOrigin, "/signin").ToString(), "1", 1, nonce,
        DateTimeOffset.UtcNow, DateTimeOffset.UtcNow.AddMinutes(5), null, null, []);

    private static object Signed(SiweMessage message, EthECKey signer)
    {
        var text = message.ToString();
        return new { message = text, signature = new EthereumMessageSigner().EncodeUTF8AndSign(text, signer) };
    }

    private static async Task<JsonElement> OkAsync(HttpResponseMessage response)
    {
        Assert.True(response.IsSuccessStatusCode, $"{(int)response.StatusCode}: {await response.Content.ReadAsStringAsync()}");
        return await response.Content.ReadFromJsonAsync<JsonElement>();
    }

    private static async Task AssertRefusedAsync(HttpResponseMessage response, HttpStatusCode status, string code)
    {
        var body = await response.Content.ReadAsStringAsync();
        Assert.True(response.StatusCode == status, $"expected {(int)status} {code}, got {(int)response.StatusCode}: {body}");
        var error = JsonDocument.Parse(body).RootElement.GetProperty("error");
        Assert.Equal(code, error.GetProperty("code").GetString());
        Assert.False(string.IsNullOrEmpty(error.GetProperty("message").GetString()));
        Assert.False(string.IsNullOrEmpty(error.GetProperty("request_id").GetString()));
    }

    private async Task<JsonElement> SignInAsync(EthECKey key)
    {
        using var client = portal.CreateClientFrom(PortalAppFixture.RandomClientIp());
        return await OkAsync(await client.PostAsJsonAsync("/portal/auth/siwe/verify", Signed(Message(key, await NonceAsync(client)), key)));
    }

    private async Task<Guid> UserIdAsync(JsonElement tokens)
    {
        using var me = portal.CreateClientWithToken(tokens.GetProperty("access_token").GetString()!);
        return (await me.GetFromJsonAsync<JsonElement>("/portal/me")).GetProperty("id").GetGuid();
    }

    [Fact]
    public async Task AnInvitationFromAnAccountWhoseAddressIsUnconfirmedNamesItsWalletNotTheAddressItClaims()
    {
        // Signed up with an address never confirmed (anyone's), then proven by a wallet: enough to invite people.
        var claimant = await portal.SignUpAsync(verified: false);
        var wallet = EthECKey.GenerateKey();
        using var account = claimant.CreateClient();
        await OkAsync(await account.PostAsJsonAsync("/portal/me/wallets", Signed(Message(wallet, await NonceAsync(account), "Link this wallet."), wallet)));
        var invitee = $"invitee-{Guid.NewGuid():N}@example.com";
        Assert.Equal(HttpStatusCode.Created, (await account.PostAsJsonAsync("/portal/invitations", new { email = invitee, role = "member" })).StatusCode);

        var mail = await portal.Mail.WaitForAsync(invitee, "You are invited");
        // (The organisation's name is its owner's to choose, and a sign-up's first one is named after the address it gave.)
        Assert.DoesNotContain($"{claimant.Email} invites you", mail.Text, StringComparison.OrdinalIgnoreCase);
        Assert.Contains($"{wallet.GetPublicAddress()} invites you", mail.Text, StringComparison.Ordinal);

        // Once the address is confirmed, it is the name.
        var confirmed = await portal.SignUpAsync();
        using var confirmedAccount = confirmed.CreateClient();
        var colleague = $"colleague-{Guid.NewGuid():N}@example.com";
        Assert.Equal(HttpStatusCode.Created, (await confirmedAccount.PostAsJsonAsync("/portal/invitations", new { email = colleague, role = "member" })).StatusCode);
        Assert.Contains($"{confirmed.Email} invites you", (await portal.Mail.WaitForAsync(colleague, "You are invited")).Text, StringComparison.Ordinal);
    }

    [Fact]
    public async Task AWalletsFirstSignInCreatesItsAccountAndOrganizationWithTheSameTokensAsAPasswordAndTheMessageWorksOnce()
    {
        var key = EthECKey.GenerateKey();
        using var client = portal.CreateClientFrom(PortalAppFixture.RandomClientIp());
        var signed = Signed(Message(key, await NonceAsync(client)), key);
        var tokens = await OkAsync(await client.PostAsJsonAsync("/portal/auth/siwe/verify", signed));
        Assert.Equal("Bearer", tokens.GetProperty("token_type").GetString());
        Assert.True(tokens.GetProperty("expires_in").GetInt32() > 0);
        // A revocable session, as for an e-mail sign-in.
        Assert.False(string.IsNullOrEmpty(new JsonWebToken(tokens.GetProperty("access_token").GetString()).GetClaim("sid").Value));

        using var me = portal.CreateClientWithToken(tokens.GetProperty("access_token").GetString()!);
        var profile = await me.GetFromJsonAsync<JsonElement>("/portal/me");
        // No e-mail address (null fields are left out of answers).
        Assert.False(profile.TryGetProperty("email", out var email) && email.ValueKind != JsonValueKind.Null);
        Assert.False(profile.GetProperty("email_verified").GetBoolean());
        var org = Assert.Single(profile.GetProperty("organizations").EnumerateArray());
        Assert.Equal("owner", org.GetProperty("role").GetString());
        Assert.Contains(key.GetPublicAddress()[..6], org.GetProperty("name").GetString());
        Assert.Equal([key.GetPublicAddress()], (await me.GetFromJsonAsync<JsonElement>("/portal/me/wallets")).EnumerateArray().Select(w => w.GetProperty("address").GetString()));
        // The wallet is a proven identity: the account may create keys without an e-mail address.
        Assert.Equal(HttpStatusCode.Created, (await me.PostAsJsonAsync("/portal/api-keys", new { name = "wallet key" })).StatusCode);

        // The same signed message again: its nonce is spent.
        await AssertRefusedAsync(await client.PostAsJsonAsync("/portal/auth/siwe/verify", signed), HttpStatusCode.Unauthorized, "siwe_invalid_nonce");
        // A fresh message from the same wallet signs in to the same account.
        Assert.Equal(profile.GetProperty("id").GetGuid(), await UserIdAsync(await SignInAsync(key)));

        // The refresh token rotates like any other, and signing out ends the session's access tokens too.
        var refreshed = await OkAsync(await client.PostAsJsonAsync("/portal/auth/refresh", new { refresh_token = tokens.GetProperty("refresh_token").GetString() }));
        Assert.Equal(HttpStatusCode.NoContent, (await client.PostAsJsonAsync("/portal/auth/logout", new { refresh_token = refreshed.GetProperty("refresh_token").GetString() })).StatusCode);
        await Eventually.WaitUntilAsync(async () => (await me.GetAsync("/portal/me")).StatusCode == HttpStatusCode.Unauthorized,
            Eventually.Propagation, "the signed-out wallet session's access token was still accepted");
    }

    [Fact]
    public async Task ForeignDomainsUrisChainsStaleMessagesOtherSignersAndMalformedMessagesAreRefusedEachWithItsCode()
    {
        var key = EthECKey.GenerateKey();
        var mallory = EthECKey.GenerateKey();
        // Each try from its own address, so the failed-sign-in throttle (tested below) stays out of the way.
        HttpClient Client() => portal.CreateClientFrom(PortalAppFixture.RandomClientIp());
        using var client = Client();
        var nonce = await NonceAsync(client);
        var good = Message(key, nonce);
        var now = DateTimeOffset.UtcNow;

        async Task Refused(object body, HttpStatusCode status, string code)
        {
            using var c = Client();
            await AssertRefusedAsync(await c.PostAsJsonAsync("/portal/auth/siwe/verify", body), status, code);
        }

        await Refused(Signed(good with { Scheme = null, Domain = "evil.example" }, key), HttpStatusCode.Unauthorized, "siwe_wrong_domain");
        // No scheme means https, and the Api here is plain http.
        await Refused(Signed(good with { Scheme = null }, key), HttpStatusCode.Unauthorized, "siwe_wrong_domain");
        await Refused(Signed(good with { Uri = "https://evil.example/signin" }, key), HttpStatusCode.Unauthorized, "siwe_wrong_uri");
        await Refused(Signed(good with { ChainId = 137 }, key), HttpStatusCode.Unauthorized, "siwe_wrong_chain");
        await Refused(Signed(good with { IssuedAt = now.AddMinutes(-10), ExpirationTime = now.AddMinutes(-5) }, key), HttpStatusCode.Unauthorized, "siwe_expired");
        await Refused(Signed(good with { IssuedAt = now.AddHours(-1), ExpirationTime = null }, key), HttpStatusCode.Unauthorized, "siwe_expired");
        await Refused(Signed(good with { IssuedAt = now.AddMinutes(10) }, key), HttpStatusCode.Unauthorized, "siwe_not_yet_valid");
        await Refused(Signed(good with { NotBefore = now.AddMinutes(10) }, key), HttpStatusCode.Unauthorized, "siwe_not_yet_valid");
        // Mallory signs a message that claims the victim's address.
        await Refused(Signed(good, mallory), HttpStatusCode.Unauthorized, "siwe_wrong_signer");
        // A signature over other text than the message sent.
        var text = good.ToString();
        await Refused(new { message = text, signature = new EthereumMessageSigner().EncodeUTF8AndSign(text + "\nResources:\n- https://evil.example/", key) },
            HttpStatusCode.Unauthorized, "siwe_wrong_signer");
        await Refused(new { message = text.Replace("Version: 1", "Version: 2"), signature = "0x" + new string('1', 130) }, HttpStatusCode.BadRequest, "siwe_malformed_message");
        await Refused(new { message = text.Replace(key.GetPublicAddress(), key.GetPublicAddress().ToLowerInvariant()), signature = "0x" + new string('1', 130) },
            HttpStatusCode.BadRequest, "siwe_malformed_message");
        await Refused(new { message = text + "\n", signature = "0x" + new string('1', 130) }, HttpStatusCode.BadRequest, "siwe_malformed_message");
        await Refused(new { message = "hello", signature = "0x00" }, HttpStatusCode.BadRequest, "siwe_malformed_message");
        await Refused(new { message = text, signature = "0x1234" }, HttpStatusCode.BadRequest, "invalid_value");
        await Refused(new { message = text }, HttpStatusCode.BadRequest, "missing_required_parameter");
        // A nonce this Portal never handed out.
        await Refused(Signed(good with { Nonce = "NeverIssued1234567890" }, key), HttpStatusCode.Unauthorized, "siwe_invalid_nonce");

        // None of that spent the nonce: the genuine message still signs in, once.
        Assert.Equal(JsonValueKind.String, (await OkAsync(await client.PostAsJsonAsync("/portal/auth/siwe/verify", Signed(good, key)))).GetProperty("access_token").ValueKind);
        await Refused(Signed(good, key), HttpStatusCode.Unauthorized, "siwe_invalid_nonce");
    }

    [Fact]
    public async Task TooManyBadSignaturesForOneWalletFromOneAddressMakeThatAddressWaitForThatWallet()
    {
        var key = EthECKey.GenerateKey();
        var mallory = EthECKey.GenerateKey();
        using var attacker = portal.CreateClientFrom(PortalAppFixture.RandomClientIp());
        for (var i = 0; i < 5; i++)
            await AssertRefusedAsync(await attacker.PostAsJsonAsync("/portal/auth/siwe/verify", Signed(Message(key, await NonceAsync(attacker)), mallory)),
                HttpStatusCode.Unauthorized, "siwe_wrong_signer");
        // Even a genuine signature waits now from that address...
        var blocked = await attacker.PostAsJsonAsync("/portal/auth/siwe/verify", Signed(Message(key, await NonceAsync(attacker)), key));
        await AssertRefusedAsync(blocked, HttpStatusCode.TooManyRequests, "too_many_attempts");
        // ...while the owner elsewhere signs in.
        await SignInAsync(key);
    }

    [Fact]
    public async Task AnAccountLinksAndUnlinksWalletsProvingEachAndNeverLosesItsLastWayToSignIn()
    {
        var user = await portal.SignUpAsync();
        using var account = user.CreateClient();
        var wallet = EthECKey.GenerateKey();
        var mallory = EthECKey.GenerateKey();

        // Linking needs the wallet's own signature.
        await AssertRefusedAsync(await account.PostAsJsonAsync("/portal/me/wallets", Signed(Message(wallet, await NonceAsync(account)), mallory)),
            HttpStatusCode.Unauthorized, "siwe_wrong_signer");
        var linked = await OkAsync(await account.PostAsJsonAsync("/portal/me/wallets", Signed(Message(wallet, await NonceAsync(account), "Link this wallet."), wallet)));
        Assert.Equal([wallet.GetPublicAddress()], linked.EnumerateArray().Select(w => w.GetProperty("address").GetString()));
        // The wallet now signs in to the e-mail account.
        Assert.Equal(user.Id, await UserIdAsync(await SignInAsync(wallet)));

        // One address, one account: nobody else can link it, not even with its signature.
        var other = await portal.SignUpAsync();
        using var otherAccount = other.CreateClient();
        await AssertRefusedAsync(await otherAccount.PostAsJsonAsync("/portal/me/wallets", Signed(Message(wallet, await NonceAsync(otherAccount)), wallet)),
            HttpStatusCode.Conflict, "wallet_in_use");

        // Unlinked (by its address in any case), it signs in to an account of its own next time.
        Assert.Equal(HttpStatusCode.NoContent, (await account.DeleteAsync($"/portal/me/wallets/{wallet.GetPublicAddress().ToLowerInvariant()}")).StatusCode);
        Assert.Empty((await account.GetFromJsonAsync<JsonElement>("/portal/me/wallets")).EnumerateArray());
        await AssertRefusedAsync(await account.DeleteAsync($"/portal/me/wallets/{wallet.GetPublicAddress()}"), HttpStatusCode.NotFound, "not_found");
        var walletTokens = await SignInAsync(wallet);
        Assert.NotEqual(user.Id, await UserIdAsync(walletTokens));

        // A wallet-only account cannot unlink its only wallet; with a second one linked, it can.
        using var walletAccount = portal.CreateClientWithToken(walletTokens.GetProperty("access_token").GetString()!);
        await AssertRefusedAsync(await walletAccount.DeleteAsync($"/portal/me/wallets/{wallet.GetPublicAddress()}"), HttpStatusCode.Conflict, "last_sign_in_method");
        var second = EthECKey.GenerateKey();
        await OkAsync(await walletAccount.PostAsJsonAsync("/portal/me/wallets", Signed(Message(second, await NonceAsync(walletAccount)), second)));
        Assert.Equal(HttpStatusCode.NoContent, (await walletAccount.DeleteAsync($"/portal/me/wallets/{wallet.GetPublicAddress()}")).StatusCode);
        await AssertRefusedAsync(await walletAccount.DeleteAsync($"/portal/me/wallets/{second.GetPublicAddress()}"), HttpStatusCode.Conflict, "last_sign_in_method");
        Assert.Equal(await UserIdAsync(walletTokens), await UserIdAsync(await SignInAsync(second)));

        // E-mail-only flows have nothing to do for an account without an address.
        var resend = await walletAccount.PostAsync("/portal/auth/verify-email/resend", null);
        await AssertRefusedAsync(resend, HttpStatusCode.Conflict, "no_email");
    }
    [Fact]
    public async Task AWalletLinkedBeforeTheAddressWasProvenNoLongerSignsInOnceTheAddressesOwnerResetsThePassword()
    {
        // Mallory signs up with Alice's address (unproven) and links her own wallet to the account.
        var alice = $"alice-{Guid.NewGuid():N}@example.com";
        using var malloryIp = portal.CreateClientFrom(PortalAppFixture.RandomClientIp());
        Assert.Equal(HttpStatusCode.Accepted, (await malloryIp.PostAsJsonAsync("/portal/auth/signup", new { email = alice, password = "Mallory-owns-1" })).StatusCode);
        var malloryTokens = await OkAsync(await malloryIp.PostAsJsonAsync("/portal/auth/login", new { email = alice, password = "Mallory-owns-1" }));
        using var mallory = portal.CreateClientWithToken(malloryTokens.GetProperty("access_token").GetString()!);
        var squatterWallet = EthECKey.GenerateKey();
        await OkAsync(await mallory.PostAsJsonAsync("/portal/me/wallets", Signed(Message(squatterWallet, await NonceAsync(mallory)), squatterWallet)));
        var account = await UserIdAsync(malloryTokens);
        Assert.Equal(account, await UserIdAsync(await SignInAsync(squatterWallet)));

        // Alice proves her mailbox through a password reset: the wallet linked before that is unlinked with everything else.
        using var aliceIp = portal.CreateClientFrom(PortalAppFixture.RandomClientIp());
        Assert.Equal(HttpStatusCode.Accepted, (await aliceIp.PostAsJsonAsync("/portal/auth/password-reset", new { email = alice })).StatusCode);
        var reset = await portal.Mail.WaitForAsync(alice, "Reset your");
        await OkAsync(await aliceIp.PostAsJsonAsync("/portal/auth/password-reset/confirm",
            new { user_id = reset.Query("/reset-password", "user"), token = reset.Query("/reset-password", "token"), new_password = "Alice-is-back-7" }));
        var aliceTokens = await OkAsync(await aliceIp.PostAsJsonAsync("/portal/auth/login", new { email = alice, password = "Alice-is-back-7" }));
        Assert.Equal(account, await UserIdAsync(aliceTokens));
        using var aliceClient = portal.CreateClientWithToken(aliceTokens.GetProperty("access_token").GetString()!);
        Assert.Empty((await aliceClient.GetFromJsonAsync<JsonElement>("/portal/me/wallets")).EnumerateArray());
        Assert.NotEqual(account, await UserIdAsync(await SignInAsync(squatterWallet)));

        // A wallet Alice links now, to her proven address, survives her next reset.
        var aliceWallet = EthECKey.GenerateKey();
        await OkAsync(await aliceClient.PostAsJsonAsync("/portal/me/wallets", Signed(Message(aliceWallet, await NonceAsync(aliceClient)), aliceWallet)));
        Assert.Equal(HttpStatusCode.Accepted, (await aliceIp.PostAsJsonAsync("/portal/auth/password-reset", new { email = alice })).StatusCode);
        var second = await portal.Mail.WaitForAsync(alice, "Reset your", count: 2);
        await OkAsync(await aliceIp.PostAsJsonAsync("/portal/auth/password-reset/confirm",
            new { user_id = second.Query("/reset-password", "user"), token = second.Query("/reset-password", "token"), new_password = "Alice-again-8" }));
        Assert.Equal(account, await UserIdAsync(await SignInAsync(aliceWallet)));
    }
}
