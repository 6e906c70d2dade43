namespace Cortensor.AppHost;

/// <summary>
/// The AppHost's secret parameters. Their development values live only in appsettings.Development.json;
/// in any other environment a run refuses to start while one is missing, weak or a published default,
/// instead of prompting for it or starting a stack anyone with the repository can sign in to.
/// Publishing (the manifest) is exempt: there the parameters are inputs without values.
/// </summary>
public static class DeploymentSecrets
{
    public static readonly IReadOnlyList<(string Parameter, SecretRule Rule)> Secrets =
    [
        ("auth-signing-key", SecretPolicy.SigningKey),
        ("relay-key", SecretPolicy.SigningKey),
        ("postgres-password", SecretPolicy.MachinePassword),
        ("redis-password", SecretPolicy.MachinePassword),
        ("router-token", SecretPolicy.MachinePassword),
        ("admin-password", SecretPolicy.HumanPassword),
        ("unkey-root-key", SecretPolicy.MachinePassword),
    ];

    /// <summary>What is wrong with the configured secrets, one line per setting; empty when the AppHost may start.</summary>
    public static IReadOnlyList<string> Problems(IDistributedApplicationBuilder builder)
    {
        if (builder.Environment.IsDevelopment() || builder.ExecutionContext.IsPublishMode) return [];
        var problems = Secrets
            // Unkey's root key is a secret only when Unkey is the key provider.
            .Where(s => s.Parameter != "unkey-root-key" || KeyProviders.UsesUnkey(builder.Configuration))
            .Select(s => SecretPolicy.Problem($"Parameters:{s.Parameter}", builder.Configuration[$"Parameters:{s.Parameter}"], s.Rule))
            .OfType<string>().ToList();
        if (string.IsNullOrWhiteSpace(builder.Configuration["Parameters:admin-email"]))
            problems.Add("Parameters:admin-email is not set.");
        problems.AddRange(CreditPurchases.Problems(builder));
        return problems;
    }

    public static string Explain(IDistributedApplicationBuilder builder, IReadOnlyList<string> problems) =>
        $"The AppHost refuses to start in environment '{builder.Environment.EnvironmentName}':" + Environment.NewLine
        + string.Join(Environment.NewLine, problems.Select(p => "  - " + p)) + Environment.NewLine
        + "Set them with user secrets (dotnet user-secrets set \"Parameters:auth-signing-key\" ...) or environment variables "
        + "(Parameters__auth-signing-key=...); see docs/operations.md, \"Secrets\". Development values are only loaded when "
        + "DOTNET_ENVIRONMENT=Development.";

    /// <summary>Runs a service in the AppHost's environment (run mode only: a deployment sets its own).</summary>
    public static IResourceBuilder<ProjectResource> WithHostEnvironment(this IResourceBuilder<ProjectResource> service, IDistributedApplicationBuilder builder) =>
        builder.ExecutionContext.IsRunMode
            ? service.WithEnvironment("ASPNETCORE_ENVIRONMENT", builder.Environment.EnvironmentName).WithEnvironment("DOTNET_ENVIRONMENT", builder.Environment.EnvironmentName)
            : service;

    /// <summary>
    /// Who the client is (ClientAddressOptions). Deployed, every request comes through the platform's ingress, which appends
    /// its caller to X-Forwarded-For; run here, callers are local and only loopback proxies are believed.
    /// </summary>
    public static IResourceBuilder<ProjectResource> WithClientAddresses(this IResourceBuilder<ProjectResource> service, IDistributedApplicationBuilder builder,
        IResourceBuilder<ParameterResource> relayKey)
    {
        service.WithEnvironment("ClientAddress__RelayKey", relayKey);
        return builder.ExecutionContext.IsPublishMode ? service.WithEnvironment("ClientAddress__ProxyHops", "1") : service;
    }
}
