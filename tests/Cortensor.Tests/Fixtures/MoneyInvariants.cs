using System.Net.Http.Json;
using System.Text.Json;
using Aspire.Hosting;
using Aspire.Hosting.Testing;
using Cortensor.Api.Limits;
using Cortensor.Api.Metering;
using Microsoft.Extensions.DependencyInjection;
using Npgsql;
using StackExchange.Redis;

namespace Cortensor.Tests.Fixtures;

/// <summary>
/// What must hold after any fault, checked against the stack's own Redis and Postgres: every request
/// told to a client is recorded once, no reservation or stream entry is left, the ledger's balance is
/// the grants less what the usage cost, and the hot balance equals the ledger.
/// </summary>
public static class MoneyInvariants
{
    public static async Task AssertSettledAsync(PortalAppFixture portal, TestCustomer customer, decimal granted, IReadOnlyCollection<string> requestIds)
    {
        await using var redis = await ConnectionMultiplexer.ConnectAsync((await portal.App.GetConnectionStringAsync(LaunchTopology.Redis))!);
        await using var postgres = NpgsqlDataSource.Create((await portal.App.GetConnectionStringAsync("postgres"))!);
        var db = redis.GetDatabase();
        var org = customer.OrganizationId;

        string state = "";
        var deadline = DateTime.UtcNow.AddSeconds(60);
        while (true)
        {
            var open = await db.HashLengthAsync(LimitKeys.Reservations(org));
            var backlog = await db.StreamLengthAsync(UsageMeter.Stream);
            await using var command = postgres.CreateCommand("""
                SELECT count(*) FILTER (WHERE request_id = ANY($2)), count(DISTINCT request_id) FILTER (WHERE request_id = ANY($2)),
                       coalesce(sum(cost), 0)
                FROM usage_events WHERE organization_id = $1
                """);
            command.Parameters.Add(new NpgsqlParameter { Value = org });
            command.Parameters.Add(new NpgsqlParameter { Value = requestIds.ToArray() });
            await using var reader = await command.ExecuteReaderAsync();
            await reader.ReadAsync();
            var (recorded, distinct, costs) = (reader.GetInt64(0), reader.GetInt64(1), reader.GetDecimal(2));
            await reader.DisposeAsync();
            await using var ledgerCommand = postgres.CreateCommand("SELECT coalesce(sum(amount), 0) FROM billing_ledger WHERE organization_id = $1");
            ledgerCommand.Parameters.Add(new NpgsqlParameter { Value = org });
            var ledger = (decimal)(await ledgerCommand.ExecuteScalarAsync())!;
            var hot = await db.StringGetAsync(LimitKeys.Credit(org));
            state = $"open reservations {open}, stream backlog {backlog}, recorded {recorded} ({distinct} distinct) of {requestIds.Count}, " +
                    $"ledger {ledger}, granted {granted} less costs {costs} = {granted - costs}, hot {(hot.IsNull ? "unloaded" : Pricing.FromUnits((long)hot))}";
            if (open == 0 && backlog == 0 && recorded == requestIds.Count && distinct == requestIds.Count
                && ledger == granted - costs && (hot.IsNull || (long)hot == Pricing.ToUnits(ledger)))
                return;
            if (DateTime.UtcNow > deadline) Assert.Fail("money invariants do not hold: " + state);
            await Task.Delay(250);
        }
    }

    /// <summary>Every router's in-flight count as each Api replica sees it (asked on fresh connections until every replica answered).</summary>
    public static async Task<IReadOnlyDictionary<string, int>> RoutersInFlightAsync(PortalAppFixture portal)
    {
        var token = await portal.SignInAsync(PortalAppFixture.AdminEmail, PortalAppFixture.AdminPassword);
        var seen = new Dictionary<string, int>();
        for (var attempt = 0; attempt < 50 && seen.Count < PortalAppFixture.ApiReplicas; attempt++)
        {
            using var client = new HttpClient { BaseAddress = portal.App.GetEndpoint(LaunchTopology.Api, "http") };
            client.DefaultRequestHeaders.Authorization = new("Bearer", token);
            client.DefaultRequestHeaders.ConnectionClose = true;
            using var response = await client.GetAsync("/admin/pools");
            response.EnsureSuccessStatusCode();
            var pools = await response.Content.ReadFromJsonAsync<JsonElement>();
            var total = 0;
            foreach (var pool in pools.EnumerateArray())
                foreach (var router in pool.GetProperty("routers").EnumerateArray())
                    total += router.GetProperty("in_flight").GetInt32();
            seen[response.Headers.GetValues("x-cortensor-replica").Single()] = total;
        }
        Assert.Equal(PortalAppFixture.ApiReplicas, seen.Count);
        return seen;
    }
}
