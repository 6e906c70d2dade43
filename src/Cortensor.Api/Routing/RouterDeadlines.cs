using Cortensor.Api.Catalog;

namespace Cortensor.Api.Routing;

/// <summary>
/// How long the Portal waits on a router, from the model's task timeouts (seconds, as the network counts them):
/// until the first token (the whole answer when not streamed) the task may take its pre-commit and its run,
/// plus a grace for the router to report its own timeout; between two streamed events, the task's timeout.
/// Public clients wait the same way (docs/router-contract.md, "Time").
/// </summary>
public static class RouterDeadlines
{
    public static TaskTimeouts For(CatalogModel model, RoutingOptions o) => new(
        Positive(model.TimeoutSeconds) ?? o.DefaultTimeoutSeconds,
        Positive(model.PrecommitTimeoutSeconds) ?? o.DefaultPrecommitTimeoutSeconds);

    public static TimeSpan FirstToken(TaskTimeouts t, RoutingOptions o) =>
        Cap(TimeSpan.FromSeconds(t.PrecommitTimeoutSeconds + t.TimeoutSeconds + o.DeadlineGraceSeconds), o.UpstreamTimeoutMs);

    public static TimeSpan Silence(TaskTimeouts t, RoutingOptions o) =>
        Cap(TimeSpan.FromSeconds(t.TimeoutSeconds + o.DeadlineGraceSeconds), o.StreamIdleTimeoutMs);

    private static TimeSpan Cap(TimeSpan value, int? capMs) =>
        capMs is > 0 && TimeSpan.FromMilliseconds(capMs.Value) < value ? TimeSpan.FromMilliseconds(capMs.Value) : value;

    private static int? Positive(int? value) => value is > 0 ? value : null;
}
