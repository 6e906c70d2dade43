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

    public RouterState StateOf(string routerId) => _states.GetOrAdd(routerId, id => new RouterState(id, options.Value, clock));

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
        RouteChoice? first = null, second = null;
        var available = 0;
        var routers = pool.Routers;
        // Reservoir-sample two distinct available routers without allocating.
        for (var i = 0; i < routers.Count; i++)
        {
            var router = routers[i];
            if (router.Id == exclude) continue;
            var state = StateOf(router.Id);
            if (!state.Available) continue;
            available++;
            var choice = new RouteChoice(router, state, 0);
            if (first is null) first = choice;
            else if (second is null) second = choice;
            else
            {
                var slot = Random.Shared.Next(available);
                if (slot == 0) first = choice; else if (slot == 1) second = choice;
            }
        }
        if (first is null) return null;
        var winner = second is null ? first
            : first.State.Score < second.State.Score ? first
            : second.State.Score < first.State.Score ? second
            : Random.Shared.Next(2) == 0 ? first : second;
        return winner with { Session = winner.State.NextSession(winner.Router.Sessions) };
    }
}
