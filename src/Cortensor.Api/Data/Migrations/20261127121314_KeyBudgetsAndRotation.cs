using System;
using Microsoft.EntityFrameworkCore.Migrations;

#nullable disable

namespace Cortensor.Api.Data.Migrations
{
    /// <inheritdoc />
    public partial class KeyBudgetsAndRotation : Migration
    {
        /// <inheritdoc />
        protected override void Up(MigrationBuilder migrationBuilder)
        {
            migrationBuilder.AddColumn<string>(
                name: "budget_period",
                table: "api_keys",
                type: "character varying(8)",
                maxLength: 8,
                nullable: true);

            migrationBuilder.AddColumn<long>(
                name: "budget_tokens",
                table: "api_keys",
                type: "bigint",
                nullable: true);

            migrationBuilder.AddColumn<decimal>(
                name: "budget_usd",
                table: "api_keys",
                type: "numeric(20,10)",
                precision: 20,
                scale: 10,
                nullable: true);

            migrationBuilder.AddColumn<byte[]>(
                name: "retired_hash",
                table: "api_keys",
                type: "bytea",
                nullable: true);

            migrationBuilder.AddColumn<DateTimeOffset>(
                name: "retired_hash_expires_at",
                table: "api_keys",
                type: "timestamp with time zone",
                nullable: true);

            migrationBuilder.AddColumn<DateTimeOffset>(
                name: "rotated_at",
                table: "api_keys",
                type: "timestamp with time zone",
                nullable: true);

            migrationBuilder.CreateIndex(
                name: "ix_api_keys_retired_hash",
                table: "api_keys",
                column: "retired_hash",
                unique: true);
        }

        /// <inheritdoc />
        protected override void Down(MigrationBuilder migrationBuilder)
        {
            migrationBuilder.DropIndex(
                name: "ix_api_keys_retired_hash",
                table: "api_keys");

            migrationBuilder.DropColumn(
                name: "budget_period",
                table: "api_keys");

            migrationBuilder.DropColumn(
                name: "budget_tokens",
                table: "api_keys");

            migrationBuilder.DropColumn(
                name: "budget_usd",
                table: "api_keys");

            migrationBuilder.DropColumn(
                name: "retired_hash",
                table: "api_keys");

            migrationBuilder.DropColumn(
                name: "retired_hash_expires_at",
                table: "api_keys");

            migrationBuilder.DropColumn(
                name: "rotated_at",
                table: "api_keys");
        }
    }
}
