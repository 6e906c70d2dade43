using System.Text.Json;
using Cortensor.Api.Catalog;
using Cortensor.Api.Data;
using Cortensor.Api.Errors;

namespace Cortensor.Api.Keys;

/// <summary>A key budget as a caller writes it: <c>{"usd": 5, "tokens": 100000, "period": "day"}</c>, at least one limit.</summary>
public sealed record KeyBudgetBody(decimal? Usd, long? Tokens, string? Period)
{
    public const decimal MaxUsd = 1_000_000m;

    public (KeyBudget? Budget, ApiError? Error) Validate()
    {
        if (Usd is null && Tokens is null) return (null, ApiError.InvalidField("budget", "'budget' needs 'usd', 'tokens' or both (send \"budget\": null to remove it)."));
        if (Usd is { } usd && (usd <= 0 || usd > MaxUsd || decimal.Round(usd, 10) != usd))
            return (null, ApiError.InvalidField("budget.usd", $"'budget.usd' must be more than 0 and at most {MaxUsd}, with at most 10 decimals."));
        if (Tokens is < 1) return (null, ApiError.InvalidField("budget.tokens", "'budget.tokens' must be at least 1."));
        KeyBudgetPeriod? period = Period switch { "day" => KeyBudgetPeriod.Day, "week" => KeyBudgetPeriod.Week, "month" => KeyBudgetPeriod.Month, _ => null };
        if (period is null) return (null, ApiError.InvalidField("budget.period", "'budget.period' must be 'day', 'week' or 'month' (UTC)."));
        return (new KeyBudget(Usd, Tokens, period.Value), null);
    }
}

/// <summary>
/// A PATCH of a key: only the fields present change; a field sent as null clears it (expiry, models, limits, budget).
/// Read from the raw JSON because "absent" and "null" mean different things here.
/// </summary>
public sealed class KeyChanges
{
    public string? Name { get; private set; }
    public bool ExpiresAtSet { get; private set; }
    public DateTimeOffset? ExpiresAt { get; private set; }
    public string[]? Models { get; private set; }
    public bool RequestsPerMinuteSet { get; private set; }
    public int? RequestsPerMinute { get; private set; }
    public bool TokensPerMinuteSet { get; private set; }
    public int? TokensPerMinute { get; private set; }
    public bool BudgetSet { get; private set; }
    public KeyBudget? Budget { get; private set; }

    private static readonly string[] Known = ["name", "expires_at", "models", "requests_per_minute", "tokens_per_minute", "budget"];

    public static (KeyChanges? Changes, ApiError? Error) Read(JsonElement body, CatalogSnapshot catalog, DateTimeOffset now)
    {
        if (body.ValueKind != JsonValueKind.Object) return (null, ApiError.MalformedJson(null, "the body must be a JSON object."));
        var c = new KeyChanges();
        foreach (var property in body.EnumerateObject())
        {
            if (Array.IndexOf(Known, property.Name) < 0)
                return (null, ApiError.UnsupportedParameter(property.Name, $"'{property.Name}' cannot be changed. A key's {string.Join(", ", Known)} can."));
            var error = c.Take(property.Name, property.Value, catalog, now);
            if (error is not null) return (null, error);
        }
        return (c, null);
    }

    private ApiError? Take(string name, JsonElement value, CatalogSnapshot catalog, DateTimeOffset now)
    {
        var isNull = value.ValueKind == JsonValueKind.Null;
        switch (name)
        {
            case "name":
                if (value.ValueKind != JsonValueKind.String || string.IsNullOrWhiteSpace(value.GetString()) || value.GetString()!.Trim().Length > 100)
                    return ApiError.InvalidField("name", "'name' must be a non-empty string of at most 100 characters.");
                if (ApiError.NotOneLine(value.GetString()!))
                    return ApiError.NotOneLineField("name", "'name'");
                Name = value.GetString()!.Trim();
                return null;
            case "expires_at":
                ExpiresAtSet = true;
                if (isNull) return null;
                if (value.ValueKind != JsonValueKind.String || !value.TryGetDateTimeOffset(out var expires))
                    return ApiError.InvalidField("expires_at", "'expires_at' must be an ISO 8601 time, or null for no expiry.");
                if (expires <= now) return ApiError.InvalidField("expires_at", "'expires_at' must be in the future.");
                ExpiresAt = expires.ToUniversalTime(); // Postgres takes a timestamptz only in UTC
                return null;
            case "models":
                if (isNull) { Models = []; return null; }
                if (value.ValueKind != JsonValueKind.Array || value.GetArrayLength() > 50)
                    return ApiError.InvalidField("models", "'models' must be an array of at most 50 model ids, or null for every model the plan allows.");
                var models = new List<string>();
                foreach (var m in value.EnumerateArray())
                {
                    var id = m.ValueKind == JsonValueKind.String ? m.GetString() : null;
                    if (string.IsNullOrEmpty(id) || !catalog.Models.ContainsKey(id))
                        return ApiError.InvalidField("models", $"Unknown model '{(id ?? m.GetRawText())}'. GET /portal/models lists them.");
                    if (!models.Contains(id)) models.Add(id);
                }
                Models = [.. models];
                return null;
            case "requests_per_minute":
                RequestsPerMinuteSet = true;
                return Limit(value, name, v => RequestsPerMinute = v);
            case "tokens_per_minute":
                TokensPerMinuteSet = true;
                return Limit(value, name, v => TokensPerMinute = v);
            default: // budget
                BudgetSet = true;
                if (isNull) return null;
                var body = value.ValueKind == JsonValueKind.Object ? ReadBudget(value) : null;
                if (body is null) return ApiError.InvalidField("budget", "'budget' must be an object {\"usd\", \"tokens\", \"period\"}, or null to remove it.");
                var (budget, error) = body.Validate();
                Budget = budget;
                return error;
        }
    }

    /// <summary>
    /// The first field this change would loosen on <paramref name="key"/> (a limit raised or removed, a model added, a
    /// later expiry, a budget raised, removed or moved to another period, whose count starts afresh); null if it only
    /// tightens or renames. A member may tighten the keys they created; only an owner or admin may loosen what may have
    /// been set on them.
    /// </summary>
    public string? Loosens(ApiKey key)
    {
        if (RequestsPerMinuteSet && key.RequestsPerMinute is { } rpm && (RequestsPerMinute is null || RequestsPerMinute > rpm)) return "requests_per_minute";
        if (TokensPerMinuteSet && key.TokensPerMinute is { } tpm && (TokensPerMinute is null || TokensPerMinute > tpm)) return "tokens_per_minute";
        if (ExpiresAtSet && key.ExpiresAt is { } expires && (ExpiresAt is null || ExpiresAt > expires)) return "expires_at";
        if (Models is { } models && key.AllowedModels.Count > 0 && (models.Length == 0 || models.Any(m => !key.AllowedModels.Contains(m)))) return "models";
        if (BudgetSet && KeyBudget.From(key.BudgetUsd, key.BudgetTokens, key.BudgetPeriod) is { } current)
        {
            if (Budget is not { } next || next.Period != current.Period
                || (current.Usd is { } usd && (next.Usd is null || next.Usd > usd))
                || (current.Tokens is { } tokens && (next.Tokens is null || next.Tokens > tokens)))
                return "budget";
        }
        return null;
    }

    private static KeyBudgetBody? ReadBudget(JsonElement value)
    {
        decimal? usd = null;
        long? tokens = null;
        string? period = null;
        foreach (var p in value.EnumerateObject())
        {
            switch (p.Name)
            {
                case "usd" when p.Value.ValueKind == JsonValueKind.Number && p.Value.TryGetDecimal(out var u): usd = u; break;
                case "usd" or "tokens" or "period" when p.Value.ValueKind == JsonValueKind.Null: break;
                case "tokens" when p.Value.ValueKind == JsonValueKind.Number && p.Value.TryGetInt64(out var t): tokens = t; break;
                case "period" when p.Value.ValueKind == JsonValueKind.String: period = p.Value.GetString(); break;
                default: return null;
            }
        }
        return new KeyBudgetBody(usd, tokens, period);
    }

    private static ApiError? Limit(JsonElement value, string name, Action<int?> set)
    {
        if (value.ValueKind == JsonValueKind.Null) { set(null); return null; }
        if (value.ValueKind != JsonValueKind.Number || !value.TryGetInt32(out var n) || n < 1)
            return ApiError.InvalidField(name, $"'{name}' must be a whole number of at least 1, or null for the plan's limit.");
        set(n);
        return null;
    }
}

/// <summary>What a rotation may say: how long the replaced secret keeps working (0 = it stops now).</summary>
public sealed record RotateKeyBody(int? GracePeriodSeconds)
{
    public static readonly TimeSpan MaxGrace = TimeSpan.FromDays(7);

    public ApiError? Validate() => GracePeriodSeconds is < 0 || GracePeriodSeconds > MaxGrace.TotalSeconds
        ? ApiError.InvalidField("grace_period_seconds", $"'grace_period_seconds' must be between 0 and {(int)MaxGrace.TotalSeconds} (7 days).")
        : null;
}
