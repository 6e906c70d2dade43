namespace Cortensor.RouterSim;

/// <summary>Fault injection for tests and benchmarks: read or replace the node's behaviour (delays, outages, quirks) at run time.</summary>
public static class ControlApi
{
    public static IEndpointRouteBuilder MapControlApi(this IEndpointRouteBuilder app)
    {
        var control = app.MapGroup("/control").AddEndpointFilter<RouterTokenFilter>().WithTags("Control");
        control.MapGet("/behaviour", (RouterNodeState node) => TypedResults.Ok(node.Behaviour));
        control.MapPut("/behaviour", (RouterBehaviour behaviour, RouterNodeState node) =>
        {
            if (behaviour.ErrorRate is < 0 or > 1)
                return RouterApi.RouterError(StatusCodes.Status400BadRequest, "invalid_error_rate", "error_rate must be between 0 and 1");
            if (behaviour.TokensPerSecond < 0 || behaviour.TimeToFirstTokenMs < 0 || behaviour.AssignmentDelayMs < 0
                || behaviour.PrecommitDelayMs < 0 || behaviour.CutStreamAfterTokens < 0)
                return RouterApi.RouterError(StatusCodes.Status400BadRequest, "invalid_behaviour", "delays, rates and cut points must not be negative");
            node.Behaviour = behaviour;
            return Results.Ok(behaviour);
        });
        return app;
    }
}
