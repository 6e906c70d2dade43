using Microsoft.Extensions.Options;
using Npgsql;
using StackExchange.Redis;

namespace Cortensor.Api.Infrastructure;

/// <summary>
/// The secrets this process was given, gathered from wherever they are configured so one validator can
/// judge them all. Outside Development the Api (and `Cortensor.Api migrate`) refuses to start with a
/// missing, weak or published development value and names the setting; see docs/operations.md "Secrets".
/// </summary>
public sealed class DeploymentSecrets
{
    public string? SigningKey { get; set; }
    public string? RouterToken { get; set; }
    public string? AdminEmail { get; set; }
    public string? AdminPassword { get; set; }
    public string? ExternalSigningSecret { get; set; }
    /// <summary>Optional: without it the Web's relayed addresses are believed only from trusted proxies.</summary>
    public string? RelayKey { get; set; }
    public string? DatabaseConnectionString { get; set; }
    public string? RedisConnectionString { get; set; }
    public string? StripeSecretKey { get; set; }
    public string? StripeWebhookSecret { get; set; }
    /// <summary>Only with Keys:Provider=unkey.</summary>
    public string? UnkeyRootKey { get; set; }
}

public static class DeploymentSecretsExtensions
{
    public static WebApplicationBuilder AddDeploymentSecrets(this WebApplicationBuilder builder)
    {
        builder.Services.AddOptions<DeploymentSecrets>()
            .Configure<IConfiguration>((s, c) =>
            {
                s.SigningKey = c["Auth:SigningKey"];
                s.RouterToken = c["Routers:Token"];
                s.AdminEmail = c["Admin:Email"];
                s.AdminPassword = c["Admin:Password"];
                s.ExternalSigningSecret = c["Auth:External:SigningSecret"];
                s.RelayKey = c[$"{ClientAddressOptions.Section}:{nameof(ClientAddressOptions.RelayKey)}"];
                s.DatabaseConnectionString = c.GetConnectionString(LaunchTopology.Database);
                s.RedisConnectionString = c.GetConnectionString(LaunchTopology.Redis);
                s.StripeSecretKey = c["Stripe:SecretKey"];
                s.StripeWebhookSecret = c["Stripe:WebhookSecret"];
                if (string.Equals(c["Keys:Provider"], "unkey", StringComparison.OrdinalIgnoreCase)) s.UnkeyRootKey = c["Keys:Unkey:RootKey"] ?? "";
            })
            .ValidateOnStart();
        builder.Services.AddSingleton<IValidateOptions<DeploymentSecrets>, DeploymentSecretsValidator>();
        return builder;
    }
}

public sealed class DeploymentSecretsValidator(IHostEnvironment environment) : IValidateOptions<DeploymentSecrets>
{
    public ValidateOptionsResult Validate(string? name, DeploymentSecrets s)
    {
        // Development runs on the published defaults in the AppHost's appsettings.Development.json.
        if (environment.IsDevelopment()) return ValidateOptionsResult.Success;

        var problems = new List<string?>
        {
            SecretPolicy.Problem("Auth:SigningKey (AppHost parameter auth-signing-key)", s.SigningKey, SecretPolicy.SigningKey),
            SecretPolicy.Problem("Routers:Token (AppHost parameter router-token)", s.RouterToken, SecretPolicy.MachinePassword),
        };
        // Only the migrations step creates the first administrator, and only when it is asked to.
        if (!string.IsNullOrWhiteSpace(s.AdminEmail))
            problems.Add(SecretPolicy.Problem("Admin:Password (AppHost parameter admin-password)", s.AdminPassword, SecretPolicy.HumanPassword));
        if (!string.IsNullOrEmpty(s.ExternalSigningSecret))
            problems.Add(SecretPolicy.Problem("Auth:External:SigningSecret", s.ExternalSigningSecret, SecretPolicy.SigningKey));
        if (!string.IsNullOrEmpty(s.RelayKey))
            problems.Add(SecretPolicy.Problem("ClientAddress:RelayKey (AppHost parameter relay-key)", s.RelayKey, SecretPolicy.SigningKey));
        // Credit purchases are optional: without Stripe keys they are off (and the dashboard says how to turn them on);
        // with either key set, both must be real secrets.
        if (!string.IsNullOrEmpty(s.StripeSecretKey) || !string.IsNullOrEmpty(s.StripeWebhookSecret))
        {
            problems.Add(SecretPolicy.Problem("Stripe:SecretKey (AppHost parameter stripe-secret-key)", s.StripeSecretKey, SecretPolicy.MachinePassword));
            problems.Add(SecretPolicy.Problem("Stripe:WebhookSecret (AppHost parameter stripe-webhook-secret)", s.StripeWebhookSecret, SecretPolicy.MachinePassword));
        }
        if (s.UnkeyRootKey is not null)
            problems.Add(SecretPolicy.Problem("Keys:Unkey:RootKey (AppHost parameter unkey-root-key)", s.UnkeyRootKey, SecretPolicy.MachinePassword));
        // A connection without a password (e.g. managed identity) is the provider's business; one with a weak one is ours.
        if (DatabasePassword(s.DatabaseConnectionString) is { } databasePassword)
            problems.Add(SecretPolicy.Problem($"ConnectionStrings:{LaunchTopology.Database} password (AppHost parameter postgres-password)", databasePassword, SecretPolicy.MachinePassword));
        if (RedisPassword(s.RedisConnectionString) is { } redisPassword)
            problems.Add(SecretPolicy.Problem($"ConnectionStrings:{LaunchTopology.Redis} password (AppHost parameter redis-password)", redisPassword, SecretPolicy.MachinePassword));

        var failures = problems.OfType<string>().ToList();
        if (failures.Count == 0) return ValidateOptionsResult.Success;
        failures.Add($"Outside Development (this is '{environment.EnvironmentName}') every secret must come from your secret store; see docs/operations.md, \"Secrets\".");
        return ValidateOptionsResult.Fail(failures);
    }

    private static string? DatabasePassword(string? connectionString)
    {
        if (string.IsNullOrEmpty(connectionString)) return null;
        try { return new NpgsqlConnectionStringBuilder(connectionString).Password is { Length: > 0 } p ? p : null; }
        catch (ArgumentException) { return null; } // a malformed string fails loudly when it is used
    }

    private static string? RedisPassword(string? connectionString)
    {
        if (string.IsNullOrEmpty(connectionString)) return null;
        try { return ConfigurationOptions.Parse(connectionString).Password is { Length: > 0 } p ? p : null; }
        catch (ArgumentException) { return null; }
    }
}
