using System.Text.Json;
using System.Text.Json.Serialization;

namespace Cortensor.RouterSim;

/// <summary>Settings a router node starts with (section <c>Router</c>).</summary>
public sealed class RouterNodeOptions
{
    public string Name { get; set; } = "router";
    public string Model { get; set; } = "gpt-oss-20b";
    public List<long> Sessions { get; set; } = [1];
    /// <summary>The bearer token clients must present, as on a real router node.</summary>
    public string ApiKey { get; set; } = "";
    /// <summary>Mixed into every generation so two nodes can be told apart; same seed, same text.</summary>
    public int Seed { get; set; }
    public RouterBehaviour Behaviour { get; set; } = new();
}

public enum OutageMode { None, Refuse, Hang, Error500 }

/// <summary>How the node behaves; changeable at run time through the control endpoint.</summary>
public sealed record RouterBehaviour
{
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
}

/// <summary>The node's live state: current behaviour and load counters.</summary>
public sealed class RouterNodeState(RouterNodeOptions options)
{
    private RouterBehaviour _behaviour = options.Behaviour;
    private long _inFlight, _completed, _failed;

    public RouterNodeOptions Options { get; } = options;
    public DateTimeOffset StartedAt { get; } = DateTimeOffset.UtcNow;
    public RouterBehaviour Behaviour { get => Volatile.Read(ref _behaviour); set => Volatile.Write(ref _behaviour, value); }
    public long InFlight => Interlocked.Read(ref _inFlight);
    public long Completed => Interlocked.Read(ref _completed);
    public long Failed => Interlocked.Read(ref _failed);

    public IDisposable Track() { Interlocked.Increment(ref _inFlight); return new Release(this); }
    public void CountFailure() => Interlocked.Increment(ref _failed);

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
    };

    public static WebApplicationBuilder AddRouterNode(this WebApplicationBuilder builder)
    {
        var options = builder.Configuration.GetSection("Router").Get<RouterNodeOptions>() ?? new RouterNodeOptions();
        // Binding appends to list defaults; a configured list replaces them.
        var configured = builder.Configuration.GetSection("Router:Sessions").Get<List<long>>();
        if (configured is { Count: > 0 }) options.Sessions = configured.Distinct().ToList();
        builder.Services.AddSingleton(options);
        builder.Services.AddSingleton<RouterNodeState>();
        builder.Services.ConfigureHttpJsonOptions(o =>
        {
            o.SerializerOptions.PropertyNamingPolicy = Json.PropertyNamingPolicy;
            o.SerializerOptions.DefaultIgnoreCondition = Json.DefaultIgnoreCondition;
        });
        return builder;
    }
}
