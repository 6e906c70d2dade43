using System.Net;
using System.Reflection;
using System.Text.Json;
using Cortensor.Api.Metering;
using Cortensor.Tests.Fixtures;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Hosting;
using Microsoft.AspNetCore.TestHost;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Diagnostics.HealthChecks;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Logging.Testing;
using StackExchange.Redis;

namespace Cortensor.Tests.Unit;

/// <summary>/health is public on the Api's external ingress: what a failing dependency says there.</summary>
public sealed class HealthAnswerTests
{
    [Fact]
    public async Task AFailingDependencyIsDegradedAndNamedByItsKindNotItsMessage()
    {
        var logs = new FakeLogCollector();
        await using var app = await HostAsync(checks => checks
            .AddCheck("database", () => throw new InvalidOperationException("Failed to connect to 10.4.2.7:5432 as portal_owner"))
            .AddCheck("routers", () => HealthCheckResult.Degraded("no available router in qwen", data: new Dictionary<string, object> { ["qwen"] = "0 of 1 routers available" }))
            // As EF Core's check does on an exception: Unhealthy, whatever the registration's failure status.
            .AddCheck("context", () => HealthCheckResult.Unhealthy("could not connect")),
            logs);

        var (status, report, text) = await HealthAsync(app);

        // Every replica shares the database: still ready (200), so the platform does not pull them all at once.
        Assert.Equal(HttpStatusCode.OK, status);
        Assert.Equal("Degraded", report.GetProperty("status").GetString());
        Assert.DoesNotContain("10.4.2.7", text, StringComparison.Ordinal);
        Assert.DoesNotContain("portal_owner", text, StringComparison.Ordinal);
        var checks = report.GetProperty("checks");
        Assert.Equal("Degraded", checks.GetProperty("database").GetProperty("status").GetString());
        Assert.Equal(nameof(InvalidOperationException), checks.GetProperty("database").GetProperty("description").GetString());
        Assert.Equal("Degraded", checks.GetProperty("context").GetProperty("status").GetString());
        // A check's own description and data, which the Portal writes, are still shown.
        Assert.Equal("no available router in qwen", checks.GetProperty("routers").GetProperty("description").GetString());
        Assert.Equal("0 of 1 routers available", checks.GetProperty("routers").GetProperty("data").GetProperty("qwen").GetString());
        // The operator finds the message where docs/operations.md says: the health check service's log.
        Assert.Contains(logs.GetSnapshot(), r => r.Level >= LogLevel.Warning && r.Category == "Microsoft.Extensions.Diagnostics.HealthChecks.DefaultHealthCheckService"
            && r.Exception?.Message.Contains("10.4.2.7:5432", StringComparison.Ordinal) == true);
    }

    [Fact]
    public async Task OnlyAReadinessCheckMakesTheReplicaUnhealthyAndAHungDependencyGivesUpAsDegradedOneRunAtATime()
    {
        var logs = new FakeLogCollector();
        var hungRuns = 0;
        var late = new TaskCompletionSource();
        await using var app = await HostAsync(checks => checks
            // As Npgsql's connect to a proxy that accepts and hangs: heeds no cancellation.
            .AddAsyncCheck("hung", _ =>
            {
                Interlocked.Increment(ref hungRuns);
                return new TaskCompletionSource<HealthCheckResult>().Task;
            })
            // Gives up when cancelled, after the answer was given without it: how it ended goes to the log.
            .AddAsyncCheck("late", async ct =>
            {
                await late.Task;
                ct.ThrowIfCancellationRequested();
                return HealthCheckResult.Healthy();
            })
            .AddCheck("catalog", () => HealthCheckResult.Unhealthy("catalog not loaded yet"), tags: [Microsoft.Extensions.Hosting.Extensions.ReadinessTag]),
            logs);

        for (var call = 0; call < 3; call++)
        {
            var (status, report, _) = await HealthAsync(app);
            Assert.Equal(HttpStatusCode.ServiceUnavailable, status);
            Assert.Equal("Unhealthy", report.GetProperty("checks").GetProperty("catalog").GetProperty("status").GetString());
            Assert.Equal("Degraded", report.GetProperty("checks").GetProperty("hung").GetProperty("status").GetString());
            // The hung check was given up on rather than waited for. (How soon is DependencyCheckTimeout, tied to the readiness
            // probe's timeout by AzureInfrastructureTests; the bound here only tells giving up from waiting, as a test run beside
            // the AppHost's start can take seconds more.)
            Assert.InRange(report.GetProperty("duration_ms").GetDouble(), 0, Microsoft.Extensions.Hosting.Extensions.DependencyCheckTimeout.TotalMilliseconds * 5);
        }
        // Three calls, one run: later calls waited on the run under way rather than start another.
        Assert.Equal(1, hungRuns);

        late.SetResult();
        await Eventually.WaitUntilAsync(() => logs.GetSnapshot().Any(r => r.Level == LogLevel.Warning && r.Message.Contains("late", StringComparison.Ordinal)
                && r.Exception is OperationCanceledException),
            TimeSpan.FromSeconds(10), "how the late check ended was not logged");
    }

    [Fact]
    public async Task AReplicaIsNotReadyUntilItHasReachedItsDependencyOnceAndStaysReadyAfter()
    {
        var up = false;
        await using var app = await HostAsync(checks => checks.AddReachedOnceCheck("redis-reached", _ => up, "Redis not reached since start"));

        Assert.Equal(HttpStatusCode.ServiceUnavailable, (await HealthAsync(app)).Status);
        up = true;
        Assert.Equal(HttpStatusCode.OK, (await HealthAsync(app)).Status);
        up = false;
        var (status, report, _) = await HealthAsync(app);
        Assert.Equal(HttpStatusCode.OK, status);
        Assert.Equal("Healthy", report.GetProperty("checks").GetProperty("redis-reached").GetProperty("status").GetString());
    }

    [Fact]
    public async Task AReplicaThatReachedItsDependencyWhileNoProbeAskedStaysReadyWhenTheDependencyGoes()
    {
        var up = true;
        await using var app = await HostAsync(checks => checks.AddReachedOnceCheck("redis-reached", _ => up, "Redis not reached since start"));

        // No /health call while the dependency is up: it is watched from the start all the same, until reached.
        var watcher = app.Services.GetServices<IHostedService>().OfType<BackgroundService>().Single(s => s.GetType().Name == "ReachedOnceWatcher");
        await watcher.ExecuteTask!.WaitAsync(TimeSpan.FromSeconds(10));
        up = false;
        var (status, report, _) = await HealthAsync(app);
        Assert.Equal(HttpStatusCode.OK, status);
        Assert.Equal("Healthy", report.GetProperty("checks").GetProperty("redis-reached").GetProperty("status").GetString());
    }

    private static async Task<WebApplication> HostAsync(Action<IHealthChecksBuilder> checks, FakeLogCollector? logs = null)
    {
        var builder = WebApplication.CreateBuilder();
        builder.WebHost.UseTestServer();
        builder.AddServiceDefaults();
        if (logs is not null) builder.Logging.AddProvider(new FakeLoggerProvider(logs));
        checks(builder.Services.AddHealthChecks());
        var app = builder.Build();
        app.MapDefaultEndpoints();
        await app.StartAsync();
        return app;
    }

    private static async Task<(HttpStatusCode Status, JsonElement Report, string Text)> HealthAsync(WebApplication app)
    {
        var answer = await app.GetTestClient().GetAsync("/health");
        var text = await answer.Content.ReadAsStringAsync();
        return (answer.StatusCode, JsonDocument.Parse(text).RootElement.Clone(), text);
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
