using System;
using System.Collections.Generic;
using Microsoft.EntityFrameworkCore.Migrations;
using Npgsql.EntityFrameworkCore.PostgreSQL.Metadata;

#nullable disable

#pragma warning disable CA1814 // Prefer jagged arrays over multidimensional

namespace Cortensor.Api.Data.Migrations
{
    /// <inheritdoc />
    public partial class InitialSchema : Migration
    {
        /// <inheritdoc />
        protected override void Up(MigrationBuilder migrationBuilder)
        {
            migrationBuilder.CreateTable(
                name: "audit_log",
                columns: table => new
                {
                    id = table.Column<long>(type: "bigint", nullable: false)
                        .Annotation("Npgsql:ValueGenerationStrategy", NpgsqlValueGenerationStrategy.IdentityByDefaultColumn),
                    actor_user_id = table.Column<Guid>(type: "uuid", nullable: true),
                    actor = table.Column<string>(type: "text", nullable: false),
                    action = table.Column<string>(type: "text", nullable: false),
                    target_type = table.Column<string>(type: "text", nullable: false),
                    target_id = table.Column<string>(type: "text", nullable: false),
                    before = table.Column<string>(type: "jsonb", nullable: true),
                    after = table.Column<string>(type: "jsonb", nullable: true),
                    created_at = table.Column<DateTimeOffset>(type: "timestamp with time zone", nullable: false)
                },
                constraints: table =>
                {
                    table.PrimaryKey("pk_audit_log", x => x.id);
                });

            migrationBuilder.CreateTable(
                name: "models",
                columns: table => new
                {
                    id = table.Column<string>(type: "character varying(64)", maxLength: 64, nullable: false),
                    display_name = table.Column<string>(type: "text", nullable: false),
                    family = table.Column<string>(type: "text", nullable: false),
                    input_price_per1k = table.Column<decimal>(type: "numeric(20,10)", precision: 20, scale: 10, nullable: false),
                    output_price_per1k = table.Column<decimal>(type: "numeric(20,10)", precision: 20, scale: 10, nullable: false),
                    context_window = table.Column<int>(type: "integer", nullable: false),
                    enabled = table.Column<bool>(type: "boolean", nullable: false),
                    created_at = table.Column<DateTimeOffset>(type: "timestamp with time zone", nullable: false)
                },
                constraints: table =>
                {
                    table.PrimaryKey("pk_models", x => x.id);
                });

            migrationBuilder.CreateTable(
                name: "plans",
                columns: table => new
                {
                    id = table.Column<string>(type: "character varying(32)", maxLength: 32, nullable: false),
                    name = table.Column<string>(type: "text", nullable: false),
                    billing_mode = table.Column<string>(type: "character varying(24)", maxLength: 24, nullable: false),
                    requests_per_minute = table.Column<int>(type: "integer", nullable: false),
                    tokens_per_minute = table.Column<int>(type: "integer", nullable: false),
                    monthly_token_quota = table.Column<long>(type: "bigint", nullable: true),
                    monthly_price_usd = table.Column<decimal>(type: "numeric(20,10)", precision: 20, scale: 10, nullable: false)
                },
                constraints: table =>
                {
                    table.PrimaryKey("pk_plans", x => x.id);
                });

            migrationBuilder.CreateTable(
                name: "request_logs",
                columns: table => new
                {
                    event_id = table.Column<string>(type: "character varying(40)", maxLength: 40, nullable: false),
                    request_id = table.Column<string>(type: "character varying(128)", maxLength: 128, nullable: false),
                    organization_id = table.Column<Guid>(type: "uuid", nullable: true),
                    api_key_id = table.Column<Guid>(type: "uuid", nullable: true),
                    model_id = table.Column<string>(type: "text", nullable: true),
                    method = table.Column<string>(type: "text", nullable: false),
                    path = table.Column<string>(type: "text", nullable: false),
                    status = table.Column<int>(type: "integer", nullable: false),
                    error_code = table.Column<string>(type: "text", nullable: true),
                    latency_ms = table.Column<int>(type: "integer", nullable: false),
                    created_at = table.Column<DateTimeOffset>(type: "timestamp with time zone", nullable: false)
                },
                constraints: table =>
                {
                    table.PrimaryKey("pk_request_logs", x => x.event_id);
                });

            migrationBuilder.CreateTable(
                name: "router_pools",
                columns: table => new
                {
                    id = table.Column<string>(type: "character varying(64)", maxLength: 64, nullable: false),
                    draining = table.Column<bool>(type: "boolean", nullable: false),
                    created_at = table.Column<DateTimeOffset>(type: "timestamp with time zone", nullable: false)
                },
                constraints: table =>
                {
                    table.PrimaryKey("pk_router_pools", x => x.id);
                });

            migrationBuilder.CreateTable(
                name: "usage_daily",
                columns: table => new
                {
                    organization_id = table.Column<Guid>(type: "uuid", nullable: false),
                    api_key_id = table.Column<Guid>(type: "uuid", nullable: false),
                    model_id = table.Column<string>(type: "text", nullable: false),
                    day = table.Column<DateOnly>(type: "date", nullable: false),
                    requests = table.Column<long>(type: "bigint", nullable: false),
                    errors = table.Column<long>(type: "bigint", nullable: false),
                    prompt_tokens = table.Column<long>(type: "bigint", nullable: false),
                    completion_tokens = table.Column<long>(type: "bigint", nullable: false),
                    cost = table.Column<decimal>(type: "numeric(20,10)", precision: 20, scale: 10, nullable: false)
                },
                constraints: table =>
                {
                    table.PrimaryKey("pk_usage_daily", x => new { x.organization_id, x.day, x.api_key_id, x.model_id });
                });

            migrationBuilder.CreateTable(
                name: "usage_events",
                columns: table => new
                {
                    event_id = table.Column<string>(type: "character varying(40)", maxLength: 40, nullable: false),
                    request_id = table.Column<string>(type: "character varying(128)", maxLength: 128, nullable: false),
                    organization_id = table.Column<Guid>(type: "uuid", nullable: false),
                    api_key_id = table.Column<Guid>(type: "uuid", nullable: false),
                    model_id = table.Column<string>(type: "text", nullable: false),
                    pool_id = table.Column<string>(type: "text", nullable: true),
                    router_id = table.Column<string>(type: "text", nullable: true),
                    session_id = table.Column<long>(type: "bigint", nullable: true),
                    status = table.Column<int>(type: "integer", nullable: false),
                    prompt_tokens = table.Column<int>(type: "integer", nullable: false),
                    completion_tokens = table.Column<int>(type: "integer", nullable: false),
                    cost = table.Column<decimal>(type: "numeric(20,10)", precision: 20, scale: 10, nullable: false),
                    latency_ms = table.Column<int>(type: "integer", nullable: false),
                    time_to_first_token_ms = table.Column<int>(type: "integer", nullable: true),
                    streamed = table.Column<bool>(type: "boolean", nullable: false),
                    created_at = table.Column<DateTimeOffset>(type: "timestamp with time zone", nullable: false)
                },
                constraints: table =>
                {
                    table.PrimaryKey("pk_usage_events", x => x.event_id);
                });

            migrationBuilder.CreateTable(
                name: "users",
                columns: table => new
                {
                    id = table.Column<Guid>(type: "uuid", nullable: false),
                    email = table.Column<string>(type: "character varying(320)", maxLength: 320, nullable: false),
                    password_hash = table.Column<string>(type: "text", nullable: true),
                    display_name = table.Column<string>(type: "text", nullable: true),
                    external_subject = table.Column<string>(type: "text", nullable: true),
                    is_admin = table.Column<bool>(type: "boolean", nullable: false),
                    created_at = table.Column<DateTimeOffset>(type: "timestamp with time zone", nullable: false)
                },
                constraints: table =>
                {
                    table.PrimaryKey("pk_users", x => x.id);
                });

            migrationBuilder.CreateTable(
                name: "organizations",
                columns: table => new
                {
                    id = table.Column<Guid>(type: "uuid", nullable: false),
                    name = table.Column<string>(type: "character varying(200)", maxLength: 200, nullable: false),
                    status = table.Column<string>(type: "character varying(16)", maxLength: 16, nullable: false),
                    plan_id = table.Column<string>(type: "character varying(32)", nullable: false),
                    created_at = table.Column<DateTimeOffset>(type: "timestamp with time zone", nullable: false)
                },
                constraints: table =>
                {
                    table.PrimaryKey("pk_organizations", x => x.id);
                    table.ForeignKey(
                        name: "fk_organizations_plans_plan_id",
                        column: x => x.plan_id,
                        principalTable: "plans",
                        principalColumn: "id",
                        onDelete: ReferentialAction.Cascade);
                });

            migrationBuilder.CreateTable(
                name: "router_pool_models",
                columns: table => new
                {
                    model_id = table.Column<string>(type: "character varying(64)", nullable: false),
                    pool_id = table.Column<string>(type: "character varying(64)", nullable: false),
                    backend_model = table.Column<string>(type: "text", nullable: false)
                },
                constraints: table =>
                {
                    table.PrimaryKey("pk_router_pool_models", x => x.model_id);
                    table.ForeignKey(
                        name: "fk_router_pool_models_models_model_id",
                        column: x => x.model_id,
                        principalTable: "models",
                        principalColumn: "id",
                        onDelete: ReferentialAction.Cascade);
                    table.ForeignKey(
                        name: "fk_router_pool_models_router_pools_pool_id",
                        column: x => x.pool_id,
                        principalTable: "router_pools",
                        principalColumn: "id",
                        onDelete: ReferentialAction.Cascade);
                });

            migrationBuilder.CreateTable(
                name: "routers",
                columns: table => new
                {
                    id = table.Column<string>(type: "character varying(64)", maxLength: 64, nullable: false),
                    pool_id = table.Column<string>(type: "character varying(64)", nullable: false),
                    base_url = table.Column<string>(type: "text", nullable: false),
                    enabled = table.Column<bool>(type: "boolean", nullable: false),
                    created_at = table.Column<DateTimeOffset>(type: "timestamp with time zone", nullable: false)
                },
                constraints: table =>
                {
                    table.PrimaryKey("pk_routers", x => x.id);
                    table.ForeignKey(
                        name: "fk_routers_router_pools_pool_id",
                        column: x => x.pool_id,
                        principalTable: "router_pools",
                        principalColumn: "id",
                        onDelete: ReferentialAction.Cascade);
                });

            migrationBuilder.CreateTable(
                name: "api_keys",
                columns: table => new
                {
                    id = table.Column<Guid>(type: "uuid", nullable: false),
                    organization_id = table.Column<Guid>(type: "uuid", nullable: false),
                    created_by_user_id = table.Column<Guid>(type: "uuid", nullable: true),
                    name = table.Column<string>(type: "character varying(100)", maxLength: 100, nullable: false),
                    environment = table.Column<string>(type: "character varying(8)", maxLength: 8, nullable: false),
                    start = table.Column<string>(type: "character varying(24)", maxLength: 24, nullable: false),
                    hash = table.Column<byte[]>(type: "bytea", nullable: false),
                    status = table.Column<string>(type: "character varying(16)", maxLength: 16, nullable: false),
                    expires_at = table.Column<DateTimeOffset>(type: "timestamp with time zone", nullable: true),
                    allowed_models = table.Column<List<string>>(type: "text[]", nullable: false),
                    requests_per_minute = table.Column<int>(type: "integer", nullable: true),
                    tokens_per_minute = table.Column<int>(type: "integer", nullable: true),
                    created_at = table.Column<DateTimeOffset>(type: "timestamp with time zone", nullable: false),
                    last_used_at = table.Column<DateTimeOffset>(type: "timestamp with time zone", nullable: true),
                    revoked_at = table.Column<DateTimeOffset>(type: "timestamp with time zone", nullable: true)
                },
                constraints: table =>
                {
                    table.PrimaryKey("pk_api_keys", x => x.id);
                    table.ForeignKey(
                        name: "fk_api_keys_organizations_organization_id",
                        column: x => x.organization_id,
                        principalTable: "organizations",
                        principalColumn: "id",
                        onDelete: ReferentialAction.Cascade);
                });

            migrationBuilder.CreateTable(
                name: "billing_ledger",
                columns: table => new
                {
                    id = table.Column<long>(type: "bigint", nullable: false)
                        .Annotation("Npgsql:ValueGenerationStrategy", NpgsqlValueGenerationStrategy.IdentityByDefaultColumn),
                    organization_id = table.Column<Guid>(type: "uuid", nullable: false),
                    kind = table.Column<string>(type: "character varying(16)", maxLength: 16, nullable: false),
                    amount = table.Column<decimal>(type: "numeric(20,10)", precision: 20, scale: 10, nullable: false),
                    tokens = table.Column<long>(type: "bigint", nullable: false),
                    reference = table.Column<string>(type: "text", nullable: false),
                    description = table.Column<string>(type: "text", nullable: true),
                    created_at = table.Column<DateTimeOffset>(type: "timestamp with time zone", nullable: false)
                },
                constraints: table =>
                {
                    table.PrimaryKey("pk_billing_ledger", x => x.id);
                    table.ForeignKey(
                        name: "fk_billing_ledger_organizations_organization_id",
                        column: x => x.organization_id,
                        principalTable: "organizations",
                        principalColumn: "id",
                        onDelete: ReferentialAction.Cascade);
                });

            migrationBuilder.CreateTable(
                name: "model_access_policies",
                columns: table => new
                {
                    id = table.Column<Guid>(type: "uuid", nullable: false),
                    plan_id = table.Column<string>(type: "character varying(32)", nullable: true),
                    organization_id = table.Column<Guid>(type: "uuid", nullable: true),
                    model_id = table.Column<string>(type: "character varying(64)", nullable: false),
                    allowed = table.Column<bool>(type: "boolean", nullable: false)
                },
                constraints: table =>
                {
                    table.PrimaryKey("pk_model_access_policies", x => x.id);
                    table.CheckConstraint("ck_model_access_policies_subject", "(plan_id IS NULL) <> (organization_id IS NULL)");
                    table.ForeignKey(
                        name: "fk_model_access_policies_models_model_id",
                        column: x => x.model_id,
                        principalTable: "models",
                        principalColumn: "id",
                        onDelete: ReferentialAction.Cascade);
                    table.ForeignKey(
                        name: "fk_model_access_policies_organizations_organization_id",
                        column: x => x.organization_id,
                        principalTable: "organizations",
                        principalColumn: "id",
                        onDelete: ReferentialAction.Cascade);
                    table.ForeignKey(
                        name: "fk_model_access_policies_plans_plan_id",
                        column: x => x.plan_id,
                        principalTable: "plans",
                        principalColumn: "id");
                });

            migrationBuilder.CreateTable(
                name: "organization_members",
                columns: table => new
                {
                    organization_id = table.Column<Guid>(type: "uuid", nullable: false),
                    user_id = table.Column<Guid>(type: "uuid", nullable: false),
                    role = table.Column<string>(type: "character varying(16)", maxLength: 16, nullable: false),
                    created_at = table.Column<DateTimeOffset>(type: "timestamp with time zone", nullable: false)
                },
                constraints: table =>
                {
                    table.PrimaryKey("pk_organization_members", x => new { x.organization_id, x.user_id });
                    table.ForeignKey(
                        name: "fk_organization_members_organizations_organization_id",
                        column: x => x.organization_id,
                        principalTable: "organizations",
                        principalColumn: "id",
                        onDelete: ReferentialAction.Cascade);
                    table.ForeignKey(
                        name: "fk_organization_members_users_user_id",
                        column: x => x.user_id,
                        principalTable: "users",
                        principalColumn: "id",
                        onDelete: ReferentialAction.Cascade);
                });

            migrationBuilder.CreateTable(
                name: "plan_subscriptions",
                columns: table => new
                {
                    id = table.Column<Guid>(type: "uuid", nullable: false),
                    organization_id = table.Column<Guid>(type: "uuid", nullable: false),
                    plan_id = table.Column<string>(type: "character varying(32)", nullable: false),
                    starts_at = table.Column<DateTimeOffset>(type: "timestamp with time zone", nullable: false),
                    ends_at = table.Column<DateTimeOffset>(type: "timestamp with time zone", nullable: true)
                },
                constraints: table =>
                {
                    table.PrimaryKey("pk_plan_subscriptions", x => x.id);
                    table.ForeignKey(
                        name: "fk_plan_subscriptions_organizations_organization_id",
                        column: x => x.organization_id,
                        principalTable: "organizations",
                        principalColumn: "id",
                        onDelete: ReferentialAction.Cascade);
                    table.ForeignKey(
                        name: "fk_plan_subscriptions_plans_plan_id",
                        column: x => x.plan_id,
                        principalTable: "plans",
                        principalColumn: "id",
                        onDelete: ReferentialAction.Cascade);
                });

            migrationBuilder.CreateTable(
                name: "router_sessions",
                columns: table => new
                {
                    id = table.Column<long>(type: "bigint", nullable: false),
                    router_id = table.Column<string>(type: "character varying(64)", nullable: false),
                    enabled = table.Column<bool>(type: "boolean", nullable: false)
                },
                constraints: table =>
                {
                    table.PrimaryKey("pk_router_sessions", x => x.id);
                    table.ForeignKey(
                        name: "fk_router_sessions_routers_router_id",
                        column: x => x.router_id,
                        principalTable: "routers",
                        principalColumn: "id",
                        onDelete: ReferentialAction.Cascade);
                });

            migrationBuilder.InsertData(
                table: "models",
                columns: new[] { "id", "context_window", "created_at", "display_name", "enabled", "family", "input_price_per1k", "output_price_per1k" },
                values: new object[,]
                {
                    { "gemma-4-26b", 131072, new DateTimeOffset(new DateTime(2026, 11, 1, 0, 0, 0, 0, DateTimeKind.Unspecified), new TimeSpan(0, 0, 0, 0, 0)), "Gemma 4 26B", true, "gemma", 0.00020m, 0.00060m },
                    { "gpt-oss-120b", 131072, new DateTimeOffset(new DateTime(2026, 11, 1, 0, 0, 0, 0, DateTimeKind.Unspecified), new TimeSpan(0, 0, 0, 0, 0)), "GPT-OSS 120B", true, "gpt-oss", 0.00050m, 0.00200m },
                    { "gpt-oss-20b", 131072, new DateTimeOffset(new DateTime(2026, 11, 1, 0, 0, 0, 0, DateTimeKind.Unspecified), new TimeSpan(0, 0, 0, 0, 0)), "GPT-OSS 20B", true, "gpt-oss", 0.00010m, 0.00040m },
                    { "qwen-3-32b", 131072, new DateTimeOffset(new DateTime(2026, 11, 1, 0, 0, 0, 0, DateTimeKind.Unspecified), new TimeSpan(0, 0, 0, 0, 0)), "Qwen 3 32B", true, "qwen", 0.00030m, 0.00090m }
                });

            migrationBuilder.InsertData(
                table: "plans",
                columns: new[] { "id", "billing_mode", "monthly_price_usd", "monthly_token_quota", "name", "requests_per_minute", "tokens_per_minute" },
                values: new object[,]
                {
                    { "free", "MonthlyQuota", 0m, 1000000L, "Free", 60, 100000 },
                    { "pro", "PrepaidCredits", 0m, null, "Pro", 1000, 2000000 },
                    { "scale", "PrepaidCredits", 0m, null, "Scale", 10000000, 2000000000 }
                });

            migrationBuilder.InsertData(
                table: "router_pools",
                columns: new[] { "id", "created_at", "draining" },
                values: new object[,]
                {
                    { "gemma4", new DateTimeOffset(new DateTime(2026, 11, 1, 0, 0, 0, 0, DateTimeKind.Unspecified), new TimeSpan(0, 0, 0, 0, 0)), false },
                    { "oss-120b", new DateTimeOffset(new DateTime(2026, 11, 1, 0, 0, 0, 0, DateTimeKind.Unspecified), new TimeSpan(0, 0, 0, 0, 0)), false },
                    { "oss-20b", new DateTimeOffset(new DateTime(2026, 11, 1, 0, 0, 0, 0, DateTimeKind.Unspecified), new TimeSpan(0, 0, 0, 0, 0)), false },
                    { "qwen", new DateTimeOffset(new DateTime(2026, 11, 1, 0, 0, 0, 0, DateTimeKind.Unspecified), new TimeSpan(0, 0, 0, 0, 0)), false }
                });

            migrationBuilder.InsertData(
                table: "model_access_policies",
                columns: new[] { "id", "allowed", "model_id", "organization_id", "plan_id" },
                values: new object[,]
                {
                    { new Guid("00000000-0000-0000-0000-000000000001"), true, "gpt-oss-20b", null, "free" },
                    { new Guid("00000000-0000-0000-0000-000000000002"), true, "gemma-4-26b", null, "free" },
                    { new Guid("00000000-0000-0000-0000-000000000003"), true, "gpt-oss-20b", null, "pro" },
                    { new Guid("00000000-0000-0000-0000-000000000004"), true, "gpt-oss-120b", null, "pro" },
                    { new Guid("00000000-0000-0000-0000-000000000005"), true, "gemma-4-26b", null, "pro" },
                    { new Guid("00000000-0000-0000-0000-000000000006"), true, "qwen-3-32b", null, "pro" },
                    { new Guid("00000000-0000-0000-0000-000000000007"), true, "gpt-oss-20b", null, "scale" },
                    { new Guid("00000000-0000-0000-0000-000000000008"), true, "gpt-oss-120b", null, "scale" },
                    { new Guid("00000000-0000-0000-0000-000000000009"), true, "gemma-4-26b", null, "scale" },
                    { new Guid("00000000-0000-0000-0000-000000000010"), true, "qwen-3-32b", null, "scale" }
                });

            migrationBuilder.InsertData(
                table: "router_pool_models",
                columns: new[] { "model_id", "backend_model", "pool_id" },
                values: new object[,]
                {
                    { "gemma-4-26b", "gemma-4-26b", "gemma4" },
                    { "gpt-oss-120b", "gpt-oss-120b", "oss-120b" },
                    { "gpt-oss-20b", "gpt-oss-20b", "oss-20b" },
                    { "qwen-3-32b", "qwen-3-32b", "qwen" }
                });

            migrationBuilder.InsertData(
                table: "routers",
                columns: new[] { "id", "base_url", "created_at", "enabled", "pool_id" },
                values: new object[,]
                {
                    { "router-gemma4-1", "http://router-gemma4-1", new DateTimeOffset(new DateTime(2026, 11, 1, 0, 0, 0, 0, DateTimeKind.Unspecified), new TimeSpan(0, 0, 0, 0, 0)), true, "gemma4" },
                    { "router-oss120b-1", "http://router-oss120b-1", new DateTimeOffset(new DateTime(2026, 11, 1, 0, 0, 0, 0, DateTimeKind.Unspecified), new TimeSpan(0, 0, 0, 0, 0)), true, "oss-120b" },
                    { "router-oss20b-1", "http://router-oss20b-1", new DateTimeOffset(new DateTime(2026, 11, 1, 0, 0, 0, 0, DateTimeKind.Unspecified), new TimeSpan(0, 0, 0, 0, 0)), true, "oss-20b" },
                    { "router-oss20b-2", "http://router-oss20b-2", new DateTimeOffset(new DateTime(2026, 11, 1, 0, 0, 0, 0, DateTimeKind.Unspecified), new TimeSpan(0, 0, 0, 0, 0)), true, "oss-20b" },
                    { "router-oss20b-3", "http://router-oss20b-3", new DateTimeOffset(new DateTime(2026, 11, 1, 0, 0, 0, 0, DateTimeKind.Unspecified), new TimeSpan(0, 0, 0, 0, 0)), true, "oss-20b" },
                    { "router-qwen-1", "http://router-qwen-1", new DateTimeOffset(new DateTime(2026, 11, 1, 0, 0, 0, 0, DateTimeKind.Unspecified), new TimeSpan(0, 0, 0, 0, 0)), true, "qwen" }
                });

            migrationBuilder.InsertData(
                table: "router_sessions",
                columns: new[] { "id", "enabled", "router_id" },
                values: new object[,]
                {
                    { 2001L, true, "router-oss20b-1" },
                    { 2002L, true, "router-oss20b-1" },
                    { 2003L, true, "router-oss20b-2" },
                    { 2004L, true, "router-oss20b-2" },
                    { 2005L, true, "router-oss20b-3" },
                    { 2006L, true, "router-oss20b-3" },
                    { 3001L, true, "router-oss120b-1" },
                    { 3002L, true, "router-oss120b-1" },
                    { 4001L, true, "router-gemma4-1" },
                    { 4002L, true, "router-gemma4-1" },
                    { 5001L, true, "router-qwen-1" },
                    { 5002L, true, "router-qwen-1" }
                });

            migrationBuilder.CreateIndex(
                name: "ix_api_keys_hash",
                table: "api_keys",
                column: "hash",
                unique: true);

            migrationBuilder.CreateIndex(
                name: "ix_api_keys_organization_id",
                table: "api_keys",
                column: "organization_id");

            migrationBuilder.CreateIndex(
                name: "ix_audit_log_created_at",
                table: "audit_log",
                column: "created_at");

            migrationBuilder.CreateIndex(
                name: "ix_billing_ledger_kind_reference",
                table: "billing_ledger",
                columns: new[] { "kind", "reference" },
                unique: true);

            migrationBuilder.CreateIndex(
                name: "ix_billing_ledger_organization_id_created_at",
                table: "billing_ledger",
                columns: new[] { "organization_id", "created_at" });

            migrationBuilder.CreateIndex(
                name: "ix_model_access_policies_model_id",
                table: "model_access_policies",
                column: "model_id");

            migrationBuilder.CreateIndex(
                name: "ix_model_access_policies_organization_id",
                table: "model_access_policies",
                column: "organization_id");

            migrationBuilder.CreateIndex(
                name: "ix_model_access_policies_plan_id_organization_id_model_id",
                table: "model_access_policies",
                columns: new[] { "plan_id", "organization_id", "model_id" },
                unique: true)
                .Annotation("Npgsql:NullsDistinct", false);

            migrationBuilder.CreateIndex(
                name: "ix_organization_members_user_id",
                table: "organization_members",
                column: "user_id");

            migrationBuilder.CreateIndex(
                name: "ix_organizations_plan_id",
                table: "organizations",
                column: "plan_id");

            migrationBuilder.CreateIndex(
                name: "ix_plan_subscriptions_organization_id_starts_at",
                table: "plan_subscriptions",
                columns: new[] { "organization_id", "starts_at" });

            migrationBuilder.CreateIndex(
                name: "ix_plan_subscriptions_plan_id",
                table: "plan_subscriptions",
                column: "plan_id");

            migrationBuilder.CreateIndex(
                name: "ix_request_logs_api_key_id_created_at",
                table: "request_logs",
                columns: new[] { "api_key_id", "created_at" });

            migrationBuilder.CreateIndex(
                name: "ix_request_logs_model_id_created_at",
                table: "request_logs",
                columns: new[] { "model_id", "created_at" });

            migrationBuilder.CreateIndex(
                name: "ix_request_logs_organization_id_created_at",
                table: "request_logs",
                columns: new[] { "organization_id", "created_at" });

            migrationBuilder.CreateIndex(
                name: "ix_request_logs_request_id",
                table: "request_logs",
                column: "request_id");

            migrationBuilder.CreateIndex(
                name: "ix_request_logs_status_created_at",
                table: "request_logs",
                columns: new[] { "status", "created_at" });

            migrationBuilder.CreateIndex(
                name: "ix_router_pool_models_pool_id",
                table: "router_pool_models",
                column: "pool_id");

            migrationBuilder.CreateIndex(
                name: "ix_router_sessions_router_id",
                table: "router_sessions",
                column: "router_id");

            migrationBuilder.CreateIndex(
                name: "ix_routers_pool_id",
                table: "routers",
                column: "pool_id");

            migrationBuilder.CreateIndex(
                name: "ix_users_email",
                table: "users",
                column: "email",
                unique: true);

            migrationBuilder.CreateIndex(
                name: "ix_users_external_subject",
                table: "users",
                column: "external_subject",
                unique: true);
        }

        /// <inheritdoc />
        protected override void Down(MigrationBuilder migrationBuilder)
        {
            migrationBuilder.DropTable(
                name: "api_keys");

            migrationBuilder.DropTable(
                name: "audit_log");

            migrationBuilder.DropTable(
                name: "billing_ledger");

            migrationBuilder.DropTable(
                name: "model_access_policies");

            migrationBuilder.DropTable(
                name: "organization_members");

            migrationBuilder.DropTable(
                name: "plan_subscriptions");

            migrationBuilder.DropTable(
                name: "request_logs");

            migrationBuilder.DropTable(
                name: "router_pool_models");

            migrationBuilder.DropTable(
                name: "router_sessions");

            migrationBuilder.DropTable(
                name: "usage_daily");

            migrationBuilder.DropTable(
                name: "usage_events");

            migrationBuilder.DropTable(
                name: "users");

            migrationBuilder.DropTable(
                name: "organizations");

            migrationBuilder.DropTable(
                name: "models");

            migrationBuilder.DropTable(
                name: "routers");

            migrationBuilder.DropTable(
                name: "plans");

            migrationBuilder.DropTable(
                name: "router_pools");
        }
    }
}
