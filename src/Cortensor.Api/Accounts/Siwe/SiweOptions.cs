namespace Cortensor.Api.Accounts.Siwe;

/// <summary>
/// The "Siwe" section: which sites may ask a wallet to sign in to this Portal, and on which chains.
/// Wallet sign-in is off while <see cref="Origins"/> is empty.
/// </summary>
public sealed class SiweOptions
{
    public const string Section = "Siwe";

    /// <summary>
    /// The origins (scheme://host[:port]) whose messages are accepted: the web dashboard's public address, and any
    /// other front end or the Api's own address for clients that sign in directly. A message's domain (and scheme,
    /// https when it names none) must be one of these, and its URI must be on the same origin.
    /// </summary>
    public string[] Origins { get; set; } = [];
    /// <summary>EIP-155 chain ids a message may name (default: Ethereum mainnet and Arbitrum One).</summary>
    public long[] ChainIds { get; set; } = [1, 42161];
    /// <summary>How long a nonce can be used after it was handed out (single use either way).</summary>
    public int NonceLifetimeSeconds { get; set; } = 300;
    /// <summary>Clock difference tolerated between the wallet's clock and ours for issued-at, expiration and not-before.</summary>
    public int ClockSkewSeconds { get; set; } = 60;

    public bool IsEnabled => Origins.Length > 0;

    /// <summary>What is wrong with the settings (null when nothing): the Api refuses to start with it.</summary>
    public string? Problem() =>
        Origins.FirstOrDefault(o => NormalizedOrigin(o) is null) is { } bad
            ? $"Siwe:Origins entry '{bad}' is not an origin like https://portal.example.com (scheme, host and optional port; no path)."
        : ChainIds.Length == 0 || ChainIds.Any(c => c <= 0) ? "Siwe:ChainIds must list at least one positive EIP-155 chain id."
        : NonceLifetimeSeconds is < 10 or > 3600 ? "Siwe:NonceLifetimeSeconds must be between 10 and 3600."
        : ClockSkewSeconds is < 0 or > 600 ? "Siwe:ClockSkewSeconds must be between 0 and 600."
        : null;

    /// <summary>scheme://host[:port] in lower case without a default port, or null when the value is not a bare origin.</summary>
    public static string? NormalizedOrigin(string value) =>
        Uri.TryCreate(value.TrimEnd('/'), UriKind.Absolute, out var uri) && uri.Scheme is "http" or "https"
        && uri.AbsolutePath == "/" && uri.Query.Length == 0 && uri.Fragment.Length == 0 && uri.UserInfo.Length == 0
            ? uri.GetLeftPart(UriPartial.Authority).ToLowerInvariant()
            : null;
}
