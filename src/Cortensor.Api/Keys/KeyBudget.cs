using System.Globalization;
using System.Text.Json.Serialization;
using Cortensor.Api.Limits;
using StackExchange.Redis;

namespace Cortensor.Api.Keys;

/// <summary>The UTC period a key budget covers: a calendar day, an ISO week (from Monday) or a calendar month.</summary>
[JsonConverter(typeof(JsonStringEnumConverter<KeyBudgetPeriod>))]
public enum KeyBudgetPeriod
{
    [JsonStringEnumMemberName("day")] Day,
    [JsonStringEnumMemberName("week")] Week,
    [JsonStringEnumMemberName("month")] Month,
}

/// <summary>
/// A key's spending limit per UTC period, in USD, tokens or both. It is enforced in the admission script,
/// in the same atomic step as the organisation's balance: the request's worst case (prompt ceiling plus
/// max_tokens) is reserved on the period's counter, and settlement gives back what it did not use, to the
/// period it was taken from. The counter lives in Redis (<see cref="Counter"/>); a key with a budget is never
/// admitted by one replica alone (<see cref="LocalAdmission"/>), so no outage or race can overspend it.
/// </summary>
public sealed record KeyBudget(decimal? Usd, long? Tokens, KeyBudgetPeriod Period)
{
    public static KeyBudget? From(decimal? usd, long? tokens, KeyBudgetPeriod? period) =>
        (usd, tokens, period) is (null, null, _) or (_, _, null) ? null : new KeyBudget(usd, tokens, period.Value);

    public long? UsdUnits => Usd is { } usd ? Pricing.ToUnits(usd) : null;

    /// <summary>The period <paramref name="at"/> falls in: its name (part of the counter's key), start and end.</summary>
    public (string Name, DateTimeOffset Start, DateTimeOffset End) PeriodAt(DateTimeOffset at)
    {
        var day = new DateTimeOffset(at.UtcDateTime.Date, TimeSpan.Zero);
        return Period switch
        {
            KeyBudgetPeriod.Day => ("d" + day.ToString("yyyyMMdd", CultureInfo.InvariantCulture), day, day.AddDays(1)),
            KeyBudgetPeriod.Week => Week(day),
            _ => Month(day),
        };

        static (string, DateTimeOffset, DateTimeOffset) Week(DateTimeOffset day)
        {
            var monday = day.AddDays(-(((int)day.DayOfWeek + 6) % 7));
            return ("w" + monday.ToString("yyyyMMdd", CultureInfo.InvariantCulture), monday, monday.AddDays(7));
        }

        static (string, DateTimeOffset, DateTimeOffset) Month(DateTimeOffset day)
        {
            var first = new DateTimeOffset(day.Year, day.Month, 1, 0, 0, 0, TimeSpan.Zero);
            return ("m" + first.ToString("yyyyMM", CultureInfo.InvariantCulture), first, first.AddMonths(1));
        }
    }

    /// <summary>The period's counter: a hash of <c>u</c> (credit units of 1e-10 USD) and <c>t</c> (tokens), reserved and settled.</summary>
    public static string Counter(Guid org, Guid key, string period) => $"kbudget:{{{org:N}}}:{key:N}:{period}";

    /// <summary>Kept a while past the period's end, so a late settlement still finds the counter it refunds.</summary>
    public static long CounterTtlSeconds(DateTimeOffset now, DateTimeOffset end) => (long)(end - now).TotalSeconds + 2 * 24 * 3600;

    public const string UnitsField = "u";
    public const string TokensField = "t";

    // Raises a field to at least a figure; the counter's own (reservations in flight included) is kept if higher.
    private static readonly LuaScript AtLeastScript = LuaScript.Prepare("""
        for i, field in ipairs({'u', 't'}) do
          local floor = i == 1 and @units or @tokens
          if tonumber(redis.call('HGET', @counter, field) or '0') < tonumber(floor) then redis.call('HSET', @counter, field, floor) end
        end
        redis.call('EXPIRE', @counter, @ttl)
        return 1
        """);

    /// <summary>
    /// Counts what the key spent this period before its budget counted it (<paramref name="units"/> and
    /// <paramref name="tokens"/>, from the ledger): the counter only counts while a budget is set, so a budget set at noon
    /// would otherwise start from nothing, and a key that had spent $4 of a new $5 daily budget could spend $5 more.
    /// </summary>
    public Task CountSpentAsync(IDatabase redis, Guid org, Guid key, long units, long tokens, DateTimeOffset now)
    {
        var (name, _, end) = PeriodAt(now);
        return redis.ScriptEvaluateAsync(AtLeastScript,
            new { counter = (RedisKey)Counter(org, key, name), units, tokens, ttl = CounterTtlSeconds(now, end) });
    }

    /// <summary>What a key has used of its budget in the current period (settled and still reserved), read from Redis.</summary>
    public async Task<KeyBudgetState> StateAsync(IDatabase redis, Guid org, Guid key, DateTimeOffset now)
    {
        var (name, _, end) = PeriodAt(now);
        var values = await redis.HashGetAsync(Counter(org, key, name), [UnitsField, TokensField]);
        var units = values[0].IsNull ? 0 : (long)values[0];
        var tokens = values[1].IsNull ? 0 : (long)values[1];
        var spent = Pricing.FromUnits(Math.Max(0, units));
        return new KeyBudgetState(Period, Usd, Tokens, spent, Math.Max(0, tokens),
            Usd is { } usd ? Math.Max(0, usd - spent) : null, Tokens is { } t ? Math.Max(0, t - tokens) : null, end);
    }
}

/// <summary>A key's budget as the control plane shows it: limits, spent (settled and reserved) this period, what is left, when it resets.</summary>
public sealed record KeyBudgetState(KeyBudgetPeriod Period, decimal? LimitUsd, long? LimitTokens, decimal SpentUsd, long SpentTokens,
    decimal? RemainingUsd, long? RemainingTokens, DateTimeOffset ResetsAt);

/// <summary>Why admission refused a request on its key's budget: the 402 names the key and says what is left and when it resets.</summary>
public sealed record KeyBudgetRefusal(Guid KeyId, string KeyName, KeyBudget Budget, decimal SpentUsd, long SpentTokens,
    decimal RequestUsd, int RequestTokens, DateTimeOffset ResetsAt)
{
    public string Message()
    {
        var period = Budget.Period switch { KeyBudgetPeriod.Day => "daily", KeyBudgetPeriod.Week => "weekly", _ => "monthly" };
        var limits = new List<string>();
        if (Budget.Usd is { } usd)
            limits.Add($"${Usd(SpentUsd)} of its ${Usd(usd)} {period} budget is spent and this request may cost up to ${Usd(RequestUsd)}");
        if (Budget.Tokens is { } tokens)
            limits.Add($"{SpentTokens} of its {tokens} {period} tokens are used and this request may use up to {RequestTokens}");
        return $"The API key '{KeyName}' ({KeyId}) has reached its budget: {string.Join("; ", limits)}. " +
               $"It resets at {ResetsAt.UtcDateTime.ToString("yyyy-MM-dd'T'HH:mm:ss'Z'", CultureInfo.InvariantCulture)}. Raise the key's budget, or lower max_tokens.";
    }

    private static string Usd(decimal amount) => amount.ToString("0.##########", CultureInfo.InvariantCulture);
}
