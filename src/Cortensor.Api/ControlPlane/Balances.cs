using Npgsql;

namespace Cortensor.Api.ControlPlane;

public sealed record LedgerTotals(decimal Balance, long TokensThisMonth, int UsageEntries, int UsageEvents);

/// <summary>An organisation's ledger totals, read in one statement so a committing batch is seen whole or not at all.</summary>
public static class Balances
{
    public static DateTimeOffset MonthStart(DateTimeOffset now) => new(now.Year, now.Month, 1, 0, 0, 0, TimeSpan.Zero);

    /// <param name="countEvents">Also count usage_events (unindexed by organisation on purpose: operators' reconciliation only).</param>
    public static async Task<LedgerTotals> ReadAsync(NpgsqlDataSource postgres, Guid organizationId, DateTimeOffset now, bool countEvents, CancellationToken ct)
    {
        await using var command = postgres.CreateCommand("""
            SELECT coalesce(sum(amount), 0),
                   coalesce(sum(tokens) FILTER (WHERE kind = 'Usage' AND created_at >= $2), 0)::bigint,
                   count(*) FILTER (WHERE kind = 'Usage')::int,
                   CASE WHEN $3 THEN (SELECT count(*) FROM usage_events WHERE organization_id = $1)::int ELSE 0 END
            FROM billing_ledger WHERE organization_id = $1
            """);
        command.Parameters.Add(new NpgsqlParameter { Value = organizationId });
        command.Parameters.Add(new NpgsqlParameter { Value = MonthStart(now) });
        command.Parameters.Add(new NpgsqlParameter { Value = countEvents });
        await using var reader = await command.ExecuteReaderAsync(ct);
        await reader.ReadAsync(ct);
        return new LedgerTotals(reader.GetDecimal(0), reader.GetInt64(1), reader.GetInt32(2), reader.GetInt32(3));
    }
}
