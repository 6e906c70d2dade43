using System.Diagnostics;
using System.Globalization;
using System.Net.Http.Headers;
using System.Text;
using System.Text.Json;
using System.Text.Json.Serialization;

namespace Cortensor.Bench;

/// <summary>One organisation of a chaos run, as bench/chaos.sh created it (a line of its orgs file).</summary>
public sealed record ChaosOrg(string Name, string Mode, Guid Id, string Key)
{
    public bool Credits => Mode == "credits";

    /// <summary>Lines "name mode org-id key" (mode: credits or quota).</summary>
    public static ChaosOrg[] Load(string path) => File.ReadAllLines(path)
        .Where(l => l.Trim().Length > 0)
        .Select(l => l.Split(' ', StringSplitOptions.RemoveEmptyEntries))
        .Select(p => new ChaosOrg(p[0], p[1], Guid.Parse(p[2]), p[3]))
        .ToArray();
}

/// <summary>What the client of one request was told; one JSON line per request in the records file.</summary>
public sealed record ChaosRecord
{
    [JsonPropertyName("id")] public required string RequestId { get; init; }
    [JsonPropertyName("org")] public required string Org { get; init; }
    [JsonPropertyName("api")] public required int Api { get; init; }
    [JsonPropertyName("kind")] public required string Kind { get; init; }
    [JsonPropertyName("stream")] public bool Stream { get; init; }
    /// <summary>The client hung up on purpose after the first content chunk.</summary>
    [JsonPropertyName("hung_up")] public bool HungUp { get; init; }
    /// <summary>HTTP status told, or null when no response arrived (connection refused or reset before headers).</summary>
    [JsonPropertyName("status")] public int? Status { get; init; }
    /// <summary>How it ended: answered, error_event (an error in the stream), broken (the connection died mid-body), hung_up,
    /// no_response (the connection died before the headers), refused (the replica was down).</summary>
    [JsonPropertyName("outcome")] public required string Outcome { get; init; }
    [JsonPropertyName("prompt_tokens")] public int? PromptTokens { get; init; }
    [JsonPropertyName("completion_tokens")] public int? CompletionTokens { get; init; }
    [JsonPropertyName("replica")] public string? Replica { get; init; }
    [JsonPropertyName("at")] public double At { get; init; }
}

/// <summary>
/// `chaos drive`: mixed traffic for a while, spread over every Api replica given — chat and text,
/// streamed (with usage) and not, credit and quota organisations, a share of clients that hang up
/// mid-stream — recording every request id (sent as X-Request-Id) and what its client was told.
/// bench/chaos.sh kills and restarts the stack's parts meanwhile; `chaos check` then compares.
/// </summary>
public static class ChaosDriver
{
    private static readonly string[] Prompts =
    [
        "Say hello to the pool",
        "Summarise the plot of a short story about a lighthouse keeper in three sentences.",
        "Traduis en français : le routeur a répondu en 120 ms, puis la connexion a été coupée.",
        "日本語で短い挨拶を書いてください。🙂 絵文字も一つ。",
        "List five prime numbers, then explain why 1 is not prime!!! ??? ...",
    ];

    public static async Task<int> RunAsync(string[] args)
    {
        string Arg(string name, string? fallback = null) =>
            args.SkipWhile(a => a != name).Skip(1).FirstOrDefault() ?? fallback ?? throw new ArgumentException($"{name} is required");
        var apis = args.Select((a, i) => (a, i)).Where(x => x.a == "--api").Select(x => new Uri(args[x.i + 1])).ToArray();
        if (apis.Length == 0) throw new ArgumentException("--api is required (once per replica)");
        var orgs = ChaosOrg.Load(Arg("--orgs"));
        var seconds = int.Parse(Arg("--seconds", "180"), CultureInfo.InvariantCulture);
        var concurrency = int.Parse(Arg("--concurrency", "12"), CultureInfo.InvariantCulture);
        var output = Arg("--out");

        // Credit organisations carry most of the traffic; quota (free plan) ones are rate-limited to 60/min.
        var weighted = orgs.SelectMany(o => Enumerable.Repeat(o, o.Credits ? 4 : 1)).ToArray();
        using var handler = new SocketsHttpHandler { MaxConnectionsPerServer = 64, PooledConnectionLifetime = TimeSpan.FromSeconds(30) };
        using var client = new HttpClient(handler) { Timeout = TimeSpan.FromSeconds(60) };
        await using var sink = new StreamWriter(output, append: false, new UTF8Encoding(false)) { AutoFlush = false };
        var gate = new SemaphoreSlim(1, 1);
        var clock = Stopwatch.StartNew();
        var sent = 0;
        var counts = new Dictionary<string, int>();

        await Task.WhenAll(Enumerable.Range(0, concurrency).Select(async worker =>
        {
            var random = new Random(worker * 7919 + 17);
            while (clock.Elapsed.TotalSeconds < seconds)
            {
                var n = Interlocked.Increment(ref sent);
                var org = weighted[random.Next(weighted.Length)];
                var api = random.Next(apis.Length);
                var chat = random.Next(2) == 0;
                var stream = random.Next(2) == 0;
                var hangUp = stream && random.NextDouble() < 0.15;
                var maxTokens = random.Next(8, 64);
                var requestId = $"chaos-{n:D6}-{Guid.NewGuid():N}"[..30];
                var record = await SendAsync(client, apis[api], api, org, requestId, chat, stream, hangUp, maxTokens,
                    Prompts[random.Next(Prompts.Length)], clock.Elapsed.TotalSeconds);
                await gate.WaitAsync();
                try
                {
                    await sink.WriteLineAsync(JsonSerializer.Serialize(record));
                    counts[record.Outcome] = counts.GetValueOrDefault(record.Outcome) + 1;
                }
                finally { gate.Release(); }
                // A client whose replica is down backs off a little instead of spinning on refused connections.
                if (record.Outcome == "refused") await Task.Delay(200);
            }
        }));
        await sink.FlushAsync();
        Console.WriteLine($"sent {sent} requests in {clock.Elapsed.TotalSeconds:0} s: " +
            string.Join(", ", counts.OrderBy(c => c.Key).Select(c => $"{c.Key} {c.Value}")));
        return 0;
    }

    private static async Task<ChaosRecord> SendAsync(HttpClient client, Uri api, int apiIndex, ChaosOrg org, string requestId,
        bool chat, bool stream, bool hangUp, int maxTokens, string prompt, double at)
    {
        object body = chat
            ? new Dictionary<string, object> { ["model"] = "gpt-oss-20b", ["messages"] = new[] { new { role = "user", content = prompt } }, ["max_tokens"] = maxTokens, ["stream"] = stream, ["stream_options"] = new { include_usage = true } }
            : new Dictionary<string, object> { ["model"] = "gpt-oss-20b", ["prompt"] = prompt, ["max_tokens"] = maxTokens, ["stream"] = stream, ["stream_options"] = new { include_usage = true } };
        if (!stream) ((Dictionary<string, object>)body).Remove("stream_options");
        using var request = new HttpRequestMessage(HttpMethod.Post, new Uri(api, chat ? "/v1/chat/completions" : "/v1/completions"))
        {
            Content = new StringContent(JsonSerializer.Serialize(body), Encoding.UTF8, "application/json"),
        };
        request.Headers.Authorization = new AuthenticationHeaderValue("Bearer", org.Key);
        request.Headers.Add("X-Request-Id", requestId);
        var record = new ChaosRecord
        {
            RequestId = requestId, Org = org.Name, Api = apiIndex, Kind = chat ? "chat" : "text", Stream = stream,
            HungUp = hangUp, Outcome = "no_response", At = at,
        };

        HttpResponseMessage response;
        try
        {
            response = await client.SendAsync(request, HttpCompletionOption.ResponseHeadersRead);
        }
        catch (Exception ex) when (ex is HttpRequestException or TaskCanceledException or IOException)
        {
            // Refused: the replica was down, the request never reached it. Otherwise it died in flight.
            var refused = ex is HttpRequestException { HttpRequestError: HttpRequestError.ConnectionError }
                && ex.InnerException is System.Net.Sockets.SocketException { SocketErrorCode: System.Net.Sockets.SocketError.ConnectionRefused };
            return refused ? record with { Outcome = "refused" } : record;
        }
        using (response)
        {
            record = record with
            {
                Status = (int)response.StatusCode,
                Replica = response.Headers.TryGetValues("x-cortensor-replica", out var r) ? r.FirstOrDefault() : null,
            };
            try
            {
                if (!response.IsSuccessStatusCode || !stream)
                {
                    var text = await response.Content.ReadAsStringAsync();
                    if (!response.IsSuccessStatusCode) return record with { Outcome = "answered" };
                    using var json = JsonDocument.Parse(text);
                    return WithUsage(record with { Outcome = "answered" }, json.RootElement);
                }
                await using var content = await response.Content.ReadAsStreamAsync();
                using var reader = new StreamReader(content, Encoding.UTF8);
                var sawContent = false;
                while (await reader.ReadLineAsync() is { } line)
                {
                    if (!line.StartsWith("data: ", StringComparison.Ordinal)) continue;
                    var data = line["data: ".Length..];
                    if (data == "[DONE]") return record.Outcome == "no_response" ? record with { Outcome = "answered" } : record;
                    using var json = JsonDocument.Parse(data);
                    var root = json.RootElement;
                    if (root.TryGetProperty("error", out _)) record = record with { Outcome = "error_event" };
                    if (root.TryGetProperty("usage", out var u) && u.ValueKind == JsonValueKind.Object) record = WithUsage(record, root);
                    if (root.TryGetProperty("choices", out var choices) && choices.GetArrayLength() > 0) sawContent = true;
                    if (hangUp && sawContent) return record with { Outcome = "hung_up" };
                }
                return record.Outcome == "error_event" ? record : record with { Outcome = "broken" };
            }
            catch (Exception ex) when (ex is HttpRequestException or TaskCanceledException or IOException or JsonException)
            {
                return record with { Outcome = "broken" };
            }
        }
    }

    private static ChaosRecord WithUsage(ChaosRecord record, JsonElement root) =>
        root.TryGetProperty("usage", out var usage) && usage.ValueKind == JsonValueKind.Object
            ? record with
            {
                PromptTokens = usage.GetProperty("prompt_tokens").GetInt32(),
                CompletionTokens = usage.GetProperty("completion_tokens").GetInt32(),
            }
            : record;
}
