using System.Text.RegularExpressions;
using Cortensor.Api.Errors;
using Microsoft.Extensions.Options;
using Nethereum.Signer;
using StackExchange.Redis;
using Cortensor.Api.Infrastructure;

namespace Cortensor.Api.Accounts.Siwe;

/// <summary>A message whose signature, terms and nonce all checked out: its signer controls <see cref="SiweMessage.Address"/>.</summary>
public sealed record VerifiedWallet(SiweMessage Message)
{
    public string Address => Message.Address;
}

/// <summary>
/// Checks a signed EIP-4361 message the way the specification asks a relying party to: the grammar, then each
/// term against what this Portal expects (origin, URI, version, chain, times), then the EIP-191 signature
/// (personal_sign) recovering the claimed address, and last the nonce, consumed only by a message that passed
/// everything else (so nobody can burn someone else's nonce with a bad signature).
/// </summary>
public sealed partial class SiweVerifier(SiweNonces nonces, IOptions<SiweOptions> options, TimeProvider clock, ILogger<SiweVerifier> log)
{
    private static readonly EthereumMessageSigner Signer = new();
    private SiweOptions Options => options.Value;

    /// <summary>The parsed message, or the error that refuses it (the caller records failures for throttling).</summary>
    public SiweMessage? Read(string? message, out ApiError? error)
    {
        error = null;
        if (string.IsNullOrEmpty(message)) { error = ApiError.MissingField("message"); return null; }
        if (message.Length > 8192) { error = SiweErrors.Malformed("message", "The message is longer than 8192 characters."); return null; }
        try
        {
            return SiweMessage.Parse(message);
        }
        catch (SiweFormatException ex)
        {
            error = SiweErrors.Malformed(ex.Field, ex.Message);
            return null;
        }
    }

    /// <summary>Checks the message's terms, its signature over <paramref name="text"/> (exactly what the wallet signed) and its nonce.</summary>
    public async Task<(VerifiedWallet? Wallet, ApiError? Error)> VerifyAsync(string text, SiweMessage message, string? signature)
    {
        if (string.IsNullOrEmpty(signature)) return (null, ApiError.MissingField("signature"));
        if (!SignatureRule().IsMatch(signature))
            return (null, ApiError.InvalidField("signature", "'signature' must be a 65-byte secp256k1 signature in hex: 0x and 130 hexadecimal digits."));

        var origin = Origin(message);
        if (origin is null || !Options.Origins.Any(o => SiweOptions.NormalizedOrigin(o) == origin))
            return (null, SiweErrors.Refused("siwe_wrong_domain",
                $"The message asks to sign in to '{(message.Scheme is null ? "" : message.Scheme + "://")}{message.Domain}', which is not this Portal. Sign the message on the Portal's own site."));
        if (!Uri.TryCreate(message.Uri, UriKind.Absolute, out var uri) || uri.Scheme is not ("http" or "https")
            || uri.GetLeftPart(UriPartial.Authority).ToLowerInvariant() != origin)
            return (null, SiweErrors.Refused("siwe_wrong_uri", $"The message's URI '{message.Uri}' is not on {origin}, the site it names."));
        if (!Options.ChainIds.Contains(message.ChainId))
            return (null, SiweErrors.Refused("siwe_wrong_chain",
                $"Chain {message.ChainId} is not accepted here. Switch your wallet to one of: {string.Join(", ", Options.ChainIds)}."));

        var now = clock.GetUtcNow();
        var skew = TimeSpan.FromSeconds(Options.ClockSkewSeconds);
        if (message.ExpirationTime is { } expires && expires <= now - skew)
            return (null, SiweErrors.Refused("siwe_expired", $"The message expired at {SiweMessage.Timestamp(expires)}. Sign a new one."));
        if (message.IssuedAt < now - nonces.Lifetime - skew)
            return (null, SiweErrors.Refused("siwe_expired", $"The message was issued at {SiweMessage.Timestamp(message.IssuedAt)}, longer ago than a nonce lives. Sign a new one."));
        if (message.IssuedAt > now + skew)
            return (null, SiweErrors.Refused("siwe_not_yet_valid", $"The message is issued in the future ({SiweMessage.Timestamp(message.IssuedAt)}). Check your device's clock."));
        if (message.NotBefore is { } notBefore && notBefore > now + skew)
            return (null, SiweErrors.Refused("siwe_not_yet_valid", $"The message is not valid before {SiweMessage.Timestamp(notBefore)}."));

        if (Recover(text, signature) is not { } signer || !string.Equals(signer, message.Address, StringComparison.OrdinalIgnoreCase))
            return (null, SiweErrors.Refused("siwe_wrong_signer", $"The signature was not made by {message.Address} over this message."));

        try
        {
            if (!await nonces.ConsumeAsync(message.Nonce))
                return (null, SiweErrors.Refused("siwe_invalid_nonce",
                    "The message's nonce is unknown, expired or already used. Ask for a new nonce (POST /portal/auth/siwe/nonce) and sign again."));
        }
        catch (Exception ex) when (Outage.IsRedis(ex))
        {
            Log.NoncesUnavailable(log, ex);
            return (null, ApiError.DependencyUnavailable("Sign-in with a wallet"));
        }
        return (new VerifiedWallet(message), null);
    }

    /// <summary>
    /// The address that made an EIP-191 personal_sign signature over <paramref name="text"/>, or null when the
    /// signature is not a valid one. Wallets give v as 27/28; some hardware wallets as 0/1.
    /// </summary>
    public static string? Recover(string text, string signature)
    {
        var bytes = Convert.FromHexString(signature.AsSpan(2));
        if (bytes[64] < 27) bytes[64] += 27;
        if (bytes[64] is not (27 or 28)) return null;
        try
        {
            return Signer.EncodeUTF8AndEcRecover(text, "0x" + Convert.ToHexStringLower(bytes));
        }
        // Nethereum documents no exception type for a signature that is no point on the curve; any failure here means "not a signature".
        catch (Exception ex) when (ex is not OutOfMemoryException)
        {
            return null;
        }
    }

    /// <summary>The message's origin as scheme://authority in lower case (https when it names no scheme), or null.</summary>
    private static string? Origin(SiweMessage message) =>
        message.Domain.Contains('@') ? null : SiweOptions.NormalizedOrigin((message.Scheme ?? "https") + "://" + message.Domain);

    [GeneratedRegex("^0x[0-9A-Fa-f]{130}$")] private static partial Regex SignatureRule();

    private static partial class Log
    {
        [LoggerMessage(1, LogLevel.Warning, "Redis is unavailable: wallet sign-in nonces cannot be checked")]
        public static partial void NoncesUnavailable(ILogger logger, Exception exception);
    }
}

/// <summary>The errors of wallet sign-in, in the Api's one error shape, each with its own code.</summary>
public static class SiweErrors
{
    public static ApiError Malformed(string field, string detail) =>
        new(400, "invalid_request_error", "siwe_malformed_message", $"The message is not a Sign-In with Ethereum (EIP-4361) message: {detail}", field == "message" ? "message" : "message." + field);
    public static ApiError Refused(string code, string message) => new(401, "authentication_error", code, message, "message");
    public static ApiError Disabled() =>
        new(404, "invalid_request_error", "siwe_disabled", "Sign-in with a wallet is not enabled on this Portal.");
    public static ApiError WalletInUse() =>
        new(409, "invalid_request_error", "wallet_in_use", "This wallet is already linked to another account. Sign in with it, or unlink it there first.", "message");
    public static ApiError LastSignInMethod() =>
        new(409, "invalid_request_error", "last_sign_in_method", "This wallet is the only way to sign in to your account. Link another wallet first.");
}
