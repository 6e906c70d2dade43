namespace Cortensor.Api.Routing;

/// <summary>Routing's log lines, source-generated, with the exception kept where there is one.</summary>
internal static partial class RoutingLog
{
    [LoggerMessage(LogLevel.Warning, "Router {Router} answered {Status}; attempt {Attempt}")]
    public static partial void FailedStatus(ILogger logger, string router, int status, int attempt);

    [LoggerMessage(LogLevel.Warning, "Router {Router} answered 2xx without an answer ({Failure}); attempt {Attempt}")]
    public static partial void NotAnAnswer(ILogger logger, string router, string failure, int attempt);

    [LoggerMessage(LogLevel.Warning, "Router {Router} failed; attempt {Attempt}")]
    public static partial void Failed(ILogger logger, string router, int attempt, Exception exception);

    [LoggerMessage(LogLevel.Warning, "Router {Router} of pool {Pool} is now {State}")]
    public static partial void HealthChanged(ILogger logger, string router, string pool, string state);
}
