using Cortensor.AppHost;

var builder = DistributedApplication.CreateBuilder(args);

// Outside Development every secret parameter must be given, strong and not a published default.
if (DeploymentSecrets.Problems(builder) is { Count: > 0 } problems)
{
    Console.Error.WriteLine(DeploymentSecrets.Explain(builder, problems));
    return 1;
}

// Durable state and runtime state: containers where a runtime exists, local processes where not.
var (database, redis) = builder.AddPortalInfrastructure();

// The managed router pools of the launch catalog.
var routerToken = builder.AddParameter("router-token", secret: true);
// Accounts: the key every replica signs access tokens with, and the first operator account.
var signingKey = builder.AddParameter("auth-signing-key", secret: true);
var adminEmail = builder.AddParameter("admin-email");
var adminPassword = builder.AddParameter("admin-password", secret: true);
// The key the Web presents on the sign-in calls it relays, so the Api counts the browser's address, not the Web's.
var relayKey = builder.AddParameter("relay-key", secret: true);
var routers = builder.AddRouterPools(routerToken);
// Account mail (verification, invitations, password reset): a local catcher in development.
var mail = builder.AddMail();

// Schema first: the Api takes no traffic before the migrations finished.
var migrations = builder.AddProject<Projects.Cortensor_Api>(LaunchTopology.Migrations, launchProfileName: null)
    .WithArgs("migrate")
    .WithReference(database, LaunchTopology.Database).WaitFor(database)
    .WithReference(redis, LaunchTopology.Redis).WaitFor(redis)
    .WithEnvironment("Admin__Email", adminEmail)
    .WithEnvironment("Admin__Password", adminPassword)
    .WithEnvironment("Auth__SigningKey", signingKey);

var api = builder.AddProject<Projects.Cortensor_Api>(LaunchTopology.Api, launchProfileName: "http")
    .WithReference(database, LaunchTopology.Database).WaitFor(database)
    .WithReference(redis, LaunchTopology.Redis).WaitFor(redis)
    .WaitForCompletion(migrations)
    .WithRouters(routers, routerToken)
    .WithReference(mail).WaitFor(mail)
    .WithEnvironment("Auth__SigningKey", signingKey)
    .WithClientAddresses(builder, relayKey)
    // The spool replays every file in its directory: one directory per stack, so two stacks on one
    // machine never replay each other's usage into the wrong Redis. A deployment keeps the Api's default
    // (a folder under its content root, on a persistent volume: docs/operations.md), never this machine's temp folder.
    .WithEnvironment(context =>
    {
        if (!builder.ExecutionContext.IsPublishMode)
            context.EnvironmentVariables["Metering__SpoolDirectory"] = Path.Combine(PortalInfrastructure.DataRoot(builder), "spool");
    })
    .WithReplicas(builder.Configuration.GetValue("Api:Replicas", 1))
    // Who issues and verifies API keys: the Api itself, or Unkey (a local stand-in in development).
    .WithKeyProvider(builder)
    .WithHttpHealthCheck("/health")
    .WithSettingsFrom(builder.Configuration, "Routing", "Inference", "Limits", "Metering", "Auth", "Keys", "AuthThrottling", "ControlPlane", "Mail", "Siwe")
    // Buying credit through Stripe: on only when the Stripe secrets are given.
    .WithCreditPurchases(builder);
// The Api judges its secrets by the AppHost's environment (not its launch profile's, nor Production by default).
migrations.WithHostEnvironment(builder);
api.WithHostEnvironment(builder);

var web = builder.AddProject<Projects.Cortensor_Web>(LaunchTopology.Web, launchProfileName: "http")
    .WithReference(api).WaitFor(api)
    // Sessions and Data Protection keys: any Web replica serves any signed-in user.
    .WithReference(redis, LaunchTopology.Redis).WaitFor(redis)
    .WithReplicas(builder.Configuration.GetValue("Web:Replicas", 1))
    // What the quickstart shows customers: the Api's address as a browser reaches it.
    .WithEnvironment("PortalApi__PublicUrl", api.GetEndpoint("http"))
    .WithClientAddresses(builder, relayKey)
    .WithHttpHealthCheck("/health");
// The admin request lookup links each request's trace into this dashboard (the AppHost's own first URL).
if (builder.ExecutionContext.IsRunMode && builder.Configuration["ASPNETCORE_URLS"]?.Split(';')[0] is { Length: > 0 } dashboardUrl)
    web.WithEnvironment("Telemetry__DashboardUrl", dashboardUrl);
// The links in account mails open pages of the web dashboard.
api.WithEnvironment("Mail__LinkBaseUrl", web.GetEndpoint("http"));
// Sign-In with Ethereum: messages name the dashboard (or the Api, for clients that sign in directly), unless the
// operator lists the public origins (Siwe:Origins) themselves.
if (builder.Configuration["Siwe:Origins:0"] is { Length: > 0 } dashboardOrigin)
    web.WithEnvironment("Siwe__Origin", dashboardOrigin);
else
{
    web.WithEnvironment("Siwe__Origin", web.GetEndpoint("http"));
    api.WithEnvironment("Siwe__Origins__0", web.GetEndpoint("http")).WithEnvironment("Siwe__Origins__1", api.GetEndpoint("http"));
}

builder.Build().Run();
return 0;
