using Cortensor.Api.Data;
using Cortensor.Api.Errors;
using Cortensor.Api.Keys;
using Microsoft.AspNetCore.Identity;
using Microsoft.EntityFrameworkCore;

namespace Cortensor.Api.Accounts.Siwe;

/// <summary>
/// Wallets as a way to sign in: each linked address is an Identity external login (provider "siwe", key the
/// EIP-55 address), so the login table's primary key is what keeps one address on at most one account.
/// </summary>
public sealed class WalletAccounts(PortalDbContext db, UserManager<User> users, KeyService keys, TimeProvider clock, ILogger<WalletAccounts> log)
{
    public const string LoginProvider = "siwe";
    private const string DisplayName = "Ethereum wallet";

    /// <summary>
    /// The account a proven address signs in to; the first time, a new account (no e-mail, no password) and its
    /// personal organisation, together or not at all.
    /// </summary>
    public async Task<User> SignInAsync(string address, CancellationToken ct)
    {
        if (await users.FindByLoginAsync(LoginProvider, address) is { } existing) return existing;
        var strategy = db.Database.CreateExecutionStrategy();
        var created = await strategy.ExecuteAsync(async () =>
        {
            db.ChangeTracker.Clear();
            await using var transaction = await db.Database.BeginTransactionAsync(ct);
            // The user name is not the address: an account keeps its name after unlinking, and the address may
            // later sign up afresh.
            var user = new User { DisplayName = Short(address) };
            user.UserName = "wallet_" + user.Id.ToString("N");
            try
            {
                if (!(await users.CreateAsync(user)).Succeeded || !(await users.AddLoginAsync(user, new UserLoginInfo(LoginProvider, address, DisplayName))).Succeeded)
                    return null;
            }
            catch (DbUpdateException ex) when (IsUniqueViolation(ex))
            {
                return null;
            }
            await keys.CreateOrganizationAsync(ExternalUsers.PersonalOrganizationName(Short(address)), "free", user.Id, new AuditActor(user.Id, address), ct);
            await transaction.CommitAsync(ct);
            return user;
        });
        if (created is not null)
        {
            log.LogInformation("Created Portal user {UserId} for a wallet on its first sign-in", created.Id);
            return created;
        }
        // Two first sign-ins of one address raced and the other one created the account.
        db.ChangeTracker.Clear();
        return await users.FindByLoginAsync(LoginProvider, address)
            ?? throw new InvalidOperationException("A wallet account could neither be created nor found.");
    }

    public async Task<IReadOnlyList<string>> ListAsync(Guid userId, CancellationToken ct) =>
        await db.UserLogins.AsNoTracking().Where(l => l.UserId == userId && l.LoginProvider == LoginProvider)
            .OrderBy(l => l.ProviderKey).Select(l => l.ProviderKey).ToListAsync(ct);

    /// <summary>Links a proven address to the account; null when done (or already linked to it), else why not.</summary>
    public async Task<ApiError?> LinkAsync(Guid userId, string address, CancellationToken ct)
    {
        var owner = await users.FindByLoginAsync(LoginProvider, address);
        if (owner is not null) return owner.Id == userId ? null : SiweErrors.WalletInUse();
        var user = await users.FindByIdAsync(userId.ToString());
        if (user is null) return new ApiError(401, "authentication_error", "invalid_token", "This account no longer exists.");
        try
        {
            var added = await users.AddLoginAsync(user, new UserLoginInfo(LoginProvider, address, DisplayName));
            if (!added.Succeeded) return SiweErrors.WalletInUse();
        }
        catch (DbUpdateException ex) when (IsUniqueViolation(ex))
        {
            return SiweErrors.WalletInUse();
        }
        db.Record(new AuditActor(userId, user.Email ?? user.UserName ?? userId.ToString()), "wallet.link", "user", userId.ToString(), null, new { Address = address }, clock.GetUtcNow());
        await db.SaveChangesAsync(ct);
        return null;
    }

    /// <summary>Unlinks an address, unless it is the account's last way to sign in; null when done, else why not.</summary>
    public async Task<ApiError?> UnlinkAsync(Guid userId, string address, CancellationToken ct)
    {
        var strategy = db.Database.CreateExecutionStrategy();
        return await strategy.ExecuteAsync(async () =>
        {
            db.ChangeTracker.Clear();
            await using var transaction = await db.Database.BeginTransactionAsync(ct);
            // The user's row is locked while its ways to sign in are counted: two unlinks at once must not both
            // see the other wallet and leave the account with none.
            await db.Database.ExecuteSqlInterpolatedAsync($"SELECT 1 FROM users WHERE id = {userId} FOR UPDATE", ct);
            var user = await users.FindByIdAsync(userId.ToString());
            if (user is null) return new ApiError(401, "authentication_error", "invalid_token", "This account no longer exists.");
            var wallets = await ListAsync(userId, ct);
            var linked = wallets.FirstOrDefault(w => string.Equals(w, address, StringComparison.OrdinalIgnoreCase));
            if (linked is null) return ApiError.NotFound("linked wallet");
            var otherWays = (user.PasswordHash is not null ? 1 : 0) + (user.ExternalSubject is not null ? 1 : 0) + wallets.Count - 1;
            if (otherWays == 0) return SiweErrors.LastSignInMethod();
            var removed = await users.RemoveLoginAsync(user, LoginProvider, linked);
            if (!removed.Succeeded) return ApiError.NotFound("linked wallet");
            db.Record(new AuditActor(userId, user.Email ?? user.UserName ?? userId.ToString()), "wallet.unlink", "user", userId.ToString(), new { Address = linked }, null, clock.GetUtcNow());
            await db.SaveChangesAsync(ct);
            await transaction.CommitAsync(ct);
            return (ApiError?)null;
        });
    }

    /// <summary>
    /// Unlinks every wallet of <paramref name="user"/>, for a password reset that has just proven the account's address: a
    /// wallet linked before was linked by whoever held the password then, possibly a squatter on the unproven address, and
    /// would have kept signing them in. The owner links theirs again in a moment.
    /// </summary>
    public async Task UnlinkAllAsync(User user, CancellationToken ct)
    {
        var wallets = await ListAsync(user.Id, ct);
        if (wallets.Count == 0) return;
        foreach (var address in wallets)
            if (await users.RemoveLoginAsync(user, LoginProvider, address) is { Succeeded: false } failed)
                throw new InvalidOperationException($"A wallet of user {user.Id} could not be unlinked: {PortalIdentityErrors.Describe(failed)}");
        db.Record(new AuditActor(user.Id, user.Email ?? user.UserName ?? user.Id.ToString()), "wallet.unlink", "user", user.Id.ToString(),
            new { Addresses = wallets }, new { Reason = "password reset proved the address" }, clock.GetUtcNow());
        await db.SaveChangesAsync(ct);
    }

    /// <summary>0x1234…abcd: how wallets show an address where the whole one does not fit.</summary>
    public static string Short(string address) => address[..6] + "…" + address[^4..];

    private static bool IsUniqueViolation(DbUpdateException ex) =>
        ex.InnerException is Npgsql.PostgresException { SqlState: Npgsql.PostgresErrorCodes.UniqueViolation };
}
