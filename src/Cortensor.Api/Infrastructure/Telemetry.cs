using System.Diagnostics;

namespace Cortensor.Api.Infrastructure;

public static class Telemetry
{
    /// <summary>A span for one named step of the hot path; null (free) when nobody listens.</summary>
    public static Activity? StartStep(string step) => CortensorTelemetry.ActivitySource.StartActivity(step);
}
