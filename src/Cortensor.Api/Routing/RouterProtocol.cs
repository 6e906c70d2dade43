using System.Collections.Concurrent;
using System.Globalization;
using System.Text.Json;

namespace Cortensor.Api.Routing;

/// <summary>Which completions route a pool's routers take (docs/router-contract.md, "Completions").</summary>
public enum RouterApiVersion { V1 = 1, V3 = 3 }

/// <summary>
/// How to speak to the routers of one pool: the API version and which optional sampling fields they accept.
/// No public source says routers accept <c>seed</c>, so optional fields are sent only where the pool says so.
/// </summary>
public sealed record PoolProtocol(RouterApiVersion ApiVersion, bool SupportsSeed, bool SupportsPenalties, bool SupportsTopK)
{
    public static readonly PoolProtocol Default = new(RouterApiVersion.V1, false, false, false);

    /// <summary>From the stored columns; an unset or unknown version is v1, the route every router serves.</summary>
    public static PoolProtocol From(int? apiVersion, bool seed, bool penalties, bool topK) =>
        new(apiVersion == 3 ? RouterApiVersion.V3 : RouterApiVersion.V1, seed, penalties, topK);

    public string CompletionsPath(long session) => ApiVersion == RouterApiVersion.V3
        ? string.Create(CultureInfo.InvariantCulture, $"/api/v3/completions/{session}")
        : string.Create(CultureInfo.InvariantCulture, $"/api/v1/completions/{session}");

    // A router's sessions are few and its address changes only with the catalog: the address of each session is built
    // and parsed once, not on every request (the concatenation and the Uri's parse were a tenth of the router call's
    // allocation). A Uri is immutable and safe to share between concurrent requests.
    private static readonly ConcurrentDictionary<(string BaseUrl, RouterApiVersion Version, long Session), Uri> CompletionsUris = new();
    private const int MaxCachedUris = 4096;

    /// <summary>The completions address of a router's session, for this protocol.</summary>
    public Uri CompletionsUri(string baseUrl, long session)
    {
        var key = (baseUrl, ApiVersion, session);
        if (CompletionsUris.TryGetValue(key, out var uri)) return uri;
        // Addresses of routers since removed from the catalog would otherwise stay for the process's life.
        if (CompletionsUris.Count >= MaxCachedUris) CompletionsUris.Clear();
        return CompletionsUris.GetOrAdd(key, static (k, protocol) => new Uri(k.BaseUrl + protocol.CompletionsPath(k.Session)), this);
    }
}

/// <summary>
/// The network's own deadlines for a model's tasks, in seconds: <c>precommit_timeout</c> for miners to
/// pre-commit, <c>timeout</c> for the task. Both are sent to the router and bound how long the Portal waits.
/// </summary>
public readonly record struct TaskTimeouts(int TimeoutSeconds, int PrecommitTimeoutSeconds);

/// <summary>What the Portal forwards to a router session, before the pool's protocol decides the wire form.</summary>
public sealed record RouterCompletionRequest(string Prompt, int MaxTokens, double? Temperature, double? TopP, bool Stream,
    string ClientReference, long? Seed, double? PresencePenalty = null, double? FrequencyPenalty = null);

/// <summary>Writes the completions body as the public clients send it.</summary>
public static class RouterRequestWriter
{
    /// <summary>1 = RAW: the Portal has already applied the model family's chat template.</summary>
    public const int RawPromptType = 1;

    // Machine to machine, never embedded in HTML: the chat templates' "<|start|>" markers need no \u003C escapes.
    private static readonly JsonWriterOptions Relaxed = new() { Encoder = System.Text.Encodings.Web.JavaScriptEncoder.UnsafeRelaxedJsonEscaping };
    // The writer asks for room for the prompt's worst case (six bytes a character when escaped): a fresh buffer grew
    // to that for every request, a tenth of all the Api allocated. One buffer per thread is reused instead.
    [ThreadStatic] private static System.Buffers.ArrayBufferWriter<byte>? t_buffer;

    public static byte[] Write(RouterCompletionRequest body, PoolProtocol protocol, TaskTimeouts timeouts)
    {
        var buffer = t_buffer ??= new System.Buffers.ArrayBufferWriter<byte>(16 * 1024);
        buffer.ResetWrittenCount();
        try
        {
            WriteTo(buffer, body, protocol, timeouts);
            return buffer.WrittenSpan.ToArray();
        }
        finally
        {
            if (buffer.Capacity > 1024 * 1024) t_buffer = null; // a huge prompt's buffer is not kept
        }
    }

    private static void WriteTo(System.Buffers.ArrayBufferWriter<byte> buffer, RouterCompletionRequest body, PoolProtocol protocol, TaskTimeouts timeouts)
    {
        using (var json = new Utf8JsonWriter(buffer, Relaxed))
        {
            json.WriteStartObject();
            json.WriteString("prompt", body.Prompt);
            json.WriteNumber("prompt_type", RawPromptType);
            json.WriteString("prompt_template", "");
            json.WriteBoolean("stream", body.Stream);
            json.WriteNumber("timeout", timeouts.TimeoutSeconds);
            json.WriteNumber("precommit_timeout", timeouts.PrecommitTimeoutSeconds);
            json.WriteString("client_reference", body.ClientReference);
            json.WriteNumber("max_tokens", body.MaxTokens);
            if (body.Temperature is { } temperature) json.WriteNumber("temperature", temperature);
            if (body.TopP is { } topP) json.WriteNumber("top_p", topP);
            if (protocol.SupportsSeed && body.Seed is { } seed) json.WriteNumber("seed", seed);
            if (protocol.SupportsPenalties)
            {
                if (body.PresencePenalty is { } presence) json.WriteNumber("presence_penalty", presence);
                if (body.FrequencyPenalty is { } frequency) json.WriteNumber("frequency_penalty", frequency);
            }
            // top_k has no OpenAI field to come from; the pool flag is kept for when the public API grows one.
            json.WriteEndObject();
        }
    }
}
