using System.Globalization;

namespace Cortensor.Api.Limits;

/// <summary>OpenAI's x-ratelimit-* headers, from whichever limit binds first.</summary>
public static class RateLimitHeaders
{
    public static void Write(HttpResponse response, Admission a)
    {
        var h = response.Headers;
        var reset = a.Reset.TotalSeconds.ToString("0", CultureInfo.InvariantCulture) + "s";
        h["x-ratelimit-limit-requests"] = a.RequestLimit.ToString(CultureInfo.InvariantCulture);
        h["x-ratelimit-remaining-requests"] = a.RequestsRemaining.ToString(CultureInfo.InvariantCulture);
        h["x-ratelimit-reset-requests"] = reset;
        h["x-ratelimit-limit-tokens"] = a.TokenLimit.ToString(CultureInfo.InvariantCulture);
        h["x-ratelimit-remaining-tokens"] = a.TokensRemaining.ToString(CultureInfo.InvariantCulture);
        h["x-ratelimit-reset-tokens"] = reset;
    }
}
