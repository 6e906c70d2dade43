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
    public const string AdminToken = "cortensor-dev-admin-token";
    /// <summary>The Api runs as two replicas, as in production, so every e2e test crosses replicas.</summary>
    public const int ApiReplicas = 2;
    private readonly string _dataDirectory = Path.Combine(Path.GetTempPath(), "cortensor-tests", "apphost-" + Guid.NewGuid().ToString("N"));

    public DistributedApplication App { get; private set; } = null!;

    public async Task InitializeAsync()
    {
        var builder = await DistributedApplicationTestingBuilder.CreateAsync<Projects.Cortensor_AppHost>(
        [
            "--Infrastructure:Mode=local",
            $"--Infrastructure:DataDirectory={_dataDirectory}",
            $"--Api:Replicas={ApiReplicas}",
            "--Routing:UpstreamTimeoutMs=4000",
            "--Routing:ProbeIntervalMs=500",
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

    public HttpClient CreateAdminClient()
    {
        var client = App.CreateHttpClient(LaunchTopology.Api);
        client.DefaultRequestHeaders.Authorization = new("Bearer", AdminToken);
        return client;
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
