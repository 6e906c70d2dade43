using Microsoft.EntityFrameworkCore.Migrations;

#nullable disable

namespace Cortensor.Api.Data.Migrations
{
    /// <inheritdoc />
    public partial class RouterContract : Migration
    {
        /// <inheritdoc />
        protected override void Up(MigrationBuilder migrationBuilder)
        {
            migrationBuilder.AddColumn<string>(
                name: "task_id",
                table: "usage_events",
                type: "text",
                nullable: true);

            migrationBuilder.AddColumn<int>(
                name: "api_version",
                table: "router_pools",
                type: "integer",
                nullable: true);

            migrationBuilder.AddColumn<bool>(
                name: "supports_penalties",
                table: "router_pools",
                type: "boolean",
                nullable: false,
                defaultValue: false);

            migrationBuilder.AddColumn<bool>(
                name: "supports_seed",
                table: "router_pools",
                type: "boolean",
                nullable: false,
                defaultValue: false);

            migrationBuilder.AddColumn<bool>(
                name: "supports_top_k",
                table: "router_pools",
                type: "boolean",
                nullable: false,
                defaultValue: false);

            migrationBuilder.AddColumn<string>(
                name: "task_id",
                table: "request_logs",
                type: "text",
                nullable: true);

            migrationBuilder.AddColumn<int>(
                name: "precommit_timeout_seconds",
                table: "models",
                type: "integer",
                nullable: true);

            migrationBuilder.AddColumn<int>(
                name: "timeout_seconds",
                table: "models",
                type: "integer",
                nullable: true);

            migrationBuilder.UpdateData(
                table: "models",
                keyColumn: "id",
                keyValue: "gemma-4-26b",
                columns: new[] { "precommit_timeout_seconds", "timeout_seconds" },
                values: new object[] { null, null });

            migrationBuilder.UpdateData(
                table: "models",
                keyColumn: "id",
                keyValue: "gpt-oss-120b",
                columns: new[] { "precommit_timeout_seconds", "timeout_seconds" },
                values: new object[] { null, null });

            migrationBuilder.UpdateData(
                table: "models",
                keyColumn: "id",
                keyValue: "gpt-oss-20b",
                columns: new[] { "precommit_timeout_seconds", "timeout_seconds" },
                values: new object[] { null, null });

            migrationBuilder.UpdateData(
                table: "models",
                keyColumn: "id",
                keyValue: "qwen-3-32b",
                columns: new[] { "precommit_timeout_seconds", "timeout_seconds" },
                values: new object[] { null, null });

            migrationBuilder.UpdateData(
                table: "router_pools",
                keyColumn: "id",
                keyValue: "gemma4",
                columns: new[] { "api_version", "supports_penalties", "supports_seed", "supports_top_k" },
                values: new object[] { null, false, false, false });

            migrationBuilder.UpdateData(
                table: "router_pools",
                keyColumn: "id",
                keyValue: "oss-120b",
                columns: new[] { "api_version", "supports_penalties", "supports_seed", "supports_top_k" },
                values: new object[] { null, false, false, false });

            migrationBuilder.UpdateData(
                table: "router_pools",
                keyColumn: "id",
                keyValue: "oss-20b",
                columns: new[] { "api_version", "supports_penalties", "supports_seed", "supports_top_k" },
                values: new object[] { null, false, false, false });

            migrationBuilder.UpdateData(
                table: "router_pools",
                keyColumn: "id",
                keyValue: "qwen",
                columns: new[] { "api_version", "supports_penalties", "supports_seed", "supports_top_k" },
                values: new object[] { null, false, false, false });
        }

        /// <inheritdoc />
        protected override void Down(MigrationBuilder migrationBuilder)
        {
            migrationBuilder.DropColumn(
                name: "task_id",
                table: "usage_events");

            migrationBuilder.DropColumn(
                name: "api_version",
                table: "router_pools");

            migrationBuilder.DropColumn(
                name: "supports_penalties",
                table: "router_pools");

            migrationBuilder.DropColumn(
                name: "supports_seed",
                table: "router_pools");

            migrationBuilder.DropColumn(
                name: "supports_top_k",
                table: "router_pools");

            migrationBuilder.DropColumn(
                name: "task_id",
                table: "request_logs");

            migrationBuilder.DropColumn(
                name: "precommit_timeout_seconds",
                table: "models");

            migrationBuilder.DropColumn(
                name: "timeout_seconds",
                table: "models");
        }
    }
}
