using System.Diagnostics;
using System.Reflection;
using System.Text.Json.Nodes;
using Cortensor.Tests.Fixtures;

namespace Cortensor.Tests.Deployment;

/// <summary>
/// infra/ builds and lints with the Bicep CLI (restored from NuGet by this project), and the built ARM
/// template deploys what the Portal needs: secrets only as secure parameters without values and Key Vault
/// references, Redis with append-only persistence, an Api of at least two probed replicas, and every
/// router of the launch topology as an internal app.
/// </summary>
public sealed class AzureInfrastructureTests
{
    private static readonly Lazy<JsonObject> Template = new(() => JsonNode.Parse(Bicep("build", "--stdout").Output)!.AsObject());

    private static readonly string[] SecretParameters = ["postgresAdminPassword", "routerToken", "authSigningKey", "adminPassword", "relayKey"];

    [Fact]
    public void TheBicepBuildsAndLintsWithoutAWarning()
    {
        var build = Bicep("build", "--stdout");
        Assert.True(build.ExitCode == 0, build.Errors);
        Assert.DoesNotContain("Warning", build.Errors);

        var lint = Bicep("lint");
        Assert.True(lint.ExitCode == 0, lint.Errors + lint.Output);
        Assert.Equal("", (lint.Output + lint.Errors).Trim());
    }

    [Fact]
    public void EverySecretIsASecureParameterWithoutADefaultValue()
    {
        foreach (var template in Templates(Template.Value))
        {
            foreach (var (name, node) in template["parameters"]?.AsObject() ?? [])
            {
                var type = node!["type"]!.GetValue<string>();
                if (LooksSecret(name) && type is "string" or "securestring")
                    Assert.True(type == "securestring", $"parameter {name} is {type}, not securestring");
                if (type == "securestring")
                    Assert.False(node.AsObject().ContainsKey("defaultValue"), $"secure parameter {name} has a default value");
            }
        }
        var main = Template.Value["parameters"]!.AsObject();
        foreach (var name in SecretParameters)
            Assert.Equal("securestring", main[name]?["type"]?.GetValue<string>());

        // azd must ask for them: the parameters file gives none of them a value.
        var parameters = JsonNode.Parse(File.ReadAllText(InInfra("main.parameters.json")))!["parameters"]!.AsObject();
        Assert.DoesNotContain(parameters, p => LooksSecret(p.Key));
    }

    [Fact]
    public void AppsReadEverySecretFromKeyVault()
    {
        var apps = Resources(Template.Value, "Microsoft.App/containerApps").Concat(Resources(Template.Value, "Microsoft.App/jobs")).ToList();
        Assert.NotEmpty(apps);
        foreach (var app in apps)
        {
            // A for-expression over secrets compiles into the configuration's "copy" block.
            var configuration = app["properties"]!["configuration"]!;
            var expression = (configuration["secrets"] ?? configuration["copy"]!.AsArray().Single(c => c!["name"]!.GetValue<string>() == "secrets"))!.ToJsonString();
            Assert.Contains("keyVaultUrl", expression);
            Assert.DoesNotContain("\"value\"", expression);
        }
        var vaultSecrets = Resources(Template.Value, "Microsoft.KeyVault/vaults/secrets").Select(s => s["name"]!.ToString()).ToList();
        foreach (var secret in new[] { "database-connection-string", "redis-connection-string", "router-token", "auth-signing-key", "admin-password", "relay-key" })
            Assert.Contains(vaultSecrets, n => n.Contains(secret, StringComparison.Ordinal));
    }

    [Fact]
    public void TheApiAndTheWebCountTheClientTheIngressNamesAndBelieveTheWebOnlyByTheRelayKey()
    {
        var resources = Module(Template.Value, "portal-resources");
        var clientAddress = resources["properties"]!["template"]!["variables"]!["clientAddressEnv"]!.AsArray();
        Assert.Equal("1", clientAddress.Single(e => e!["name"]!.GetValue<string>() == "ClientAddress__ProxyHops")!["value"]!.GetValue<string>());
        Assert.Equal("relay-key", clientAddress.Single(e => e!["name"]!.GetValue<string>() == "ClientAddress__RelayKey")!["secretRef"]!.GetValue<string>());
        foreach (var name in new[] { "app-api", "app-web" })
        {
            var parameters = Module(resources, name)["properties"]!["parameters"]!;
            Assert.Contains("variables('clientAddressEnv')", parameters["env"]!["value"]!.GetValue<string>());
            Assert.Contains("relay-key", parameters["keyVaultSecrets"]!["value"]!.ToJsonString());
        }
    }

    [Fact]
    public void RedisKeepsItsDataWithAppendOnlyFilePersistence()
    {
        var redis = Assert.Single(Resources(Template.Value, "Microsoft.Cache/redis"));
        var properties = redis["properties"]!;
        Assert.Equal("Premium", properties["sku"]!["name"]!.GetValue<string>());
        Assert.Equal("true", properties["redisConfiguration"]!["aof-backup-enabled"]!.GetValue<string>());
        Assert.Contains("AccountKey", properties["redisConfiguration"]!["aof-storage-connection-string-0"]!.GetValue<string>());
        Assert.False(properties["enableNonSslPort"]!.GetValue<bool>());
    }

    [Fact]
    public void TheApiRunsAtLeastTwoProbedReplicasThatScaleOnHttpLoad()
    {
        var main = Template.Value["parameters"]!.AsObject();
        Assert.True(main["apiMinReplicas"]!["defaultValue"]!.GetValue<int>() >= 2);
        Assert.True(main["apiMinReplicas"]!["minValue"]!.GetValue<int>() >= 2);

        var resources = Module(Template.Value, "portal-resources");
        var api = Module(resources, "app-api");
        var parameters = api["properties"]!["parameters"]!;
        Assert.Equal("[parameters('apiMinReplicas')]", parameters["minReplicas"]!["value"]!.GetValue<string>());
        Assert.True(parameters["external"]!["value"]!.GetValue<bool>());
        Assert.Equal("[variables('serviceProbes')]", parameters["probes"]!["value"]!.GetValue<string>());

        var probes = resources["properties"]!["template"]!["variables"]!["serviceProbes"]!.AsArray();
        Assert.Equal(["Startup", "Liveness", "Readiness"], probes.Select(p => p!["type"]!.GetValue<string>()));
        var readiness = probes.Single(p => p!["type"]!.GetValue<string>() == "Readiness")!;
        Assert.Equal("/health", readiness["httpGet"]!["path"]!.GetValue<string>());
        // A hung dependency's check gives up, as Degraded, before the probe does: else the probe fails on every replica at once.
        Assert.True(readiness["timeoutSeconds"]!.GetValue<int>() > Microsoft.Extensions.Hosting.Extensions.DependencyCheckTimeout.TotalSeconds + 1);
        Assert.Equal("/alive", probes.Single(p => p!["type"]!.GetValue<string>() == "Liveness")!["httpGet"]!["path"]!.GetValue<string>());

        var app = Assert.Single(Resources(api["properties"]!["template"]!.AsObject(), "Microsoft.App/containerApps"));
        var template = app["properties"]!["template"]!;
        Assert.Equal("[parameters('minReplicas')]", template["scale"]!["minReplicas"]!.GetValue<string>());
        Assert.Contains("http", template["scale"]!["rules"]![0]!.AsObject().Select(p => p.Key));
        Assert.Contains("parameters('probes')", template["containers"]![0]!["probes"]!.GetValue<string>());
    }

    [Fact]
    public void EveryRouterOfTheLaunchTopologyIsAnInternalAppDeployedByAzd()
    {
        var routers = Template.Value["parameters"]!["routers"]!["defaultValue"]!.AsArray();
        var expected = LaunchTopology.Pools.SelectMany(p => p.Routers.Select(r => (r.Name, p.BackendModel, Sessions: string.Join(',', r.Sessions)))).ToList();
        var declared = routers.Select(r => (r!["name"]!.GetValue<string>(), r["model"]!.GetValue<string>(),
            string.Join(',', r["sessions"]!.AsArray().Select(s => s!.GetValue<long>())))).ToList();
        Assert.Equal(expected, declared);

        var module = Module(Module(Template.Value, "portal-resources"), "[format('app-{0}', parameters('routers')[copyIndex()].name)]");
        Assert.False(module["properties"]!["parameters"]!["external"]!["value"]!.GetValue<bool>());

        var azureYaml = File.ReadAllText(Path.Combine(Repository.Root, "azure.yaml"));
        foreach (var (name, _, _) in expected)
            Assert.Contains($"\n  {name}:\n    project: ./src/Cortensor.RouterSim", azureYaml);
        Assert.Contains("\n  api:\n    project: ./src/Cortensor.Api", azureYaml);
        Assert.Contains("\n  web:\n    project: ./src/Cortensor.Web", azureYaml);
    }

    private static bool LooksSecret(string name) => name != "resourceToken" && (name.Contains("password", StringComparison.OrdinalIgnoreCase) || name.Contains("token", StringComparison.OrdinalIgnoreCase)
        || name.Contains("secret", StringComparison.OrdinalIgnoreCase) || name.EndsWith("Key", StringComparison.Ordinal));

    /// <summary>The template and every nested module template.</summary>
    private static IEnumerable<JsonObject> Templates(JsonObject template)
    {
        yield return template;
        foreach (var deployment in OwnResources(template).Where(r => r["type"]?.GetValue<string>() == "Microsoft.Resources/deployments"))
            if (deployment["properties"]?["template"] is JsonObject nested)
                foreach (var t in Templates(nested)) yield return t;
    }

    /// <summary>Resources of this type in the template or any module under it.</summary>
    private static IEnumerable<JsonObject> Resources(JsonObject template, string type) =>
        Templates(template).SelectMany(OwnResources).Where(r => r["type"]?.GetValue<string>() == type);

    private static IEnumerable<JsonObject> OwnResources(JsonObject template) => template["resources"] switch
    {
        JsonArray array => array.OfType<JsonObject>(),
        JsonObject symbolic => symbolic.Select(p => p.Value).OfType<JsonObject>(),
        _ => [],
    };

    private static JsonObject Module(JsonObject template, string name) =>
        (template["properties"]?["template"] as JsonObject ?? template) is var body
            ? OwnResources(body).First(d => d["type"]?.GetValue<string>() == "Microsoft.Resources/deployments" && d["name"]?.ToString() == name)
            : throw new InvalidOperationException();

    private static string InInfra(string file) => Path.Combine(Repository.Root, "infra", file);

    private static (int ExitCode, string Output, string Errors) Bicep(string verb, params string[] extra)
    {
        var bicep = typeof(AzureInfrastructureTests).Assembly.GetCustomAttributes<AssemblyMetadataAttribute>()
            .Single(a => a.Key == "BicepCli").Value!;
        var info = new ProcessStartInfo(Path.Combine(bicep, "tools", "bicep"))
        {
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            UseShellExecute = false,
        };
        info.ArgumentList.Add(verb);
        info.ArgumentList.Add(InInfra("main.bicep"));
        foreach (var e in extra) info.ArgumentList.Add(e);
        using var process = Process.Start(info)!;
        var output = process.StandardOutput.ReadToEndAsync();
        var errors = process.StandardError.ReadToEndAsync();
        process.WaitForExit();
        return (process.ExitCode, output.Result, errors.Result);
    }
}
