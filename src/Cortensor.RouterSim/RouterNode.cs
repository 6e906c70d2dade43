using System.Security.Cryptography;
using System.Text;
using System.Text.Json;
using System.Text.Json.Serialization;
using Cortensor.Contracts;

namespace Cortensor.RouterSim;

/// <summary>Settings a router node starts with (section <c>Router</c>).</summary>
public sealed class RouterNodeOptions
{
    public string Name { get; set; } = "router";
    /// <summary>The model the node's sessions serve; gpt-oss-* count tokens as gpt-oss, others with the byte-bound family's estimate.</summary>
    public string Model { get; set; } = "gpt-oss-20b";
    public List<long> Sessions { get; set; } = [1];
    /// <summary>How many miners the node reports as connected.</summary>
    public int Miners { get; set; } = 3;
    /// <summary>The bearer token clients must present, as on a real router node.</summary>
    public string ApiKey { get; set; } = "";
    /// <summary>Mixed into every answer so two nodes can be told apart; same seed, same text.</summary>
    public int Seed { get; set; }
    /// <summary>
    /// Started alone, the node waits as the network does (assignment, pre-commit, a steady token rate); the
    /// AppHost and the benchmarks start it with zero delays so tests stay fast.
    /// </summary>
    public RouterBehaviour Behaviour { get; set; } = RouterBehaviour.Network with { };
}

/// <summary>
/// How a node in an outage answers. <c>Redirect</c> answers completions with a 307 to another address (a
/// misconfigured or hijacked router): a gateway must not follow it with the prompt and the pool's token.
/// </summary>
public enum OutageMode { None, Refuse, Hang, Error500, Redirect }

/// <summary>Answers seen from routers in the wild (docs/router-contract.md), one switched on at a time.</summary>
public enum RouterQuirk
{
    None,
    /// <summary>No usage, neither in the body nor as a final stream chunk.</summary>
    NoUsage,
    /// <summary>200 with an <c>error</c> and no text.</summary>
    ErrorIn200,
    /// <summary>200 with <c>status: pending</c> (stream: a <c>queued</c> event, then the end) and no text.</summary>
    Pending,
    /// <summary>200 with empty text and only a reference to off-chain storage.</summary>
    StorageReference,
    /// <summary>Streamed text as plain, non-JSON <c>data:</c> lines.</summary>
    NonJsonStreamLines,
    /// <summary><c>/status</c> answers 500 while completions and <c>/info</c> work.</summary>
    StatusErrors,
    /// <summary>An unstreamed answer sends its headers and half its body, then falls silent (the connection stays open).</summary>
    StallAfterHeaders,
    /// <summary>A stream that does not stop at max_tokens: after the answer it goes on sending text until the client leaves.</summary>
    RunsPastMaxTokens,
    /// <summary>
    /// A gpt-oss answer as a raw-prompt engine returns it (Ollama, llama.cpp render harmony's control tokens as text):
    /// the analysis channel's reasoning, then the final channel's answer or a call, with no closing token.
    /// </summary>
    HarmonyChannels,
}

/// <summary>How the node behaves; replaced whole at run time through the control endpoint (unset fields are zero).</summary>
public sealed record RouterBehaviour
{
    /// <summary>What a task waits on a real network before the first token: assignment to miners, then pre-commit.</summary>
    public static readonly RouterBehaviour Network = new() { AssignmentDelayMs = 2000, PrecommitDelayMs = 3000, TokensPerSecond = 25 };

    /// <summary>Until the session's miners are assigned the task.</summary>
    public int AssignmentDelayMs { get; init; }
    /// <summary>Until the miners have pre-committed; the first token follows.</summary>
    public int PrecommitDelayMs { get; init; }
    /// <summary>Any further wait before the first token.</summary>
    public int TimeToFirstTokenMs { get; init; }
    /// <summary>0 means as fast as possible.</summary>
    public double TokensPerSecond { get; init; }
    /// <summary>Share of completion requests (0..1) answered with a 500.</summary>
    public double ErrorRate { get; init; }
    [JsonConverter(typeof(JsonStringEnumConverter<OutageMode>))]
    public OutageMode Outage { get; init; }
    /// <summary>
    /// The outage hits completions only and <c>/api/v1/status</c> keeps reporting healthy, as when a
    /// node's miners fail behind a live API: the gateway's probe cannot see it, only its requests can.
    /// </summary>
    public bool CompletionsOnly { get; init; }
    /// <summary>When set, streams are cut (connection aborted) after this many tokens.</summary>
    public int? CutStreamAfterTokens { get; init; }
    [JsonConverter(typeof(JsonStringEnumConverter<RouterQuirk>))]
    public RouterQuirk Quirk { get; init; }

    public int DelayBeforeFirstTokenMs => AssignmentDelayMs + PrecommitDelayMs + TimeToFirstTokenMs;
}

/// <summary>One task the node ran, as <c>/tasks/{session}/{task}</c> reports it.</summary>
public sealed record RouterTask(
    long TaskId, long SessionId, int Status, string ClientReference, IReadOnlyList<string> AssignedMiners,
    long CreatedAt, long? FinishedAt, RouterTaskResults Results);

public sealed record RouterTaskResults(IReadOnlyList<string> Data, IReadOnlyList<string> Miners);

/// <summary>The node's live state: current behaviour, load counters and the recent tasks of each session.</summary>
public sealed class RouterNodeState
{
    /// <summary>Task statuses as the public clients read them: 4 is finished.</summary>
    public const int TaskRunning = 1, TaskFinished = 4, TaskFailed = 5;
    private const int TasksKeptPerSession = 200;

    private RouterBehaviour _behaviour;
    private long _inFlight, _completed, _failed, _nextTask;
    private readonly Dictionary<long, List<RouterTask>> _tasks = [];

    public RouterNodeState(RouterNodeOptions options)
    {
        Options = options;
        _behaviour = options.Behaviour;
        Tokenizer = options.Model.StartsWith("gpt-oss", StringComparison.Ordinal) ? ModelTokenizer.GptOss : ModelTokenizer.ByteBound;
        MinerAddresses = Enumerable.Range(0, Math.Max(0, options.Miners))
            .Select(i => "0x" + Convert.ToHexStringLower(SHA256.HashData(Encoding.UTF8.GetBytes($"{options.Name}/miner/{i}")))[..40])
            .ToArray();
        // Task ids differ between nodes and restarts, as on the network where they come from the session queue.
        _nextTask = DateTimeOffset.UtcNow.ToUnixTimeSeconds() % 100_000 * 1000;
    }

    public RouterNodeOptions Options { get; }
    public ModelTokenizer Tokenizer { get; }
    public IReadOnlyList<string> MinerAddresses { get; }
    public DateTimeOffset StartedAt { get; } = DateTimeOffset.UtcNow;
    public RouterBehaviour Behaviour { get => Volatile.Read(ref _behaviour); set => Volatile.Write(ref _behaviour, value); }
    public long InFlight => Interlocked.Read(ref _inFlight);
    public long Completed => Interlocked.Read(ref _completed);
    public long Failed => Interlocked.Read(ref _failed);

    public IDisposable Track() { Interlocked.Increment(ref _inFlight); return new Release(this); }
    public void CountFailure() => Interlocked.Increment(ref _failed);

    public RouterTask StartTask(long session, string clientReference)
    {
        var task = new RouterTask(Interlocked.Increment(ref _nextTask), session, TaskRunning, clientReference, MinerAddresses,
            DateTimeOffset.UtcNow.ToUnixTimeSeconds(), null, new RouterTaskResults([], []));
        lock (_tasks)
        {
            if (!_tasks.TryGetValue(session, out var list)) _tasks[session] = list = [];
            list.Add(task);
            if (list.Count > TasksKeptPerSession) list.RemoveAt(0);
        }
        return task;
    }

    /// <summary>Records the miners' result (null: the task failed).</summary>
    public void FinishTask(RouterTask task, string? text)
    {
        var finished = task with
        {
            Status = text is null ? TaskFailed : TaskFinished,
            FinishedAt = DateTimeOffset.UtcNow.ToUnixTimeSeconds(),
            Results = text is null ? task.Results : new RouterTaskResults(MinerAddresses.Select(_ => text).ToArray(), MinerAddresses),
        };
        lock (_tasks)
        {
            if (_tasks.TryGetValue(task.SessionId, out var list) && list.FindIndex(t => t.TaskId == task.TaskId) is var at and >= 0)
                list[at] = finished;
        }
    }

    public IReadOnlyList<RouterTask> Tasks(long session)
    {
        lock (_tasks) return _tasks.TryGetValue(session, out var list) ? list.ToArray() : [];
    }

    private sealed class Release(RouterNodeState state) : IDisposable
    {
        private int _done;
        public void Dispose()
        {
            if (Interlocked.Exchange(ref _done, 1) != 0) return;
            Interlocked.Decrement(ref state._inFlight);
            Interlocked.Increment(ref state._completed);
        }
    }
}

public static class RouterNodeExtensions
{
    public static readonly JsonSerializerOptions Json = new(JsonSerializerDefaults.Web)
    {
        PropertyNamingPolicy = JsonNamingPolicy.SnakeCaseLower,
        DefaultIgnoreCondition = JsonIgnoreCondition.WhenWritingNull,
        // Clients send session_id and numbers as strings too.
        NumberHandling = JsonNumberHandling.AllowReadingFromString,
    };

    public static WebApplicationBuilder AddRouterNode(this WebApplicationBuilder builder)
    {
        var options = builder.Configuration.GetSection("Router").Get<RouterNodeOptions>() ?? new RouterNodeOptions();
        // Binding appends to list defaults; a configured list replaces them.
        var configured = builder.Configuration.GetSection("Router:Sessions").Get<List<long>>();
        if (configured is { Count: > 0 }) options.Sessions = configured.Distinct().ToList();
        builder.Services.AddSingleton(options);
        builder.Services.AddSingleton<RouterNodeState>();
        // A real router answers at full speed from its first task: the simulator's vocabulary is loaded before it serves.
        builder.Services.AddHostedService<TokenizerPreload>();
        builder.Services.ConfigureHttpJsonOptions(o =>
        {
            o.SerializerOptions.PropertyNamingPolicy = Json.PropertyNamingPolicy;
            o.SerializerOptions.DefaultIgnoreCondition = Json.DefaultIgnoreCondition;
            o.SerializerOptions.NumberHandling = Json.NumberHandling;
        });
        return builder;
    }
}

internal sealed class TokenizerPreload(RouterNodeState node) : IHostedService
{
    public Task StartAsync(CancellationToken cancellationToken) => Task.Run(node.Tokenizer.Preload, cancellationToken);
    public Task StopAsync(CancellationToken cancellationToken) => Task.CompletedTask;
}
