using System.Globalization;
using System.Text.Json;
using Cortensor.Api.Inference;
using Cortensor.Contracts;

namespace Cortensor.Api.Routing;

/// <summary>Why a router's 2xx was not an answer. Nothing is billed for it and, before any byte went out, another router is tried.</summary>
public enum RouterFailureKind
{
    /// <summary>The body carries <c>error</c> (or <c>success: false</c>, or a failed status).</summary>
    RouterError,
    /// <summary>The task is still pending or queued: the router answered before the network did.</summary>
    Pending,
    /// <summary>No text: empty, or only a reference to off-chain storage (v2/v3).</summary>
    NoText,
    /// <summary>Not JSON, or JSON without any shape a router answers in.</summary>
    Unreadable,
    /// <summary>The stream closed before it finished.</summary>
    Cut,
    /// <summary>No first token, or too long a silence, within the model's task timeouts.</summary>
    Timeout,
}

public sealed record RouterFailure(RouterFailureKind Kind, string Detail, string? TaskId = null)
{
    public override string ToString() => TaskId is null ? $"{Kind}: {Detail}" : $"{Kind} (task {TaskId}): {Detail}";
}

/// <summary>Token counts as the router reported them, either may be missing; what is billed is decided by <see cref="Inference.UsageBounds"/>.</summary>
public sealed record RouterUsageCounts(int? PromptTokens, int? CompletionTokens);

/// <summary>A router's complete answer: text and what came with it.</summary>
public sealed record RouterAnswer(string Text, string? FinishReason, string? TaskId, RouterUsageCounts? Usage);

/// <summary>Either an answer or the reason there is none.</summary>
public readonly record struct RouterReading(RouterAnswer? Answer, RouterFailure? Failure);

/// <summary>
/// Reads a non-streamed completions body the way the public clients do (choices[0].text, then message.content,
/// output, text, completion, data), and refuses what is not an answer. Rules and sources: docs/router-contract.md.
/// </summary>
public static class RouterAnswerReader
{
    /// <summary>The document is read over <paramref name="body"/> itself (no copy), so it must not change while this runs.</summary>
    public static RouterReading Read(ReadOnlyMemory<byte> body)
    {
        JsonDocument document;
        try
        {
            document = JsonDocument.Parse(body);
        }
        catch (JsonException)
        {
            // One client takes a non-JSON body as the text; a reverse proxy's error page would then be billed as an answer.
            return Fail(RouterFailureKind.Unreadable, "the body is not JSON", null);
        }
        using (document)
        {
            try
            {
                return Read(document.RootElement);
            }
            catch (InvalidOperationException)
            {
                // The reader's word for a string that is not text (an unpaired surrogate escape): nothing to give a client.
                return Fail(RouterFailureKind.Unreadable, "the body's text is not Unicode", null);
            }
        }
    }

    private static RouterReading Read(JsonElement root)
    {
        if (root.ValueKind == JsonValueKind.String)
            return root.GetString() is { } bare && !string.IsNullOrWhiteSpace(bare)
                ? new RouterReading(new RouterAnswer(bare, null, null, null), null)
                : Fail(RouterFailureKind.NoText, "the body is an empty string", null);
        if (root.ValueKind != JsonValueKind.Object) return Fail(RouterFailureKind.Unreadable, $"the body is a JSON {root.ValueKind}", null);

        var taskId = RouterJson.TaskId(root);
        if (RouterJson.Error(root) is { } error) return Fail(RouterFailureKind.RouterError, error, taskId);
        if (RouterJson.PendingStatus(root) is { } pending) return Fail(RouterFailureKind.Pending, $"status '{pending}'", taskId);

        var text = RouterJson.Text(root);
        if (string.IsNullOrWhiteSpace(text))
        {
            var reference = RouterJson.StorageReference(root);
            return Fail(RouterFailureKind.NoText, reference is null ? "no text in the answer" : $"no text, only the storage reference '{reference}'", taskId);
        }
        return new RouterReading(new RouterAnswer(text, RouterJson.FinishReason(root), taskId, RouterJson.Usage(root)), null);
    }

    private static RouterReading Fail(RouterFailureKind kind, string detail, string? taskId) => new(null, new RouterFailure(kind, detail, taskId));
}

/// <summary>Field lookups shared by the answer and stream readers: tolerant of types, strict about meaning.</summary>
internal static class RouterJson
{
    /// <summary>Statuses of a task that has not produced its result (assignment, pre-commit, commit still running).</summary>
    private static readonly HashSet<string> PendingStatuses = new(StringComparer.OrdinalIgnoreCase)
    {
        "pending", "queued", "queue", "submitted", "assigned", "processing", "in_progress", "running", "precommit", "precommitted", "waiting",
    };

    private static readonly HashSet<string> FailedStatuses = new(StringComparer.OrdinalIgnoreCase)
    {
        "failed", "error", "timeout", "timed_out", "cancelled", "canceled", "rejected",
    };

    private static readonly string[] ReferenceFields = ["storage_ref", "storage_reference", "result_urn", "urn", "cid", "result_ref", "output_ref"];

    public static string? TaskId(JsonElement root) =>
        root.TryGetProperty("task_id", out var id) ? id.ValueKind switch
        {
            JsonValueKind.Number => id.GetRawText(),
            JsonValueKind.String when id.GetString() is { Length: > 0 and <= 128 } s => s,
            _ => null,
        } : root.TryGetProperty("data", out var data) && data.ValueKind == JsonValueKind.Object ? TaskId(data) : null;

    public static string? Error(JsonElement root)
    {
        if (root.TryGetProperty("error", out var error))
        {
            switch (error.ValueKind)
            {
                case JsonValueKind.String when error.GetString() is { Length: > 0 } message: return message;
                case JsonValueKind.Object:
                    return error.TryGetProperty("message", out var m) && m.ValueKind == JsonValueKind.String ? m.GetString() : error.GetRawText();
                case JsonValueKind.True: return "error: true";
            }
        }
        if (root.TryGetProperty("success", out var success) && success.ValueKind == JsonValueKind.False)
            return root.TryGetProperty("message", out var m) && m.ValueKind == JsonValueKind.String ? m.GetString() : "success: false";
        if (Status(root) is { } status && FailedStatuses.Contains(status)) return $"status '{status}'";
        return null;
    }

    public static string? PendingStatus(JsonElement root) => Status(root) is { } status && PendingStatuses.Contains(status) ? status : null;

    private static string? Status(JsonElement root) =>
        root.TryGetProperty("status", out var s) && s.ValueKind == JsonValueKind.String ? s.GetString() : null;

    public static string? Text(JsonElement root)
    {
        if (root.TryGetProperty("choices", out var choices) && choices.ValueKind == JsonValueKind.Array && choices.GetArrayLength() > 0)
        {
            var choice = choices[0];
            if (choice.ValueKind == JsonValueKind.Object)
            {
                if (String(choice, "text") is { } text) return text;
                foreach (var holder in (ReadOnlySpan<string>)["message", "delta"])
                    if (choice.TryGetProperty(holder, out var message) && message.ValueKind == JsonValueKind.Object && String(message, "content") is { } content)
                        return content;
            }
        }
        foreach (var field in (ReadOnlySpan<string>)["output", "text", "completion", "content", "response"])
            if (String(root, field) is { } value) return value;
        if (root.TryGetProperty("data", out var data))
        {
            if (data.ValueKind == JsonValueKind.String) return data.GetString();
            if (data.ValueKind == JsonValueKind.Object) return Text(data);
        }
        return null;
    }

    public static string? FinishReason(JsonElement root) =>
        root.TryGetProperty("choices", out var choices) && choices.ValueKind == JsonValueKind.Array && choices.GetArrayLength() > 0
            && choices[0].ValueKind == JsonValueKind.Object ? String(choices[0], "finish_reason") : null;

    public static RouterUsageCounts? Usage(JsonElement root)
    {
        if (!root.TryGetProperty("usage", out var usage) || usage.ValueKind != JsonValueKind.Object) return null;
        var prompt = Int(usage, "prompt_tokens");
        var completion = Int(usage, "completion_tokens");
        return prompt is null && completion is null ? null : new RouterUsageCounts(prompt, completion);
    }

    public static string? StorageReference(JsonElement root)
    {
        foreach (var field in ReferenceFields)
            if (String(root, field) is { Length: > 0 } reference) return reference;
        return root.TryGetProperty("data", out var data) && data.ValueKind == JsonValueKind.Object ? StorageReference(data) : null;
    }

    private static string? String(JsonElement o, string name) =>
        o.TryGetProperty(name, out var v) && v.ValueKind == JsonValueKind.String ? v.GetString() : null;

    private static int? Int(JsonElement o, string name) =>
        o.TryGetProperty(name, out var v) && v.ValueKind == JsonValueKind.Number && v.TryGetInt32(out var n) && n >= 0 ? n
        : o.TryGetProperty(name, out v) && v.ValueKind == JsonValueKind.String && int.TryParse(v.GetString(), NumberStyles.None, CultureInfo.InvariantCulture, out n) ? n
        : null;
}

/// <summary>What a router that refused a request (a status other than 2xx) said, for the log.</summary>
public static class RouterErrorDetail
{
    public const int MaxBytes = 2048;
    private static readonly TimeSpan MostWait = TimeSpan.FromSeconds(2);

    /// <summary>
    /// The first <see cref="MaxBytes"/> of the body, read for at most two seconds: the client's answer is already decided,
    /// and a router that sends an endless or never-finished error body must not hold the request or the Api's memory.
    /// </summary>
    public static async Task<string> ReadAsync(HttpContent content, CancellationToken deadline)
    {
        using var wait = CancellationTokenSource.CreateLinkedTokenSource(deadline);
        wait.CancelAfter(MostWait);
        var buffer = new byte[MaxBytes];
        var read = 0;
        try
        {
            await using var body = await content.ReadAsStreamAsync(wait.Token);
            int n;
            while (read < buffer.Length && (n = await body.ReadAsync(buffer.AsMemory(read), wait.Token)) > 0) read += n;
        }
        catch (Exception ex) when (ex is OperationCanceledException or HttpRequestException or IOException)
        {
            // What arrived before the wait ended or the connection broke is all there is to log.
        }
        return System.Text.Encoding.UTF8.GetString(buffer, 0, read);
    }
}
