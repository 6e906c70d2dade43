using System;
using Microsoft.EntityFrameworkCore.Migrations;

#nullable disable

namespace Cortensor.Api.Data.Migrations
{
    /// <inheritdoc />
    public partial class UnkeyKeys : Migration
    {
        /// <inheritdoc />
        protected override void Up(MigrationBuilder migrationBuilder)
        {
            migrationBuilder.CreateTable(
                name: "unkey_keys",
                columns: table => new
                {
                    unkey_key_id = table.Column<string>(type: "character varying(255)", maxLength: 255, nullable: false),
                    api_key_id = table.Column<Guid>(type: "uuid", nullable: false),
                    created_at = table.Column<DateTimeOffset>(type: "timestamp with time zone", nullable: false)
                },
                constraints: table =>
                {
                    table.PrimaryKey("pk_unkey_keys", x => x.unkey_key_id);
                    table.ForeignKey(
                        name: "fk_unkey_keys_api_keys_api_key_id",
                        column: x => x.api_key_id,
                        principalTable: "api_keys",
                        principalColumn: "id",
                        onDelete: ReferentialAction.Cascade);
                });

            migrationBuilder.CreateIndex(
                name: "ix_unkey_keys_api_key_id",
                table: "unkey_keys",
                column: "api_key_id");
        }

        /// <inheritdoc />
        protected override void Down(MigrationBuilder migrationBuilder)
        {
            migrationBuilder.DropTable(
                name: "unkey_keys");
        }
    }
}
