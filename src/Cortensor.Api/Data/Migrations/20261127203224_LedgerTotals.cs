using System;
using Microsoft.EntityFrameworkCore.Migrations;

#nullable disable

namespace Cortensor.Api.Data.Migrations
{
    /// <inheritdoc />
    public partial class LedgerTotals : Migration
    {
        /// <inheritdoc />
        protected override void Up(MigrationBuilder migrationBuilder)
        {
            migrationBuilder.CreateTable(
                name: "ledger_totals",
                columns: table => new
                {
                    organization_id = table.Column<Guid>(type: "uuid", nullable: false),
                    month = table.Column<DateOnly>(type: "date", nullable: false),
                    amount = table.Column<decimal>(type: "numeric(20,10)", precision: 20, scale: 10, nullable: false),
                    usage_tokens = table.Column<long>(type: "bigint", nullable: false),
                    usage_entries = table.Column<long>(type: "bigint", nullable: false)
                },
                constraints: table =>
                {
                    table.PrimaryKey("pk_ledger_totals", x => new { x.organization_id, x.month });
                    table.ForeignKey(
                        name: "fk_ledger_totals_organizations_organization_id",
                        column: x => x.organization_id,
                        principalTable: "organizations",
                        principalColumn: "id",
                        onDelete: ReferentialAction.Cascade);
                });

            // Nothing may be inserted into the ledger between the totals' backfill and their trigger: both happen under
            // this lock (readers go on; the writers wait for the migration's commit, with their entries kept in the stream).
            migrationBuilder.Sql("LOCK TABLE billing_ledger IN SHARE ROW EXCLUSIVE MODE;");
            migrationBuilder.Sql("""
                CREATE FUNCTION ledger_totals_add() RETURNS trigger LANGUAGE plpgsql AS $$
                BEGIN
                    -- One row per organisation and month of the statement's entries, locked in one order by every writer.
                    INSERT INTO ledger_totals AS t (organization_id, month, amount, usage_tokens, usage_entries)
                    SELECT organization_id, date_trunc('month', created_at AT TIME ZONE 'UTC')::date, sum(amount),
                           coalesce(sum(tokens) FILTER (WHERE kind = 'Usage'), 0), count(*) FILTER (WHERE kind = 'Usage')
                    FROM inserted
                    GROUP BY 1, 2
                    ORDER BY 1, 2
                    ON CONFLICT (organization_id, month) DO UPDATE SET
                        amount = t.amount + excluded.amount,
                        usage_tokens = t.usage_tokens + excluded.usage_tokens,
                        usage_entries = t.usage_entries + excluded.usage_entries;
                    RETURN NULL;
                END $$;

                CREATE TRIGGER billing_ledger_totals AFTER INSERT ON billing_ledger
                    REFERENCING NEW TABLE AS inserted FOR EACH STATEMENT EXECUTE FUNCTION ledger_totals_add();

                CREATE FUNCTION billing_ledger_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
                BEGIN
                    RAISE EXCEPTION 'billing_ledger is append-only: record a correction as a new entry (kind Adjustment)'
                        USING ERRCODE = 'restrict_violation';
                END $$;

                CREATE TRIGGER billing_ledger_append_only BEFORE UPDATE OR DELETE OR TRUNCATE ON billing_ledger
                    FOR EACH STATEMENT EXECUTE FUNCTION billing_ledger_append_only();

                INSERT INTO ledger_totals (organization_id, month, amount, usage_tokens, usage_entries)
                SELECT organization_id, date_trunc('month', created_at AT TIME ZONE 'UTC')::date, sum(amount),
                       coalesce(sum(tokens) FILTER (WHERE kind = 'Usage'), 0), count(*) FILTER (WHERE kind = 'Usage')
                FROM billing_ledger
                GROUP BY 1, 2;
                """);
        }

        /// <inheritdoc />
        protected override void Down(MigrationBuilder migrationBuilder)
        {
            migrationBuilder.Sql("""
                DROP TRIGGER billing_ledger_append_only ON billing_ledger;
                DROP FUNCTION billing_ledger_append_only();
                DROP TRIGGER billing_ledger_totals ON billing_ledger;
                DROP FUNCTION ledger_totals_add();
                """);
            migrationBuilder.DropTable(
                name: "ledger_totals");
        }
    }
}
