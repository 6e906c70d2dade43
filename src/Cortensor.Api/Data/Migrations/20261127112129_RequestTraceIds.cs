using Microsoft.EntityFrameworkCore.Migrations;

#nullable disable

namespace Cortensor.Api.Data.Migrations
{
    /// <inheritdoc />
    public partial class RequestTraceIds : Migration
    {
        /// <inheritdoc />
        protected override void Up(MigrationBuilder migrationBuilder)
        {
            migrationBuilder.AddColumn<string>(
                name: "trace_id",
                table: "usage_events",
                type: "character varying(32)",
                maxLength: 32,
                nullable: true);

            migrationBuilder.AddColumn<string>(
                name: "trace_id",
                table: "request_logs",
                type: "character varying(32)",
                maxLength: 32,
                nullable: true);
        }

        /// <inheritdoc />
        protected override void Down(MigrationBuilder migrationBuilder)
        {
            migrationBuilder.DropColumn(
                name: "trace_id",
                table: "usage_events");

            migrationBuilder.DropColumn(
                name: "trace_id",
                table: "request_logs");
        }
    }
}
