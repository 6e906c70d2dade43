using System.Diagnostics;

namespace Cortensor.Api.Infrastructure;

public static class Telemetry
{
    /// <summary>
    /// A span for one named step of the request's trace; none at all when nobody listens or the request is not sampled.
    /// The eight steps are roughly half of what tracing a request costs the Api (bench/limits.md, eleventh round); an
    /// unsampled request costs nothing measurable.
    /// </summary>
    public static Activity? StartStep(string step) =>
        Activity.Current is { Recorded: false } ? null : CortensorTelemetry.ActivitySource.StartActivity(step);

    /// <summary>A step that refused the request carries the refusal's code, so a trace shows why.</summary>
    public static void Outcome(Activity? step, Errors.ApiError? error)
    {
        if (step is null || error is null) return;
        step.SetTag("cortensor.error_code", error.Code);
        step.SetStatus(ActivityStatusCode.Error, error.Code);
    }
}
