using System.Text.RegularExpressions;
using Cortensor.Api.ControlPlane;
using Cortensor.Api.Errors;
using Cortensor.Api.Metering;
using Microsoft.AspNetCore.Http.HttpResults;
using Microsoft.AspNetCore.Mvc;
using StackExchange.Redis;
using Cortensor.Api.Infrastructure;

namespace Cortensor.Api.Admin;

/// <summary>
/// Usage records the ledger refused, for operators (docs/operations.md says what to do with one). Mapped inside
/// the admin group, so it has the admin policy of every other operator control.
/// </summary>
public static partial class UsageDeadLettersApi
{
    public static RouteGroupBuilder MapUsageDeadLetters(this RouteGroupBuilder admin)
    {
        admin.MapGet("/usage/dead-letters", List).TakesQuery("before", "limit")
            .WithSummary("Usage records set aside because the ledger refused them, newest first; page with 'before' = the last id seen");
        return admin;
    }

    /// <summary>One dead letter: the record is exactly what was buffered (JSON, or the bytes of a torn spool line).</summary>
    public sealed record DeadLetterDto(string Id, DateTimeOffset At, string Source, string Error, string Record);
    public sealed record DeadLetterPage(DeadLetterDto[] Items, string? Next);

    private static async Task<Results<Ok<DeadLetterPage>, ErrorResult>> List(IConnectionMultiplexer redis,
        [FromQuery] string? before, [FromQuery] string? limit)
    {
        if (QueryParameters.Int(limit, "limit", 1, 500, out var size) is { } bad) return bad.ToResult();
        if (before is not null && !IsStreamId(before))
            return ApiError.InvalidField("before", "'before' must be a dead-letter id, e.g. 1764240000000-0.").ToResult();
        var take = size ?? 50;
        UsageDeadLetters.Entry[] entries;
        try
        {
            entries = await UsageDeadLetters.ListAsync(redis.GetDatabase(), before, take);
        }
        catch (Exception ex) when (Outage.IsRedis(ex))
        {
            return ApiError.DependencyUnavailable("Redis").ToResult();
        }
        var items = entries.Select(e => new DeadLetterDto(e.Id, e.At, e.Source, e.Error, e.Record)).ToArray();
        return TypedResults.Ok(new DeadLetterPage(items, items.Length == take ? items[^1].Id : null));
    }

    [GeneratedRegex(@"^\d{1,20}-\d{1,20}$")]
    private static partial Regex StreamId();

    // Redis takes each half as an unsigned 64-bit number, and nothing comes before 0-0: anything else it refuses, which
    // read as Redis being down.
    private static bool IsStreamId(string id)
    {
        if (!StreamId().IsMatch(id)) return false;
        var dash = id.IndexOf('-');
        return ulong.TryParse(id.AsSpan(0, dash), out var ms) && ulong.TryParse(id.AsSpan(dash + 1), out var seq) && (ms, seq) != (0, 0);
    }
}
