using System.Reflection;
using System.Text.Json;
using Cortensor.Api.Metering;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Hosting;
using Microsoft.AspNetCore.TestHost;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Diagnostics.HealthChecks;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Logging.Testing;
using StackExchange.Redis;

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

    [Fact]
    public async Task AUsagePipelineWhoseRedisDoesNotAnswerIsDegradedNotUnhealthy()
    {
        // Connected, but its reads time out (a slow or paused Redis): the check must not throw, which would make it
        // Unhealthy and have the platform pull the replica.
        var database = Stub<IDatabase>((method, _) => method.Name == nameof(IDatabase.StreamLengthAsync)
            ? Task.FromException<long>(new RedisTimeoutException("Timeout performing XLEN (2000ms) on 10.4.2.8:6379", CommandStatus.Sent))
            : throw new NotSupportedException(method.Name));
        var redis = Stub<IConnectionMultiplexer>((method, _) => method.Name switch
        {
            "get_IsConnected" => true,
            nameof(IConnectionMultiplexer.GetDatabase) => database,
            _ => throw new NotSupportedException(method.Name),
        });

        var result = await new UsagePipelineHealthCheck(redis).CheckHealthAsync(new HealthCheckContext());

        Assert.Equal(HealthStatus.Degraded, result.Status);
        Assert.Null(result.Exception);
        Assert.DoesNotContain("10.4.2.8", result.Description, StringComparison.Ordinal);
    }

    private static T Stub<T>(Func<MethodInfo, object?[]?, object?> answer) where T : class
    {
        var stub = DispatchProxy.Create<T, Answering>();
        ((Answering)(object)stub).Answer = answer;
        return stub;
    }

    /// <summary>An interface answered by a function: the few members a test touches, and a failure for any other.</summary>
    public class Answering : DispatchProxy
    {
        public Func<MethodInfo, object?[]?, object?> Answer { get; set; } = (m, _) => throw new NotSupportedException(m.Name);

        protected override object? Invoke(MethodInfo? targetMethod, object?[]? args) => Answer(targetMethod!, args);
    }
}
