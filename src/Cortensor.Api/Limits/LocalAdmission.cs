using Cortensor.Api.Keys;

namespace Cortensor.Api.Limits;

/// <summary>
/// Admission on one replica while Redis is away. Rate limits apply per replica (so N replicas admit
/// at most N times the limit). Money is spent only by organisations whose positive balance or quota
/// left was seen within the last hour, at most <see cref="OutageUsd"/> (credits) or
/// <see cref="OutageTokens"/> (quota) per organisation per replica per hour, and never more than
/// that last known balance: the worst-case overspend docs/operations.md publishes.
/// </summary>
public sealed class LocalAdmission(TimeProvider clock)
{
    public const long OutageTokens = 50_000;
    public const decimal OutageUsd = 0.50m;
    private static readonly TimeSpan KnownFor = TimeSpan.FromHours(1);

    private readonly Lock _lock = new();
    private readonly Dictionary<Guid, (long Window, long Requests, long Tokens)> _keys = [];
    private readonly Dictionary<Guid, (long Window, long Requests, long Tokens, int InFlight)> _orgs = [];
    private readonly Dictionary<Guid, (long Hour, long Spent)> _spend = [];
    // What was admitted here against the balance last seen: counted apart from the clock hour's spend, since a balance
    // seen at 10:59 is still the last one known at 11:30, and the new hour must not let it be spent a second time.
    private readonly Dictionary<Guid, (long Left, DateTimeOffset At, long Spent)> _known = [];

    /// <summary>Called with every shared admission: what the organisation had left (credit units or quota tokens).</summary>
    public void Remember(Guid org, long left)
    {
        lock (_lock) _known[org] = (left, clock.GetUtcNow(), 0);
    }

    public Admission Admit(KeySnapshot key, long window, TimeSpan reset, int tokens, long amount, bool credits)
    {
        var now = clock.GetUtcNow();
        var hour = now.ToUnixTimeSeconds() / 3600;
        lock (_lock)
        {
            var (kw, kr, kt) = _keys.GetValueOrDefault(key.KeyId);
            if (kw != window) (kr, kt) = (0, 0);
            var (ow, orq, ot, inflight) = _orgs.GetValueOrDefault(key.OrganizationId);
            if (ow != window) (orq, ot) = (0, 0);
            // A key budget is only ever checked in Redis, atomically with every replica's spend: without Redis
            // such a key is refused (503) rather than let one replica spend it alone.
            var verdict =
                key.NeedsExactAdmission ? AdmissionVerdict.BillingUnavailable
                : kr + 1 > key.RequestsPerMinute ? AdmissionVerdict.KeyRequestsExhausted
                : kt + tokens > key.TokensPerMinute ? AdmissionVerdict.KeyTokensExhausted
                : orq + 1 > key.OrganizationRequestsPerMinute ? AdmissionVerdict.OrganizationRequestsExhausted
                : ot + tokens > key.OrganizationTokensPerMinute ? AdmissionVerdict.OrganizationTokensExhausted
                : inflight + 1 > key.MaxConcurrentRequests ? AdmissionVerdict.TooManyConcurrent
                : AdmissionVerdict.Admitted;

            if (verdict == AdmissionVerdict.Admitted)
            {
                var (h, spent) = _spend.GetValueOrDefault(key.OrganizationId);
                if (h != hour) spent = 0;
                var cap = credits ? Pricing.ToUnits(OutageUsd) : OutageTokens;
                // Only money we saw: an organisation never seen with a positive balance spends nothing.
                if (!_known.TryGetValue(key.OrganizationId, out var known) || now - known.At > KnownFor || known.Left <= 0)
                    verdict = AdmissionVerdict.OutageAllowanceSpent;
                // Both: a Redis that comes and goes renews the known balance before the spool has replayed what was spent
                // against it, so the hour's spend is also held to the latest balance seen.
                else if (spent + amount > Math.Min(cap, known.Left) || known.Spent + amount > known.Left)
                    verdict = AdmissionVerdict.OutageAllowanceSpent;
                else
                {
                    _spend[key.OrganizationId] = (hour, spent + amount);
                    _known[key.OrganizationId] = known with { Spent = known.Spent + amount };
                    (kr, kt, orq, ot, inflight) = (kr + 1, kt + tokens, orq + 1, ot + tokens, inflight + 1);
                    _keys[key.KeyId] = (window, kr, kt);
                    _orgs[key.OrganizationId] = (window, orq, ot, inflight);
                }
            }
            var admitted = verdict == AdmissionVerdict.Admitted;
            return new Admission(verdict, reset, window, key.RequestsPerMinute, kr, key.TokensPerMinute, kt,
                key.OrganizationRequestsPerMinute, orq, key.OrganizationTokensPerMinute, ot, key.MaxConcurrentRequests,
                admitted ? tokens : 0, amount, 0, Hold: null, Local: true);
        }
    }

    /// <summary>After a locally admitted request: its concurrency slot back and the unused tokens to its windows.</summary>
    public void Release(KeySnapshot key, long window, int tokenDelta)
    {
        lock (_lock)
        {
            if (_keys.TryGetValue(key.KeyId, out var k) && k.Window == window) _keys[key.KeyId] = k with { Tokens = k.Tokens + tokenDelta };
            if (_orgs.TryGetValue(key.OrganizationId, out var o))
                _orgs[key.OrganizationId] = o with
                {
                    Tokens = o.Window == window ? o.Tokens + tokenDelta : o.Tokens,
                    InFlight = Math.Max(0, o.InFlight - 1),
                };
        }
    }
}
