using Cortensor.Api.Infrastructure;

namespace Cortensor.Api.Catalog;

public static class CatalogExtensions
{
    public static WebApplicationBuilder AddCatalog(this WebApplicationBuilder builder)
    {
        builder.Services.AddSingleton<CatalogStore>();
        builder.Services.AddScoped<CatalogAdmin>();
        builder.Services.AddSingleton<InvalidationBus>();
        builder.Services.AddSingleton<CatalogRefresher>();
        builder.Services.AddHostedService(sp => sp.GetRequiredService<CatalogRefresher>());
        builder.Services.AddHealthChecks().AddCheck<CatalogRefresher>("catalog", tags: [Microsoft.Extensions.Hosting.Extensions.ReadinessTag]);
        return builder;
    }
}
