using System.Text;
using Microsoft.Playwright;
using Nethereum.Signer;

namespace Cortensor.Tests.EndToEnd;

/// <summary>
/// Sign-In with Ethereum in the browser: the page gets an EIP-1193 provider (window.ethereum) from an init script,
/// backed by keys held by the test; personal_sign calls back into .NET through Playwright's exposed function, so the
/// dashboard ships nothing test-only.
/// </summary>
public partial class BrowserTests
{
    private const string TestWallet = """
        window.ethereum = {
            isTestWallet: true,
            request: async ({ method, params }) => {
                switch (method) {
                    case 'eth_requestAccounts':
                    case 'eth_accounts': return [(await window.__testWalletAccount()).toLowerCase()];
                    case 'eth_chainId': return '0x1';
                    case 'personal_sign': return await window.__testWalletSign(params[0], params[1]);
                    default: throw Object.assign(new Error('The test wallet does not do ' + method), { code: 4200 });
                }
            }
        };
        """;

    /// <summary>A wallet for the page: the account it shares is <paramref name="current"/>(); what it signed is kept.</summary>
    private static async Task InjectWalletAsync(IPage page, Func<EthECKey> current, List<string> signed)
    {
        await page.Context.ExposeFunctionAsync("__testWalletAccount", () => current().GetPublicAddress());
        await page.Context.ExposeFunctionAsync("__testWalletSign", (string hex, string address) =>
        {
            var key = current();
            // A wallet signs only for the account it shares.
            if (!string.Equals(address, key.GetPublicAddress(), StringComparison.OrdinalIgnoreCase))
                throw new InvalidOperationException($"asked to sign for {address}, not {key.GetPublicAddress()}");
            var message = Encoding.UTF8.GetString(Convert.FromHexString(hex[2..]));
            signed.Add(message);
            return new EthereumMessageSigner().EncodeUTF8AndSign(message, key);
        });
        await page.Context.AddInitScriptAsync(TestWallet);
    }

    [Fact]
    public async Task AWalletSignsInThroughTheBrowsersProviderAndLinksAndUnlinksWalletsOnTheProfile()
    {
        var first = EthECKey.GenerateKey();
        var second = EthECKey.GenerateKey();
        var current = first;
        var signed = new List<string>();
        var page = await NewPageAsync();
        await InjectWalletAsync(page, () => current, signed);

        await GoAsync(page, "/signin");
        await page.Locator("#signin-wallet").ClickAsync();
        await page.WaitForURLAsync(url => !url.Contains("/signin", StringComparison.Ordinal) && !url.Contains("/auth/", StringComparison.Ordinal));
        // The wallet was asked to sign an EIP-4361 message naming the dashboard, in the address's checksum form.
        var message = Assert.Single(signed);
        Assert.Contains(" wants you to sign in with your Ethereum account:\n" + first.GetPublicAddress() + "\n", message);
        Assert.Contains("\nChain ID: 1\n", message);

        await GoAsync(page, "/profile");
        await Assertions.Expect(page.Locator("#linked-wallets")).ToContainTextAsync(first.GetPublicAddress());
        await Assertions.Expect(page.Locator("#verify-notice")).ToHaveCountAsync(0);
        await ShotAsync(page, "profile-wallets");

        // The wallet switches accounts; the profile links the second one.
        current = second;
        await page.Locator("#link-wallet").ClickAsync();
        await Assertions.Expect(page.Locator("#linked-wallets")).ToContainTextAsync(second.GetPublicAddress());
        Assert.Equal(2, signed.Count);
        Assert.Contains("Link this wallet", signed[1]);

        // Unlinking the first leaves the second; the last one cannot go.
        await page.Locator($"#unlink-{first.GetPublicAddress()}").ClickAsync();
        await Assertions.Expect(page.Locator("#linked-wallets")).Not.ToContainTextAsync(first.GetPublicAddress());
        await page.Locator($"#unlink-{second.GetPublicAddress()}").ClickAsync();
        await Assertions.Expect(page.Locator("#wallets-card")).ToContainTextAsync("only way to sign in");
        await Assertions.Expect(page.Locator("#linked-wallets")).ToContainTextAsync(second.GetPublicAddress());

        // Signed out, the second wallet signs in to the same account.
        await page.GetByText("Sign out", new() { Exact = true }).ClickAsync();
        await page.WaitForURLAsync(url => url.Contains("/signin", StringComparison.Ordinal));
        await GoAsync(page, "/signin");
        await page.Locator("#signin-wallet").ClickAsync();
        await page.WaitForURLAsync(url => !url.Contains("/signin", StringComparison.Ordinal) && !url.Contains("/auth/", StringComparison.Ordinal));
        await GoAsync(page, "/profile");
        await Assertions.Expect(page.Locator("#linked-wallets")).ToContainTextAsync(second.GetPublicAddress());
    }

    [Fact]
    public async Task WithoutAWalletInTheBrowserTheSignInPageSaysWhatToDo()
    {
        var page = await NewPageAsync();
        await GoAsync(page, "/signin");
        await page.Locator("#signin-wallet").ClickAsync();
        await Assertions.Expect(page.GetByText("No Ethereum wallet found")).ToBeVisibleAsync();
    }
}
