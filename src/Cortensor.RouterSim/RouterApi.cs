using System.Net.ServerSentEvents;
using System.Runtime.CompilerServices;
using System.Text.Json;

namespace Cortensor.RouterSim;

/// <summary>The router node's own API (not OpenAI's): completions addressed to a dedicated session.</summary>
public static class RouterApi
{
    private const int DefaultMaxTokens = 256;
    private const int MaxPromptChars = 1_000_000;

    public static IEndpointRouteBuilder MapRouterApi(this IEndpointRouteBuilder app)
    {
        var api = app.MapGroup("/api/v1").AddEndpointFilter<RouterTokenFilter>().WithTags("Router");

        api.MapPost("/completions/{sessionId:long}", (long sessionId, RouterCompletionRequest request, HttpContext http, RouterNodeState node) =>
            Complete(sessionId, request, http, node));
        api.MapPost("/completions", (RouterCompletionRequest request, HttpContext http, RouterNodeState node) =>
            request.SessionId is { } id
                ? Complete(id, request, http, node)
                : Task.FromResult(RouterError(StatusCodes.Status400BadRequest, "missing_session_id", "session_id is required")));

        api.MapGet("/info", (RouterNodeState node) => TypedResults.Ok(new RouterInfo(
            node.Options.Name, "routersim/1.0", node.Options.Model, node.Options.Sessions, node.StartedAt)));
        api.MapGet("/status", (RouterNodeState node) =>
        {
            var healthy = node.Behaviour.Outage == OutageMode.None || node.Behaviour.CompletionsOnly;
            var status = new RouterStatus(healthy, node.InFlight, node.Completed, node.Failed,
                (long)(DateTimeOffset.UtcNow - node.StartedAt).TotalSeconds);
            return healthy ? Results.Ok(status) : Results.Json(status, statusCode: StatusCodes.Status503ServiceUnavailable);
        });
        api.MapGet("/sessions", (RouterNodeState node) => TypedResults.Ok(
            node.Options.Sessions.Select(id => new RouterSession(id, node.Options.Model, "dedicated", "active"))));
        return app;
    }

    private static async Task<IResult> Complete(long sessionId, RouterCompletionRequest request, HttpContext http, RouterNodeState node)
    {
        if (!node.Options.Sessions.Contains(sessionId))
            return RouterError(StatusCodes.Status404NotFound, "session_not_found", $"session {sessionId} is not served by this router");
        if (request.Prompt is null)
            return RouterError(StatusCodes.Status400BadRequest, "invalid_prompt", "prompt is required");
        if (request.Prompt.Length > MaxPromptChars)
            return RouterError(StatusCodes.Status400BadRequest, "invalid_prompt", "prompt is too long");
        if (request.MaxTokens is <= 0)
            return RouterError(StatusCodes.Status400BadRequest, "invalid_max_tokens", "max_tokens must be positive");

        using var _ = node.Track();
        var behaviour = node.Behaviour;
        switch (behaviour.Outage)
        {
            case OutageMode.Refuse:
                node.CountFailure();
                http.Abort();
                return Results.Empty;
            case OutageMode.Hang:
                await Task.Delay(Timeout.Infinite, http.RequestAborted).ContinueWith(_ => { }, TaskScheduler.Default);
                return Results.Empty;
            case OutageMode.Error500:
                node.CountFailure();
                return RouterError(StatusCodes.Status500InternalServerError, "router_unavailable", "router is failing (simulated outage)");
        }
        if (behaviour.ErrorRate > 0 && Random.Shared.NextDouble() < behaviour.ErrorRate)
        {
            node.CountFailure();
            return RouterError(StatusCodes.Status500InternalServerError, "miner_error", "the session's miner failed (simulated)");
        }

        var seed = node.Options.Seed ^ (request.Seed ?? 0);
        var natural = TextGenerator.NaturalLength(request.Prompt, seed);
        var limit = request.MaxTokens ?? DefaultMaxTokens;
        var count = Math.Min(natural, limit);
        var finish = count < natural ? "length" : "stop";
        var promptTokens = TextGenerator.CountTokens(request.Prompt);
        var completion = new RouterCompletion(
            "cmpl-" + Guid.NewGuid().ToString("N"), "text_completion", DateTimeOffset.UtcNow.ToUnixTimeSeconds(), node.Options.Model,
            [], new RouterUsage(promptTokens, count, promptTokens + count));

        if (behaviour.TimeToFirstTokenMs > 0)
            await Task.Delay(behaviour.TimeToFirstTokenMs, http.RequestAborted);

        var tokens = TextGenerator.Generate(request.Prompt, seed, count);
        if (request.Stream == true)
        {
            http.Response.ContentType = "text/event-stream";
            http.Response.Headers.CacheControl = "no-cache";
            var events = StreamTokens(completion, tokens, finish, behaviour, http, node, http.RequestAborted);
            await SseFormatter.WriteAsync(events, http.Response.Body, http.RequestAborted);
            return Results.Empty;
        }

        var text = new System.Text.StringBuilder();
        foreach (var token in tokens)
        {
            await Pace(behaviour, http.RequestAborted);
            text.Append(token);
        }
        return Results.Json(completion with { Choices = [new RouterChoice(0, text.ToString(), finish)] }, RouterNodeExtensions.Json);
    }

    private static async IAsyncEnumerable<SseItem<string>> StreamTokens(
        RouterCompletion head, IEnumerable<string> tokens, string finish, RouterBehaviour behaviour,
        HttpContext http, RouterNodeState node, [EnumeratorCancellation] CancellationToken ct)
    {
        var sent = 0;
        foreach (var token in tokens)
        {
            if (behaviour.CutStreamAfterTokens is { } cut && sent >= cut)
            {
                node.CountFailure();
                http.Abort();
                yield break;
            }
            if (sent > 0) await Pace(behaviour, ct);
            sent++;
            yield return Data(head with { Choices = [new RouterChoice(0, token, null)], Usage = null });
        }
        yield return Data(head with { Choices = [new RouterChoice(0, "", finish)] });
        yield return new SseItem<string>("[DONE]");
    }

    private static Task Pace(RouterBehaviour behaviour, CancellationToken ct) =>
        behaviour.TokensPerSecond > 0 ? Task.Delay(TimeSpan.FromSeconds(1 / behaviour.TokensPerSecond), ct) : Task.CompletedTask;

    private static SseItem<string> Data(RouterCompletion chunk) =>
        new(JsonSerializer.Serialize(chunk, RouterNodeExtensions.Json));

    internal static IResult RouterError(int status, string code, string message) =>
        Results.Json(new RouterErrorBody(false, code, message), RouterNodeExtensions.Json, statusCode: status);
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

public sealed record RouterCompletionRequest(
    long? SessionId, string? Prompt, int? MaxTokens, double? Temperature, double? TopP, bool? Stream,
    string? ClientReference, int? Seed);

public sealed record RouterCompletion(string Id, string Object, long Created, string Model, RouterChoice[] Choices, RouterUsage? Usage);
public sealed record RouterChoice(int Index, string Text, string? FinishReason);
public sealed record RouterUsage(int PromptTokens, int CompletionTokens, int TotalTokens);
public sealed record RouterInfo(string Name, string Version, string Model, IReadOnlyList<long> Sessions, DateTimeOffset StartedAt);
public sealed record RouterStatus(bool Healthy, long Load, long Completed, long Failed, long UptimeSeconds);
public sealed record RouterSession(long Id, string Model, string Kind, string State);
public sealed record RouterErrorBody(bool Success, string Error, string Message);
