using System.Diagnostics;

namespace Microsoft.Extensions.Hosting;

/// <summary>The one activity source and meter every Cortensor service records on.</summary>
public static class CortensorTelemetry
{
    public const string ActivitySourceName = "Cortensor";
    public const string MeterName = "Cortensor";
    public static readonly ActivitySource ActivitySource = new(ActivitySourceName);
}
