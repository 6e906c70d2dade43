using System.Diagnostics;

namespace Cortensor.Api.Routing;

/// <summary>
/// One routed request's hold on its router: counted in the router's in-flight load from the moment
/// it is picked, and released exactly once — as a success with its latency, or as a failure — on every
/// path: answered, failed, timed out, or the client gone (disposal without a verdict is a failure).
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

    public void Dispose() => Close(false);

    private void Close(bool success)
    {
        if (Interlocked.Exchange(ref _closed, 1) != 0) return;
        Route.State.Finish(success, Stopwatch.GetElapsedTime(_started).TotalMilliseconds);
    }
}
