using System.Globalization;
using Cortensor.Api.Data;
using Cortensor.Api.Errors;

namespace Cortensor.Api.Limits;

/// <summary>What a customer reads when admission says no: which limit, how far, what to do.</summary>
public static class Refusals
{
    public static ApiError? For(Admission a, BillingMode mode, long? monthlyQuota)
    {
        var retry = Math.Max(1, (int)Math.Ceiling((a.RetryAfter is { } sooner && sooner < a.Reset ? sooner : a.Reset).TotalSeconds));
        return a.Verdict switch
        {
            AdmissionVerdict.Admitted => null,
            AdmissionVerdict.KeyRequestsExhausted => ApiError.RateLimited($"requests per minute on this key (limit {a.KeyRequestLimit})", retry),
            AdmissionVerdict.KeyTokensExhausted => ApiError.RateLimited(
                $"tokens per minute on this key (limit {a.KeyTokenLimit}, this request reserves {a.ReservedTokens})", retry),
            AdmissionVerdict.OrganizationRequestsExhausted => ApiError.RateLimited(
                $"requests per minute of your organization (limit {a.OrganizationRequestLimit}, shared by all its keys)", retry),
            AdmissionVerdict.OrganizationTokensExhausted => ApiError.RateLimited(
                $"tokens per minute of your organization (limit {a.OrganizationTokenLimit}, shared by all its keys; this request reserves {a.ReservedTokens})", retry),
            AdmissionVerdict.TooManyConcurrent => ApiError.RateLimited(
                $"concurrent requests of your organization (limit {a.ConcurrencyLimit})", 1),
            AdmissionVerdict.KeyBudgetExhausted when a.OverBudget is { } over => ApiError.KeyBudgetExceeded(over.Message()),
            AdmissionVerdict.InsufficientFunds when mode == BillingMode.PrepaidCredits => ApiError.InsufficientQuota(
                $"Your credit balance is ${Usd(a.Balance)} and this request may cost up to ${Usd(a.Amount)}. Add credits, or lower max_tokens."),
            AdmissionVerdict.InsufficientFunds => ApiError.InsufficientQuota(
                $"Your monthly quota has {Math.Max(0, (monthlyQuota ?? 0) - a.Balance)} tokens left and this request may use up to {a.Amount} (prompt plus max_tokens). Lower max_tokens, wait for next month, or upgrade your plan."),
            AdmissionVerdict.OutageAllowanceSpent => ApiError.DependencyUnavailable("Billing"),
            _ => ApiError.DependencyUnavailable("Billing"),
        };
    }

    private static string Usd(long units) => Pricing.FromUnits(units).ToString("0.########", CultureInfo.InvariantCulture);
}
