namespace Cortensor.AppHost;

/// <summary>
/// <c>Keys:Provider</c> (builtin by default, or unkey): with unkey, the Api issues and verifies keys through Unkey's API v2.
/// In run mode, unless <c>Keys:Unkey:BaseUrl</c> names a real Unkey, a local stand-in (Cortensor.UnkeySim) plays Unkey,
/// as RouterSim plays the routers. The default graph (builtin) has no Unkey resource at all.
/// </summary>
public static class KeyProviders
{
    public const string UnkeyResource = "unkey";
    /// <summary>The stand-in's one API (Unkey's key space) holding the Portal's keys.</summary>
    public const string StandInApiId = "api_cortensor_local";

    public static bool UsesUnkey(IConfiguration configuration) =>
        string.Equals(configuration["Keys:Provider"], "unkey", StringComparison.OrdinalIgnoreCase);

    public static IResourceBuilder<ProjectResource> WithKeyProvider(this IResourceBuilder<ProjectResource> api, IDistributedApplicationBuilder builder)
    {
        if (!UsesUnkey(builder.Configuration)) return api;
        var rootKey = builder.AddParameter("unkey-root-key", secret: true);
        api.WithEnvironment("Keys__Unkey__RootKey", rootKey);
        // A real Unkey (a deployment, or a machine that reaches api.unkey.com): its address and API id come with the
        // Keys section (Keys:Unkey:BaseUrl, Keys:Unkey:ApiId), passed to the Api as they are.
        if (builder.ExecutionContext.IsPublishMode || builder.Configuration["Keys:Unkey:BaseUrl"] is { Length: > 0 }) return api;

        var standIn = builder.AddProject<Projects.Cortensor_UnkeySim>(UnkeyResource, launchProfileName: null)
            .WithHttpEndpoint()
            .WithEnvironment("UnkeySim__RootKey", rootKey)
            .WithEnvironment("UnkeySim__ApiId", StandInApiId)
            .WithHttpHealthCheck("/health");
        return api.WaitFor(standIn)
            .WithEnvironment("Keys__Unkey__BaseUrl", standIn.GetEndpoint("http"))
            .WithEnvironment("Keys__Unkey__ApiId", StandInApiId);
    }
}
