using System.Net.Http.Json;
using System.Text.Json;
using Aspire.Hosting;
using Aspire.Hosting.ApplicationModel;
using Aspire.Hosting.Testing;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;

namespace Cortensor.Tests.Fixtures;

/// <summary>
/// The whole AppHost graph (Postgres, Redis, router pools, migrations, Api, Web) booted once for
/// a test collection, as `./run.sh` would boot it, with its own data directory.
/// </summary>
public sealed class PortalAppFixture : IAsyncLifetime
{
    public const string RouterToken = "cortensor-dev-router-token";
    /// <summary>The initial operator account: the AppHost's documented dev defaults.</summary>
    public const string AdminEmail = "admin@cortensor.local";
    public const string AdminPassword = "Cortensor-dev-admin-1";
    /// <summary>The Api runs as two replicas, as in production, so every e2e test crosses replicas.</summary>
    public const int ApiReplicas = 2;
    /// <summary>The Web runs as two replicas too: a browser session must survive moving between them.</summary>
    public const int WebReplicas = 2;
    private readonly string _dataDirectory = Path.Combine(Path.GetTempPath(), "cortensor-tests", "apphost-" + Guid.NewGuid().ToString("N"));

    public DistributedApplication App { get; private set; } = null!;
    /// <summary>An external identity provider (Supabase-like) the Api is configured to trust.</summary>
    public TestIdentityProvider IdentityProvider { get; private set; } = null!;
    private string? _adminToken;

    public async Task InitializeAsync()
    {
        IdentityProvider = await TestIdentityProvider.StartAsync();
        var builder = await DistributedApplicationTestingBuilder.CreateAsync<Projects.Cortensor_AppHost>(
        [
            "--Infrastructure:Mode=local",
            $"--Infrastructure:DataDirectory={_dataDirectory}",
            $"--Api:Replicas={ApiReplicas}",
            $"--Web:Replicas={WebReplicas}",
            "--Routing:UpstreamTimeoutMs=4000",
            "--Routing:ProbeIntervalMs=500",
            "--Auth:External:Provider=supabase",
            $"--Auth:External:Issuer={TestIdentityProvider.Issuer}",
            $"--Auth:External:Audience={TestIdentityProvider.Audience}",
            $"--Auth:External:JwksUrl={IdentityProvider.JwksUrl}",
            "--Auth:External:RequireHttps=false",
        ]);
        builder.Services.AddLogging(logging => logging
            .SetMinimumLevel(LogLevel.Warning)
            .AddFilter("Cortensor.AppHost.Resources", LogLevel.Error)
            .AddFilter("Aspire.Hosting", LogLevel.Error));

        App = await builder.BuildAsync();
        using var timeout = new CancellationTokenSource(TimeSpan.FromMinutes(4));
        await App.StartAsync(timeout.Token);
        await App.ResourceNotifications.WaitForResourceHealthyAsync(LaunchTopology.Api, timeout.Token);
        await App.ResourceNotifications.WaitForResourceHealthyAsync(LaunchTopology.Web, timeout.Token);
    }

    public HttpClient CreateClient(string resource) => App.CreateHttpClient(resource);

    /// <summary>
    /// Each replica's own address (the port it listens on behind the AppHost's proxy), so a test can
    /// choose which replica a browser talks to, as a load balancer with sticky sessions would.
    /// </summary>
    public async Task<IReadOnlyList<Uri>> ReplicaUrlsAsync(string resource, int count)
    {
        var found = new Dictionary<string, Uri>();
        var seen = new List<string>();
        using var deadline = new CancellationTokenSource(TimeSpan.FromMinutes(1));
        try
        {
            await foreach (var e in App.ResourceNotifications.WatchAsync(deadline.Token))
            {
                if (e.Resource.Name != resource || e.Snapshot.State?.Text != KnownResourceStates.Running) continue;
                var env = e.Snapshot.EnvironmentVariables.ToDictionary(v => v.Name, v => v.Value);
                seen.Add($"{e.ResourceId}: {string.Join(", ", env.Where(v => v.Key.Contains("PORT") || v.Key.Contains("URLS")).Select(v => $"{v.Key}={v.Value}"))}");
                var port = env.GetValueOrDefault("HTTP_PORTS") ?? env.GetValueOrDefault("ASPNETCORE_HTTP_PORTS");
                var urls = env.GetValueOrDefault("ASPNETCORE_URLS");
                Uri? url = port is { Length: > 0 } ? new Uri($"http://localhost:{port.Split(';')[0]}")
                    : urls is { Length: > 0 } ? new Uri(urls.Split(';')[0].Replace("+", "localhost").Replace("*", "localhost")) : null;
                if (url is not null) found[e.ResourceId] = url;
                if (found.Count == count) return [.. found.Values.OrderBy(u => u.Port)];
            }
        }
        catch (OperationCanceledException) { }
        throw new InvalidOperationException($"{resource}: found {found.Count} of {count} replica addresses; saw {string.Join(" | ", seen)}");
    }

    public HttpClient CreateRouterClient(string router)
    {
        var client = App.CreateHttpClient(router);
        client.DefaultRequestHeaders.Authorization = new("Bearer", RouterToken);
        return client;
    }

    /// <summary>A client signed in as the initial administrator (one sign-in per test run; tokens last 15 minutes).</summary>
    public HttpClient CreateAdminClient()
    {
        _adminToken ??= SignInAsync(AdminEmail, AdminPassword).GetAwaiter().GetResult();
        return CreateClientWithToken(_adminToken);
    }

    public HttpClient CreateClientWithToken(string accessToken)
    {
        var client = App.CreateHttpClient(LaunchTopology.Api);
        client.DefaultRequestHeaders.Authorization = new("Bearer", accessToken);
        return client;
    }

    public async Task<string> SignInAsync(string email, string password)
    {
        using var client = App.CreateHttpClient(LaunchTopology.Api);
        var response = await client.PostAsJsonAsync("/portal/auth/login", new { email, password });
        response.EnsureSuccessStatusCode();
        return (await response.Content.ReadFromJsonAsync<JsonElement>()).GetProperty("access_token").GetString()!;
    }

    /// <summary>A new account through the public sign-up, as a customer would make it.</summary>
    public async Task<TestUser> SignUpAsync(string? organization = null)
    {
        var email = $"user-{Guid.NewGuid():N}@example.com";
        using var client = App.CreateHttpClient(LaunchTopology.Api);
        var response = await client.PostAsJsonAsync("/portal/auth/signup", new { email, password = TestUser.Password, organization });
        response.EnsureSuccessStatusCode();
        var tokens = await response.Content.ReadFromJsonAsync<JsonElement>();
        var access = tokens.GetProperty("access_token").GetString()!;
        using var me = CreateClientWithToken(access);
        var profile = await me.GetFromJsonAsync<JsonElement>("/portal/me");
        return new TestUser(profile.GetProperty("id").GetGuid(), email, access, tokens.GetProperty("refresh_token").GetString()!,
            profile.GetProperty("organizations")[0].GetProperty("id").GetGuid(), this);
    }

    /// <summary>A new organisation on <paramref name="plan"/> with one key, made through the admin API.</summary>
    public async Task<TestCustomer> CreateCustomerAsync(string plan = "pro", decimal credits = 10m, object? keyOptions = null)
    {
        using var admin = CreateAdminClient();
        var org = await admin.PostAsJsonAsync("/admin/organizations", new { name = "Test org " + Guid.NewGuid().ToString("N")[..6], plan });
        org.EnsureSuccessStatusCode();
        var orgId = (await org.Content.ReadFromJsonAsync<JsonElement>()).GetProperty("id").GetGuid();
        if (credits > 0)
            (await admin.PostAsJsonAsync($"/admin/organizations/{orgId}/credits", new { amount = credits, reason = "test" })).EnsureSuccessStatusCode();
        var key = await admin.PostAsJsonAsync($"/admin/organizations/{orgId}/api-keys", keyOptions ?? new { name = "test key" });
        key.EnsureSuccessStatusCode();
        var body = await key.Content.ReadFromJsonAsync<JsonElement>();
        return new TestCustomer(orgId, body.GetProperty("id").GetGuid(), body.GetProperty("key").GetString()!, App.GetEndpoint(LaunchTopology.Api, "http"));
    }

    /// <summary>Sets a router's behaviour through its control endpoint (fault injection).</summary>
    public async Task SetRouterBehaviourAsync(string router, object behaviour)
    {
        using var client = CreateRouterClient(router);
        (await client.PutAsJsonAsync("/control/behaviour", behaviour)).EnsureSuccessStatusCode();
    }

    public async Task DisposeAsync()
    {
        if (App is not null)
        {
            await App.StopAsync();
            await App.DisposeAsync();
        }
        if (IdentityProvider is not null) await IdentityProvider.DisposeAsync();
        try { Directory.Delete(_dataDirectory, recursive: true); } catch (IOException) { } catch (UnauthorizedAccessException) { }
    }
}

[CollectionDefinition(Name)]
public sealed class PortalAppCollection : ICollectionFixture<PortalAppFixture>
{
    public const string Name = "Portal AppHost";
}

public sealed record TestCustomer(Guid OrganizationId, Guid KeyId, string Key, Uri ApiBase)
{
    public HttpClient CreateClient()
    {
        var client = new HttpClient { BaseAddress = ApiBase };
        client.DefaultRequestHeaders.Authorization = new("Bearer", Key);
        return client;
    }
}

public sealed record TestUser(Guid Id, string Email, string AccessToken, string RefreshToken, Guid OrganizationId, PortalAppFixture App)
{
    public const string Password = "Correct-horse-42";

    /// <summary>A client acting as this user, optionally in another organisation (X-Organization-Id).</summary>
    public HttpClient CreateClient(Guid? organization = null)
    {
        var client = App.CreateClientWithToken(AccessToken);
        if (organization is { } org) client.DefaultRequestHeaders.Add("X-Organization-Id", org.ToString());
        return client;
    }
}
