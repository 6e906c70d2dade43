namespace Cortensor.Api.Inference;

/// <summary>The hot path's log lines, source-generated: nothing is formatted unless the level is on.</summary>
internal static partial class InferenceLog
{
    [LoggerMessage(LogLevel.Error, "Router {Router} rejected a request with {Status}: {Detail}")]
    public static partial void RouterRejected(ILogger logger, string router, int status, string detail);

    [LoggerMessage(LogLevel.Warning, "Router {Router} stream failed after output: {Failure}")]
    public static partial void StreamFailed(ILogger logger, string router, string? failure);

    [LoggerMessage(LogLevel.Warning, "Router {Router} reported usage out of bounds (prompt {Prompt} in [{Floor}, {Ceiling}], completion {Completion} in [0, {Max}]); billed {BilledPrompt}+{BilledCompletion}")]
    public static partial void UsageOutOfBounds(ILogger logger, string router, int? prompt, int floor, int ceiling, int? completion, int max, int billedPrompt, int billedCompletion);
}
