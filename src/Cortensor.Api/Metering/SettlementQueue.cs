using System.Diagnostics;
using System.Threading.Channels;
using Cortensor.Api.Infrastructure;
using Microsoft.Extensions.Options;

namespace Cortensor.Api.Metering;

/// <summary>
/// Settlement and usage records leave the response path: a request hands its record over and is done;
/// one background loop sends whatever has gathered meanwhile together, so under load the settle scripts
/// and stream appends of many requests share one write to Redis (the multiplexer pipelines them) instead
/// of each request driving its own round trip. The durability rules are the meter's, unchanged: a record
/// Redis cannot take is spooled to disk, a reservation is settled exactly once by its id, and a replica
/// that dies with records still queued leaves their reservations to the reaper.
/// </summary>
public sealed partial class SettlementQueue(UsageMeter meter, IOptions<MeteringOptions> options, ILogger<SettlementQueue> log) : BackgroundService
{
    private const int MaxBatch = 512;
    private readonly Channel<Work> _work = Channel.CreateUnbounded<Work>(new UnboundedChannelOptions { SingleReader = true });
    private long _pending;

    /// <summary>Settles the record's reservation (if any) and files the record, soon, off the caller's path.</summary>
    public void Record(UsageRecord record) => Enqueue(() => meter.RecordAsync(record), record.Hold is null ? "meter" : "settle");

    /// <param name="span">When the caller's request is traced, the work is a span of that trace under this name.</param>
    public void Enqueue(Func<Task> run, string? span = null)
    {
        Interlocked.Increment(ref _pending);
        var work = new Work(run, span, span is not null && Activity.Current is { Recorded: true } request ? request.Context : default);
        // Once the loop has stopped (shutdown), work runs at once on the caller's behalf.
        if (!_work.Writer.TryWrite(work)) _ = RunAsync(work);
    }

    /// <summary>What is queued or being sent right now (for health and tests).</summary>
    public long Pending => Interlocked.Read(ref _pending);

    /// <summary>
    /// Waits until everything handed over so far has been sent or spooled, or until <paramref name="within"/> (ten seconds
    /// unless said) has passed; returns whether it was.
    /// </summary>
    public async Task<bool> FlushAsync(TimeSpan? within = null)
    {
        var deadline = DateTime.UtcNow + (within ?? TimeSpan.FromSeconds(10));
        while (true)
        {
            if (Pending == 0) return true;
            if (DateTime.UtcNow >= deadline) return false;
            await Task.Delay(10);
        }
    }

    protected override async Task ExecuteAsync(CancellationToken stoppingToken)
    {
        var batch = new List<Task>(MaxBatch);
        var linger = TimeSpan.FromMilliseconds(options.Value.SettleLingerMilliseconds);
        // Not cancelled by the stopping token: on shutdown the writer is completed and this loop drains it.
        while (await _work.Reader.WaitToReadAsync(CancellationToken.None).ConfigureAwait(false))
        {
            // Below full batches the loop would wake once per request, and on two cores that wake-up is taken from the
            // next request. Lingering a moment lets several requests' work go to Redis in one write and one wake-up.
            if (linger > TimeSpan.Zero && Pending < MaxBatch) await Task.Delay(linger).ConfigureAwait(false);
            batch.Clear();
            while (batch.Count < MaxBatch && _work.Reader.TryRead(out var work)) batch.Add(RunAsync(work));
            await Task.WhenAll(batch).ConfigureAwait(false);
        }
    }

    private async Task RunAsync(Work work)
    {
        using var span = work.Span is null || work.Parent == default ? null
            : CortensorTelemetry.ActivitySource.StartActivity(work.Span, ActivityKind.Internal, work.Parent);
        try
        {
            await work.Run().ConfigureAwait(false);
        }
        catch (Exception ex)
        {
            // Each piece of work keeps its own fallback (the spool); what escapes it is logged, never lost silently.
            Log.Failed(log, ex);
        }
        finally
        {
            Interlocked.Decrement(ref _pending);
        }
    }

    public override async Task StopAsync(CancellationToken cancellationToken)
    {
        _work.Writer.TryComplete();
        if (ExecuteTask is { } loop) await loop.WaitAsync(cancellationToken).ConfigureAwait(false);
        await base.StopAsync(cancellationToken).ConfigureAwait(false);
    }

    private readonly record struct Work(Func<Task> Run, string? Span, ActivityContext Parent);

    private static partial class Log
    {
        [LoggerMessage(LogLevel.Error, "A queued settlement failed")]
        public static partial void Failed(ILogger logger, Exception exception);
    }
}
