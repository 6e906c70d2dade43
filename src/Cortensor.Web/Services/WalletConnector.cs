using System.Globalization;
using Microsoft.AspNetCore.Components;
using Microsoft.JSInterop;
using Nethereum.Util;

namespace Cortensor.Web.Services;

/// <summary>The "Siwe" section of the dashboard: the public origin its sign-in messages name.</summary>
public sealed class WalletOptions
{
    public const string Section = "Siwe";

    /// <summary>
    /// The dashboard's public origin (https://portal.example.com), which the Api must list in its Siwe:Origins.
    /// Unset: the address the browser used. Behind a load balancer the public origin is what the user sees and
    /// what their wallet compares the message with, not a replica's own address.
    /// </summary>
    public string? Origin { get; set; }
}

/// <summary>A wallet account the browser's wallet shared, and the chain it is on.</summary>
public sealed record ConnectedWallet(string Address, long ChainId);

/// <summary>
/// Sign-In with Ethereum in the dashboard: asks the browser's wallet (EIP-1193, through wallet.js) for an account,
/// writes the EIP-4361 message for a nonce from the Api, and has the wallet sign it.
/// </summary>
public sealed class WalletConnector(IJSRuntime js, NavigationManager navigation, Microsoft.Extensions.Options.IOptions<WalletOptions> options, TimeProvider clock)
    : IAsyncDisposable
{
    private IJSObjectReference? _module;

    public async Task<ConnectedWallet> ConnectAsync()
    {
        var module = _module ??= await js.InvokeAsync<IJSObjectReference>("import", "./wallet.js");
        var wallet = await module.InvokeAsync<ConnectedWallet>("connect");
        // Wallets share addresses in lower case; the message carries the EIP-55 form (the Api refuses any other).
        return wallet with { Address = AddressUtil.Current.ConvertToChecksumAddress(wallet.Address) };
    }

    public async Task<string> SignAsync(string message, ConnectedWallet wallet)
    {
        var module = _module ??= await js.InvokeAsync<IJSObjectReference>("import", "./wallet.js");
        return await module.InvokeAsync<string>("sign", message, wallet.Address);
    }

    /// <summary>The EIP-4361 message for this dashboard, valid for as long as the nonce.</summary>
    public string Message(ConnectedWallet wallet, SiweNonce nonce, string statement, string path)
    {
        var origin = new Uri(options.Value.Origin is { Length: > 0 } configured ? configured : navigation.BaseUri);
        var now = clock.GetUtcNow();
        // EIP-4361 assumes https when a message names no scheme: a plain-http (development) origin says so.
        var domain = (origin.Scheme == Uri.UriSchemeHttps ? "" : origin.Scheme + "://") + origin.Authority;
        return $"{domain} wants you to sign in with your Ethereum account:\n{wallet.Address}\n\n{statement}\n\n" +
            $"URI: {origin.GetLeftPart(UriPartial.Authority)}{path}\nVersion: 1\nChain ID: {wallet.ChainId.ToString(CultureInfo.InvariantCulture)}\n" +
            $"Nonce: {nonce.Nonce}\nIssued At: {Timestamp(now)}\nExpiration Time: {Timestamp(nonce.ExpiresAt)}";
    }

    /// <summary>What to tell the user when the wallet said no or is missing.</summary>
    public static string Describe(JSException exception) =>
        exception.Message.Contains("reject", StringComparison.OrdinalIgnoreCase) || exception.Message.Contains("denied", StringComparison.OrdinalIgnoreCase)
            ? "The wallet request was declined."
            : exception.Message.Split('\n')[0];

    private static string Timestamp(DateTimeOffset at) => at.UtcDateTime.ToString("yyyy-MM-dd'T'HH:mm:ss.fff'Z'", CultureInfo.InvariantCulture);

    public async ValueTask DisposeAsync()
    {
        if (_module is null) return;
        try { await _module.DisposeAsync(); }
        catch (JSDisconnectedException) { } // the circuit is gone, and the module with it
    }
}

public static class WalletConnectorExtensions
{
    public static WebApplicationBuilder AddWalletSignIn(this WebApplicationBuilder builder)
    {
        builder.Services.AddOptions<WalletOptions>().BindConfiguration(WalletOptions.Section)
            .Validate(o => o.Origin is not { Length: > 0 } origin || Uri.TryCreate(origin, UriKind.Absolute, out _), "Siwe:Origin must be an absolute URL such as https://portal.example.com.")
            .ValidateOnStart();
        builder.Services.AddScoped<WalletConnector>();
        return builder;
    }
}
