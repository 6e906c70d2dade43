using System.Buffers;
using System.Diagnostics;
using System.Net.Http.Headers;
using Cortensor.Api.Catalog;
using Cortensor.Api.Errors;
using Cortensor.Api.Infrastructure;
using Cortensor.Api.Inference;
using Microsoft.Extensions.Options;
using Polly.CircuitBreaker;

namespace Cortensor.Api.Routing;

/// <summary>
/// A router's answer, before any byte went to the client: a complete answer (<see cref="Answer"/>), a stream
/// already holding its first piece of text (<see cref="Events"/>), or a refusal to pass on (non-2xx <see cref="Message"/>).
/// It owns the router lease: disposing it without a verdict releases the router's load and holds nothing against it.
/// </summary>
public sealed class RouterResponse(RouterLease lease, HttpResponseMessage message) : IDisposable
{
    public RouterLease Lease { get; } = lease;
    public RouteChoice Route => Lease.Route;
    public HttpResponseMessage Message { get; } = message;
    public RouterAnswer? Answer { get; init; }
    public RouterEventStream? Events { get; init; }
    public string? TaskId => Answer?.TaskId ?? Events?.TaskId;

    public void Dispose()
    {
        Message.Dispose();
        Lease.Dispose();
    }
}

/// <summary>
/// Sends a request to a router of the pool and waits for an answer. A connect failure, a 5xx, an open circuit,
/// or a 2xx that is not an answer (an error, a pending task, no text: <see cref="RouterAnswerReader"/>,
/// <see cref="RouterStreamReader"/>) moves the request once to another router: nothing has reached the client
/// yet, so the retry is invisible to it. No first token within the model's task timeouts is a 504 at once.
/// </summary>
public sealed class RouterForwarder(RouterBalancer balancer, RouterHttpClient client, IOptions<RoutingOptions> options,
    ILogger<RouterForwarder> log)
{
    private const int MaxAttempts = 2;
    private const int PooledAnswerBytes = 256 * 1024;
    private static readonly MediaTypeHeaderValue JsonMediaType = new("application/json");

    public async Task<(RouterResponse? Response, ApiError? Error)> SendAsync(
        CatalogPool pool, CatalogModel model, RouterCompletionRequest body, RouterWait wait, CancellationToken ct)
    {
        var o = options.Value;
        var timeouts = RouterDeadlines.For(model, o);
        var firstToken = RouterDeadlines.FirstToken(timeouts, o);
        var payload = RouterRequestWriter.Write(body, pool.Protocol, timeouts);
        string? tried = null;
        RouterFailure? notAnAnswer = null;
        var connectionFailed = false;
        var refused = 0;
        for (var attempt = 1; attempt <= MaxAttempts; attempt++)
        {
            var routeSpan = Telemetry.StartStep("route");
            // A pool with one router left has nowhere else to go: after a connection-level failure (a
            // pooled connection the router had closed) the same router is tried once more.
            var route = balancer.Pick(pool, exclude: tried) ?? (connectionFailed ? balancer.Pick(pool) : null);
            if (route is null)
            {
                routeSpan?.Dispose();
                break;
            }
            routeSpan?.SetTag("cortensor.pool", pool.Id);
            routeSpan?.SetTag("cortensor.router", route.Router.Id);
            routeSpan?.SetTag("cortensor.session", route.Session);
            routeSpan?.Dispose();

            var triedBefore = tried;
            tried = route.Router.Id;
            var lease = new RouterLease(route);
            var started = lease.StartedAt;
            using var forwardSpan = Telemetry.StartStep("forward");
            forwardSpan?.SetTag("cortensor.router", route.Router.Id);
            forwardSpan?.SetTag("cortensor.attempt", attempt);
            HttpResponseMessage? response = null;
            var answeredHere = false;
            // The attempt's one clock: the headers and a whole answer must both arrive within the model's first-token time.
            using var attemptDeadline = CancellationTokenSource.CreateLinkedTokenSource(ct);
            attemptDeadline.CancelAfter(firstToken);
            try
            {
                response = await route.State.Breaker.ExecuteAsync(async token =>
                {
                    using var request = new HttpRequestMessage(HttpMethod.Post, pool.Protocol.CompletionsUri(route.Router.BaseUrl, route.Session))
                    {
                        // Serialised up front: one write with a Content-Length instead of a chunked upload.
                        Content = new ByteArrayContent(payload) { Headers = { ContentType = JsonMediaType } },
                    };
                    request.Headers.Authorization = client.Authorization;
                    try
                    {
                        // A whole answer is read here, under the same clock as the headers: a body that stalls
                        // is the router's timeout and counts against its circuit.
                        return await client.Http.SendAsync(request,
                            body.Stream ? HttpCompletionOption.ResponseHeadersRead : HttpCompletionOption.ResponseContentRead, attemptDeadline.Token);
                    }
                    catch (OperationCanceledException) when (!token.IsCancellationRequested)
                    {
                        throw new TimeoutRejectedOrUpstreamTimeout(route.Router.Id);
                    }
                }, ct);

                // A redirect is a failed router too (its client does not follow one): another router is tried.
                if ((int)response.StatusCode is >= 500 or (>= 300 and < 400))
                {
                    RoutingLog.FailedStatus(log, route.Router.Id, (int)response.StatusCode, attempt);
                    Fail(lease, ref response);
                    continue;
                }
                if (!response.IsSuccessStatusCode) return (new RouterResponse(lease, response), null);

                var remaining = firstToken - Stopwatch.GetElapsedTime(started);
                var (answered, failure) = await ReadAnswerAsync(lease, response, body.Stream, remaining, attemptDeadline.Token, timeouts, o, ct);
                if (answered is not null)
                {
                    if (answered.TaskId is { } taskId) forwardSpan?.SetTag("cortensor.task_id", taskId);
                    response = null; // owned by the answer now
                    answeredHere = true;
                    return (answered, null);
                }
                forwardSpan?.SetStatus(ActivityStatusCode.Error, failure!.Kind.ToString());
                if (failure!.TaskId is { } failedTask) forwardSpan?.SetTag("cortensor.task_id", failedTask);
                RoutingLog.NotAnAnswer(log, route.Router.Id, failure.ToString(), attempt);
                Fail(lease, ref response);
                if (failure.Kind == RouterFailureKind.Timeout) return (null, ApiError.UpstreamTimeout());
                notAnAnswer = failure;
            }
            catch (BrokenCircuitException) when (++refused <= pool.Routers.Count)
            {
                // Polly refused the call without sending it (the router's trial after its break had just begun), so there
                // is no response: nothing is held against the router, and the request goes to another one without spending its retry.
                // The router that failed the previous attempt stays excluded: a refusal must not send the prompt back to it.
                lease.Dispose();
                forwardSpan?.SetStatus(ActivityStatusCode.Error, nameof(BrokenCircuitException));
                tried = triedBefore;
                attempt--;
            }
            catch (Exception ex) when (ex is HttpRequestException or BrokenCircuitException or TimeoutRejectedOrUpstreamTimeout)
            {
                Fail(lease, ref response);
                forwardSpan?.SetStatus(ActivityStatusCode.Error, ex.GetType().Name);
                RoutingLog.Failed(log, route.Router.Id, attempt, ex);
                connectionFailed = ex is HttpRequestException;
                // A second full wait would double the client's wait: a timeout answers 504 at once.
                if (ex is TimeoutRejectedOrUpstreamTimeout) return (null, ApiError.UpstreamTimeout());
            }
            catch
            {
                Fail(lease, ref response);
                throw;
            }
            finally
            {
                wait.Attempted(pool.Id, route.Router.Id, started, answeredHere);
            }
        }
        // Routers that answered without an answer are up, but the network failed the task: that is not a capacity problem.
        return (null, notAnAnswer is not null
            ? ApiError.UpstreamFailed()
            : ApiError.NoCapacity("This model has no capacity free right now. Retry shortly.", o.NoCapacityRetryAfterSeconds));
    }

    private static void Fail(RouterLease lease, ref HttpResponseMessage? response)
    {
        response?.Dispose();
        response = null;
        lease.Failed();
    }

    /// <summary>
    /// Reads until there is something to give the client: the whole body when it is one JSON answer (also when a
    /// stream was asked for), or the first piece of text of a stream. Null with the failure when it is not an answer.
    /// </summary>
    private static async Task<(RouterResponse? Response, RouterFailure? Failure)> ReadAnswerAsync(RouterLease lease,
        HttpResponseMessage response, bool stream, TimeSpan remaining, CancellationToken deadline, TaskTimeouts timeouts, RoutingOptions o,
        CancellationToken ct)
    {
        if (remaining <= TimeSpan.Zero) return (null, new RouterFailure(RouterFailureKind.Timeout, "no answer within the task timeouts"));
        if (stream && response.Content.Headers.ContentType?.MediaType is "text/event-stream")
        {
            var events = RouterEventStream.Over(await response.Content.ReadAsStreamAsync(ct), RouterDeadlines.Silence(timeouts, o), o.MaxAnswerBytes, ct);
            var first = await events.FirstAsync(remaining, ct);
            if (first.Kind == RouterStreamEventKind.Text)
                return (new RouterResponse(lease, response) { Events = events }, null);
            await events.DisposeAsync();
            return (null, first.Failure ?? new RouterFailure(RouterFailureKind.NoText, "the stream ended without text"));
        }

        byte[] bytes;
        int length;
        try
        {
            // A stream asked for and answered with one body: read within the same limit as an unstreamed answer.
            await response.Content.LoadIntoBufferAsync(o.MaxAnswerBytes, deadline);
            // The buffered body is read into a pooled array rather than copied into a new one: the reader keeps no
            // reference to it once it has taken the answer's values out. Only answers of an ordinary size: the shared
            // pool would keep arrays up to the answer limit (16 MB) after a burst of large answers.
            await using var body = await response.Content.ReadAsStreamAsync(deadline);
            length = checked((int)body.Length);
            bytes = length <= PooledAnswerBytes ? ArrayPool<byte>.Shared.Rent(length) : new byte[length];
            body.ReadExactly(bytes, 0, length);
        }
        catch (OperationCanceledException) when (!ct.IsCancellationRequested)
        {
            return (null, new RouterFailure(RouterFailureKind.Timeout, "the answer did not arrive within the task timeouts"));
        }
        catch (Exception ex) when (ex is HttpRequestException or IOException && !ct.IsCancellationRequested)
        {
            return (null, new RouterFailure(RouterFailureKind.Cut, ex.Message));
        }
        RouterReading reading;
        try
        {
            reading = RouterAnswerReader.Read(bytes.AsMemory(0, length));
        }
        finally
        {
            if (length <= PooledAnswerBytes) ArrayPool<byte>.Shared.Return(bytes);
        }
        if (reading.Answer is not { } answer) return (null, reading.Failure);
        return (stream
            ? new RouterResponse(lease, response) { Events = RouterEventStream.Of(answer) }
            : new RouterResponse(lease, response) { Answer = answer }, null);
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
        // A router that answers a prompt with a redirect has failed; following it would send the prompt (and the
        // pool's token) somewhere else. Without it the handler chain also skips a redirect stage on every request.
        AllowAutoRedirect = false,
    })
    {
        Timeout = Timeout.InfiniteTimeSpan, // each call carries its own deadline
        // An unstreamed answer is read whole by the client: past this it throws, and the router has failed.
        MaxResponseContentBufferSize = options.Value.MaxAnswerBytes,
    };

    public AuthenticationHeaderValue Authorization { get; } = new("Bearer", options.Value.RouterToken);

    public void Dispose() => Http.Dispose();
}
