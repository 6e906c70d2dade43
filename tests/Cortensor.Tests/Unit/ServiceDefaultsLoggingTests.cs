using Microsoft.AspNetCore.Builder;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging;

namespace Cortensor.Tests.Unit;

public sealed class ServiceDefaultsLoggingTests
{
    [Theory]
    [InlineData("Microsoft.EntityFrameworkCore.Database.Command")]
    [InlineData("ZiggyCreatures.Caching.Fusion.FusionCache")]
    [InlineData("Microsoft.Extensions.Diagnostics.HealthChecks.DefaultHealthCheckService")]
    public void LibraryChatterIsAtWarningByDefault(string category)
    {
        var logger = LoggerFor(category, []);
        Assert.False(logger.IsEnabled(LogLevel.Information));
        Assert.True(logger.IsEnabled(LogLevel.Warning));
        // The product's own categories keep Information.
        Assert.True(LoggerFor("Cortensor.Api.Routing.RouterHealthProbe", []).IsEnabled(LogLevel.Information));
    }

    [Fact]
    public void ConfigurationCanTurnALibraryBackUp()
    {
        var logger = LoggerFor("Microsoft.EntityFrameworkCore.Database.Command", ["--Logging:LogLevel:Microsoft.EntityFrameworkCore=Information"]);
        Assert.True(logger.IsEnabled(LogLevel.Information));
    }

    private static ILogger LoggerFor(string category, string[] args)
    {
        var builder = WebApplication.CreateBuilder(args);
        builder.AddServiceDefaults();
        var services = builder.Services.BuildServiceProvider();
        return services.GetRequiredService<ILoggerFactory>().CreateLogger(category);
    }
}
