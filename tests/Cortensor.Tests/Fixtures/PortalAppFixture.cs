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
    private readonly string _dataDirectory = Path.Combine(Path.GetTempPath(), "cortensor-tests", "apphost-" + Guid.NewGuid().ToString("N"));

    public DistributedApplication App { get; private set; } = null!;

    public async Task InitializeAsync()
    {
        var builder = await DistributedApplicationTestingBuilder.CreateAsync<Projects.Cortensor_AppHost>(
        [
            "--Infrastructure:Mode=local",
            $"--Infrastructure:DataDirectory={_dataDirectory}",
        ]);
        builder.Services.AddLogging(logging => logging.SetMinimumLevel(LogLevel.Warning));

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
