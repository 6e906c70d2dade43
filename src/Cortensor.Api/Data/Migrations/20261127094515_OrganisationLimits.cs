using Microsoft.EntityFrameworkCore.Migrations;

#nullable disable

namespace Cortensor.Api.Data.Migrations
{
    /// <inheritdoc />
    public partial class OrganisationLimits : Migration
    {
        /// <inheritdoc />
        protected override void Up(MigrationBuilder migrationBuilder)
        {
            migrationBuilder.AddColumn<int>(
                name: "max_concurrent_requests",
                table: "plans",
                type: "integer",
                nullable: false,
                defaultValue: 0);

            migrationBuilder.UpdateData(
                table: "plans",
                keyColumn: "id",
                keyValue: "free",
                column: "max_concurrent_requests",
                value: 8);

            migrationBuilder.UpdateData(
                table: "plans",
                keyColumn: "id",
                keyValue: "pro",
                column: "max_concurrent_requests",
                value: 256);

            migrationBuilder.UpdateData(
                table: "plans",
                keyColumn: "id",
                keyValue: "scale",
                column: "max_concurrent_requests",
                value: 100000);
        }

        /// <inheritdoc />
        protected override void Down(MigrationBuilder migrationBuilder)
        {
            migrationBuilder.DropColumn(
                name: "max_concurrent_requests",
                table: "plans");
        }
    }
}
