using System.Diagnostics.Metrics;
using Cortensor.Contracts;

namespace Cortensor.Api.Inference;

/// <summary>
/// What a request is charged for, from what the router reports, checked against what the Portal
/// knows: the prompt between the family tokenizer's floor and ceiling (exact for gpt-oss), the
/// completion between 0 and max_tokens. Reports outside those bounds are clamped, counted and logged:
/// a router can neither overcharge a customer nor credit one (negative counts).
/// </summary>
public static class UsageBounds
{
    private static readonly Meter Meter = new(CortensorTelemetry.MeterName);
    private static readonly Counter<long> OutOfBounds = Meter.CreateCounter<long>(
        "cortensor.router.usage_out_of_bounds", description: "Router usage reports outside the tokenizer's bounds, clamped before billing");

    /// <summary>
    /// The rendered prompt's bounds in its family's tokens, counted once per request (its long message bodies looked up in
    /// <paramref name="known"/> first).
    /// </summary>
    public sealed class Prompt(ModelTokenizer tokenizer, string text, ITokenCountCache? known = null)
    {
        private readonly TokenBounds _bounds = tokenizer.Bounds(text, known);
        private int? _estimate;
        public ModelTokenizer Tokenizer => tokenizer;
        public int Ceiling => _bounds.Ceiling;
        public int Floor => _bounds.Floor;
        /// <summary>The family's count, or the o200k estimate (counted only when a router reports none).</summary>
        public int Estimate => _bounds.Count ?? (_estimate ??= Math.Clamp(tokenizer.Count(text), Floor, Ceiling));
    }

    /// <summary>
    /// The completion figures to bound: the router's report, or the count of <paramref name="generated"/> when it reported
    /// none. When the Portal cut the answer at a stop sequence ending at <paramref name="stopEnd"/>, the text after it is
    /// not billed (the router generated it only because it does not apply stop sequences itself): as OpenAI bills up to the
    /// stop sequence, and the same whether the answer was streamed (the rest never read) or not (the rest read and dropped).
    /// </summary>
    public static (int? Reported, int Counted) Completion(ModelTokenizer tokenizer, string generated, int? reported, int? stopEnd)
    {
        if (stopEnd is not { } end || end >= generated.Length) return (reported, reported is null ? tokenizer.Count(generated) : 0);
        // The tokens up to the stop, as counted, plus the router's difference from our count of the whole: the same figure
        // as a stream (which bills the count up to the stop) whenever the two counts agree. Subtracting the count of the
        // rest instead billed one token less whenever the stop ended inside a token (counted in the rest).
        if (reported is { } all) return (Math.Max(0, tokenizer.Count(generated[..end]) + all - tokenizer.Count(generated)), 0);
        return (null, tokenizer.Count(generated[..end]));
    }

    public static (int Prompt, int Completion) Bound(Prompt prompt, int? reportedPrompt, int? reportedCompletion, int countedCompletion,
        int maxTokens, string router, ILogger log)
    {
        var billedPrompt = Math.Clamp(reportedPrompt ?? prompt.Estimate, prompt.Floor, prompt.Ceiling);
        var billedCompletion = Math.Clamp(reportedCompletion ?? countedCompletion, 0, maxTokens);
        if ((reportedPrompt is { } p && p != billedPrompt) || (reportedCompletion is { } c && c != billedCompletion))
        {
            OutOfBounds.Add(1, new KeyValuePair<string, object?>("router", router));
            InferenceLog.UsageOutOfBounds(log, router, reportedPrompt, prompt.Floor, prompt.Ceiling, reportedCompletion, maxTokens, billedPrompt, billedCompletion);
        }
        return (billedPrompt, billedCompletion);
    }
}
