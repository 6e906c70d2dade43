using System.Net.Http.Json;
using System.Text.Json;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Hosting;
using Microsoft.AspNetCore.TestHost;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Diagnostics.HealthChecks;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Logging.Testing;

namespace Cortensor.Tests.Unit;

/// <summary>/health is public on the Api's external ingress: what a failing dependency says there.</summary>
public sealed class HealthAnswerTests
{
    [Fact]
    public async Task AFailingChecksExceptionIsNamedByItsKindNotItsMessage()
    {
        var builder = WebApplication.CreateBuilder();
        builder.WebHost.UseTestServer();
        builder.AddServiceDefaults();
        var logs = new FakeLogCollector();
        builder.Logging.AddProvider(new FakeLoggerProvider(logs));
        builder.Services.AddHealthChecks()
            .AddCheck("database", () => throw new InvalidOperationException("Failed to connect to 10.4.2.7:5432 as portal_owner"))
            .AddCheck("catalog", () => HealthCheckResult.Degraded("no available router in qwen", data: new Dictionary<string, object> { ["qwen"] = "0 of 1 routers available" }));
        await using var app = builder.Build();
        app.MapDefaultEndpoints();
        await app.StartAsync();

        var answer = await app.GetTestClient().GetAsync("/health");
        var text = await answer.Content.ReadAsStringAsync();

        Assert.Equal(System.Net.HttpStatusCode.ServiceUnavailable, answer.StatusCode);
        Assert.DoesNotContain("10.4.2.7", text, StringComparison.Ordinal);
        Assert.DoesNotContain("portal_owner", text, StringComparison.Ordinal);
        var checks = JsonDocument.Parse(text).RootElement.GetProperty("checks");
        Assert.Equal("Unhealthy", checks.GetProperty("database").GetProperty("status").GetString());
        Assert.Equal(nameof(InvalidOperationException), checks.GetProperty("database").GetProperty("description").GetString());
        // A check's own description and data, which the Portal writes, are still shown.
        Assert.Equal("no available router in qwen", checks.GetProperty("catalog").GetProperty("description").GetString());
        Assert.Equal("0 of 1 routers available", checks.GetProperty("catalog").GetProperty("data").GetProperty("qwen").GetString());
        // The operator finds the message where docs/operations.md says: the health check service's log, at Error.
        Assert.Contains(logs.GetSnapshot(), r => r.Level == LogLevel.Error && r.Category == "Microsoft.Extensions.Diagnostics.HealthChecks.DefaultHealthCheckService"
            && r.Exception?.Message.Contains("10.4.2.7:5432", StringComparison.Ordinal) == true);
    }
}
