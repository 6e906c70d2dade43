using Cortensor.Api.Keys.Unkey;
using Cortensor.UnkeySim;
using Microsoft.AspNetCore.Builder;
using Microsoft.Extensions.DependencyInjection;
using Refit;

namespace Cortensor.Tests.Fixtures;

/// <summary>The Unkey stand-in served over real HTTP on a free local port, and the Api's Refit client pointed at it.</summary>
public sealed class UnkeyStandIn : IAsyncLifetime
{
    public const string RootKey = "unit-tests-unkey-root-key-0123456789";
    public const string ApiId = "api_unit_tests";
    private WebApplication _app = null!;
    public Uri BaseAddress { get; private set; } = null!;

    public async Task InitializeAsync()
    {
        _app = UnkeySimApp.Create(["--urls=http://127.0.0.1:0", $"--UnkeySim:RootKey={RootKey}", $"--UnkeySim:ApiId={ApiId}"]);
        await _app.StartAsync();
        BaseAddress = new Uri(_app.Urls.First());
    }

    /// <summary>How many calls of each kind the stand-in has answered.</summary>
    public TrafficStats Traffic => _app.Services.GetRequiredService<Traffic>().Snapshot();

    /// <summary>The client the Api uses, with the serializer settings the Api gives it.</summary>
    public IUnkeyApi CreateClient(string? rootKey = RootKey, Uri? baseAddress = null)
    {
        var http = new HttpClient { BaseAddress = baseAddress ?? BaseAddress };
        if (rootKey is not null) http.DefaultRequestHeaders.Authorization = new("Bearer", rootKey);
        return RestService.For<IUnkeyApi>(http, new RefitSettings { ContentSerializer = new SystemTextJsonContentSerializer(UnkeyJson.Options) });
    }

    public async Task DisposeAsync()
    {
        if (_app is null) return;
        await _app.StopAsync();
        await _app.DisposeAsync();
    }
}
