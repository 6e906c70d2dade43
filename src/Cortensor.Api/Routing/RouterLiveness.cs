using System.Text.Json;

namespace Cortensor.Api.Routing;

/// <summary>
/// What a 2xx of <c>/api/v1/status</c> or <c>/api/v1/info</c> says about a router. Any 2xx means it is up: no
/// public source documents a health flag in these bodies, so none is required. Load and counts are read
/// when present, under the names routers and the simulator use; a body that is not JSON is still a 2xx.
/// </summary>
public readonly record struct RouterLiveness(long? Load, long? Miners, long? Sessions)
{
    private static readonly string[] LoadFields = ["load", "active_tasks", "in_flight", "pending_tasks", "queue_length"];
    private static readonly string[] MinerFields = ["miners", "miner_count", "connected_miners"];
    private static readonly string[] SessionFields = ["sessions", "session_count", "active_sessions"];

    /// <summary>A router that reports no connected miner cannot run a task, whatever its status code says.</summary>
    public bool CanServe => Miners is not 0;

    public static RouterLiveness Read(ReadOnlySpan<byte> body)
    {
        try
        {
            var reader = new Utf8JsonReader(body);
            using var document = JsonDocument.ParseValue(ref reader);
            var root = document.RootElement;
            if (root.ValueKind != JsonValueKind.Object) return default;
            if (root.TryGetProperty("data", out var data) && data.ValueKind == JsonValueKind.Object && Count(root, LoadFields) is null) root = data;
            return new RouterLiveness(Count(root, LoadFields), Count(root, MinerFields), Count(root, SessionFields));
        }
        catch (JsonException)
        {
            return default;
        }
    }

    /// <summary>A number, or the length of a list (e.g. <c>miners: [...]</c>), under the first name present.</summary>
    private static long? Count(JsonElement root, string[] names)
    {
        foreach (var name in names)
        {
            if (!root.TryGetProperty(name, out var value)) continue;
            switch (value.ValueKind)
            {
                case JsonValueKind.Number when value.TryGetInt64(out var n) && n >= 0: return n;
                case JsonValueKind.Array: return value.GetArrayLength();
                case JsonValueKind.Object when value.TryGetProperty("count", out var c) && c.TryGetInt64(out var m) && m >= 0: return m;
            }
        }
        return null;
    }
}
