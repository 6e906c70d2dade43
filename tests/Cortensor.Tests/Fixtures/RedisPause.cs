using StackExchange.Redis;

namespace Cortensor.Tests.Fixtures;

/// <summary>
/// Redis holding every client's writes until the test lets go (<see cref="ResumeAsync"/>, or disposal if the test fails
/// first). A test that paused Redis for a fixed 1.5 s and expected a replica's 300 ms timeout to fire first failed on a
/// loaded CI machine: the client library notices timeouts on its once-a-second heartbeat, and a late heartbeat found
/// Redis's answer instead. So the pause lasts far longer than any test needs, and the test says when Redis answers again.
/// </summary>
public sealed class RedisPause : IAsyncDisposable
{
    // Only a safety net: Redis resumes by itself if the test process dies before letting go.
    private static readonly TimeSpan Longest = TimeSpan.FromSeconds(60);
    private readonly ConnectionMultiplexer _connection;
    private bool _resumed;

    private RedisPause(ConnectionMultiplexer connection) => _connection = connection;

    /// <summary>Holds every client's writes (scripts included); reads are still answered, <c>CLIENT</c> commands too.</summary>
    /// <remarks>
    /// On a connection of its own: Redis answers a client's commands in order, so an <c>UNPAUSE</c> sent on a connection
    /// whose write is being held would wait behind that write for the whole pause.
    /// </remarks>
    public static async Task<RedisPause> WritesAsync(string connectionString)
    {
        var connection = await ConnectionMultiplexer.ConnectAsync(connectionString);
        try
        {
            await connection.GetDatabase().ExecuteAsync("CLIENT", "PAUSE", ((long)Longest.TotalMilliseconds).ToString(), "WRITE");
            return new RedisPause(connection);
        }
        catch
        {
            await connection.DisposeAsync();
            throw;
        }
    }

    /// <summary>Redis runs what it held, in the order it arrived.</summary>
    public async Task ResumeAsync()
    {
        if (_resumed) return;
        _resumed = true;
        try
        {
            await _connection.GetDatabase().ExecuteAsync("CLIENT", "UNPAUSE");
        }
        finally
        {
            await _connection.DisposeAsync();
        }
    }

    /// <summary>
    /// Resumes if the test did not. A failure here is not thrown: it would hide the test's own, and Redis resumes by
    /// itself within a minute.
    /// </summary>
    public async ValueTask DisposeAsync()
    {
        try
        {
            await ResumeAsync();
        }
        catch (RedisException)
        {
        }
    }
}
