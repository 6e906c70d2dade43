using Cortensor.Api.ControlPlane;
using Cortensor.Api.Errors;
using Cortensor.Api.Infrastructure;
using Microsoft.AspNetCore.Http.HttpResults;
using Microsoft.Extensions.Options;
using Nethereum.Util;
using StackExchange.Redis;

namespace Cortensor.Api.Accounts.Siwe;

/// <summary>
/// Sign-In with Ethereum (EIP-4361): a nonce, then a signed message for the same tokens an e-mail sign-in gets;
/// and the signed-in user's linked wallets.
/// </summary>
public static class WalletApi
{
    public static WebApplicationBuilder AddWalletSignIn(this WebApplicationBuilder builder)
    {
        builder.Services.AddOptions<SiweOptions>().BindConfiguration(SiweOptions.Section).ValidateOnStart();
        builder.Services.AddSingleton<IValidateOptions<SiweOptions>, SiweOptionsValidator>();
        builder.Services.AddSingleton<SiweNonces>();
        builder.Services.AddSingleton<SiweVerifier>();
        builder.Services.AddScoped<WalletAccounts>();
        return builder;
    }

    /// <summary>Under /portal/auth.</summary>
    public static RouteGroupBuilder MapWalletSignIn(this RouteGroupBuilder auth)
    {
        auth.MapPost("/siwe/nonce", Nonce).RequireRateLimiting(AuthThrottling.Tokens).ProducesErrors(404, 503)
            .WithSummary("A single-use nonce for a Sign-In with Ethereum (EIP-4361) message, with the chain ids this Portal accepts");
        auth.MapPost("/siwe/verify", Verify).RequireRateLimiting(AuthThrottling.SignIn).ProducesErrors(404, 503)
            .WithSummary("Sign in with a signed EIP-4361 message (EIP-191 personal_sign); the first sign-in of an address creates its account and personal organization");
        return auth;
    }

    /// <summary>Under /portal/me.</summary>
    public static RouteGroupBuilder MapWallets(this RouteGroupBuilder me)
    {
        me.MapGet("/wallets", List).WithSummary("The wallets linked to the signed-in account");
        me.MapPost("/wallets", Link).RequireRateLimiting(AuthThrottling.SignIn).ProducesErrors(404, 409, 503)
            .WithSummary("Link a wallet with a signed EIP-4361 message from it (an address belongs to one account at most)");
        me.MapDelete("/wallets/{address}", Unlink).ProducesErrors(404, 409)
            .WithSummary("Unlink a wallet, unless it is the account's last way to sign in");
        return me;
    }

    public sealed record SignedMessageBody(string? Message, string? Signature);
    public sealed record NonceDto(string Nonce, DateTimeOffset ExpiresAt, long[] ChainIds);
    public sealed record WalletDto(string Address);

    private static async Task<Results<Ok<NonceDto>, ErrorResult>> Nonce(SiweNonces nonces, IOptions<SiweOptions> options, ILogger<SiweNonces> log)
    {
        if (!options.Value.IsEnabled) return SiweErrors.Disabled().ToResult();
        try
        {
            var (nonce, expires) = await nonces.IssueAsync();
            return TypedResults.Ok(new NonceDto(nonce, expires, options.Value.ChainIds));
        }
        catch (Exception ex) when (Outage.IsRedis(ex))
        {
            log.LogWarning(ex, "Redis is unavailable: no wallet sign-in nonce handed out");
            return ApiError.DependencyUnavailable("Sign-in with a wallet").ToResult();
        }
    }

    /// <summary>
    /// Failed signatures count against the client IP and the claimed address, as failed passwords count against
    /// the IP and the e-mail: after too many, that IP waits for that address.
    /// </summary>
    private static async Task<Results<Ok<AuthApi.TokensDto>, ErrorResult>> Verify(SignedMessageBody body, HttpContext http, SiweVerifier verifier,
        IOptions<SiweOptions> options, SignInFailures failures, WalletAccounts wallets, PortalTokens tokens, CancellationToken ct)
    {
        var (wallet, refused) = await CheckSignedAsync(body, http, verifier, options, failures, clearFailures: true);
        if (wallet is null) return refused!.ToResult();
        var user = await wallets.SignInAsync(wallet.Address, ct);
        var issued = await tokens.IssueAsync(user, null, ct);
        return TypedResults.Ok(new AuthApi.TokensDto(issued.AccessToken, issued.RefreshToken, issued.ExpiresIn));
    }

    /// <summary>The checks sign-in and linking share: enabled, well formed, not throttled, and signed by the address it names.</summary>
    private static async Task<(VerifiedWallet? Wallet, ApiError? Refused)> CheckSignedAsync(SignedMessageBody body, HttpContext http,
        SiweVerifier verifier, IOptions<SiweOptions> options, SignInFailures failures, bool clearFailures)
    {
        if (!options.Value.IsEnabled) return (null, SiweErrors.Disabled());
        var message = verifier.Read(body.Message, out var malformed);
        if (message is null) return (null, malformed);
        var throttle = "wallet:" + message.Address;
        if (await failures.WaitAsync(http, throttle) is { } wait) return (null, ApiError.AuthThrottled(wait));
        var (wallet, refused) = await verifier.VerifyAsync(body.Message!, message, body.Signature);
        if (wallet is null)
        {
            if (refused!.Status == 401) await failures.RecordAsync(http, throttle);
            return (null, refused);
        }
        if (clearFailures) await failures.ClearAsync(http, throttle);
        return (wallet, null);
    }

    private static async Task<Ok<WalletDto[]>> List(HttpContext http, WalletAccounts wallets, CancellationToken ct) =>
        TypedResults.Ok((await wallets.ListAsync(http.User.UserId(), ct)).Select(a => new WalletDto(a)).ToArray());

    private static async Task<Results<Ok<WalletDto[]>, ErrorResult>> Link(SignedMessageBody body, HttpContext http, SiweVerifier verifier,
        IOptions<SiweOptions> options, SignInFailures failures, WalletAccounts wallets, CancellationToken ct)
    {
        var (wallet, refused) = await CheckSignedAsync(body, http, verifier, options, failures, clearFailures: false);
        if (wallet is null) return refused!.ToResult();
        if (await wallets.LinkAsync(http.User.UserId(), wallet.Address, ct) is { } error) return error.ToResult();
        return TypedResults.Ok((await wallets.ListAsync(http.User.UserId(), ct)).Select(a => new WalletDto(a)).ToArray());
    }

    private static async Task<Results<NoContent, ErrorResult>> Unlink(string address, HttpContext http, WalletAccounts wallets, CancellationToken ct)
    {
        if (!AddressUtil.Current.IsValidEthereumAddressHexFormat(address)) return ApiError.NotFound("linked wallet").ToResult();
        return await wallets.UnlinkAsync(http.User.UserId(), address, ct) is { } error ? error.ToResult() : TypedResults.NoContent();
    }

    private sealed class SiweOptionsValidator : IValidateOptions<SiweOptions>
    {
        public ValidateOptionsResult Validate(string? name, SiweOptions options) =>
            options.Problem() is { } problem ? ValidateOptionsResult.Fail(problem) : ValidateOptionsResult.Success;
    }
}
