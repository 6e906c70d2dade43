namespace Cortensor.Api.Idempotency;

/// <summary>Settings of section <c>Idempotency</c>.</summary>
public sealed class IdempotencyOptions
{
    /// <summary>How long a stored answer is replayed for the same key and body.</summary>
    public int RetentionHours { get; set; } = 24;
    /// <summary>Most of an answer (SSE included) kept in memory while it is sent; a larger one is not retained.</summary>
    public int MaxCapturedBytes { get; set; } = 8 * 1024 * 1024;
    /// <summary>Most a stored answer takes in Redis, compressed; a larger one is not retained.</summary>
    public int MaxStoredBytes { get; set; } = 1024 * 1024;
}
