namespace Cortensor.Api.Routing;

public static class RoutingExtensions
{
    /// <summary>Step 6 of the hot path: router pools, health probing, balancing and failover.</summary>
    public static WebApplicationBuilder AddRouting(this WebApplicationBuilder builder)
    {
        builder.Services.AddOptions<RoutingOptions>().BindConfiguration("Routing")
            // The token routers expect is a deployment secret of its own (Routers:Token), not a routing setting.
            .Configure<IConfiguration>((o, configuration) => o.RouterToken = configuration["Routers:Token"] ?? o.RouterToken)
            .Validate(o => o.ProbeIntervalMs > 0 && o.ProbeTimeoutMs > 0 && o.DefaultTimeoutSeconds > 0 && o.DefaultPrecommitTimeoutSeconds > 0
                    && o.UpstreamTimeoutMs is null or > 0 && o.StreamIdleTimeoutMs is null or > 0 && o.MaxAnswerBytes > 0,
                "Routing: probe intervals and timeouts must be positive.")
            .ValidateOnStart();
        builder.Services.AddSingleton<RouterHttpClient>();
        builder.Services.AddSingleton<RouterBalancer>();
        builder.Services.AddSingleton<RouterForwarder>();
        builder.Services.AddHostedService<RouterHealthProbe>();
        builder.Services.AddHealthChecks().AddCheck<RouterPoolsHealthCheck>("routers");
        return builder;
    }
}
