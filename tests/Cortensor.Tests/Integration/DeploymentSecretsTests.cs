using System.Diagnostics;
using System.Security.Cryptography;
using Cortensor.Api.Infrastructure;
using Cortensor.Tests.Fixtures;
using Microsoft.Extensions.Hosting.Internal;

namespace Cortensor.Tests.Integration;

/// <summary>
/// Outside Development the Api and the AppHost refuse to start on a missing, weak or published secret,
/// naming the setting. The built processes are started as an operator would start them.
/// </summary>
public class DeploymentSecretsTests
{
    private const string DevSigningKey = "cortensor-dev-signing-key-change-me-in-production-0123456789";

    private static string Strong() => Convert.ToBase64String(RandomNumberGenerator.GetBytes(32));

    [Fact]
    public async Task TheApiRefusesToStartInProductionWithTheDevelopmentSigningKey()
    {
        var (exitCode, output) = await RunAsync("Cortensor.Api", ApiEnvironment(signingKey: DevSigningKey));

        Assert.NotEqual(0, exitCode);
        Assert.Contains("Auth:SigningKey (AppHost parameter auth-signing-key) is a development default", output, StringComparison.Ordinal);
        Assert.DoesNotContain("Routers:Token", output, StringComparison.Ordinal);
    }

    [Fact]
    public async Task TheApiRefusesToStartInProductionWithAPredictableSigningKeyOrAPublishedDatabasePassword()
    {
        var environment = ApiEnvironment(signingKey: new string('a', 48));
        environment["ConnectionStrings__portaldb"] = "Host=127.0.0.1;Port=1;Username=postgres;Password=cortensor-dev-postgres;Database=portal";
        var (exitCode, output) = await RunAsync("Cortensor.Api", environment);

        Assert.NotEqual(0, exitCode);
        Assert.Contains("Auth:SigningKey (AppHost parameter auth-signing-key) is too predictable", output, StringComparison.Ordinal);
        Assert.Contains("ConnectionStrings:portaldb password (AppHost parameter postgres-password) is a development default", output, StringComparison.Ordinal);
    }

    [Fact]
    public async Task TheMigrationsStepRefusesTheDevelopmentAdminPasswordInProduction()
    {
        var environment = ApiEnvironment(signingKey: Strong());
        environment["Admin__Email"] = "ops@example.com";
        environment["Admin__Password"] = "Cortensor-dev-admin-1";
        var (exitCode, output) = await RunAsync("Cortensor.Api", environment, "migrate");

        Assert.NotEqual(0, exitCode);
        Assert.Contains("Admin:Password (AppHost parameter admin-password) is a development default", output, StringComparison.Ordinal);
    }

    [Fact]
    public async Task TheAppHostRefusesToStartInProductionWithTheDevelopmentSigningKey()
    {
        var environment = new Dictionary<string, string>
        {
            ["DOTNET_ENVIRONMENT"] = "Production",
            ["Parameters__auth-signing-key"] = DevSigningKey,
            ["Parameters__postgres-password"] = Strong(),
            ["Parameters__redis-password"] = Strong(),
            ["Parameters__router-token"] = Strong(),
            ["Parameters__admin-password"] = "A-strong-Admin-passw0rd",
            ["Parameters__admin-email"] = "ops@example.com",
        };
        var (exitCode, output) = await RunAsync("Cortensor.AppHost", environment);

        Assert.Equal(1, exitCode);
        Assert.Contains("Parameters:auth-signing-key is a development default", output, StringComparison.Ordinal);
        Assert.DoesNotContain("Parameters:postgres-password", output, StringComparison.Ordinal);
    }

    [Fact]
    public async Task TheAppHostInProductionNamesEveryMissingSecretInsteadOfUsingDevelopmentDefaults()
    {
        var (exitCode, output) = await RunAsync("Cortensor.AppHost", new Dictionary<string, string> { ["DOTNET_ENVIRONMENT"] = "Production" });

        Assert.Equal(1, exitCode);
        foreach (var parameter in new[] { "auth-signing-key", "postgres-password", "redis-password", "router-token", "admin-password", "admin-email" })
            Assert.Contains($"Parameters:{parameter} is not set.", output, StringComparison.Ordinal);
    }

    [Fact]
    public void StrongSecretsPassAndDevelopmentAcceptsTheDefaults()
    {
        var secrets = new DeploymentSecrets
        {
            SigningKey = Strong(), RouterToken = Strong(), AdminEmail = "ops@example.com", AdminPassword = "A-strong-Admin-passw0rd",
            DatabaseConnectionString = $"Host=db;Username=postgres;Password={Strong()};Database=portal",
            RedisConnectionString = $"redis:6379,password={Strong()}",
        };
        Assert.True(Validator("Production").Validate(null, secrets).Succeeded);

        var defaults = new DeploymentSecrets { SigningKey = DevSigningKey, RouterToken = "cortensor-dev-router-token" };
        Assert.False(Validator("Production").Validate(null, defaults).Succeeded);
        Assert.False(Validator("Staging").Validate(null, defaults).Succeeded);
        Assert.True(Validator("Development").Validate(null, defaults).Succeeded);
    }

    [Fact]
    public void StripeKeysAreOptionalInProductionButWhenGivenMustBothBeRealSecrets()
    {
        DeploymentSecrets Secrets(string? key, string? webhook) => new()
        {
            SigningKey = Strong(), RouterToken = Strong(), StripeSecretKey = key, StripeWebhookSecret = webhook,
        };
        // Purchases off: nothing to judge.
        Assert.True(Validator("Production").Validate(null, Secrets(null, null)).Succeeded);
        Assert.True(Validator("Production").Validate(null, Secrets("sk_live_" + Strong(), "whsec_" + Strong())).Succeeded);

        var halfConfigured = Validator("Production").Validate(null, Secrets("sk_live_" + Strong(), null));
        Assert.False(halfConfigured.Succeeded);
        Assert.Contains("Stripe:WebhookSecret (AppHost parameter stripe-webhook-secret) is not set.", halfConfigured.FailureMessage, StringComparison.Ordinal);
        var weak = Validator("Production").Validate(null, Secrets("sk_live_aaaaaaaaaaaaaaaaaaaa", "whsec_" + Strong()));
        Assert.False(weak.Succeeded);
        Assert.Contains("Stripe:SecretKey (AppHost parameter stripe-secret-key) is too predictable", weak.FailureMessage, StringComparison.Ordinal);
    }

    private static DeploymentSecretsValidator Validator(string environment) =>
        new(new HostingEnvironment { EnvironmentName = environment });

    /// <summary>Production, strong secrets everywhere but the signing key; Postgres and Redis are never reached.</summary>
    private static Dictionary<string, string> ApiEnvironment(string signingKey) => new()
    {
        ["ASPNETCORE_ENVIRONMENT"] = "Production",
        ["DOTNET_ENVIRONMENT"] = "Production",
        ["ASPNETCORE_URLS"] = "http://127.0.0.1:0",
        ["Auth__SigningKey"] = signingKey,
        ["Routers__Token"] = Strong(),
        ["ConnectionStrings__portaldb"] = $"Host=127.0.0.1;Port=1;Username=postgres;Password={Strong()};Database=portal;Timeout=1",
        ["ConnectionStrings__redis"] = $"127.0.0.1:1,password={Strong()},connectTimeout=200",
        ["Logging__LogLevel__Default"] = "Critical",
    };

    /// <summary>Runs a built project as its own process; a refusing process exits, a starting one is killed at the deadline.</summary>
    private static async Task<(int ExitCode, string Output)> RunAsync(string project, IDictionary<string, string> environment, params string[] args)
    {
        // The same configuration (Debug/Release) as these tests were built in.
        var configuration = new DirectoryInfo(AppContext.BaseDirectory).Parent!.Name;
        var dll = Path.Combine(Repository.Root, "src", project, "bin", configuration, "net10.0", project + ".dll");
        var info = new ProcessStartInfo("dotnet") { RedirectStandardOutput = true, RedirectStandardError = true, UseShellExecute = false, WorkingDirectory = Path.GetTempPath() };
        info.ArgumentList.Add(dll);
        foreach (var arg in args) info.ArgumentList.Add(arg);
        // Nothing from the test run's own environment decides the outcome.
        foreach (var key in new[] { "ASPNETCORE_ENVIRONMENT", "DOTNET_ENVIRONMENT" }) info.Environment.Remove(key);
        foreach (var (key, value) in environment) info.Environment[key] = value;
        using var process = Process.Start(info)!;
        var stdout = process.StandardOutput.ReadToEndAsync();
        var stderr = process.StandardError.ReadToEndAsync();
        using var deadline = new CancellationTokenSource(TimeSpan.FromSeconds(90));
        try
        {
            await process.WaitForExitAsync(deadline.Token);
        }
        catch (OperationCanceledException)
        {
            process.Kill(entireProcessTree: true);
            throw new TimeoutException($"{project} did not exit within 90 s: it started instead of refusing");
        }
        return (process.ExitCode, await stdout + await stderr);
    }
}
