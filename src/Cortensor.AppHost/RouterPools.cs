namespace Cortensor.AppHost;

/// <summary>One RouterSim process per router of <see cref="LaunchTopology"/>, each serving its dedicated sessions.</summary>
public static class RouterPools
{
    public static IReadOnlyList<IResourceBuilder<ProjectResource>> AddRouterPools(
        this IDistributedApplicationBuilder builder, IResourceBuilder<ParameterResource> routerToken)
    {
        var routers = new List<IResourceBuilder<ProjectResource>>();
        foreach (var pool in LaunchTopology.Pools)
        {
            foreach (var (router, index) in pool.Routers.Select((r, i) => (r, i)))
            {
                var node = builder.AddProject<Projects.Cortensor_RouterSim>(router.Name, launchProfileName: null)
                    .WithHttpEndpoint()
                    .WithEnvironment("Router__Name", router.Name)
                    .WithEnvironment("Router__Model", pool.BackendModel)
                    .WithEnvironment("Router__ApiKey", routerToken)
                    .WithEnvironment("Router__Seed", index.ToString(System.Globalization.CultureInfo.InvariantCulture))
                    // Fast by default so tests and benchmarks stay quick; the network's own delays are a setting (README).
                    .WithEnvironment("Router__Behaviour__AssignmentDelayMs", "0")
                    .WithEnvironment("Router__Behaviour__PrecommitDelayMs", "0")
                    .WithEnvironment("Router__Behaviour__TokensPerSecond", "0")
                    .WithHttpHealthCheck("/health");
                for (var s = 0; s < router.Sessions.Count; s++)
                    node.WithEnvironment($"Router__Sessions__{s}", router.Sessions[s].ToString(System.Globalization.CultureInfo.InvariantCulture));
                routers.Add(node);
            }
        }
        return routers;
    }

    /// <summary>Gives the Api every router's address (service discovery) and the token routers expect.</summary>
    public static IResourceBuilder<ProjectResource> WithRouters(
        this IResourceBuilder<ProjectResource> api, IEnumerable<IResourceBuilder<ProjectResource>> routers,
        IResourceBuilder<ParameterResource> routerToken)
    {
        foreach (var router in routers) api.WithReference(router).WaitFor(router);
        return api.WithEnvironment("Routers__Token", routerToken);
    }

    /// <summary>Passes AppHost configuration sections (e.g. --Routing:UpstreamTimeoutMs=5000) to a service.</summary>
    public static IResourceBuilder<ProjectResource> WithSettingsFrom(
        this IResourceBuilder<ProjectResource> service, IConfiguration configuration, params string[] sections)
    {
        foreach (var section in sections)
            foreach (var (key, value) in configuration.GetSection(section).AsEnumerable(makePathsRelative: false))
                if (value is not null) service.WithEnvironment(key.Replace(":", "__"), value);
        return service;
    }
}
