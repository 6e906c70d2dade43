using Yarp.ReverseProxy.Configuration;

// Every request goes to FLOOR_UPSTREAM as it came: no authentication, no limits, no metering.
var upstream = Environment.GetEnvironmentVariable("FLOOR_UPSTREAM")
    ?? throw new InvalidOperationException("FLOOR_UPSTREAM (the router's base URL) is required.");
var builder = WebApplication.CreateSlimBuilder(args);
builder.Logging.ClearProviders();
builder.Services.AddReverseProxy().LoadFromMemory(
    [new RouteConfig { RouteId = "all", ClusterId = "router", Match = new RouteMatch { Path = "{**rest}" } }],
    [new ClusterConfig { ClusterId = "router", Destinations = new Dictionary<string, DestinationConfig> { ["router"] = new() { Address = upstream } } }]);
var app = builder.Build();
app.MapReverseProxy();
app.Run();
