using Cortensor.Api.Billing;

namespace Cortensor.Tests.Unit;

/// <summary>The webhook is anonymous: a call whose Stripe-Signature cannot pass is refused before its body is read.</summary>
public sealed class StripeWebhookTests
{
    private static readonly DateTimeOffset Now = new(2026, 11, 30, 12, 0, 0, TimeSpan.Zero);

    [Theory]
    [InlineData("t={0},v1=5257a869e7ecebeda32affa62cdca3fa51cad7e77a0e56ff536d0ce8e108d8bd", 0, true)]
    [InlineData("t={0},v1=abc,v0=def", -300, true)]
    [InlineData("t={0},v1=abc", 120, true)]     // the sender's clock ahead: Stripe.net's to judge
    [InlineData("t={0},v1=abc", -301, false)]   // older than the tolerance
    [InlineData("t={0}", 0, false)]             // no signature
    [InlineData("t={0},v1=", 0, false)]
    [InlineData("v1=abc", 0, false)]            // no timestamp
    [InlineData("t=soon,v1=abc", 0, false)]
    [InlineData("", 0, false)]
    public void OnlyAFreshSignedHeaderIsWorthReadingTheBodyFor(string header, int offsetSeconds, bool worth)
    {
        var value = string.Format(System.Globalization.CultureInfo.InvariantCulture, header, Now.ToUnixTimeSeconds() + offsetSeconds);
        Assert.Equal(worth, CreditPurchasesApi.MaybeFresh(value, Now, toleranceSeconds: 300));
    }
}
