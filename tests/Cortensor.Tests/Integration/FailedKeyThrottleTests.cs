using System.Net;
using Cortensor.Api.Data;
using Cortensor.Api.Keys;
using Cortensor.Tests.Fixtures;
using Microsoft.AspNetCore.Http;
using Microsoft.EntityFrameworkCore;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging.Abstractions;
using Microsoft.Extensions.Options;
using StackExchange.Redis;
using ZiggyCreatures.Caching.Fusion;

namespace Cortensor.Tests.Integration;

/// <summary>Spraying made-up keys from one address: throttled after the limit, and Postgres stops being asked.</summary>
[Collection(InfrastructureCollection.Name)]
public class FailedKeyThrottleTests(InfrastructureFixture infrastructure)
{
    private const int Limit = 5;

    [Fact]
    public async Task AnAddressSprayingUnknownKeysIsThrottledWithoutFurtherPostgresQueriesWhileKnownKeysAndOtherAddressesWork()
    {
        var (filter, cache, services) = await CreateAsync();
        var known = await CreateKeyAsync(services);
        Assert.Null(await filter.AuthenticateAsync(Request("203.0.113.7", known)));

        var codes = new List<string>();
        for (var i = 0; i < 40; i++)
            codes.Add((await filter.AuthenticateAsync(Request("203.0.113.7", ApiKeyFormat.Generate("live"))))!.Code);

        Assert.All(codes.Take(Limit), c => Assert.Equal("invalid_api_key", c));
        Assert.All(codes.Skip(Limit), c => Assert.Equal("too_many_failed_authentications", c));
        // One lookup for the known key, one per unknown key until the throttle, none after.
        Assert.Equal(1 + Limit, cache.DatabaseLookups);

        var throttled = (await filter.AuthenticateAsync(Request("203.0.113.7", "ctr_live_short")))!;
        Assert.Equal(429, throttled.Status);
        Assert.InRange(throttled.RetryAfterSeconds ?? 0, 1, 60);
        // A shared address keeps using keys that are already cached; another address is not affected.
        Assert.Null(await filter.AuthenticateAsync(Request("203.0.113.7", known)));
        Assert.Equal("invalid_api_key", (await filter.AuthenticateAsync(Request("198.51.100.1", ApiKeyFormat.Generate("live"))))!.Code);
    }

    [Fact]
    public async Task AnIpv6ClientIsCountedByItsSlash64()
    {
        var (filter, _, _) = await CreateAsync();
        for (var i = 0; i < Limit; i++)
            await filter.AuthenticateAsync(Request($"2001:db8:1:2::{i + 1:x}", ApiKeyFormat.Generate("live")));
        Assert.Equal("too_many_failed_authentications", (await filter.AuthenticateAsync(Request("2001:db8:1:2::ffff", ApiKeyFormat.Generate("live"))))!.Code);
        Assert.Equal("invalid_api_key", (await filter.AuthenticateAsync(Request("2001:db8:1:3::1", ApiKeyFormat.Generate("live"))))!.Code);
    }

    private static DefaultHttpContext Request(string address, string key)
    {
        var http = new DefaultHttpContext();
        http.Connection.RemoteIpAddress = IPAddress.Parse(address);
        http.Request.Headers.Authorization = "Bearer " + key;
        return http;
    }

    private static async Task<string> CreateKeyAsync(ServiceProvider services)
    {
        var plaintext = ApiKeyFormat.Generate("live");
        using var scope = services.CreateScope();
        var db = scope.ServiceProvider.GetRequiredService<PortalDbContext>();
        var org = new Organization { Name = "throttle", PlanId = "free" };
        db.Organizations.Add(org);
        db.ApiKeys.Add(new ApiKey { OrganizationId = org.Id, Name = "k", Environment = "live", Start = ApiKeyFormat.Start(plaintext), Hash = ApiKeyFormat.Hash(plaintext) });
        await db.SaveChangesAsync();
        return plaintext;
    }

    private async Task<(ApiKeyFilter, EntitlementCache, ServiceProvider)> CreateAsync()
    {
        var connectionString = await infrastructure.CreateDatabaseAsync();
        var services = new ServiceCollection()
            .AddDbContext<PortalDbContext>(o => { o.UseNpgsql(connectionString); PortalDbContext.Configure(o); })
            .BuildServiceProvider();
        var mux = await ConnectionMultiplexer.ConnectAsync(infrastructure.RedisConnectionString);
        var cache = new EntitlementCache(new FusionCache(new FusionCacheOptions()), services.GetRequiredService<IServiceScopeFactory>(), mux, NullLogger<EntitlementCache>.Instance);
        var throttle = new FailedKeyThrottle(Options.Create(new KeyCheckOptions { FailedAuthenticationsPerMinute = Limit }), TimeProvider.System);
        return (new ApiKeyFilter(cache, throttle, TimeProvider.System, Microsoft.Extensions.Logging.Abstractions.NullLogger<ApiKeyFilter>.Instance), cache, services);
    }
}
