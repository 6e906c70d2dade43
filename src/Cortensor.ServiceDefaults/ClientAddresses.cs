using System.Net;
using System.Security.Cryptography;
using System.Text;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Http;
using Microsoft.AspNetCore.HttpOverrides;
using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Options;

namespace Microsoft.Extensions.Hosting;

/// <summary>
/// Who is the client: the address per-IP limits, throttles and logs go by. It is the peer's address unless proxies this
/// service trusts put the client's in X-Forwarded-For. Section <c>ClientAddress</c>.
/// </summary>
public sealed class ClientAddressOptions
{
    public const string Section = "ClientAddress";

    /// <summary>
    /// How many proxies stand in front of every request that reaches this service, each appending the address it was
    /// called from to X-Forwarded-For: 1 behind the Container Apps ingress. The client is then that many entries from the
    /// right, whoever the peer is, and what a client wrote in the header itself is never read. 0: no such proxy.
    /// </summary>
    public int ProxyHops { get; set; }

    /// <summary>
    /// Networks (CIDR) of further proxies whose X-Forwarded-For is believed, besides loopback. Not used with
    /// <see cref="ProxyHops"/>: there every proxy in front is counted instead (Front Door before the ingress: 2).
    /// </summary>
    public string[] TrustedProxies { get; set; } = [];

    /// <summary>
    /// The secret the Web and the Api share: a call from the Web carrying it names, in X-Forwarded-For, the browser it
    /// acts for. The Web's own address is not known in advance (it calls the Api through the public ingress), so it is
    /// believed by what it presents rather than by where it comes from. At least 32 characters; unset: no relay.
    /// </summary>
    public string? RelayKey { get; set; }
}

public static class ClientAddresses
{
    /// <summary>The header the Web's calls to the Api carry the relay key in.</summary>
    public const string RelayHeader = "X-Portal-Relay";
    private const string ForwardedFor = "X-Forwarded-For";
    private const int MaxProxyHops = 8;

    public static TBuilder AddClientAddresses<TBuilder>(this TBuilder builder, params string[] moreTrustedProxiesKeys) where TBuilder : IHostApplicationBuilder
    {
        builder.Services.AddOptions<ClientAddressOptions>().BindConfiguration(ClientAddressOptions.Section)
            .Configure<IConfiguration>((o, configuration) => o.TrustedProxies =
                [.. o.TrustedProxies, .. moreTrustedProxiesKeys.SelectMany(key => configuration.GetSection(key).Get<string[]>() ?? [])])
            .Validate(o => o.ProxyHops is >= 0 and <= MaxProxyHops, $"ClientAddress:ProxyHops must be 0-{MaxProxyHops}.")
            .Validate(o => o.TrustedProxies.All(p => System.Net.IPNetwork.TryParse(p, out _)), "ClientAddress:TrustedProxies must be CIDR networks (e.g. 10.0.0.0/16).")
            .Validate(o => o.RelayKey is null || o.RelayKey.Length >= 32, "ClientAddress:RelayKey must be at least 32 characters.")
            .ValidateOnStart();
        // PostConfigure: it must have the last word over ASPNETCORE_FORWARDEDHEADERS_ENABLED (which Aspire's manifest sets),
        // whose setup empties both trust lists, and empty lists make the middleware believe whoever calls.
        builder.Services.AddOptions<ForwardedHeadersOptions>().PostConfigure<IOptions<ClientAddressOptions>>((o, client) =>
        {
            var settings = client.Value;
            // The scheme too: behind a TLS ingress the Web's cookies are Secure and its links https only when it is believed.
            o.ForwardedHeaders = ForwardedHeaders.XForwardedFor | ForwardedHeaders.XForwardedProto;
            o.KnownProxies.Clear();
            o.KnownIPNetworks.Clear();
            if (settings.ProxyHops > 0)
            {
                // Every request came through the ingress (and any proxy before it, each counted), which appended its caller:
                // take exactly that many entries from the right, and nothing a client put before them.
                o.ForwardLimit = settings.ProxyHops;
                return;
            }
            // Through trusted proxies as far back as they go: the first address no trusted proxy vouches for is the client.
            o.ForwardLimit = null;
            o.KnownIPNetworks.Add(System.Net.IPNetwork.Parse("127.0.0.0/8"));
            o.KnownProxies.Add(IPAddress.IPv6Loopback);
            foreach (var network in settings.TrustedProxies) o.KnownIPNetworks.Add(System.Net.IPNetwork.Parse(network));
        });
        return builder;
    }

    /// <summary>
    /// First in the pipeline: the client's address for everything after. Once only: with ASPNETCORE_FORWARDEDHEADERS_ENABLED
    /// the host already runs the middleware first (with the options above), and a second run would read, as the client,
    /// the next entry, which the client wrote itself.
    /// </summary>
    public static IApplicationBuilder UseClientAddresses(this IApplicationBuilder app)
    {
        var configuration = app.ApplicationServices.GetRequiredService<IConfiguration>();
        if (!string.Equals(configuration["ForwardedHeaders_Enabled"], "true", StringComparison.OrdinalIgnoreCase))
            app.UseForwardedHeaders();
        var options = app.ApplicationServices.GetRequiredService<IOptions<ClientAddressOptions>>().Value;
        if (options.RelayKey is not { Length: > 0 } relayKey) return app;
        var key = Encoding.UTF8.GetBytes(relayKey);
        return app.Use((http, next) =>
        {
            var headers = http.Request.Headers;
            if (headers.TryGetValue(RelayHeader, out var presented))
            {
                // Not passed on to anything that might log or forward it.
                headers.Remove(RelayHeader);
                if (CryptographicOperations.FixedTimeEquals(Encoding.UTF8.GetBytes(presented.ToString()), key)
                    && LastEntry(headers[ForwardedFor]) is { } browser)
                    http.Connection.RemoteIpAddress = browser;
            }
            return next(http);
        });
    }

    /// <summary>The rightmost address the forwarded-headers middleware left in X-Forwarded-For: what the relay wrote.</summary>
    private static IPAddress? LastEntry(Microsoft.Extensions.Primitives.StringValues header)
    {
        var value = header.ToString();
        var comma = value.LastIndexOf(',');
        var last = (comma < 0 ? value : value[(comma + 1)..]).Trim();
        return IPEndPoint.TryParse(last, out var endpoint) ? endpoint.Address : null;
    }
}

/// <summary>
/// The Web's side of the relay: its sign-in calls name the browser they act for in X-Forwarded-For, so the Api's per-IP
/// limits count browsers, not the Web; with the relay key the Api believes that entry. Only those calls carry it.
/// </summary>
public sealed class BrowserRelay(IOptions<ClientAddressOptions> options) : DelegatingHandler
{
    protected override Task<HttpResponseMessage> SendAsync(HttpRequestMessage request, CancellationToken cancellationToken)
    {
        if (options.Value.RelayKey is { Length: > 0 } key && request.Headers.Contains("X-Forwarded-For"))
            request.Headers.TryAddWithoutValidation(ClientAddresses.RelayHeader, key);
        return base.SendAsync(request, cancellationToken);
    }
}
