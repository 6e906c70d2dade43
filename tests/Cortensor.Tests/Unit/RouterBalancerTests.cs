using Cortensor.Api.Catalog;
using Cortensor.Api.Routing;
using Microsoft.Extensions.Options;
using Microsoft.Extensions.Time.Testing;

namespace Cortensor.Tests.Unit;

/// <summary>The balancer in process, on a simulated clock: arrivals, answers and health probes as events.</summary>
public sealed class RouterBalancerTests
{
    private static readonly CatalogPool Pool = new("oss-20b", Draining: false,
    [
        new("router-1", "oss-20b", "http://router-1", [1, 2]),
        new("router-2", "oss-20b", "http://router-2", [3, 4]),
        new("router-3", "oss-20b", "http://router-3", [5, 6]),
    ]);

    [Fact]
    public void ThreeEqualRoutersShare300RequestsEvenlyAfterOneSlowFirstAnswer()
    {
        // 50 requests a second, each answered in 20 ms, except router-2's very first answer (a cold
        // start: 1 s); probes every 2 s measure a 2 ms round trip on every router. Without the decay
        // (LatencyHalfLifeMs = int.MaxValue) router-2 gets 1 request of 300.
        var counts = Simulate(requests: 300, arrivalMs: 20, answerMs: 20, slowFirstAnswerMs: 1000, slowRouter: "router-2", probeEveryMs: 2000);

        Assert.True(counts.Values.All(c => c is >= 80 and <= 120), string.Join(", ", counts.Select(c => $"{c.Key}: {c.Value}")));
    }

    [Fact]
    public void ARouterThatStaysSlowGetsLessTraffic()
    {
        // The decay must not hide a router that really is slow: every answer of router-2 takes 200 ms.
        var counts = Simulate(requests: 300, arrivalMs: 10, answerMs: 20, slowFirstAnswerMs: 200, slowRouter: "router-2", probeEveryMs: 2000,
            alwaysSlow: true);

        Assert.True(counts["router-2"] < counts["router-1"] / 2 && counts["router-2"] < counts["router-3"] / 2,
            $"router-2 got {counts["router-2"]}, router-1 {counts["router-1"]}, router-3 {counts["router-3"]}");
    }

    [Fact]
    public async Task ARouterWhoseCircuitOpenedIsTriedAgainOnceItsBreakIsOverAndClosesOnASuccess()
    {
        var (clock, options, balancer, state) = await WithRouterOneFailedUntilItsCircuitOpenedAsync();
        Assert.Equal(Polly.CircuitBreaker.CircuitState.Open, state.Circuit);
        Assert.False(state.Available);
        Assert.All(Enumerable.Range(0, 50), _ => Assert.NotEqual("router-1", balancer.Pick(Pool)!.Router.Id));

        // Nothing calls through an open circuit, so only the balancer's own reading of the break can let it back in.
        clock.Advance(TimeSpan.FromMilliseconds(options.BreakDurationMs));
        Assert.True(state.Available);
        Assert.Contains(Enumerable.Range(0, 50), _ => balancer.Pick(Pool)!.Router.Id == "router-1");
        using var answer = await state.Breaker.ExecuteAsync(_ => ValueTask.FromResult(new HttpResponseMessage(System.Net.HttpStatusCode.OK)));
        Assert.Equal(Polly.CircuitBreaker.CircuitState.Closed, state.Circuit);
    }

    [Fact]
    public async Task WhileARoutersTrialCallRunsNoOtherRequestIsOfferedItAndAPoolOfThatRouterAloneHasNoneAvailable()
    {
        var (clock, options, balancer, state) = await WithRouterOneFailedUntilItsCircuitOpenedAsync();
        clock.Advance(TimeSpan.FromMilliseconds(options.BreakDurationMs));
        var alone = new CatalogPool("alone", Draining: false, [Pool.Routers.Single(r => r.Id == "router-1")]);
        Assert.True(balancer.AnyAvailable(alone));

        // The trial: Polly lets this one call through and refuses every other until it ends (a whole answer can take minutes).
        var answer = new TaskCompletionSource<HttpResponseMessage>(TaskCreationOptions.RunContinuationsAsynchronously);
        var trial = state.Breaker.ExecuteAsync(async _ => await answer.Task).AsTask();
        Assert.Equal(Polly.CircuitBreaker.CircuitState.HalfOpen, state.Circuit);

        Assert.False(state.Available);
        Assert.False(balancer.AnyAvailable(alone)); // a model's fallbacks serve meanwhile
        Assert.All(Enumerable.Range(0, 50), _ => Assert.NotEqual("router-1", balancer.Pick(Pool)!.Router.Id));

        answer.SetResult(new HttpResponseMessage(System.Net.HttpStatusCode.OK));
        (await trial).Dispose();
        Assert.Equal(Polly.CircuitBreaker.CircuitState.Closed, state.Circuit);
        Assert.True(state.Available);
        Assert.True(balancer.AnyAvailable(alone));
    }

    /// <summary>A balancer on a simulated clock whose router-1 failed enough calls for its circuit to open.</summary>
    private static async Task<(FakeTimeProvider Clock, RoutingOptions Options, RouterBalancer Balancer, RouterState State)> WithRouterOneFailedUntilItsCircuitOpenedAsync()
    {
        var clock = new FakeTimeProvider();
        var options = new RoutingOptions();
        var balancer = new RouterBalancer(Options.Create(options), clock);
        var state = balancer.StateOf("router-1");
        for (var i = 0; i < options.BreakerMinimumThroughput; i++)
            await state.Breaker.ExecuteAsync(_ => ValueTask.FromResult(new HttpResponseMessage(System.Net.HttpStatusCode.InternalServerError)));
        return (clock, options, balancer, state);
    }

    private static Dictionary<string, int> Simulate(int requests, int arrivalMs, int answerMs, int slowFirstAnswerMs, string slowRouter,
        int probeEveryMs, bool alwaysSlow = false)
    {
        var clock = new FakeTimeProvider();
        var balancer = new RouterBalancer(Options.Create(new RoutingOptions()), clock);
        var counts = Pool.Routers.ToDictionary(r => r.Id, _ => 0);
        // Completions due, ordered by time; the simulation is single-threaded.
        var pending = new PriorityQueue<(RouterState State, double Elapsed), long>();
        long now = 0, nextProbe = 0;
        var slowAnswered = false;

        void AdvanceTo(long t)
        {
            while (true)
            {
                var due = pending.TryPeek(out _, out var completion) ? completion : long.MaxValue;
                var next = Math.Min(due, nextProbe);
                if (next > t) break;
                clock.Advance(TimeSpan.FromMilliseconds(next - now));
                now = next;
                if (next == nextProbe)
                {
                    foreach (var router in Pool.Routers) balancer.StateOf(router.Id).ObserveProbe(2);
                    nextProbe += probeEveryMs;
                }
                else
                {
                    var (state, elapsed) = pending.Dequeue();
                    state.Finish(success: true, elapsed);
                }
            }
            clock.Advance(TimeSpan.FromMilliseconds(t - now));
            now = t;
        }

        for (var i = 0; i < requests; i++)
        {
            AdvanceTo((long)i * arrivalMs);
            var choice = balancer.Pick(Pool) ?? throw new InvalidOperationException("no router available");
            choice.State.Start();
            counts[choice.Router.Id]++;
            var elapsed = answerMs;
            if (choice.Router.Id == slowRouter && (alwaysSlow || !slowAnswered))
            {
                elapsed = slowFirstAnswerMs;
                slowAnswered = true;
            }
            pending.Enqueue((choice.State, elapsed), now + elapsed);
        }
        while (pending.TryPeek(out _, out var last)) AdvanceTo(last);
        return counts;
    }
}
