using System.Text.Json;
using System.Text.Json.Serialization;
using Refit;

namespace Cortensor.Web.Services;

/// <summary>
/// The Portal Api as the dashboard sees it; the one way the Web talks to the backend. Calls that act
/// for a user take their access token and, where it matters, the organisation they act in.
/// </summary>
public interface IPortalApi
{
    [Post("/portal/auth/signup")] Task<AccountStatus> SignUpAsync([Body] SignUpRequest request, [Header("X-Forwarded-For")] string? clientAddress, CancellationToken ct = default);
    [Post("/portal/auth/verify-email")] Task<AccountStatus> VerifyEmailAsync([Authorize] string token, [Body] AccountLink link, CancellationToken ct = default);
    [Post("/portal/auth/verify-email/resend")] Task<AccountStatus> ResendVerificationAsync([Authorize] string token, CancellationToken ct = default);
    [Post("/portal/auth/password-reset")] Task<AccountStatus> RequestPasswordResetAsync([Body] PasswordResetRequest request, [Header("X-Forwarded-For")] string? clientAddress, CancellationToken ct = default);
    [Post("/portal/auth/password-reset/confirm")] Task<AccountStatus> ResetPasswordAsync([Body] PasswordReset reset, [Header("X-Forwarded-For")] string? clientAddress, CancellationToken ct = default);
    [Post("/portal/auth/login")] Task<Tokens> LogInAsync([Body] LogInRequest request, [Header("X-Forwarded-For")] string? clientAddress, CancellationToken ct = default);
    [Post("/portal/auth/refresh")] Task<Tokens> RefreshAsync([Body] RefreshRequest request, CancellationToken ct = default);
    [Post("/portal/auth/logout")] Task LogOutAsync([Body] RefreshRequest request, CancellationToken ct = default);

    [Post("/portal/auth/siwe/nonce")] Task<SiweNonce> GetSiweNonceAsync([Header("X-Forwarded-For")] string? clientAddress, CancellationToken ct = default);
    [Post("/portal/auth/siwe/verify")] Task<Tokens> SignInWithWalletAsync([Body] SignedMessage message, [Header("X-Forwarded-For")] string? clientAddress, CancellationToken ct = default);
    [Get("/portal/me/wallets")] Task<IReadOnlyList<LinkedWallet>> GetWalletsAsync([Authorize] string token, CancellationToken ct = default);
    [Post("/portal/me/wallets")] Task<IReadOnlyList<LinkedWallet>> LinkWalletAsync([Authorize] string token, [Body] SignedMessage message, CancellationToken ct = default);
    [Delete("/portal/me/wallets/{address}")] Task UnlinkWalletAsync([Authorize] string token, string address, CancellationToken ct = default);
    [Get("/portal/me")] Task<Me> GetMeAsync([Authorize] string token, CancellationToken ct = default);
    [Patch("/portal/me")] Task<Me> UpdateMeAsync([Authorize] string token, [Body] ProfileUpdate update, CancellationToken ct = default);
    [Post("/portal/me/password")] Task ChangePasswordAsync([Authorize] string token, [Body] PasswordChange change, CancellationToken ct = default);
    [Get("/portal/me/two-factor")] Task<TwoFactorStatus> GetTwoFactorAsync([Authorize] string token, CancellationToken ct = default);
    [Post("/portal/me/two-factor/setup")] Task<TwoFactorSetup> SetUpTwoFactorAsync([Authorize] string token, CancellationToken ct = default);
    [Post("/portal/me/two-factor/enable")] Task<RecoveryCodeList> EnableTwoFactorAsync([Authorize] string token, [Body] TwoFactorCode code, CancellationToken ct = default);
    [Post("/portal/me/two-factor/disable")] Task DisableTwoFactorAsync([Authorize] string token, [Body] PasswordConfirmation confirmation, CancellationToken ct = default);
    [Post("/portal/me/two-factor/recovery-codes")] Task<RecoveryCodeList> NewRecoveryCodesAsync([Authorize] string token, [Body] PasswordConfirmation confirmation, CancellationToken ct = default);
    [Get("/portal/me/deletion")] Task<AccountDeletionPlan> GetDeletionPlanAsync([Authorize] string token, CancellationToken ct = default);
    [Post("/portal/me/delete")] Task<AccountDeletionPlan> DeleteAccountAsync([Authorize] string token, [Body] AccountDeletionConfirmation confirmation, CancellationToken ct = default);
    [Get("/portal/organizations")] Task<IReadOnlyList<Organization>> GetOrganizationsAsync([Authorize] string token, CancellationToken ct = default);
    [Post("/portal/organizations")] Task<Organization> CreateOrganizationAsync([Authorize] string token, [Body] NewOrganization organization, CancellationToken ct = default);
    [Get("/portal/members")] Task<IReadOnlyList<Member>> GetMembersAsync([Authorize] string token, [Header("X-Organization-Id")] string? org, CancellationToken ct = default);
    [Get("/portal/invitations")] Task<IReadOnlyList<Invitation>> GetInvitationsAsync([Authorize] string token, [Header("X-Organization-Id")] string? org, CancellationToken ct = default);
    [Post("/portal/invitations")] Task<Invitation> InviteAsync([Authorize] string token, [Header("X-Organization-Id")] string? org, [Body] NewInvitation invitation, CancellationToken ct = default);
    [Delete("/portal/invitations/{id}")] Task RevokeInvitationAsync([Authorize] string token, [Header("X-Organization-Id")] string? org, Guid id, CancellationToken ct = default);
    [Post("/portal/invitations/accept")] Task<JoinedOrganization> AcceptInvitationAsync([Authorize] string token, [Body] InvitationToken invitation, CancellationToken ct = default);

    [Get("/portal/api-keys")] Task<IReadOnlyList<ApiKey>> GetKeysAsync([Authorize] string token, [Header("X-Organization-Id")] string? org, CancellationToken ct = default);
    [Post("/portal/api-keys")] Task<CreatedApiKey> CreateKeyAsync([Authorize] string token, [Header("X-Organization-Id")] string? org, [Body] NewApiKey key, CancellationToken ct = default);
    [Delete("/portal/api-keys/{id}")] Task<ApiKey> RevokeKeyAsync([Authorize] string token, [Header("X-Organization-Id")] string? org, Guid id, CancellationToken ct = default);
    /// <summary>Only the fields in <paramref name="changes"/> change (snake_case names); a null value clears one.</summary>
    [Patch("/portal/api-keys/{id}")] Task<ApiKey> UpdateKeyAsync([Authorize] string token, [Header("X-Organization-Id")] string? org, Guid id, [Body] IReadOnlyDictionary<string, object?> changes, CancellationToken ct = default);
    [Post("/portal/api-keys/{id}/rotate")] Task<RotatedApiKey> RotateKeyAsync([Authorize] string token, [Header("X-Organization-Id")] string? org, Guid id, [Body] KeyRotation rotation, CancellationToken ct = default);

    [Get("/portal/usage-summary")]
    Task<UsageSummary> GetUsageAsync([Authorize] string token, [Header("X-Organization-Id")] string? org, string from, string to,
        [AliasAs("group_by")] string groupBy, CancellationToken ct = default);
    [Get("/portal/requests")]
    Task<RequestPage> GetRequestsAsync([Authorize] string token, [Header("X-Organization-Id")] string? org,
        [Query] RequestFilter filter, string? before, [AliasAs("before_event")] string? beforeEvent, int limit, CancellationToken ct = default);
    [Get("/portal/balance")] Task<OrganizationBalance> GetBalanceAsync([Authorize] string token, [Header("X-Organization-Id")] string? org, CancellationToken ct = default);
    [Get("/portal/billing")] Task<BillingOverview> GetBillingAsync([Authorize] string token, [Header("X-Organization-Id")] string? org, CancellationToken ct = default);
    [Post("/portal/billing/checkout")] Task<StartedCheckout> StartCheckoutAsync([Authorize] string token, [Header("X-Organization-Id")] string? org, [Body] CheckoutRequest checkout, CancellationToken ct = default);
    [Get("/portal/models")] Task<IReadOnlyList<CatalogModel>> GetModelsAsync(CancellationToken ct = default);
    [Get("/portal/models")] Task<IReadOnlyList<CatalogModel>> GetModelsForAsync([Authorize] string token, [Header("X-Organization-Id")] string? org, CancellationToken ct = default);

    [Get("/admin/pools")] Task<IReadOnlyList<Pool>> GetPoolsAsync([Authorize] string token, CancellationToken ct = default);
    [Post("/admin/pools/{id}/drain")] Task DrainPoolAsync([Authorize] string token, string id, CancellationToken ct = default);
    [Post("/admin/pools/{id}/undrain")] Task UndrainPoolAsync([Authorize] string token, string id, CancellationToken ct = default);
    [Post("/admin/models/{id}/disable")] Task DisableModelAsync([Authorize] string token, string id, CancellationToken ct = default);
    [Post("/admin/models/{id}/enable")] Task EnableModelAsync([Authorize] string token, string id, CancellationToken ct = default);
    [Get("/admin/organizations")] Task<IReadOnlyList<AdminOrganization>> FindOrganizationsAsync([Authorize] string token, string? search, CancellationToken ct = default);
    [Post("/admin/organizations/{id}/pause")] Task PauseOrganizationAsync([Authorize] string token, Guid id, CancellationToken ct = default);
    [Post("/admin/organizations/{id}/resume")] Task ResumeOrganizationAsync([Authorize] string token, Guid id, CancellationToken ct = default);
    [Put("/admin/organizations/{id}/plan")] Task ChangePlanAsync([Authorize] string token, Guid id, [Body] PlanChange change, CancellationToken ct = default);
    [Post("/admin/organizations/{id}/credits")] Task AdjustCreditsAsync([Authorize] string token, Guid id, [Body] CreditAdjustment adjustment, CancellationToken ct = default);
    [Get("/admin/organizations/{id}/api-keys")] Task<IReadOnlyList<ApiKey>> GetOrganizationKeysAsync([Authorize] string token, Guid id, CancellationToken ct = default);
    [Post("/admin/api-keys/{id}/pause")] Task PauseKeyAsync([Authorize] string token, Guid id, CancellationToken ct = default);
    [Post("/admin/api-keys/{id}/resume")] Task ResumeKeyAsync([Authorize] string token, Guid id, CancellationToken ct = default);
    [Get("/admin/audit")] Task<IReadOnlyList<AuditEntry>> GetAuditAsync([Authorize] string token, int limit, CancellationToken ct = default);
    [Get("/admin/requests/{requestId}")] Task<IReadOnlyList<FoundRequest>> FindRequestAsync([Authorize] string token, string requestId, CancellationToken ct = default);
}

public sealed record SignUpRequest(string Email, string Password, string? Organization);
public sealed record LogInRequest(string Email, string Password, string? TwoFactorCode = null);
public sealed record RefreshRequest(string RefreshToken);
public sealed record SiweNonce(string Nonce, DateTimeOffset ExpiresAt, IReadOnlyList<long> ChainIds);
public sealed record SignedMessage(string Message, string Signature);
public sealed record LinkedWallet(string Address);
public sealed record Tokens(string AccessToken, string RefreshToken, int ExpiresIn);
public sealed record AccountStatus(string Status, string Message);
public sealed record AccountLink(Guid UserId, string Token);
public sealed record PasswordResetRequest(string Email);
public sealed record PasswordReset(Guid UserId, string Token, string NewPassword);
public sealed record Invitation(Guid Id, string Email, string Role, DateTimeOffset CreatedAt, DateTimeOffset ExpiresAt);
public sealed record NewInvitation(string Email, string Role);
public sealed record InvitationToken(string Token);
public sealed record JoinedOrganization(Guid OrganizationId, string OrganizationName, string Role);
public sealed record Me(Guid Id, string? Email, bool EmailVerified, string? DisplayName, bool IsAdmin, string? IdentityProvider, DateTimeOffset CreatedAt, IReadOnlyList<Organization> Organizations);
public sealed record ProfileUpdate(string DisplayName);
public sealed record PasswordChange(string CurrentPassword, string NewPassword);
public sealed record PasswordConfirmation(string Password);
public sealed record TwoFactorStatus(bool Enabled, bool HasPassword, int RecoveryCodesLeft);
public sealed record TwoFactorSetup(string SharedKey, string AuthenticatorUri);
public sealed record TwoFactorCode(string Code);
public sealed record RecoveryCodeList(IReadOnlyList<string> RecoveryCodes);
public sealed record AccountDeletionConfirmation(string? Password, string? ConfirmEmail);
public sealed record OrganizationOnDeletion(Guid OrganizationId, string Name, string Role, int Members, int ActiveKeys, string Outcome, string? NewOwner, string Explanation);
public sealed record AccountDeletionPlan(bool Deleted, IReadOnlyList<OrganizationOnDeletion> Organizations);
public sealed record Organization(Guid Id, string Name, string Plan, string Status, string Role, DateTimeOffset CreatedAt);
public sealed record NewOrganization(string Name);
public sealed record Member(Guid UserId, string? Email, string? DisplayName, string Role, DateTimeOffset CreatedAt);

public sealed record ApiKey(Guid Id, Guid OrganizationId, string Name, string Start, string Environment, string Status, DateTimeOffset CreatedAt,
    DateTimeOffset? LastUsedAt, DateTimeOffset? ExpiresAt, DateTimeOffset? RevokedAt, IReadOnlyList<string>? Models,
    int? RequestsPerMinute = null, int? TokensPerMinute = null, KeyBudgetState? Budget = null, DateTimeOffset? RotatedAt = null, DateTimeOffset? PreviousSecretExpiresAt = null);
/// <summary>A key's budget this period: limits, spent (settled and reserved), left, and when it resets (UTC).</summary>
public sealed record KeyBudgetState(string Period, decimal? LimitUsd, long? LimitTokens, decimal SpentUsd, long SpentTokens,
    decimal? RemainingUsd, long? RemainingTokens, DateTimeOffset ResetsAt);
public sealed record KeyRotation(int GracePeriodSeconds);
public sealed record RotatedApiKey(Guid Id, string Name, string Key, string Start, DateTimeOffset RotatedAt, DateTimeOffset PreviousSecretExpiresAt);
public sealed record NewApiKey(string Name, DateTimeOffset? ExpiresAt, IReadOnlyList<string>? Models);
public sealed record CreatedApiKey(Guid Id, string Name, string Key, string Start, DateTimeOffset CreatedAt, DateTimeOffset? ExpiresAt, IReadOnlyList<string>? Models);

public sealed record UsageRow(DateOnly? Day, string? Model, Guid? KeyId, string? KeyName, long Requests, long Errors,
    long PromptTokens, long CompletionTokens, long TotalTokens, decimal Cost);
public sealed record UsageSeries(string Name, string? Model, Guid? KeyId, bool ModelKnown, IReadOnlyList<long> Requests, IReadOnlyList<long> TotalTokens, IReadOnlyList<decimal> Cost);
public sealed record UsageSummary(DateOnly From, DateOnly To, IReadOnlyList<string> GroupBy, IReadOnlyList<UsageRow> Data, UsageRow Totals,
    IReadOnlyList<DateOnly>? Days = null, IReadOnlyList<UsageSeries>? Series = null);
public sealed record RequestEntry(string RequestId, DateTimeOffset CreatedAt, string Method, string Path, int Status, string? ErrorCode,
    int LatencyMs, string? Model, Guid? KeyId, int PromptTokens, int CompletionTokens, decimal Cost, bool Streamed, int? TimeToFirstTokenMs = null,
    string? KeyName = null, string? CompletionId = null, bool ModelKnown = false, string? ModelLabel = null);
public sealed record RequestPage(IReadOnlyList<RequestEntry> Data, bool HasMore, DateTimeOffset? NextBefore = null, string? NextBeforeEvent = null);

/// <summary>The request log's filters, the same for the page and the CSV export (query names as the Api takes them).</summary>
public sealed record RequestFilter
{
    [AliasAs("search")] public string? Search { get; init; }
    [AliasAs("key_id")] public string? KeyId { get; init; }
    [AliasAs("model")] public string? Model { get; init; }
    [AliasAs("status")] public string? Status { get; init; }
    [AliasAs("from")] public string? From { get; init; }
    [AliasAs("to")] public string? To { get; init; }

    public IEnumerable<KeyValuePair<string, string>> Query()
    {
        if (!string.IsNullOrWhiteSpace(Search)) yield return new("search", Search.Trim());
        if (!string.IsNullOrWhiteSpace(KeyId)) yield return new("key_id", KeyId);
        if (!string.IsNullOrWhiteSpace(Model)) yield return new("model", Model);
        if (!string.IsNullOrWhiteSpace(Status)) yield return new("status", Status);
        if (!string.IsNullOrWhiteSpace(From)) yield return new("from", From.Trim());
        if (!string.IsNullOrWhiteSpace(To)) yield return new("to", To.Trim());
    }
}
public sealed record PlanInfo(string Id, string Name, string BillingMode, int RequestsPerMinute, int TokensPerMinute, long? MonthlyTokenQuota, decimal MonthlyPriceUsd = 0);
public sealed record QuotaInfo(DateTimeOffset PeriodStart, DateTimeOffset PeriodEnd, long TokensUsed, long? TokensLeft);
public sealed record OrganizationBalance(Guid OrganizationId, string OrganizationName, string Status, PlanInfo Plan, decimal CreditBalanceUsd, QuotaInfo Quota, IReadOnlyList<string> Models);
public sealed record CheckoutRequest(decimal AmountUsd);
public sealed record StartedCheckout(string SessionId, string Url);
public sealed record CreditReceipt(string SessionId, decimal AmountUsd, string Status, DateTimeOffset CreatedAt, DateTimeOffset? PaidAt, string? PaymentIntentId, string? ReceiptUrl);
public sealed record BillingOverview(bool PurchasesEnabled, string? HowToEnable, decimal MinimumUsd, decimal MaximumUsd, IReadOnlyList<CreditReceipt> Receipts);

public sealed record CatalogModel(
    string Id, string DisplayName, string Family, bool Enabled, int ContextWindow,
    [property: JsonPropertyName("input_price_per_1k")] decimal InputPricePer1K,
    [property: JsonPropertyName("output_price_per_1k")] decimal OutputPricePer1K,
    bool Available, bool? Allowed = null, IReadOnlyList<string>? IncludedIn = null);

public sealed record RouterHealth(string Id, bool Healthy, string Circuit, int InFlight, long ReportedLoad, long Completed, long Failed, double ErrorRate, double LatencyMs,
    long Picked = 0, double Share = 0);
public sealed record Pool(string Id, bool Draining, IReadOnlyList<string> Models, IReadOnlyList<RouterHealth> Routers);
public sealed record AdminOrganization(Guid Id, string Name, string Plan, string Status, DateTimeOffset CreatedAt);
public sealed record PlanChange(string Plan);
public sealed record CreditAdjustment(decimal Amount, string Reason);
public sealed record AuditEntry(long Id, string Actor, string Action, string TargetType, string TargetId, string? Before, string? After, DateTimeOffset CreatedAt);
public sealed record LoggedRequest(string RequestId, Guid? OrganizationId, Guid? ApiKeyId, string? ModelId, string Method, string Path, int Status, string? ErrorCode, int LatencyMs, DateTimeOffset CreatedAt,
    string? TaskId = null, string? TraceId = null);
public sealed record RequestUsage(string? PoolId, string? RouterId, int PromptTokens, int CompletionTokens, decimal Cost, int? TimeToFirstTokenMs, bool Streamed);
public sealed record FoundRequest(LoggedRequest Log, RequestUsage? Usage = null);

public static class PortalApiClientExtensions
{
    public const string HttpClientName = "portal-api";

    public static WebApplicationBuilder AddPortalApiClient(this WebApplicationBuilder builder)
    {
        var json = new JsonSerializerOptions(JsonSerializerDefaults.Web)
        {
            PropertyNamingPolicy = JsonNamingPolicy.SnakeCaseLower,
            DefaultIgnoreCondition = JsonIgnoreCondition.WhenWritingNull,
        };
        // Resolved by service discovery from the AppHost's reference to the Api.
        var baseAddress = new Uri(builder.Configuration["PortalApi:BaseAddress"] ?? "https+http://api");
        builder.Services.AddTransient<BrowserRelay>();
        builder.Services
            .AddRefitGeneratedClient<IPortalApi>(new RefitSettings { ContentSerializer = new SystemTextJsonContentSerializer(json) })
            .ConfigureHttpClient(c => c.BaseAddress = baseAddress)
            .AddHttpMessageHandler<BrowserRelay>();
        // The playground streams from the public /v1 API with the user's key: a plain client, no Refit.
        // No resilience handler: the user watches the stream and stops it, and the standard handler's 10 s attempt
        // timeout would cut off a model that takes longer than that to its first token.
#pragma warning disable EXTEXP0001 // still marked for evaluation; the only way to take back a handler every client was given
        builder.Services.AddHttpClient(HttpClientName, c =>
        {
            c.BaseAddress = baseAddress;
            c.Timeout = Timeout.InfiniteTimeSpan;
        }).RemoveAllResilienceHandlers();
#pragma warning restore EXTEXP0001
        builder.AddPortalSessionStore();
        builder.Services.AddScoped<PortalSession>();
        return builder;
    }
}
