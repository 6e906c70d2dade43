using Npgsql;

namespace Cortensor.Api.ControlPlane;

public sealed record LedgerTotals(decimal Balance, long TokensThisMonth, long UsageEntries, long UsageEvents);

/// <summary>An organisation's ledger totals, read in one statement so a committing batch is seen whole or not at all.</summary>
public static class Balances
{
    public static DateTimeOffset MonthStart(DateTimeOffset now) => new(now.Year, now.Month, 1, 0, 0, 0, TimeSpan.Zero);

    /// <param name="countEvents">Also count usage_events (unindexed by organisation on purpose: operators' reconciliation only).</param>
    public static async Task<LedgerTotals> ReadAsync(NpgsqlDataSource postgres, Guid organizationId, DateTimeOffset now, bool countEvents, CancellationToken ct)
    {
        // The ledger's totals, kept by the database with every insert (migration LedgerTotals): a balance is not a sum
        // over an organisation's whole ledger. Usage events are counted only when asked (operators' reconciliation).
        await using var command = postgres.CreateCommand("""
            SELECT coalesce(sum(amount), 0),
                   coalesce(sum(usage_tokens) FILTER (WHERE month = $2), 0)::bigint,
                   coalesce(sum(usage_entries), 0)::bigint,
                   CASE WHEN $3 THEN (SELECT count(*) FROM usage_events WHERE organization_id = $1) ELSE 0 END
            FROM ledger_totals WHERE organization_id = $1
            """);
        command.Parameters.Add(new NpgsqlParameter { Value = organizationId });
        command.Parameters.Add(new NpgsqlParameter { Value = DateOnly.FromDateTime(MonthStart(now).UtcDateTime) });
        command.Parameters.Add(new NpgsqlParameter { Value = countEvents });
        await using var reader = await command.ExecuteReaderAsync(ct);
        await reader.ReadAsync(ct);
        return new LedgerTotals(reader.GetDecimal(0), reader.GetInt64(1), reader.GetInt64(2), reader.GetInt64(3));
    }
}
