using Cortensor.Api.Infrastructure;
using System.Net;
using IPNetwork = System.Net.IPNetwork;
using System.Security.Cryptography;
using System.Text;
using System.Threading.RateLimiting;
using Cortensor.Api.Errors;
using Microsoft.AspNetCore.HttpOverrides;
using Microsoft.AspNetCore.RateLimiting;
using Microsoft.Extensions.Options;
using StackExchange.Redis;

namespace Cortensor.Api.Accounts;

/// <summary>
/// The "AuthThrottling" section: how hard /portal/auth can be hit. Per-IP limits use ASP.NET Core's rate
/// limiter and hold per Api replica (N replicas let N times the limit through: still a small, fixed bound);
/// failed sign-ins are counted in Redis per client IP and account, so they hold across replicas.
/// </summary>
public sealed class AuthThrottlingOptions
{
    public const string Section = "AuthThrottling";

    public int SignUpsPerIpPerMinute { get; set; } = 10;
    public int SignInsPerIpPerMinute { get; set; } = 30;
    /// <summary>Reset requests and verification resends per client IP.</summary>
    public int MailRequestsPerIpPerMinute { get; set; } = 10;
    /// <summary>Link redemptions, refreshes and sign-outs per client IP.</summary>
    public int TokenRequestsPerIpPerMinute { get; set; } = 120;
    /// <summary>Mails one address receives from sign-up, resend and reset requests per 15 minutes (beyond: answered the same, not sent).</summary>
    public int MailsPerAddressPer15Minutes { get; set; } = 3;
    /// <summary>Failed sign-ins for one account from one IP before that IP must wait (the owner elsewhere is not affected).</summary>
    public int FailedSignInsPerIpAndAccount { get; set; } = 5;
    public int FailedSignInWindowMinutes { get; set; } = 15;
    /// <summary>The older name of <see cref="ClientAddressOptions.TrustedProxies"/>: both are honoured.</summary>
    public string[] TrustedProxies { get; set; } = [];
}

public static class AuthThrottling
{
    public const string SignUp = "auth-signup";
    public const string SignIn = "auth-signin";
    public const string MailRequest = "auth-mail";
    public const string Tokens = "auth-tokens";

    public static WebApplicationBuilder AddAuthThrottling(this WebApplicationBuilder builder)
    {
        builder.Services.AddOptions<AuthThrottlingOptions>().BindConfiguration(AuthThrottlingOptions.Section)
            .Validate(o => o.SignUpsPerIpPerMinute > 0 && o.SignInsPerIpPerMinute > 0 && o.MailRequestsPerIpPerMinute > 0
                && o.TokenRequestsPerIpPerMinute > 0 && o.MailsPerAddressPer15Minutes > 0 && o.FailedSignInsPerIpAndAccount > 0
                && o.FailedSignInWindowMinutes > 0, "AuthThrottling limits must be positive.")
            .Validate(o => o.TrustedProxies.All(p => IPNetwork.TryParse(p, out _)), "AuthThrottling:TrustedProxies must be CIDR networks (e.g. 10.0.0.0/16).")
            .ValidateOnStart();
        var limits = builder.Configuration.GetSection(AuthThrottlingOptions.Section).Get<AuthThrottlingOptions>() ?? new AuthThrottlingOptions();

        // Per-IP limits need the client's address, not the ingress's (AuthThrottling:TrustedProxies is the older name of
        // ClientAddress:TrustedProxies, still honoured).
        builder.AddClientAddresses($"{AuthThrottlingOptions.Section}:{nameof(AuthThrottlingOptions.TrustedProxies)}");

        builder.Services.AddRateLimiter(o =>
        {
            o.AddPolicy(SignUp, http => PerIp(http, limits.SignUpsPerIpPerMinute));
            o.AddPolicy(SignIn, http => PerIp(http, limits.SignInsPerIpPerMinute));
            o.AddPolicy(MailRequest, http => PerIp(http, limits.MailRequestsPerIpPerMinute));
            o.AddPolicy(Tokens, http => PerIp(http, limits.TokenRequestsPerIpPerMinute));
            o.OnRejected = (context, ct) =>
            {
                var retry = context.Lease.TryGetMetadata(MetadataName.RetryAfter, out var after) ? (int)Math.Ceiling(after.TotalSeconds) : 60;
                return new ValueTask(ApiError.AuthThrottled(Math.Max(retry, 1)).ToResult().ExecuteAsync(context.HttpContext));
            };
        });
        builder.Services.AddSingleton<AddressMailLimiter>();
        builder.Services.AddSingleton<SignInFailures>();
        return builder;
    }

    public static WebApplication UseAuthThrottling(this WebApplication app)
    {
        app.UseRateLimiter();
        return app;
    }

    /// <summary>The client as limits count it: an IPv6 client by its /64, as the key throttle does.</summary>
    public static string ClientIp(this HttpContext http) => Keys.FailedKeyThrottle.ClientOf(http);

    private static RateLimitPartition<string> PerIp(HttpContext http, int perMinute) =>
        RateLimitPartition.GetFixedWindowLimiter(http.ClientIp(), _ => new FixedWindowRateLimiterOptions
        {
            PermitLimit = perMinute, Window = TimeSpan.FromMinutes(1), QueueLimit = 0, AutoReplenishment = true,
        });
}

/// <summary>
/// Caps the mails one address receives, so nobody can use sign-up or reset to flood someone's inbox. The caller
/// gets the same answer either way (the cap must not reveal anything either); the mail is just not sent.
/// Each kind of mail is counted apart (<c>purpose</c>: reset, verification, already-registered, invitation): anyone may
/// sign up with, or invite, an address, and that must not use up the mails its owner needs to reset a password (a reset
/// asked by someone else sends the owner a working link, so it blocks nothing).
/// </summary>
public sealed class AddressMailLimiter(IOptions<AuthThrottlingOptions> options) : IDisposable
{
    private readonly PartitionedRateLimiter<string> _limiter = PartitionedRateLimiter.Create<string, string>(address =>
        RateLimitPartition.GetFixedWindowLimiter(address, _ => new FixedWindowRateLimiterOptions
        {
            PermitLimit = options.Value.MailsPerAddressPer15Minutes, Window = TimeSpan.FromMinutes(15), QueueLimit = 0,
        }), StringComparer.OrdinalIgnoreCase);

    public bool TryAcquire(string address, string purpose)
    {
        using var lease = _limiter.AttemptAcquire(purpose + "|" + AccountEmail.Normalize(address));
        return lease.IsAcquired;
    }

    public void Dispose() => _limiter.Dispose();
}

/// <summary>
/// Failed sign-ins counted per (client IP, e-mail) in Redis, whether or not the account exists: after too many,
/// that IP waits for that address, while the owner signing in from elsewhere is never locked out. Replaces
/// Identity's per-account lockout, which anyone who knows the address could trigger.
/// </summary>
public sealed partial class SignInFailures(IConnectionMultiplexer redis, IOptions<AuthThrottlingOptions> options, ILogger<SignInFailures> log)
{
    private AuthThrottlingOptions Options => options.Value;

    /// <summary>Seconds this IP must wait before trying this address again, or null.</summary>
    public Task<int?> WaitAsync(HttpContext http, string email) => WaitAsync(Key(http, email));

    public Task RecordAsync(HttpContext http, string email) => RecordAsync(Key(http, email));

    public Task ClearAsync(HttpContext http, string email) => ClearAsync(Key(http, email));

    /// <summary>
    /// The same count for a password typed by someone already signed in (changing it, turning two-factor off, new recovery
    /// codes, deleting the account), per account whatever the IP: an access token alone must not buy unlimited guesses
    /// at the password it would take to lock the owner out. Only the token's holder can spend these attempts.
    /// </summary>
    public Task<int?> WaitAsync(Guid userId) => WaitAsync(AccountKey(userId));

    public Task RecordAsync(Guid userId) => RecordAsync(AccountKey(userId));

    public Task ClearAsync(Guid userId) => ClearAsync(AccountKey(userId));

    private async Task<int?> WaitAsync(RedisKey key)
    {
        try
        {
            var count = await redis.GetDatabase().StringGetAsync(key);
            if (!count.HasValue || (long)count < Options.FailedSignInsPerIpAndAccount) return null;
            var ttl = await redis.GetDatabase().KeyTimeToLiveAsync(key);
            return Math.Max(1, (int)Math.Ceiling((ttl ?? TimeSpan.FromMinutes(Options.FailedSignInWindowMinutes)).TotalSeconds));
        }
        catch (Exception ex) when (Outage.IsRedis(ex))
        {
            // Without Redis the per-IP limiter still bounds guessing; refusing every sign-in would be worse.
            Log.Unavailable(log, ex);
            return null;
        }
    }

    private async Task RecordAsync(RedisKey key)
    {
        try
        {
            var db = redis.GetDatabase();
            if (await db.StringIncrementAsync(key) == 1)
                await db.KeyExpireAsync(key, TimeSpan.FromMinutes(Options.FailedSignInWindowMinutes));
        }
        catch (Exception ex) when (Outage.IsRedis(ex)) { Log.Unavailable(log, ex); }
    }

    private async Task ClearAsync(RedisKey key)
    {
        try { await redis.GetDatabase().KeyDeleteAsync(key); }
        catch (Exception ex) when (Outage.IsRedis(ex)) { Log.Unavailable(log, ex); }
    }

    private static RedisKey AccountKey(Guid userId) => "cortensor:password-failures:" + userId.ToString("N");

    private static RedisKey Key(HttpContext http, string email) =>
        "cortensor:signin-failures:" + Convert.ToHexStringLower(SHA256.HashData(Encoding.UTF8.GetBytes(
            http.ClientIp() + "|" + AccountEmail.Normalize(email))));

    private static partial class Log
    {
        [LoggerMessage(1, LogLevel.Warning, "Redis is unavailable: failed sign-ins are not counted")]
        public static partial void Unavailable(ILogger logger, Exception exception);
    }
}
