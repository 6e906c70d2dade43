using System.Diagnostics;
using System.Net.Http.Headers;
using System.Net.Http.Json;
using Cortensor.Api.Catalog;
using Cortensor.Api.Errors;
using Cortensor.Api.Infrastructure;
using Cortensor.Api.Inference;
using Microsoft.Extensions.Options;
using Polly.CircuitBreaker;

namespace Cortensor.Api.Routing;

/// <summary>An open response from a router, before any byte went to the client.</summary>
public sealed record RouterResponse(RouteChoice Route, HttpResponseMessage Message, long StartedAt) : IDisposable
{
    public void Dispose() => Message.Dispose();
}

/// <summary>
/// Sends a request to a router of the pool. A connect failure, a timeout before the answer
/// starts, a 5xx or an open circuit moves the request once to another router: nothing has
/// reached the client yet, so the retry is invisible to it.
/// </summary>
public sealed class RouterForwarder(RouterBalancer balancer, IHttpClientFactory clients, IOptions<RoutingOptions> options,
    ILogger<RouterForwarder> log)
{
    public const string ClientName = "routers";
    public int StreamIdleTimeoutMs => options.Value.StreamIdleTimeoutMs;
    private const int MaxAttempts = 2;

    public async Task<(RouterResponse? Response, ApiError? Error)> SendAsync(
        CatalogPool pool, RouterCompletionRequest body, CancellationToken ct)
    {
        var o = options.Value;
        string? tried = null;
        for (var attempt = 1; attempt <= MaxAttempts; attempt++)
        {
            using var routeSpan = CortensorTelemetry.ActivitySource.StartActivity("route");
            var route = balancer.Pick(pool, exclude: tried);
            if (route is null) break;
            routeSpan?.SetTag("cortensor.pool", pool.Id);
            routeSpan?.SetTag("cortensor.router", route.Router.Id);
            routeSpan?.SetTag("cortensor.session", route.Session);
            routeSpan?.Dispose();

            tried = route.Router.Id;
            var started = Stopwatch.GetTimestamp();
            route.State.Start();
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
                        Content = JsonContent.Create(body, PortalJsonContext.Default.RouterCompletionRequest),
                    };
                    request.Headers.Authorization = new AuthenticationHeaderValue("Bearer", o.RouterToken);
                    try
                    {
                        return await clients.CreateClient(ClientName).SendAsync(request, HttpCompletionOption.ResponseHeadersRead, timeout.Token);
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
                    route.State.Finish(false, 0);
                    continue;
                }
                return (new RouterResponse(route, response, started), null);
            }
            catch (Exception ex) when (ex is HttpRequestException or BrokenCircuitException or TimeoutRejectedOrUpstreamTimeout)
            {
                route.State.Finish(false, 0);
                forwardSpan?.SetStatus(ActivityStatusCode.Error, ex.GetType().Name);
                log.LogWarning("Router {Router} failed ({Error}); attempt {Attempt}", route.Router.Id, ex.Message, attempt);
                // A second full wait would double the client's wait: a timeout answers 504 at once.
                if (ex is TimeoutRejectedOrUpstreamTimeout) return (null, ApiError.UpstreamTimeout());
            }
            catch
            {
                route.State.Finish(false, 0);
                throw;
            }
        }
        return (null, ApiError.NoCapacity("This model has no capacity free right now. Retry shortly.", o.NoCapacityRetryAfterSeconds));
    }
}
