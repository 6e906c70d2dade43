namespace Cortensor.Api.Infrastructure;

/// <summary>
/// Names the Api replica that served a response (<c>x-cortensor-replica</c>), so an operator, a
/// support ticket or a test can tell which process answered behind the load balancer.
/// </summary>
public static class ReplicaId
{
    public const string Header = "x-cortensor-replica";

    /// <summary>
    /// Stable for the life of the process. In order: <c>Replica:Id</c> configuration; the instance name
    /// Aspire gives each replica (<c>service.instance.id</c> in <c>OTEL_RESOURCE_ATTRIBUTES</c>, e.g.
    /// <c>api-x7k2mq9d</c>, the name the dashboard shows); Azure Container Apps' replica name;
    /// else machine name and process id.
    /// </summary>
    public static string Resolve(IConfiguration configuration)
    {
        if (configuration["Replica:Id"] is { Length: > 0 } configured) return configured;
        foreach (var attribute in (configuration["OTEL_RESOURCE_ATTRIBUTES"] ?? "").Split(','))
        {
            var (name, value) = attribute.IndexOf('=') is var i and > 0 ? (attribute[..i].Trim(), attribute[(i + 1)..].Trim()) : ("", "");
            // Aspire passes the replica's suffix only; with the service name it is the dashboard's name.
            if (name == "service.instance.id" && value.Length > 0)
                return configuration["OTEL_SERVICE_NAME"] is { Length: > 0 } service && !value.StartsWith(service + "-", StringComparison.Ordinal)
                    ? $"{service}-{value}" : value;
        }
        if (configuration["CONTAINER_APP_REPLICA_NAME"] is { Length: > 0 } containerApp) return containerApp;
        return $"{Environment.MachineName}-{Environment.ProcessId}";
    }

    public static IApplicationBuilder UseReplicaId(this IApplicationBuilder app)
    {
        var id = Resolve(app.ApplicationServices.GetRequiredService<IConfiguration>());
        // Set as the response starts, not now: the exception handler clears headers set earlier.
        Func<object, Task> stamp = state =>
        {
            ((HttpResponse)state).Headers[Header] = id;
            return Task.CompletedTask;
        };
        return app.Use((http, next) =>
        {
            http.Response.OnStarting(stamp, http.Response);
            return next(http);
        });
    }
}
