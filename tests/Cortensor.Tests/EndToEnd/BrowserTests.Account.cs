using Cortensor.Tests.Fixtures;
using Microsoft.Playwright;
using OtpNet;

namespace Cortensor.Tests.EndToEnd;

/// <summary>The account pages in the browser: two-factor sign-in turned on and used, and "Add credit" opening Stripe Checkout.</summary>
public partial class BrowserTests
{
    [Fact]
    public async Task TwoFactorTurnedOnFromTheSecurityPageMakesSignInAskForTheAuthenticatorCode()
    {
        var user = await portal.SignUpAsync();
        var page = await NewPageAsync();
        await SignInAsync(page, user.Email, TestUser.Password);
        await GoAsync(page, "/security");
        await page.Locator("#set-up-two-factor").ClickAsync();
        await page.Locator("#two-factor-qr").WaitForAsync();
        var sharedKey = await page.Locator("#two-factor-key").InnerTextAsync();
        var totp = new Totp(Base32Encoding.ToBytes(sharedKey.Replace(" ", "").ToUpperInvariant()));
        await FillAsync(page, ("two-factor-code", totp.ComputeTotp()));
        await page.Locator("#enable-two-factor").ClickAsync();
        await Assertions.Expect(page.Locator("#recovery-codes")).ToBeVisibleAsync();
        await ShotAsync(page, "security-two-factor");

        var again = await NewPageAsync();
        await GoAsync(again, "/signin");
        await FillAsync(again, ("email", user.Email), ("password", TestUser.Password));
        await again.Locator("#signin-submit").ClickAsync();
        await Input(again, "two-factor-code").WaitForAsync();
        Assert.Contains("/signin", again.Url, StringComparison.Ordinal);
        await FillAsync(again, ("email", user.Email), ("password", TestUser.Password), ("two-factor-code", totp.ComputeTotp()));
        await again.Locator("#signin-submit").ClickAsync();
        await again.WaitForURLAsync(url => !url.Contains("/signin", StringComparison.Ordinal) && !url.Contains("/auth/", StringComparison.Ordinal));
    }

    [Fact]
    public async Task AddCreditOnTheBalancePageOpensStripeCheckoutForTheAmount()
    {
        var user = await portal.SignUpAsync();
        var page = await NewPageAsync();
        // Stripe's hosted page is out of reach here: the browser's visit to it is answered locally.
        await page.RouteAsync("https://checkout.stripe.com/**", route => route.FulfillAsync(new() { Body = "<h1>Stripe Checkout</h1>", ContentType = "text/html" }));
        await SignInAsync(page, user.Email, TestUser.Password);
        await GoAsync(page, "/balance");
        await FillAsync(page, ("credit-amount", "25"));
        await page.Locator("#add-credit-button").ClickAsync();
        await page.WaitForURLAsync(url => url.StartsWith("https://checkout.stripe.com/", StringComparison.Ordinal));
        var session = portal.Stripe.Sessions.Values.Single(s => s.Form["metadata[organization_id]"] == user.OrganizationId.ToString());
        Assert.Equal("2500", session.Form["line_items[0][price_data][unit_amount]"]);
        Assert.EndsWith(session.Session["id"]!.GetValue<string>(), page.Url);
    }
}
