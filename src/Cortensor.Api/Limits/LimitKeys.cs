using System.Globalization;

namespace Cortensor.Api.Limits;

/// <summary>
/// The names of every Redis key the hot path shares. One organisation's money keys carry its id as
/// a hash tag; the scripts also touch key windows and the global due-set, so the Portal expects one
/// Redis primary (not a cluster), as docs/operations.md says.
/// </summary>
public static class LimitKeys
{
    /// <summary>Prepaid balance in credit units (1e-10 USD).</summary>
    public static string Credit(Guid org) => $"credit:{{{org:N}}}";

    /// <summary>Tokens used in one calendar month (UTC), e.g. period 202611.</summary>
    public static string Quota(Guid org, string period) => $"quota:{{{org:N}}}:{period}";

    public static string Period(DateTimeOffset at) => at.UtcDateTime.ToString("yyyyMM", CultureInfo.InvariantCulture);

    /// <summary>The counter an organisation's requests debit at <paramref name="at"/>: its balance, or its month's tokens.</summary>
    public static string Counter(Guid org, bool credits, DateTimeOffset at) => credits ? Credit(org) : Quota(org, Period(at));

    /// <summary>What admitted, unsettled requests hold of a counter.</summary>
    public static string Held(string counter) => "held:" + counter;

    /// <summary>Settled charges of a counter not yet confirmed in the ledger (event id → amount).</summary>
    public static string Unbilled(string counter) => "unbilled:" + counter;

    /// <summary>
    /// Credit grants noted before their ledger commit and not yet in the hot balance (ledger reference → "units|nonce"):
    /// what tells reconciliation, and the grant itself, which of the two puts a grant in the balance.
    /// </summary>
    public static string PendingGrants(Guid org) => $"grants:{{{org:N}}}";

    /// <summary>Bumped by every change to the organisation's counters: reconciliation sets only what nobody moved.</summary>
    public static string Version(Guid org) => $"ver:{{{org:N}}}";

    /// <summary>The organisation's open reservations (event id → hold), also its concurrency.</summary>
    public static string Reservations(Guid org) => $"resv:{{{org:N}}}";

    /// <summary>Tokens streamed so far per open reservation, so a lost replica's request bills what was generated.</summary>
    public static string Progress(Guid org) => $"resvp:{{{org:N}}}";

    /// <summary>
    /// What the reaper billed for a reservation it settled as abandoned ("prompt,completion"), kept a week from the reap
    /// (a key per reservation, so each note expires on its own): should the request turn out to have been alive (its
    /// replica cut off from Redis, not dead), its own settlement bills the rest, and the note becomes "settled" so that no
    /// later replay of that settlement files the request again.
    /// </summary>
    public static string Reaped(Guid org, string eventId) => $"resvr:{{{org:N}}}:{eventId}";

    /// <summary>Every open reservation by deadline: the reaper's work list.</summary>
    public const string Due = "resv:due";

    /// <summary>One replica's open reservations: settled early when the replica is gone.</summary>
    public static string ReplicaDue(string replica) => "resv:due:" + replica;

    /// <summary>Replicas' last sign of life (replica → unix seconds).</summary>
    public const string Replicas = "replicas:alive";

    public static string KeyRequests(Guid key, long window) => $"rl:{{{key:N}}}:r:{window}";
    public static string KeyTokens(Guid key, long window) => $"rl:{{{key:N}}}:t:{window}";
    public static string OrgRequests(Guid org, long window) => $"rlo:{{{org:N}}}:r:{window}";
    public static string OrgTokens(Guid org, long window) => $"rlo:{{{org:N}}}:t:{window}";

    public static string DueMember(Guid org, string eventId) => $"{org:N}|{eventId}";

    /// <summary>The organisation's admission leases: per lease id, the money it holds, its slots, counter and replica.</summary>
    public static string Leases(Guid org) => $"lease:{{{org:N}}}";

    /// <summary>Concurrency slots the organisation's leases hold, counted with its open reservations.</summary>
    public static string LeasedSlots(Guid org) => $"lconc:{{{org:N}}}";

    /// <summary>A lease on the due-sets, beside reservations: the reaper tells them apart by this prefix.</summary>
    public const string LeaseMemberPrefix = "lease:";

    public static string LeaseMember(Guid org, string leaseId) => $"{org:N}|{LeaseMemberPrefix}{leaseId}";
}
