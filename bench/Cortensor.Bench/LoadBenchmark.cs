using System.Diagnostics;
using System.Globalization;
using System.Net.Http.Headers;
using System.Text;

namespace Cortensor.Bench;

public sealed record LoadOptions(Uri Api, Uri Router, string Key, string RouterToken, int Seconds)
{
    public static LoadOptions Parse(string[] args)
    {
        string Arg(string name, string? fallback = null) =>
            args.SkipWhile(a => a != name).Skip(1).FirstOrDefault() ?? fallback ?? throw new ArgumentException($"{name} is required");
        return new LoadOptions(new Uri(Arg("--api")), new Uri(Arg("--router")), Arg("--key"), Arg("--router-token"),
            int.Parse(Arg("--seconds", "10"), CultureInfo.InvariantCulture));
    }
}

/// <summary>
/// The same request direct to a router and through the Api, at a fixed moderate rate (open loop,
/// latency from the scheduled send time, so queueing is not hidden) and for streaming, the time to
/// the first content byte. Saturation throughput is measured separately with wrk.
/// </summary>
public static class LoadBenchmark
{
    private const string ChatBody = """{"model":"gpt-oss-20b","messages":[{"role":"user","content":"Say hello to the pool"}],"max_tokens":16}""";
    private const string ChatStreamBody = """{"model":"gpt-oss-20b","messages":[{"role":"user","content":"Say hello to the pool"}],"max_tokens":16,"stream":true}""";
    private const string RouterBody = """{"prompt":"Say hello to the pool","max_tokens":16}""";
    private const string RouterStreamBody = """{"prompt":"Say hello to the pool","max_tokens":16,"stream":true}""";

    public static async Task<int> RunAsync(LoadOptions o)
    {
        var targets = new[]
        {
            new Target("direct", new Uri(o.Router, "/api/v1/completions/2001"), o.RouterToken, RouterBody, RouterStreamBody),
            new Target("api", new Uri(o.Api, "/v1/chat/completions"), o.Key, ChatBody, ChatStreamBody),
        };
        // Warm both sides (this process's HttpClient too) before the first cell is measured.
        foreach (var t in targets)
        {
            await RunFixedRateAsync(t, 16, 800, 3, stream: false);
            await RunFixedRateAsync(t, 1, 200, 2, stream: false);
        }
        var rows = new List<string>();
        foreach (var (connections, rate) in new[] { (1, 200), (16, 800) })
        {
            var results = new Dictionary<string, Stats>();
            foreach (var t in targets)
            {
                await RunFixedRateAsync(t, connections, rate, 2, stream: false); // warm-up
                results[t.Name] = await RunFixedRateAsync(t, connections, rate, o.Seconds, stream: false);
            }
            rows.Add(Row($"latency, {connections} conn @ {rate} req/s", results["direct"], results["api"]));
        }
        {
            var results = new Dictionary<string, Stats>();
            foreach (var t in targets)
            {
                await RunFixedRateAsync(t, 1, 100, 2, stream: true);
                results[t.Name] = await RunFixedRateAsync(t, 1, 100, o.Seconds, stream: true);
            }
            rows.Add(Row("streaming TTFT, 1 conn @ 100 req/s", results["direct"], results["api"]));
        }

        Console.WriteLine("| scenario | direct p50 | direct p99 | via Api p50 | via Api p99 | added p50 | added p99 | errors (direct/Api) |");
        Console.WriteLine("|---|---|---|---|---|---|---|---|");
        foreach (var row in rows) Console.WriteLine(row);
        return 0;
    }

    private static string Row(string name, Stats direct, Stats api) => string.Create(CultureInfo.InvariantCulture,
        $"| {name} | {direct.P50:0.000} ms | {direct.P99:0.000} ms | {api.P50:0.000} ms | {api.P99:0.000} ms | {api.P50 - direct.P50:+0.000;-0.000} ms | {api.P99 - direct.P99:+0.000;-0.000} ms | {direct.Errors}/{api.Errors} |");

    private sealed record Target(string Name, Uri Url, string Token, string Body, string StreamBody);

    private sealed record Stats(double P50, double P99, int Count, int Errors);

    private static async Task<Stats> RunFixedRateAsync(Target target, int connections, int rate, int seconds, bool stream)
    {
        using var handler = new SocketsHttpHandler { MaxConnectionsPerServer = connections, PooledConnectionLifetime = Timeout.InfiniteTimeSpan };
        using var client = new HttpClient(handler) { Timeout = TimeSpan.FromSeconds(30) };
        var interval = TimeSpan.FromSeconds((double)connections / rate);
        var perWorker = (int)(seconds * rate / connections);
        var latencies = new double[connections][];
        var errors = 0;
        var origin = Stopwatch.GetTimestamp();
        await Task.WhenAll(Enumerable.Range(0, connections).Select(async w =>
        {
            var mine = new double[perWorker];
            // Workers are staggered so the aggregate rate is even.
            var offset = interval * w / connections;
            for (var i = 0; i < perWorker; i++)
            {
                var scheduled = offset + interval * i;
                var wait = scheduled - Stopwatch.GetElapsedTime(origin);
                if (wait > TimeSpan.Zero) await Task.Delay(wait);
                using var request = new HttpRequestMessage(HttpMethod.Post, target.Url)
                {
                    Content = new StringContent(stream ? target.StreamBody : target.Body, Encoding.UTF8, "application/json"),
                };
                request.Headers.Authorization = new AuthenticationHeaderValue("Bearer", target.Token);
                try
                {
                    using var response = await client.SendAsync(request, HttpCompletionOption.ResponseHeadersRead);
                    if (!response.IsSuccessStatusCode) Interlocked.Increment(ref errors);
                    await using var body = await response.Content.ReadAsStreamAsync();
                    var buffer = new byte[8192];
                    if (stream)
                    {
                        // First content: the first SSE event that carries generated text.
                        var seen = new StringBuilder();
                        while (true)
                        {
                            var n = await body.ReadAsync(buffer);
                            if (n == 0) break;
                            seen.Append(Encoding.UTF8.GetString(buffer, 0, n));
                            if (HasContent(seen)) break;
                        }
                        mine[i] = (Stopwatch.GetElapsedTime(origin) - scheduled).TotalMilliseconds;
                        while (await body.ReadAsync(buffer) > 0) { }
                    }
                    else
                    {
                        while (await body.ReadAsync(buffer) > 0) { }
                        mine[i] = (Stopwatch.GetElapsedTime(origin) - scheduled).TotalMilliseconds;
                    }
                }
                catch (HttpRequestException)
                {
                    Interlocked.Increment(ref errors);
                    mine[i] = double.NaN;
                }
            }
            latencies[w] = mine;
        }));
        var all = latencies.SelectMany(x => x).Where(x => !double.IsNaN(x)).Order().ToArray();
        return new Stats(Percentile(all, 0.50), Percentile(all, 0.99), all.Length, errors);
    }

    private static bool HasContent(StringBuilder seen)
    {
        var text = seen.ToString();
        // Router chunks carry "text":"..." and Api chunks "content":"..."; empty role chunks do not count.
        return text.Contains("\"text\":\"", StringComparison.Ordinal) && !text.Contains("\"text\":\"\"", StringComparison.Ordinal)
            || System.Text.RegularExpressions.Regex.IsMatch(text, "\"content\":\"[^\"]");
    }

    private static double Percentile(double[] sorted, double p) =>
        sorted.Length == 0 ? double.NaN : sorted[Math.Min(sorted.Length - 1, (int)Math.Ceiling(p * sorted.Length) - 1)];
}
