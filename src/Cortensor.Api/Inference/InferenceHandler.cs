using System.Text.Json;
using Cortensor.Api.Catalog;
using Cortensor.Api.Errors;
using Cortensor.Api.Infrastructure;
using Cortensor.Api.Keys;
using Cortensor.Api.Limits;
using Cortensor.Api.Metering;
using Cortensor.Api.Routing;
using Cortensor.Contracts;
using Microsoft.Extensions.Options;

namespace Cortensor.Api.Inference;

/// <summary>
/// The hot path after the key check: entitlement, rate limit, quota, route and forward, normalise,
/// settle and meter. One instance per process; every step is a named span.
/// </summary>
public sealed class InferenceHandler(
    CatalogStore catalog, AdmissionGate admissions, RouterForwarder forwarder, RouterBalancer balancer, UsageTrackers trackers,
    PromptCounts promptCounts, IOptions<InferenceOptions> options, IOptions<LimitsOptions> limits, ILogger<InferenceHandler> log)
{
    // The request ends this long before its reservation's deadline, so the reaper never races a live request.
    private static readonly TimeSpan DeadlineMargin = TimeSpan.FromSeconds(30);

    public async Task<IResult> HandleAsync(HttpContext http, Dialect dialect)
    {
        var key = http.GetKey();
        var ct = http.RequestAborted;
        // Every authenticated request leaves exactly one usage record, whatever happens below.
        var usage = trackers.Start(http, key);
        var trace = System.Diagnostics.Activity.Current; // the request's own span: its outcome is tagged on it
        try
        {
            // A minute whose requests are known to be spent is refused before the body is read (AdmissionGate.SpentWindow).
            if (admissions.SpentWindow(key) is { } spent)
            {
                using (var step = Telemetry.StartStep("admission")) step?.SetTag("cortensor.verdict", spent.Verdict.ToString());
                RateLimitHeaders.Write(http.Response, spent);
                return usage.Fail(Refusals.For(spent, key.BillingMode, key.MonthlyTokenQuota)!);
            }
            var read = await RequestReader.ReadAsync(http, dialect, options.Value.MaxRequestBytes);
            if (read.Request is not { } request)
            {
                if (read.Requested is var (asked, streamed)) usage.Requested(asked, streamed);
                return usage.Fail(read.Error ?? ApiError.MalformedJson(null, "the body must be a JSON object."));
            }
            usage.Requested(request.Model, request.Stream);

            // Step 3: entitlement, and the fallback models when the first cannot serve.
            var snapshot = catalog.Current;
            ModelFallback.Choice choice;
            using (var step = Telemetry.StartStep("entitlement"))
            {
                choice = ModelFallback.Pick(snapshot, key, request, balancer);
                Telemetry.Outcome(step, choice.Error);
            }
            usage.Model = choice.Model;
            if (choice is not { Error: null, Model: { } model, Pool: { } pool })
                return usage.Fail(choice.Error ?? ApiError.UnknownModel(request.Model));

            // The prompt as the router will see it, counted with the family's tokenizer: the reservation
            // covers its ceiling, and the router's report is checked against it.
            string text;
            using (Telemetry.StartStep("normalise-request"))
                text = dialect.Render(model, request);
            var tokenizer = ModelTokenizer.ForFamily(model.Family);
            // Only an exact family counts the prompt up front; the others are bounded by its bytes.
            var prompt = new UsageBounds.Prompt(tokenizer, text, tokenizer.IsExact ? promptCounts.For(key.OrganizationId, tokenizer) : null);
            if (Entitlement.Completion(model, prompt, request, options.Value.DefaultMaxTokens, out var maxTokens) is { } tooLong) return usage.Fail(tooLong);

            // Steps 4-5: rate limits and quota or credits, one atomic reservation shared by every replica.
            Admission admission;
            using (var step = Telemetry.StartStep("admission"))
            {
                admission = await admissions.AdmitAsync(key, model, usage.Draft(model), prompt.Ceiling, maxTokens, ct);
                step?.SetTag("cortensor.verdict", admission.Verdict.ToString());
                step?.SetTag("cortensor.admitted_locally", admission.Local);
            }
            RateLimitHeaders.Write(http.Response, admission);
            if (Refusals.For(admission, key.BillingMode, key.MonthlyTokenQuota) is { } refused) return usage.Fail(refused);
            usage.Admission = admission;

            // Steps 6-7: route to a healthy router of the pool and forward in the router's own API,
            // all of it before the reservation's deadline.
            using var deadline = CancellationTokenSource.CreateLinkedTokenSource(ct);
            deadline.CancelAfter(TimeSpan.FromSeconds(limits.Value.ReservationSeconds) - DeadlineMargin);
            var body = new RouterCompletionRequest(text, maxTokens, request.Temperature, request.TopP, request.Stream,
                http.GetRequestId(), request.Seed, request.PresencePenalty, request.FrequencyPenalty);
            var (response, failed) = await forwarder.SendAsync(pool, model, body, usage.RouterWait, deadline.Token);
            if (response is null) return usage.Fail(failed ?? ApiError.UpstreamFailed());
            using var upstream = response;
            usage.Route = upstream.Route;
            usage.KeepTaskId(upstream.TaskId);
            if (!upstream.Message.IsSuccessStatusCode)
            {
                var detail = await RouterErrorDetail.ReadAsync(upstream.Message.Content, deadline.Token);
                InferenceLog.RouterRejected(log, upstream.Route.Router.Id, (int)upstream.Message.StatusCode, detail);
                upstream.Lease.Failed();
                return usage.Fail(ApiError.UpstreamFailed());
            }

            if (request.Stream)
            {
                await new StreamRelay(http, dialect, model, request, upstream, usage, prompt, maxTokens, log).RelayAsync(deadline.Token);
                return Results.Empty;
            }
            return AnswerRelay.Complete(dialect, model, request, upstream, usage, prompt, maxTokens, log);
        }
        catch (Exception ex) when (ct.IsCancellationRequested && ex is OperationCanceledException or IOException)
        {
            usage.ClientDisconnected();
            return Results.Empty;
        }
        catch
        {
            // The error handler answers 500; the record must say so, not the 200 it started with.
            usage.Failed(ApiError.Internal());
            throw;
        }
        finally
        {
            usage.Complete();
            usage.Tag(trace);
        }
    }
}
