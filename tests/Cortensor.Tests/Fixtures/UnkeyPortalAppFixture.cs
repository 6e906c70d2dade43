using System.Net.Http.Json;
using Aspire.Hosting.Testing;

namespace Cortensor.Tests.Fixtures;

/// <summary>
/// The same graph with Unkey as the key provider (<c>--Keys:Provider=unkey</c>): the AppHost adds the Unkey stand-in and
/// the Api issues, verifies, pauses and revokes keys through it. Booted once for its own collection.
/// </summary>
public sealed class UnkeyPortalAppFixture : PortalAppFixture
{
    /// <summary>The AppHost's development root key (appsettings.Development.json, parameter unkey-root-key).</summary>
    public const string RootKey = "cortensor-dev-unkey-root-key";
    public const string UnkeyResource = "unkey";

    protected override IEnumerable<string> AppHostArguments => ["--Keys:Provider=unkey"];

    /// <summary>A client of the Unkey stand-in, authenticated with the root key, as the Api calls it.</summary>
    public HttpClient CreateUnkeyClient()
    {
        var client = App.CreateHttpClient(UnkeyResource, "http");
        client.DefaultRequestHeaders.Authorization = new("Bearer", RootKey);
        return client;
    }

    /// <summary>How many calls of each kind the stand-in has answered.</summary>
    public async Task<UnkeyTraffic> UnkeyTrafficAsync()
    {
        using var client = CreateUnkeyClient();
        return (await client.GetFromJsonAsync<UnkeyTraffic>("/control/stats"))!;
    }
}

public sealed record UnkeyTraffic(long Creations, long Verifications, long Updates, long Deletions, long Limits);

/// <summary>
/// Runs after every other collection has finished (xUnit runs collections that disable parallelisation last, on their
/// own): two whole graphs booting and serving side by side on two cores pushed the load average past 40 and made
/// waits in both run out.
/// </summary>
[CollectionDefinition(Name, DisableParallelization = true)]
public sealed class UnkeyPortalAppCollection : ICollectionFixture<UnkeyPortalAppFixture>
{
    public const string Name = "Portal AppHost with Unkey";
}
