using Microsoft.EntityFrameworkCore.Migrations;

#nullable disable

namespace Cortensor.Api.Data.Migrations
{
    /// <inheritdoc />
    public partial class RequestLogIndexes : Migration
    {
        /// <inheritdoc />
        protected override void Up(MigrationBuilder migrationBuilder)
        {
            migrationBuilder.DropIndex(
                name: "ix_request_logs_model_id_created_at",
                table: "request_logs");

            migrationBuilder.DropIndex(
                name: "ix_request_logs_status_created_at",
                table: "request_logs");
        }

        /// <inheritdoc />
        protected override void Down(MigrationBuilder migrationBuilder)
        {
            migrationBuilder.CreateIndex(
                name: "ix_request_logs_model_id_created_at",
                table: "request_logs",
                columns: new[] { "model_id", "created_at" });

            migrationBuilder.CreateIndex(
                name: "ix_request_logs_status_created_at",
                table: "request_logs",
                columns: new[] { "status", "created_at" });
        }
    }
}
