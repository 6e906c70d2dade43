using System.Diagnostics;

namespace Cortensor.Api.Routing;

/// <summary>
/// One routed request's hold on its router: counted in the router's in-flight load from the moment
/// it is picked, and released exactly once — as a success with its latency, as a failure, or (the client gone)
/// without a verdict — on every path.
/// The outcome is recorded once, after the request, as YARP's passive health check does.
/// </summary>
public sealed class RouterLease : IDisposable
{
    private readonly long _started = Stopwatch.GetTimestamp();
    private int _closed;

    public RouterLease(RouteChoice route)
    {
        Route = route;
        route.State.Start();
    }

    public RouteChoice Route { get; }

    public long StartedAt => _started;

    public void Succeeded() => Close(true);

    public void Failed() => Close(false);

    /// <summary>Without a verdict (the client went away, or an exception): the load comes off, nothing is held against the router.</summary>
    public void Dispose()
    {
        if (Interlocked.Exchange(ref _closed, 1) == 0) Route.State.Release();
    }

    private void Close(bool success)
    {
        if (Interlocked.Exchange(ref _closed, 1) != 0) return;
        Route.State.Finish(success, Stopwatch.GetElapsedTime(_started).TotalMilliseconds);
    }
}
