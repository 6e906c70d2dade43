using System.Collections.Concurrent;
using Cortensor.Api.Catalog;
using Microsoft.Extensions.Options;

namespace Cortensor.Api.Routing;

public sealed record RouteChoice(CatalogRouter Router, RouterState State, long Session);

/// <summary>
/// Picks a router of a pool: among the available ones (probe healthy, circuit not open), two at
/// random, and the one with the lower outstanding-work score wins (power of two choices).
/// </summary>
public sealed class RouterBalancer(IOptions<RoutingOptions> options, TimeProvider clock)
{
    private readonly ConcurrentDictionary<string, RouterState> _states = new(StringComparer.Ordinal);

    // Looked up for every router of a pool on every pick: the hit allocates nothing (a capturing factory lambda would).
    public RouterState StateOf(string routerId) => _states.TryGetValue(routerId, out var state) ? state
        : _states.GetOrAdd(routerId, static (id, self) => new RouterState(id, self.options.Value, self.clock), (options, clock));

    public IReadOnlyDictionary<string, RouterState> States => _states;

    /// <summary>Whether any router of the pool could be picked now (probe healthy, circuit not open).</summary>
    public bool AnyAvailable(CatalogPool pool)
    {
        var routers = pool.Routers;
        for (var i = 0; i < routers.Count; i++)
            if (StateOf(routers[i].Id).Available) return true;
        return false;
    }

    public RouteChoice? Pick(CatalogPool pool, string? exclude = null)
    {
        int first = -1, second = -1;
        RouterState? firstState = null, secondState = null;
        var available = 0;
        var routers = pool.Routers;
        // Reservoir-sample two distinct available routers; only the winner becomes a RouteChoice.
        for (var i = 0; i < routers.Count; i++)
        {
            var router = routers[i];
            if (router.Id == exclude) continue;
            var state = StateOf(router.Id);
            if (!state.Available) continue;
            available++;
            if (first < 0) (first, firstState) = (i, state);
            else if (second < 0) (second, secondState) = (i, state);
            else
            {
                var slot = Random.Shared.Next(available);
                if (slot == 0) (first, firstState) = (i, state); else if (slot == 1) (second, secondState) = (i, state);
            }
        }
        if (firstState is null) return null;
        var (winner, winnerState) = secondState is null ? (first, firstState)
            : firstState.Score < secondState.Score ? (first, firstState)
            : secondState.Score < firstState.Score ? (second, secondState)
            : Random.Shared.Next(2) == 0 ? (first, firstState) : (second, secondState);
        var chosen = routers[winner];
        return new RouteChoice(chosen, winnerState, winnerState.NextSession(chosen.Sessions));
    }
}
