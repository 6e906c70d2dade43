using System.Net.ServerSentEvents;
using System.Runtime.CompilerServices;
using System.Text.Json;

namespace Cortensor.RouterSim;

/// <summary>
/// The router node's own API (not OpenAI's), in the shapes the public documentation and clients show
/// (docs/router-contract.md): metadata, sessions, tasks, and completions on v1, v2 and v3.
/// </summary>
public static class RouterApi
{
    private const int DefaultMaxTokens = 256;
    private const int MaxPromptChars = 1_000_000;

    public static IEndpointRouteBuilder MapRouterApi(this IEndpointRouteBuilder app)
    {
        var v1 = app.MapGroup("/api/v1").AddEndpointFilter<RouterTokenFilter>().WithTags("Router");

        v1.MapGet("/info", (RouterNodeState node) => Down(node) ?? Results.Json(new RouterInfo(
            node.Options.Name, "routersim/2.0", node.Options.Model, node.Options.Sessions, node.MinerAddresses.Count,
            node.StartedAt.ToUnixTimeSeconds(), [1, 2, 3]), RouterNodeExtensions.Json));
        v1.MapGet("/status", (RouterNodeState node) =>
        {
            if (Down(node) is { } down) return down;
            if (node.Behaviour.Quirk == RouterQuirk.StatusErrors)
                return RouterError(StatusCodes.Status500InternalServerError, "status_unavailable", "failed to read router status (simulated)");
            return Results.Json(new RouterStatus("running", node.InFlight, node.Completed, node.Failed, node.Options.Sessions.Count,
                node.MinerAddresses.Count, (long)(DateTimeOffset.UtcNow - node.StartedAt).TotalSeconds), RouterNodeExtensions.Json);
        });
        v1.MapGet("/miners", (RouterNodeState node) => Results.Json(new RouterMiners(node.MinerAddresses.Count,
            node.MinerAddresses.Select(a => new RouterMiner(a, "connected", node.Options.Sessions)).ToArray()), RouterNodeExtensions.Json));
        v1.MapGet("/sessions", (RouterNodeState node) => Results.Json(new RouterSessions(node.Options.Sessions.Count,
            node.Options.Sessions.Select(id => Session(node, id)).ToArray()), RouterNodeExtensions.Json));
        v1.MapGet("/sessions/{sessionId:long}", (long sessionId, RouterNodeState node) => node.Options.Sessions.Contains(sessionId)
            ? Results.Json(Session(node, sessionId), RouterNodeExtensions.Json)
            : UnknownSession(sessionId));
        v1.MapGet("/tasks/{sessionId:long}", (long sessionId, RouterNodeState node) => node.Options.Sessions.Contains(sessionId)
            ? Results.Json(new RouterTasks(sessionId, node.Tasks(sessionId).Count, node.Tasks(sessionId)), RouterNodeExtensions.Json)
            : UnknownSession(sessionId));
        v1.MapGet("/tasks/{sessionId:long}/{taskId:long}", (long sessionId, long taskId, RouterNodeState node) =>
            node.Tasks(sessionId).FirstOrDefault(t => t.TaskId == taskId) is { } task
                ? Results.Json(task, RouterNodeExtensions.Json)
                : RouterError(StatusCodes.Status404NotFound, "not_found", $"task {taskId} not found in session {sessionId}"));

        // v2 and v3 store the prompt off-chain before the task is submitted; the simulator answers them alike.
        foreach (var version in (string[])["v1", "v2", "v3"])
        {
            var api = version == "v1" ? v1 : app.MapGroup($"/api/{version}").AddEndpointFilter<RouterTokenFilter>().WithTags("Router");
            api.MapPost("/completions/{sessionId:long}", (long sessionId, RouterCompletionRequest request, HttpContext http, RouterNodeState node) =>
                Complete(sessionId, request, http, node));
            api.MapPost("/completions", (RouterCompletionRequest request, HttpContext http, RouterNodeState node) =>
                request.SessionId is { } id
                    ? Complete(id, request, http, node)
                    : Task.FromResult(RouterError(StatusCodes.Status400BadRequest, "invalid_request", "session_id is required")));
        }
        return app;
    }

    private static RouterSession Session(RouterNodeState node, long id) =>
        new(id, node.Options.Model, "dedicated", "active", node.MinerAddresses.Count, node.Tasks(id).Count);

    /// <summary>A node in an outage answers nothing useful on its metadata routes either.</summary>
    // With completions_only the outage hits completions alone: the node still says it is up.
    private static IResult? Down(RouterNodeState node) => node.Behaviour.Outage == OutageMode.None || node.Behaviour.CompletionsOnly ? null
        : RouterError(StatusCodes.Status503ServiceUnavailable, "router_unavailable", "router is not serving (simulated outage)");

    private static async Task<IResult> Complete(long sessionId, RouterCompletionRequest request, HttpContext http, RouterNodeState node)
    {
        if (!node.Options.Sessions.Contains(sessionId)) return UnknownSession(sessionId);
        if (request.Prompt is null)
            return RouterError(StatusCodes.Status400BadRequest, "invalid_request", "prompt is required");
        if (request.Prompt.Length > MaxPromptChars)
            return RouterError(StatusCodes.Status400BadRequest, "invalid_request", "prompt is too long");
        if (request.MaxTokens is <= 0)
            return RouterError(StatusCodes.Status400BadRequest, "invalid_request", "max_tokens must be positive");

        using var _ = node.Track();
        var behaviour = node.Behaviour;
        var ct = http.RequestAborted;
        switch (behaviour.Outage)
        {
            case OutageMode.Refuse:
                node.CountFailure();
                http.Abort();
                return Results.Empty;
            case OutageMode.Hang:
                await Task.Delay(Timeout.Infinite, ct).ContinueWith(_ => { }, TaskScheduler.Default);
                return Results.Empty;
            case OutageMode.Error500:
                node.CountFailure();
                return RouterError(StatusCodes.Status500InternalServerError, "router_unavailable", "router is failing (simulated outage)");
            case OutageMode.Redirect:
                node.CountFailure();
                return Results.Redirect("http://redirected.invalid/api/v1/completions", permanent: false, preserveMethod: true);
        }
        if (behaviour.ErrorRate > 0 && Random.Shared.NextDouble() < behaviour.ErrorRate)
        {
            node.CountFailure();
            return RouterError(StatusCodes.Status500InternalServerError, "miner_error", "the session's miners failed (simulated)");
        }

        var task = node.StartTask(sessionId, request.ClientReference ?? "");
        var stream = request.Stream == true;
        if (stream)
        {
            // The task is submitted at once; its first token comes after assignment and pre-commit.
            http.Response.ContentType = "text/event-stream";
            http.Response.Headers.CacheControl = "no-cache";
            await http.Response.StartAsync(ct);
        }
        if (behaviour.DelayBeforeFirstTokenMs > 0) await Task.Delay(behaviour.DelayBeforeFirstTokenMs, ct);

        var head = new RouterCompletion("cmpl-" + task.TaskId, "text_completion", DateTimeOffset.UtcNow.ToUnixTimeSeconds(),
            node.Options.Model, task.TaskId, sessionId, [], null, null);
        if (NotAnAnswer(behaviour.Quirk, head) is { } quirk)
        {
            node.CountFailure();
            node.FinishTask(task, null);
            if (!stream) return Results.Json(quirk, RouterNodeExtensions.Json);
            await SseFormatter.WriteAsync(Items(quirk), http.Response.Body, ct);
            return Results.Empty;
        }

        var seed = node.Options.Seed ^ Fold(request.Seed ?? 0);
        var answer = TextGenerator.Generate(node.Tokenizer, request.Prompt, sessionId, seed, request.MaxTokens ?? DefaultMaxTokens,
            channels: behaviour.Quirk == RouterQuirk.HarmonyChannels);
        var finish = answer.Truncated ? "length" : "stop";
        var promptTokens = node.Tokenizer.Count(request.Prompt);
        var usage = behaviour.Quirk == RouterQuirk.NoUsage ? null : new RouterUsage(promptTokens, answer.Tokens, promptTokens + answer.Tokens);

        if (stream)
        {
            var events = StreamPieces(head, answer, finish, usage, behaviour, http, node, ct);
            await SseFormatter.WriteAsync(events, http.Response.Body, ct);
            node.FinishTask(task, answer.Text);
            return Results.Empty;
        }

        for (var i = 1; i < answer.Pieces.Count; i++) await Pace(behaviour, ct);
        if (behaviour.Quirk == RouterQuirk.StallAfterHeaders)
        {
            var json = System.Text.Json.JsonSerializer.SerializeToUtf8Bytes(head with { Choices = [new RouterChoice(0, answer.Text, finish)], Usage = usage }, RouterNodeExtensions.Json);
            http.Response.ContentType = "application/json";
            http.Response.ContentLength = json.Length;
            await http.Response.Body.WriteAsync(json.AsMemory(0, json.Length / 2), ct);
            await http.Response.Body.FlushAsync(ct);
            await Task.Delay(Timeout.Infinite, ct).ContinueWith(_ => { }, TaskScheduler.Default);
            node.CountFailure();
            return Results.Empty;
        }
        node.FinishTask(task, answer.Text);
        return Results.Json(head with { Choices = [new RouterChoice(0, answer.Text, finish)], Usage = usage }, RouterNodeExtensions.Json);
    }

    /// <summary>
    /// A 64-bit seed as the generator's 32-bit one. Every seed an int holds stays itself, so answers to them are as before;
    /// a wider one mixes in its high half, so seeds that differ only there still give different texts.
    /// </summary>
    private static int Fold(long seed) => seed is >= int.MinValue and <= int.MaxValue ? (int)seed : unchecked((int)seed ^ (int)(seed >> 32));

    /// <summary>The 200 bodies that carry no answer, per quirk; null when the node answers normally.</summary>
    private static object? NotAnAnswer(RouterQuirk quirk, RouterCompletion head) => quirk switch
    {
        RouterQuirk.ErrorIn200 => new RouterTaskError(head.TaskId, head.SessionId, "all miners of the session failed to commit a result (simulated)"),
        RouterQuirk.Pending => new RouterTaskPending(head.TaskId, head.SessionId, "pending"),
        RouterQuirk.StorageReference => head with
        {
            Choices = [new RouterChoice(0, "", "stop")],
            StorageRef = $"urn:cortensor:offchain:result:{head.TaskId}",
        },
        _ => null,
    };

    private static async IAsyncEnumerable<SseItem<string>> Items(object body)
    {
        // A pending task streams its queue position, then ends: the result is not coming on this connection.
        yield return Data(body is RouterTaskPending pending ? pending with { Status = "queued" } : body);
        yield return new SseItem<string>("[DONE]");
        await Task.CompletedTask;
    }

    private static async IAsyncEnumerable<SseItem<string>> StreamPieces(
        RouterCompletion head, GeneratedAnswer answer, string finish, RouterUsage? usage, RouterBehaviour behaviour,
        HttpContext http, RouterNodeState node, [EnumeratorCancellation] CancellationToken ct)
    {
        var sent = 0;
        foreach (var piece in answer.Pieces)
        {
            if (behaviour.CutStreamAfterTokens is { } cut && sent >= cut)
            {
                node.CountFailure();
                // What was sent reaches the client before the cut: a cut mid-stream, not a refused connection.
                // The moment's pause lets a proxy in between (the orchestrator's, a load balancer) pass the
                // bytes on before the reset reaches it: a reset overtakes data still in its buffers.
                await http.Response.Body.FlushAsync(ct);
                await Task.Delay(TimeSpan.FromMilliseconds(200), ct);
                http.Abort();
                yield break;
            }
            if (sent > 0) await Pace(behaviour, ct);
            sent++;
            yield return behaviour.Quirk == RouterQuirk.NonJsonStreamLines
                ? new SseItem<string>(piece)
                : Data(head with { Choices = [new RouterChoice(0, piece, null)] });
        }
        while (behaviour.Quirk == RouterQuirk.RunsPastMaxTokens)
        {
            await Pace(behaviour, ct);
            yield return Data(head with { Choices = [new RouterChoice(0, " and more", null)] });
        }
        yield return Data(head with { Choices = [new RouterChoice(0, "", finish)], Usage = usage });
        yield return new SseItem<string>("[DONE]");
    }

    private static Task Pace(RouterBehaviour behaviour, CancellationToken ct) =>
        behaviour.TokensPerSecond > 0 ? Task.Delay(TimeSpan.FromSeconds(1 / behaviour.TokensPerSecond), ct) : Task.CompletedTask;

    private static SseItem<string> Data(object chunk) => new(JsonSerializer.Serialize(chunk, chunk.GetType(), RouterNodeExtensions.Json));

    private static IResult UnknownSession(long sessionId) =>
        RouterError(StatusCodes.Status404NotFound, "not_found", $"session {sessionId} is not served by this router");

    /// <summary>Errors as <c>{"error": {"code", "message"}}</c>: clients read <c>error.message</c>.</summary>
    internal static IResult RouterError(int status, string code, string message) =>
        Results.Json(new RouterErrorBody(new RouterErrorDetail(code, message)), RouterNodeExtensions.Json, statusCode: status);
}

/// <summary>Requires the node's bearer token, as a real router node does.</summary>
public sealed class RouterTokenFilter(RouterNodeOptions options) : IEndpointFilter
{
    public ValueTask<object?> InvokeAsync(EndpointFilterInvocationContext context, EndpointFilterDelegate next)
    {
        if (string.IsNullOrEmpty(options.ApiKey)) return next(context);
        var header = context.HttpContext.Request.Headers.Authorization.ToString();
        var presented = header.StartsWith("Bearer ", StringComparison.Ordinal) ? header["Bearer ".Length..] : "";
        if (!System.Security.Cryptography.CryptographicOperations.FixedTimeEquals(
                System.Text.Encoding.UTF8.GetBytes(presented), System.Text.Encoding.UTF8.GetBytes(options.ApiKey)))
            return ValueTask.FromResult<object?>(RouterApi.RouterError(StatusCodes.Status401Unauthorized, "unauthorized", "invalid router token"));
        return next(context);
    }
}

/// <summary>The completions body as the public clients send it; fields the simulator does not use are accepted.</summary>
public sealed record RouterCompletionRequest(
    long? SessionId, string? Prompt, int? PromptType, string? PromptTemplate, int? MaxTokens, double? Temperature, double? TopP,
    int? TopK, double? PresencePenalty, double? FrequencyPenalty, bool? Stream, int? Timeout, int? PrecommitTimeout,
    string? ClientReference, long? Seed);

public sealed record RouterCompletion(string Id, string Object, long Created, string Model, long TaskId, long SessionId,
    RouterChoice[] Choices, RouterUsage? Usage, string? StorageRef);
public sealed record RouterChoice(int Index, string Text, string? FinishReason);
public sealed record RouterUsage(int PromptTokens, int CompletionTokens, int TotalTokens);
public sealed record RouterTaskError(long TaskId, long SessionId, string Error);
public sealed record RouterTaskPending(long TaskId, long SessionId, string Status);
public sealed record RouterInfo(string Name, string Version, string Model, IReadOnlyList<long> Sessions, int Miners, long StartedAt,
    IReadOnlyList<int> ApiVersions);
public sealed record RouterStatus(string State, long Load, long Completed, long Failed, int Sessions, int Miners, long UptimeSeconds);
public sealed record RouterMiners(int Count, IReadOnlyList<RouterMiner> Miners);
public sealed record RouterMiner(string Address, string State, IReadOnlyList<long> Sessions);
public sealed record RouterSessions(int Count, IReadOnlyList<RouterSession> Sessions);
public sealed record RouterSession(long Id, string Model, string Kind, string State, int Miners, int Tasks);
public sealed record RouterTasks(long SessionId, int Count, IReadOnlyList<RouterTask> Tasks);
public sealed record RouterErrorBody(RouterErrorDetail Error);
public sealed record RouterErrorDetail(string Code, string Message);
