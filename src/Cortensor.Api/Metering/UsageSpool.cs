using Microsoft.Extensions.Options;
using System.Text.Json;
using Cortensor.Api.Infrastructure;
using StackExchange.Redis;

namespace Cortensor.Api.Metering;

/// <summary>
/// A local append-only file of usage records that could not reach Redis, one JSON document per line.
/// Each record is one write of the whole line (payload and newline in one buffer) to the end of the file,
/// flushed to disk, so a crash tears at most the last line and never joins two records. The file is held
/// open with an exclusive OS lock for the life of the process: it has one owner, and another process
/// replays it only once it can take the lock, that is once its owner is dead. Replay goes through
/// <see cref="UsageMeter.ReplayAsync"/> (normalised like any record; a spooled settlement settles its
/// reservation then, once) into the stream; a torn or unreadable
/// line becomes a dead letter. Duplicates from a replay interrupted half-way are harmless (the writer is idempotent).
/// </summary>
public sealed partial class UsageSpool(IOptions<MeteringOptions> options, IHostEnvironment environment, IConnectionMultiplexer redis,
    IServiceProvider services, ILogger<UsageSpool> log)
    : BackgroundService
{
    private const string Pattern = "usage-*.jsonl";
    private readonly SemaphoreSlim _lock = new(1, 1);
    private FileStream? _file;
    /// <summary>The file may end in a partial line (a failed write, or a torn file inherited): the next line starts afresh.</summary>
    private bool _tornTail;

    /// <summary>Metering:SpoolDirectory (each stack sets a persistent one), else a folder under the content root, never a temp folder.</summary>
    public string Directory { get; } = options.Value.SpoolDirectory is { Length: > 0 } dir
        ? Path.GetFullPath(dir)
        : Path.Combine(environment.ContentRootPath, "usage-spool");

    public string FilePath => Path.Combine(Directory, $"usage-{Environment.MachineName}-{Environment.ProcessId}.jsonl");

    public async Task AppendAsync(byte[] json)
    {
        await _lock.WaitAsync();
        try
        {
            var file = _file ??= Own();
            var line = new byte[json.Length + (_tornTail ? 2 : 1)];
            if (_tornTail) line[0] = (byte)'\n';
            json.CopyTo(line, _tornTail ? 1 : 0);
            line[^1] = (byte)'\n';
            file.Seek(0, SeekOrigin.End);
            try
            {
                await file.WriteAsync(line);
                await file.FlushAsync();
                _tornTail = false;
            }
            catch (IOException)
            {
                _tornTail = true;
                throw;
            }
        }
        finally
        {
            _lock.Release();
        }
    }

    /// <summary>Opens this process's spool file, locked against every other process, for the life of the process.</summary>
    private FileStream Own()
    {
        System.IO.Directory.CreateDirectory(Directory);
        // FileShare.None takes an exclusive flock on Unix: the lock that says this process owns the file.
        // bufferSize 0: every write goes straight to the file in one call; WriteThrough: to the disk.
        var file = new FileStream(FilePath, FileMode.OpenOrCreate, FileAccess.ReadWrite, FileShare.None, 0, FileOptions.WriteThrough);
        _tornTail = EndsTorn(file);
        return file;
    }

    private static bool EndsTorn(FileStream file)
    {
        if (file.Length == 0) return false;
        file.Seek(-1, SeekOrigin.End);
        return file.ReadByte() != '\n';
    }

    protected override async Task ExecuteAsync(CancellationToken stoppingToken)
    {
        Log.Location(log, Directory);
        using var timer = new PeriodicTimer(TimeSpan.FromSeconds(2));
        while (await timer.WaitForNextTickAsync(stoppingToken))
        {
            if (!redis.IsConnected) continue;
            try
            {
                await ReplayAllAsync();
            }
            catch (Exception ex) when (Outage.IsRedis(ex, stoppingToken) || ex is IOException or UnauthorizedAccessException)
            {
                Log.ReplayPaused(log, ex);
            }
            catch (Exception ex) when (!stoppingToken.IsCancellationRequested)
            {
                BackgroundLoop.Failed(log, "usage spool replay", ex);
            }
        }
    }

    /// <summary>Replays this process's spool and every spool whose owner is gone; returns the lines replayed.</summary>
    public async Task<int> ReplayAllAsync()
    {
        if (!System.IO.Directory.Exists(Directory)) return 0;
        var replayed = 0;
        foreach (var path in System.IO.Directory.EnumerateFiles(Directory, Pattern))
        {
            await _lock.WaitAsync();
            try
            {
                if (_file is not null && path == FilePath)
                {
                    replayed += await ReplayAsync(_file, path);
                    _tornTail = false;
                    continue;
                }
                FileStream orphan;
                try
                {
                    orphan = new FileStream(path, FileMode.Open, FileAccess.ReadWrite, FileShare.None, 0, FileOptions.WriteThrough);
                }
                catch (Exception ex) when (ex is IOException or UnauthorizedAccessException)
                {
                    continue; // its owner is alive (or it was just replayed by another process)
                }
                await using (orphan)
                {
                    replayed += await ReplayAsync(orphan, path);
                    File.Delete(path);
                }
            }
            finally
            {
                _lock.Release();
            }
        }
        return replayed;
    }

    /// <summary>Every line into the stream (or the dead letters), then the file emptied; the caller holds its lock.</summary>
    private async Task<int> ReplayAsync(FileStream file, string path)
    {
        file.Seek(0, SeekOrigin.Begin);
        var content = new byte[file.Length];
        await file.ReadExactlyAsync(content);
        if (content.Length == 0) return 0;

        var db = redis.GetDatabase();
        // Resolved here, not injected: the meter spools through this class.
        var meter = services.GetRequiredService<UsageMeter>();
        var (lines, dead) = (0, 0);
        var at = DateTimeOffset.UtcNow;
        var rest = content.AsMemory();
        while (rest.Length > 0)
        {
            var end = rest.Span.IndexOf((byte)'\n');
            var line = end < 0 ? rest : rest[..end];
            rest = end < 0 ? Memory<byte>.Empty : rest[(end + 1)..];
            if (line.Length == 0) continue;
            lines++;
            if (end >= 0 && Parse(line.Span) is { } record)
            {
                await meter.ReplayAsync(record);
                continue;
            }
            // A line cut short by a crash, or not a usage record: kept whole for an operator, never dropped.
            var error = end < 0 ? "torn spool line (no line end)" : "unreadable spool line";
            Log.DeadLetter(log, path, error);
            await UsageDeadLetters.Add(db, new UsageDeadLetters.DeadLetter(Path.GetFileName(path), error, line.ToArray()), at);
            dead++;
        }
        // Emptied before it is deleted, so a process that opened it just before the delete finds nothing to replay again.
        file.SetLength(0);
        await file.FlushAsync();
        UsageDeadLetters.Count(dead, "spool");
        Log.Replayed(log, lines, path, dead);
        return lines;
    }

    private static UsageRecord? Parse(ReadOnlySpan<byte> line)
    {
        try
        {
            return JsonSerializer.Deserialize(line, PortalJsonContext.Default.UsageRecord);
        }
        catch (Exception ex) when (ex is JsonException or InvalidOperationException or ArgumentException or NotSupportedException)
        {
            return null;
        }
    }

    public override void Dispose()
    {
        _file?.Dispose();
        base.Dispose();
    }

    private static partial class Log
    {
        [LoggerMessage(Level = LogLevel.Information, Message = "Usage spool directory: {Directory}")]
        public static partial void Location(ILogger logger, string directory);

        [LoggerMessage(Level = LogLevel.Warning, Message = "Spool replay paused")]
        public static partial void ReplayPaused(ILogger logger, Exception exception);

        [LoggerMessage(Level = LogLevel.Information, Message = "Replayed {Count} spooled usage records from {File} ({DeadLetters} set aside as dead letters)")]
        public static partial void Replayed(ILogger logger, int count, string file, int deadLetters);

        [LoggerMessage(Level = LogLevel.Error, Message = "Spool line in {File} set aside as a dead letter: {Reason}")]
        public static partial void DeadLetter(ILogger logger, string file, string reason);
    }
}
