using Cortensor.Api.Catalog;
using Cortensor.Api.Infrastructure;
using Cortensor.Api.Metering;
using Cortensor.Api.Routing;

namespace Cortensor.Api.Inference;

/// <summary>A whole (unstreamed) answer, as the dialect shapes it, charged within its bounds; the router lease closed as a success.</summary>
internal static class AnswerRelay
{
    public static IResult Complete(Dialect dialect, CatalogModel model, InferenceRequest request,
        RouterResponse upstream, UsageTracker usage, UsageBounds.Prompt prompt, int maxTokens, ILogger log)
    {
        // The forwarder has read and checked the whole answer (RouterAnswerReader): it is text, not an error or a pending task.
        var answer = upstream.Answer!;
        upstream.Lease.Succeeded();

        using var _ = Telemetry.StartStep("normalise-response");
        // What the customer is shown (a gpt-oss answer's final channel); stop sequences apply to it, and what was generated is billed.
        var channels = HarmonyChannels.For(model.Family, answer.Text);
        var shown = HarmonyChannels.Shown(channels, answer.Text);
        var (cut, stopEnd) = ResponseNormaliser.FindStop(shown, request.Stop);
        var text = cut < 0 ? shown : shown[..cut];
        var finish = cut >= 0 ? "stop" : ResponseNormaliser.FinishReason(answer.FinishReason);
        var (reported, counted) = UsageBounds.Completion(prompt.Tokenizer, answer.Text, answer.Usage?.CompletionTokens,
            cut < 0 ? null : HarmonyChannels.GeneratedIndex(channels, stopEnd));
        var (promptTokens, completionTokens) = UsageBounds.Bound(prompt, answer.Usage?.PromptTokens, reported,
            counted, maxTokens, upstream.Route.Router.Id, log);
        usage.Charge(promptTokens, completionTokens);
        usage.Reasoned(HarmonyChannels.HiddenTokens(channels, answer.Text, cut < 0 ? answer.Text.Length : HarmonyChannels.GeneratedIndex(channels, stopEnd), prompt.Tokenizer));
        usage.TellCost();
        if (request.Structured)
        {
            // What the model generated is charged even when it is not what was asked for (docs/api.md).
            var read = ModelOutput.Interpret(model.Family, text, request, cut >= 0 ? AnswerCut.StopSequence : finish == "length" ? AnswerCut.MaxTokens : AnswerCut.None);
            if (read.Error is not null) return usage.Fail(read.Error);
            return dialect.Answer(request, usage.CompletionId(dialect.IdPrefix), model.Id, usage.Created, read, read.Finish(finish), usage.Tokens);
        }
        return dialect.Answer(request, usage.CompletionId(dialect.IdPrefix), model.Id, usage.Created, text, finish, usage.Tokens);
    }
}
