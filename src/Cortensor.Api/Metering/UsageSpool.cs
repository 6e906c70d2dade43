using StackExchange.Redis;

namespace Cortensor.Api.Metering;

/// <summary>
/// A local append-only file of usage records that could not reach Redis, one JSON document per
/// line, flushed to disk on every append. Replayed into the stream when Redis answers again;
/// duplicates from a replay interrupted half-way are harmless (the writer is idempotent).
/// </summary>
public sealed class UsageSpool(IConfiguration configuration, IConnectionMultiplexer redis, IServiceProvider services, ILogger<UsageSpool> log) : BackgroundService
{
    private readonly SemaphoreSlim _lock = new(1, 1);
    private readonly string _path = Path.Combine(
        configuration["Metering:SpoolDirectory"] is { Length: > 0 } dir ? dir : Path.Combine(Path.GetTempPath(), "cortensor-spool"),
        $"usage-{Environment.MachineName}-{Environment.ProcessId}.jsonl");

    public async Task AppendAsync(byte[] json)
    {
        await _lock.WaitAsync();
        try
        {
            Directory.CreateDirectory(Path.GetDirectoryName(_path)!);
            await using var file = new FileStream(_path, FileMode.Append, FileAccess.Write, FileShare.Read, 4096, FileOptions.WriteThrough);
            await file.WriteAsync(json);
            await file.WriteAsync("\n"u8.ToArray());
            await file.FlushAsync();
        }
        finally
        {
            _lock.Release();
        }
    }

    protected override async Task ExecuteAsync(CancellationToken stoppingToken)
    {
        var directory = Path.GetDirectoryName(_path)!;
        using var timer = new PeriodicTimer(TimeSpan.FromSeconds(2));
        while (await timer.WaitForNextTickAsync(stoppingToken))
        {
            if (!redis.IsConnected || !Directory.Exists(directory)) continue;
            // Spools left by earlier processes of this machine are replayed too.
            foreach (var file in Directory.EnumerateFiles(directory, "usage-*.jsonl"))
            {
                try
                {
                    await ReplayAsync(file);
                }
                catch (Exception ex) when (ex is RedisException or TimeoutException or IOException)
                {
                    log.LogWarning("Spool replay of {File} paused: {Error}", file, ex.Message);
                    break;
                }
            }
        }
    }

    private async Task ReplayAsync(string file)
    {
        await _lock.WaitAsync();
        try
        {
            var lines = await File.ReadAllLinesAsync(file);
            // Through the meter: a spooled record settles its reservation now, once.
            var meter = services.GetRequiredService<UsageMeter>();
            foreach (var line in lines.Where(l => l.Length > 0))
                await meter.ReplayAsync(System.Text.Encoding.UTF8.GetBytes(line));
            File.Delete(file);
            if (lines.Length > 0) log.LogInformation("Replayed {Count} spooled usage records from {File}", lines.Length, file);
        }
        finally
        {
            _lock.Release();
        }
    }
}
