using System.Diagnostics;

namespace Cortensor.Api.Infrastructure;

/// <summary>
/// Background jobs (ledger writers, reconciliation, the reaper, catalog reloads) trace each unit of work
/// under a root span of its own name, so their database and Redis calls are not bare traces; a pass that
/// did nothing is dropped rather than exported, so idle polling adds no noise.
/// </summary>
public static class BackgroundWork
{
    public static Activity? Start(string name)
    {
        // A root: whatever happened to be current (nothing, in a hosted service) is not its parent.
        var previous = Activity.Current;
        Activity.Current = null;
        var activity = CortensorTelemetry.ActivitySource.StartActivity(name, ActivityKind.Internal);
        if (activity is null) Activity.Current = previous;
        return activity;
    }

    /// <summary>Nothing worth a trace happened: the span is not exported.</summary>
    public static void Discard(this Activity? activity)
    {
        if (activity is null) return;
        activity.IsAllDataRequested = false;
        activity.ActivityTraceFlags &= ~ActivityTraceFlags.Recorded;
    }
}
