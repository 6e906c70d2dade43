using Cortensor.AppHost;

var builder = DistributedApplication.CreateBuilder(args);

// Durable state and runtime state: containers where a runtime exists, local processes where not.
var (database, redis) = builder.AddPortalInfrastructure();

// The managed router pools of the launch catalog.
var routerToken = builder.AddParameter("router-token", secret: true);
var adminToken = builder.AddParameter("admin-token", secret: true);
var routers = builder.AddRouterPools(routerToken);

// Schema first: the Api takes no traffic before the migrations finished.
var migrations = builder.AddProject<Projects.Cortensor_Api>(LaunchTopology.Migrations, launchProfileName: null)
    .WithArgs("migrate")
    .WithReference(database, LaunchTopology.Database)
    .WaitFor(database);

var api = builder.AddProject<Projects.Cortensor_Api>(LaunchTopology.Api, launchProfileName: "http")
    .WithReference(database, LaunchTopology.Database).WaitFor(database)
    .WithReference(redis, LaunchTopology.Redis).WaitFor(redis)
    .WaitForCompletion(migrations)
    .WithRouters(routers, routerToken)
    .WithEnvironment("Admin__Token", adminToken)
    .WithReplicas(builder.Configuration.GetValue("Api:Replicas", 1))
    .WithHttpHealthCheck("/health")
    .WithSettingsFrom(builder.Configuration, "Routing", "Inference");

builder.AddProject<Projects.Cortensor_Web>(LaunchTopology.Web, launchProfileName: "http")
    .WithReference(api).WaitFor(api)
    .WithHttpHealthCheck("/health");

builder.Build().Run();
