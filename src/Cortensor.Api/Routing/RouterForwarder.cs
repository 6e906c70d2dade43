using System.Diagnostics;
using System.Net.Http.Headers;
using System.Text.Json;
using Cortensor.Api.Catalog;
using Cortensor.Api.Errors;
using Cortensor.Api.Infrastructure;
using Cortensor.Api.Inference;
using Microsoft.Extensions.Options;
using Polly.CircuitBreaker;

namespace Cortensor.Api.Routing;

/// <summary>An open response from a router, before any byte went to the client; it owns the router lease.</summary>
public sealed record RouterResponse(RouterLease Lease, HttpResponseMessage Message) : IDisposable
{
    public RouteChoice Route => Lease.Route;

    public void Dispose()
    {
        Message.Dispose();
        Lease.Dispose();
    }
}

/// <summary>
/// Sends a request to a router of the pool. A connect failure, a timeout before the answer
/// starts, a 5xx or an open circuit moves the request once to another router: nothing has
/// reached the client yet, so the retry is invisible to it.
/// </summary>
public sealed class RouterForwarder(RouterBalancer balancer, RouterHttpClient client, IOptions<RoutingOptions> options,
    ILogger<RouterForwarder> log)
{
    public int StreamIdleTimeoutMs => options.Value.StreamIdleTimeoutMs;
    private const int MaxAttempts = 2;
    private static readonly MediaTypeHeaderValue JsonMediaType = new("application/json");

    /// <param name="stream">
    /// False: the whole answer is read within the deadline (headers and body under one clock, and a
    /// stall counts as the router's failure). True: only until the headers; the relay watches the rest.
    /// </param>
    public async Task<(RouterResponse? Response, ApiError? Error)> SendAsync(
        CatalogPool pool, RouterCompletionRequest body, bool stream, CancellationToken ct)
    {
        var o = options.Value;
        string? tried = null;
        for (var attempt = 1; attempt <= MaxAttempts; attempt++)
        {
            var routeSpan = CortensorTelemetry.ActivitySource.StartActivity("route");
            var route = balancer.Pick(pool, exclude: tried);
            if (route is null)
            {
                routeSpan?.Dispose();
                break;
            }
            routeSpan?.SetTag("cortensor.pool", pool.Id);
            routeSpan?.SetTag("cortensor.router", route.Router.Id);
            routeSpan?.SetTag("cortensor.session", route.Session);
            routeSpan?.Dispose();

            tried = route.Router.Id;
            var lease = new RouterLease(route);
            using var forwardSpan = CortensorTelemetry.ActivitySource.StartActivity("forward");
            forwardSpan?.SetTag("cortensor.router", route.Router.Id);
            forwardSpan?.SetTag("cortensor.attempt", attempt);
            try
            {
                var response = await route.State.Breaker.ExecuteAsync(async token =>
                {
                    using var timeout = CancellationTokenSource.CreateLinkedTokenSource(token);
                    timeout.CancelAfter(o.UpstreamTimeoutMs);
                    using var request = new HttpRequestMessage(HttpMethod.Post, $"{route.Router.BaseUrl}/api/v1/completions/{route.Session}")
                    {
                        // Serialised up front: one write with a Content-Length instead of a chunked upload.
                        Content = new ByteArrayContent(JsonSerializer.SerializeToUtf8Bytes(body, PortalJsonContext.Default.RouterCompletionRequest))
                        {
                            Headers = { ContentType = JsonMediaType },
                        },
                    };
                    request.Headers.Authorization = client.Authorization;
                    try
                    {
                        return await client.Http.SendAsync(request, stream ? HttpCompletionOption.ResponseHeadersRead : HttpCompletionOption.ResponseContentRead, timeout.Token);
                    }
                    catch (OperationCanceledException) when (!token.IsCancellationRequested)
                    {
                        throw new TimeoutRejectedOrUpstreamTimeout(route.Router.Id);
                    }
                }, ct);

                if ((int)response.StatusCode >= 500)
                {
                    log.LogWarning("Router {Router} answered {Status}; attempt {Attempt}", route.Router.Id, (int)response.StatusCode, attempt);
                    response.Dispose();
                    lease.Failed();
                    continue;
                }
                return (new RouterResponse(lease, response), null);
            }
            catch (Exception ex) when (ex is HttpRequestException or BrokenCircuitException or TimeoutRejectedOrUpstreamTimeout)
            {
                lease.Failed();
                forwardSpan?.SetStatus(ActivityStatusCode.Error, ex.GetType().Name);
                log.LogWarning("Router {Router} failed ({Error}); attempt {Attempt}", route.Router.Id, ex.Message, attempt);
                // A second full wait would double the client's wait: a timeout answers 504 at once.
                if (ex is TimeoutRejectedOrUpstreamTimeout) return (null, ApiError.UpstreamTimeout());
            }
            catch
            {
                lease.Failed();
                throw;
            }
        }
        return (null, ApiError.NoCapacity("This model has no capacity free right now. Retry shortly.", o.NoCapacityRetryAfterSeconds));
    }
}

/// <summary>
/// The one HttpClient to router nodes. Built by hand rather than through IHttpClientFactory because
/// the service defaults add a retry/resilience handler and per-request service discovery to every
/// factory client: failover here is per router (RouterForwarder), and router addresses are resolved
/// once per catalog load (CatalogStore), not on every request.
/// </summary>
public sealed class RouterHttpClient(IOptions<RoutingOptions> options) : IDisposable
{
    public HttpClient Http { get; } = new(new SocketsHttpHandler
    {
        PooledConnectionLifetime = TimeSpan.FromMinutes(2),
        MaxConnectionsPerServer = int.MaxValue,
        AutomaticDecompression = System.Net.DecompressionMethods.None,
        UseCookies = false,
        UseProxy = false,
        ConnectTimeout = TimeSpan.FromSeconds(5),
    })
    {
        Timeout = Timeout.InfiniteTimeSpan, // each call carries its own deadline
    };

    public AuthenticationHeaderValue Authorization { get; } = new("Bearer", options.Value.RouterToken);

    public void Dispose() => Http.Dispose();
}
