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

    /// <summary>The local mail catcher's inbox (maildev): every mail the Api sent.</summary>
    public MailInbox Mail => new(() => App.CreateHttpClient(MailResource, "http"));
    public const string MailResource = "mail";

    /// <summary>
    /// An anonymous Api client that looks like a customer at <paramref name="clientIp"/>: the Api trusts
    /// X-Forwarded-For from loopback proxies, as it trusts the ingress in production.
    /// </summary>
    public HttpClient CreateClientFrom(string clientIp)
    {
        var client = App.CreateHttpClient(LaunchTopology.Api);
        client.DefaultRequestHeaders.Add("X-Forwarded-For", clientIp);
        return client;
    }

    /// <summary>A made-up public address, so the suite's many sign-ups are many customers, not one throttled one.</summary>
    public static string RandomClientIp() => $"198.18.{Random.Shared.Next(0, 256)}.{Random.Shared.Next(1, 255)}";

    /// <summary>
    /// A new account through the public sign-up, as a customer would make it: sign up, follow the verification
    /// link from the mail the Api sent (read from the mail catcher), sign in.
    /// </summary>
    public async Task<TestUser> SignUpAsync(string? organization = null, bool verified = true)
    {
        var email = $"user-{Guid.NewGuid():N}@example.com";
        using var client = CreateClientFrom(RandomClientIp());
        var response = await client.PostAsJsonAsync("/portal/auth/signup", new { email, password = TestUser.Password, organization });
        response.EnsureSuccessStatusCode();
        var login = await client.PostAsJsonAsync("/portal/auth/login", new { email, password = TestUser.Password });
        login.EnsureSuccessStatusCode();
        var tokens = await login.Content.ReadFromJsonAsync<JsonElement>();
        var access = tokens.GetProperty("access_token").GetString()!;
        using var me = CreateClientWithToken(access);
        if (verified) await VerifyAsync(me, email);
        var profile = await me.GetFromJsonAsync<JsonElement>("/portal/me");
        return new TestUser(profile.GetProperty("id").GetGuid(), email, access, tokens.GetProperty("refresh_token").GetString()!,
            profile.GetProperty("organizations")[0].GetProperty("id").GetGuid(), this);
    }

    /// <summary>Follows the verification link of the first verification mail to <paramref name="email"/>, signed in as its account.</summary>
    public async Task VerifyAsync(HttpClient signedIn, string email)
    {
        var mail = await Mail.WaitForAsync(email, "Verify your e-mail");
        var verified = await signedIn.PostAsJsonAsync("/portal/auth/verify-email",
            new { user_id = mail.Query("/verify-email", "user"), token = mail.Query("/verify-email", "token") });
        if (!verified.IsSuccessStatusCode) throw new InvalidOperationException("Verification failed: " + await verified.Content.ReadAsStringAsync());
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
