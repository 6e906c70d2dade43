namespace Cortensor.Tests.Fixtures;

/// <summary>
/// Waiting in tests: poll a condition until it holds or a deadline passes, never a fixed sleep.
/// A fixed sleep is either too short on a loaded machine or longer than needed on a quiet one.
/// </summary>
public static class Eventually
{
    private static readonly TimeSpan DefaultInterval = TimeSpan.FromMilliseconds(100);

    /// <summary>
    /// How long a test waits for a change (a revocation, a pause, an edit, a grant, a drain) to reach every replica.
    /// Pushed changes arrive in milliseconds; this is long enough for a CI machine three times slower than usual, and
    /// still far below every path a change could otherwise ride in on (an access token's 15 minutes, the key snapshot's
    /// 5 minutes, the ledger reconciler's 60 s, negative entries' and the catalog poll's 30 s), so a pass still means it
    /// was pushed. A tighter bound would time the CI machine rather than test the Portal.
    /// </summary>
    public static readonly TimeSpan Propagation = TimeSpan.FromSeconds(10);

    /// <summary>
    /// Waits, if need be, until the calendar minute has at least 20 s left. Limits count requests per calendar minute, and
    /// a burst across a minute's end would see two windows; tests call this after their setup, just before the burst.
    /// </summary>
    public static Task EarlyInAMinuteAsync() =>
        WaitUntilAsync(() => DateTimeOffset.UtcNow.Second <= 40, TimeSpan.FromSeconds(25), "the clock did not pass the minute", TimeSpan.FromMilliseconds(250));

    /// <summary>Polls <paramref name="condition"/> until it is true; fails with <paramref name="message"/> after <paramref name="timeout"/>.</summary>
    public static async Task WaitUntilAsync(Func<Task<bool>> condition, TimeSpan timeout, string message, TimeSpan? interval = null)
    {
        var deadline = DateTime.UtcNow + timeout;
        while (true)
        {
            if (await condition()) return;
            if (DateTime.UtcNow >= deadline) throw new TimeoutException($"{message} (not within {timeout.TotalSeconds:0.#} s)");
            await Task.Delay(interval ?? DefaultInterval);
        }
    }

    public static Task WaitUntilAsync(Func<bool> condition, TimeSpan timeout, string message, TimeSpan? interval = null) =>
        WaitUntilAsync(() => Task.FromResult(condition()), timeout, message, interval);

    /// <summary>
    /// Polls <paramref name="probe"/> until <paramref name="done"/> holds for its value and returns that value;
    /// the failure names the last value seen. Exceptions of type <typeparamref name="TTransient"/> count as "not yet"
    /// (e.g. an HttpRequestException while a dependency restarts).
    /// </summary>
    public static async Task<T> WaitForAsync<T, TTransient>(Func<Task<T>> probe, Func<T, bool> done, TimeSpan timeout, string message, TimeSpan? interval = null)
        where TTransient : Exception
    {
        var deadline = DateTime.UtcNow + timeout;
        var last = "nothing yet";
        while (true)
        {
            try
            {
                var value = await probe();
                if (done(value)) return value;
                last = value?.ToString() ?? "null";
            }
            catch (TTransient ex) when (DateTime.UtcNow < deadline)
            {
                last = ex.Message;
            }
            if (DateTime.UtcNow >= deadline) throw new TimeoutException($"{message} (not within {timeout.TotalSeconds:0.#} s; last seen: {last})");
            await Task.Delay(interval ?? DefaultInterval);
        }
    }

    public static Task<T> WaitForAsync<T>(Func<Task<T>> probe, Func<T, bool> done, TimeSpan timeout, string message, TimeSpan? interval = null) =>
        WaitForAsync<T, NeverTransient>(probe, done, timeout, message, interval);

    private sealed class NeverTransient : Exception;
}
