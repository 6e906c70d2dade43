using System.Net;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Hosting;
using Microsoft.AspNetCore.Http;
using Microsoft.AspNetCore.TestHost;
using Microsoft.Extensions.Hosting;

namespace Cortensor.Tests.Unit;

/// <summary>
/// Per-IP limits are only as good as the address they count: what a client writes in X-Forwarded-For must never become
/// its address, however the service is deployed; what the ingress and the Web vouch for must.
/// </summary>
public sealed class ClientAddressTests
{
    private const string RelayKey = "relay-key-of-this-test-0123456789abcdef";
    private static readonly IPAddress Ingress = IPAddress.Parse("100.100.0.7");

    [Fact]
    public async Task AClientCannotNameItselfWhenNoProxyIsTrusted()
    {
        await using var app = await HostAsync();
        Assert.Equal("203.0.113.9", await ClientAsync(app, IPAddress.Parse("203.0.113.9"), "198.51.100.1"));
    }

    [Fact]
    public async Task ALoopbackProxyIsBelievedAsLocalProxiesAndTheTestsAre()
    {
        await using var app = await HostAsync();
        Assert.Equal("198.51.100.1", await ClientAsync(app, IPAddress.Loopback, "198.51.100.1"));
        Assert.Equal("198.51.100.1", await ClientAsync(app, IPAddress.IPv6Loopback, "198.51.100.1"));
    }

    [Fact]
    public async Task TheForwardedHeadersSwitchOfTheManifestDoesNotMakeEveryCallerTrusted()
    {
        // Aspire's manifest sets ASPNETCORE_FORWARDEDHEADERS_ENABLED, whose setup trusts whoever calls.
        await using var app = await HostAsync("--ForwardedHeaders_Enabled=true");
        Assert.Equal("203.0.113.9", await ClientAsync(app, IPAddress.Parse("203.0.113.9"), "198.51.100.1"));
    }

    [Theory]
    [InlineData(false)]
    [InlineData(true)]
    public async Task BehindTheIngressTheClientIsWhatTheIngressAppendedNotWhatItWrote(bool forwardedHeadersSwitch)
    {
        string[] args = forwardedHeadersSwitch ? ["--ClientAddress:ProxyHops=1", "--ForwardedHeaders_Enabled=true"] : ["--ClientAddress:ProxyHops=1"];
        await using var app = await HostAsync(args);
        // The client wrote two addresses itself; the ingress appended the one it was called from.
        Assert.Equal("203.0.113.9", await ClientAsync(app, Ingress, "198.51.100.1, 198.51.100.2, 203.0.113.9"));
        Assert.Equal("203.0.113.9", await ClientAsync(app, Ingress, "203.0.113.9"));
        Assert.Equal("2001:db8::5", await ClientAsync(app, Ingress, "2001:db8::5"));
    }

    [Fact]
    public async Task TheWebWithTheRelayKeyNamesTheBrowserItActsFor()
    {
        await using var app = await HostAsync("--ClientAddress:ProxyHops=1", $"--ClientAddress:RelayKey={RelayKey}");
        // The Web wrote the browser's address; the ingress appended the Web's.
        Assert.Equal("198.51.100.77", await ClientAsync(app, Ingress, "198.51.100.77, 10.2.0.15", RelayKey));
    }

    [Fact]
    public async Task AWrongOrMissingRelayKeyLeavesTheAddressTheIngressAppended()
    {
        await using var app = await HostAsync("--ClientAddress:ProxyHops=1", $"--ClientAddress:RelayKey={RelayKey}");
        Assert.Equal("203.0.113.9", await ClientAsync(app, Ingress, "198.51.100.77, 203.0.113.9", RelayKey[..^1] + "x"));
        Assert.Equal("203.0.113.9", await ClientAsync(app, Ingress, "198.51.100.77, 203.0.113.9", ""));
        Assert.Equal("203.0.113.9", await ClientAsync(app, Ingress, "198.51.100.77, 203.0.113.9"));
    }

    [Fact]
    public async Task TheRelayKeyIsNotPassedOnToTheService()
    {
        await using var app = await HostAsync("--ClientAddress:ProxyHops=1", $"--ClientAddress:RelayKey={RelayKey}");
        var context = await app.GetTestServer().SendAsync(c =>
        {
            c.Connection.RemoteIpAddress = Ingress;
            c.Request.Headers["X-Forwarded-For"] = "198.51.100.77, 10.2.0.15";
            c.Request.Headers[ClientAddresses.RelayHeader] = RelayKey;
        });
        Assert.Equal("none", context.Response.Headers["X-Seen-Relay"].ToString());
    }

    [Fact]
    public async Task WithoutAnIngressTheWebIsStillBelievedByItsKeyAndNoOneElseIs()
    {
        await using var app = await HostAsync($"--ClientAddress:RelayKey={RelayKey}");
        Assert.Equal("198.51.100.77", await ClientAsync(app, IPAddress.Parse("10.2.0.15"), "198.51.100.77", RelayKey));
        Assert.Equal("10.2.0.15", await ClientAsync(app, IPAddress.Parse("10.2.0.15"), "198.51.100.77", "not-the-key"));
    }

    [Fact]
    public async Task TheWebPresentsTheRelayKeyOnlyOnCallsThatNameABrowser()
    {
        var seen = new List<string?>();
        using var web = new HttpClient(new BrowserRelay(Microsoft.Extensions.Options.Options.Create(new ClientAddressOptions { RelayKey = RelayKey }))
        {
            InnerHandler = new Answering(request => seen.Add(request.Headers.TryGetValues(ClientAddresses.RelayHeader, out var v) ? string.Join(",", v) : null)),
        });
        using var signIn = new HttpRequestMessage(HttpMethod.Post, "http://api/portal/auth/login");
        signIn.Headers.Add("X-Forwarded-For", "198.51.100.77");
        await web.SendAsync(signIn);
        await web.SendAsync(new HttpRequestMessage(HttpMethod.Get, "http://api/portal/organizations"));
        Assert.Equal([RelayKey, null], seen);
    }

    private sealed class Answering(Action<HttpRequestMessage> seen) : HttpMessageHandler
    {
        protected override Task<HttpResponseMessage> SendAsync(HttpRequestMessage request, CancellationToken cancellationToken)
        {
            seen(request);
            return Task.FromResult(new HttpResponseMessage(HttpStatusCode.OK));
        }
    }

    [Fact]
    public async Task AConfiguredProxyNetworkIsBelievedAndTheOlderSettingNameStillCounts()
    {
        await using var app = await HostAsync("--ClientAddress:TrustedProxies:0=10.1.0.0/16", "--AuthThrottling:TrustedProxies:0=10.9.0.0/16");
        Assert.Equal("198.51.100.1", await ClientAsync(app, IPAddress.Parse("10.1.2.3"), "198.51.100.1"));
        Assert.Equal("198.51.100.1", await ClientAsync(app, IPAddress.Parse("10.9.2.3"), "198.51.100.1"));
        // A chain of trusted proxies is followed back to the first address none of them vouches for.
        Assert.Equal("198.51.100.1", await ClientAsync(app, IPAddress.Parse("10.9.2.3"), "198.51.100.1, 10.1.0.4"));
        Assert.Equal("203.0.113.9", await ClientAsync(app, IPAddress.Parse("203.0.113.9"), "198.51.100.1"));
    }

    [Theory]
    [InlineData("--ClientAddress:ProxyHops=-1")]
    [InlineData("--ClientAddress:ProxyHops=9")]
    [InlineData("--ClientAddress:TrustedProxies:0=not-a-network")]
    [InlineData("--ClientAddress:RelayKey=short")]
    public async Task ABadSettingStopsTheServiceAtStart(string setting)
    {
        await Assert.ThrowsAsync<Microsoft.Extensions.Options.OptionsValidationException>(async () => await (await HostAsync(setting)).DisposeAsync());
    }

    private static async Task<WebApplication> HostAsync(params string[] args)
    {
        var builder = WebApplication.CreateBuilder(args);
        builder.WebHost.UseTestServer();
        builder.AddClientAddresses("AuthThrottling:TrustedProxies");
        var app = builder.Build();
        app.UseClientAddresses();
        app.Run(http =>
        {
            http.Response.Headers["X-Seen-Relay"] = http.Request.Headers.ContainsKey(ClientAddresses.RelayHeader) ? "present" : "none";
            return http.Response.WriteAsync(http.Connection.RemoteIpAddress?.ToString() ?? "");
        });
        await app.StartAsync();
        return app;
    }

    private static async Task<string> ClientAsync(WebApplication app, IPAddress peer, string forwardedFor, string? relayKey = null)
    {
        var context = await app.GetTestServer().SendAsync(c =>
        {
            c.Connection.RemoteIpAddress = peer;
            c.Request.Headers["X-Forwarded-For"] = forwardedFor;
            if (relayKey is not null) c.Request.Headers[ClientAddresses.RelayHeader] = relayKey;
        });
        using var reader = new StreamReader(context.Response.Body);
        return await reader.ReadToEndAsync();
    }
}
