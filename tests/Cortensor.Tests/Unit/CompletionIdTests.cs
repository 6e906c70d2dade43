using Cortensor.Api.Metering;

namespace Cortensor.Tests;

public class CompletionIdTests
{
    [Theory]
    [InlineData("chatcmpl")]
    [InlineData("cmpl")]
    public void ACompletionIdLeadsBackToTheEventItWasMadeFrom(string prefix)
    {
        var eventId = "evt_" + Guid.CreateVersion7().ToString("N");
        Assert.Equal(eventId, UsageTracker.EventIdOf(UsageTracker.CompletionIdOf(eventId, prefix)));
    }

    [Theory]
    [InlineData("req_0123456789abcdef0123456789abcdef")]
    [InlineData("chatcmpl-0123456789ABCDEF0123456789ABCDEF")]
    [InlineData("chatcmpl-0123")]
    [InlineData("my-own-request-id")]
    [InlineData("")]
    public void AnythingElseIsNotTakenForACompletionId(string text) => Assert.Null(UsageTracker.EventIdOf(text));
}
