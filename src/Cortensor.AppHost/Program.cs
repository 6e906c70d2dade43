using Cortensor.AppHost;

var builder = DistributedApplication.CreateBuilder(args);

// Durable state and runtime state: containers where a runtime exists, local processes where not.
var (database, redis) = builder.AddPortalInfrastructure();

// The managed router pools of the launch catalog.
var routerToken = builder.AddParameter("router-token", secret: true);
// Accounts: the key every replica signs access tokens with, and the first operator account.
var signingKey = builder.AddParameter("auth-signing-key", secret: true);
var adminEmail = builder.AddParameter("admin-email");
var adminPassword = builder.AddParameter("admin-password", secret: true);
var routers = builder.AddRouterPools(routerToken);

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
    .WithEnvironment("Auth__SigningKey", signingKey)
    .WithReplicas(builder.Configuration.GetValue("Api:Replicas", 1))
    .WithHttpHealthCheck("/health")
    .WithSettingsFrom(builder.Configuration, "Routing", "Inference", "Auth");
// The spool replays every file in its directory: one directory per stack, so two stacks on one
// machine never replay each other's usage into the wrong Redis. A machine path means nothing in a
// published manifest: a container keeps the Api's default.
if (builder.ExecutionContext.IsRunMode)
    api.WithEnvironment("Metering__SpoolDirectory", Path.Combine(PortalInfrastructure.DataRoot(builder), "spool"));

builder.AddProject<Projects.Cortensor_Web>(LaunchTopology.Web, launchProfileName: "http")
    .WithReference(api).WaitFor(api)
    // Sessions and Data Protection keys: any Web replica serves any signed-in user.
    .WithReference(redis, LaunchTopology.Redis).WaitFor(redis)
    .WithReplicas(builder.Configuration.GetValue("Web:Replicas", 1))
    // What the quickstart shows customers: the Api's address as a browser reaches it.
    .WithEnvironment("PortalApi__PublicUrl", api.GetEndpoint("http"))
    .WithHttpHealthCheck("/health");

builder.Build().Run();
