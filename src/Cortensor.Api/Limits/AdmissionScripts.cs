using StackExchange.Redis;

namespace Cortensor.Api.Limits;

/// <summary>
/// The Lua scripts that make admission, settlement and reconciliation atomic in Redis. Each returns
/// numbers the C# side turns into <see cref="AdmissionVerdict"/> and amounts.
/// </summary>
internal static class AdmissionScripts
{
    /// <summary>
    /// Rate windows (the key's, then the organisation's), concurrency, the key's budget for its period
    /// (USD as credit units and/or tokens), then the quota or credit reservation; nothing is counted unless
    /// everything passes. The reservation is recorded with
    /// its deadline so it can be settled exactly once, by the request or by the reaper.
    /// </summary>
    public static readonly LuaScript Admit = LuaScript.Prepare("""
        local cost = tonumber(@cost)
        local kr = tonumber(redis.call('GET', @keyRequests) or '0')
        local kt = tonumber(redis.call('GET', @keyTokens) or '0')
        local orq = tonumber(redis.call('GET', @orgRequests) or '0')
        local ot = tonumber(redis.call('GET', @orgTokens) or '0')
        if kr + 1 > tonumber(@keyRequestLimit) then return {1, kr, kt, 0, orq, ot} end
        if kt + cost > tonumber(@keyTokenLimit) then return {2, kr, kt, 0, orq, ot} end
        if orq + 1 > tonumber(@orgRequestLimit) then return {3, kr, kt, 0, orq, ot} end
        if ot + cost > tonumber(@orgTokenLimit) then return {4, kr, kt, 0, orq, ot} end
        local leased = tonumber(redis.call('GET', @leasedSlots) or '0')
        if redis.call('HLEN', @reservations) + leased + 1 > tonumber(@concurrency) then return {5, kr, kt, 0, orq, ot} end
        local budgeted = @budgeted == '1'
        local budgetUnits = tonumber(@budgetUnits)
        if budgeted then
            local bu = tonumber(redis.call('HGET', @keyBudget, 'u') or '0')
            local bt = tonumber(redis.call('HGET', @keyBudget, 't') or '0')
            local lu = tonumber(@budgetUnitLimit)
            local lt = tonumber(@budgetTokenLimit)
            if (lu >= 0 and bu + budgetUnits > lu) or (lt >= 0 and bt + cost > lt) then return {10, kr, kt, bu, orq, ot, bt} end
        end
        local amount = tonumber(@amount)
        local balance
        if @credits == '1' then
            local b = redis.call('GET', @counter)
            if not b then return {6, kr, kt, 0, orq, ot} end
            if tonumber(b) < amount then return {7, kr, kt, tonumber(b), orq, ot} end
            balance = redis.call('DECRBY', @counter, amount)
        else
            local used = tonumber(redis.call('GET', @counter) or '0')
            if used + amount > tonumber(@quota) then return {7, kr, kt, used, orq, ot} end
            balance = redis.call('INCRBY', @counter, amount)
            redis.call('EXPIRE', @counter, @quotaTtl)
        end
        redis.call('INCRBY', @held, amount)
        if @credits ~= '1' then redis.call('EXPIRE', @held, @quotaTtl) end
        if budgeted then
            redis.call('HINCRBY', @keyBudget, 'u', budgetUnits)
            redis.call('HINCRBY', @keyBudget, 't', cost)
            redis.call('EXPIRE', @keyBudget, @budgetTtl)
        end
        redis.call('INCR', @version)
        redis.call('HSET', @reservations, @id, @hold)
        redis.call('ZADD', @due, @deadline, @dueMember)
        redis.call('ZADD', @replicaDue, @deadline, @dueMember)
        kr = redis.call('INCR', @keyRequests)
        redis.call('EXPIRE', @keyRequests, @ttl)
        kt = redis.call('INCRBY', @keyTokens, cost)
        redis.call('EXPIRE', @keyTokens, @ttl)
        orq = redis.call('INCR', @orgRequests)
        redis.call('EXPIRE', @orgRequests, @ttl)
        ot = redis.call('INCRBY', @orgTokens, cost)
        redis.call('EXPIRE', @orgTokens, @ttl)
        return {0, kr, kt, balance, orq, ot}
        """);

    /// <summary>
    /// Settles a reservation by its id and hands over the usage record, atomically: whoever settles
    /// first (the request, a spool replay, the reaper) gives back what was not used; the others find
    /// nothing to give back; the key budget's counter (of the period the hold was taken in) gets its unused part too. With <c>onlyIfHeld</c> (the reaper), a reservation already settled adds no record;
    /// without <c>file</c>, only the hold is given back (the request was billed another way).
    /// Counters Redis lost are not recreated here: reconciliation rebuilds them from the ledger. A charge made pending
    /// here names its pending-charges key in the record's stream entry, so the writer forgets it once the ledger has it.
    /// The reaper's settlement notes what it billed (<c>reaped</c>); a later settlement of the same reservation that finds
    /// that note files nothing and returns the note: the request was alive after all, and <see cref="SettleLate"/> bills the rest.
    /// One that finds the note marked settled files nothing either: the request's own record must not reach the stream
    /// beside the reaper's (the ledger keeps whichever of the two same-id records commits first).
    /// </summary>
    public static readonly LuaScript Settle = LuaScript.Prepare("""
        local held = redis.call('HDEL', @reservations, @id)
        local pending = false
        if held == 1 then
            redis.call('HDEL', @progress, @id)
            redis.call('ZREM', @due, @dueMember)
            redis.call('ZREM', @replicaDue, @dueMember)
            local amount = tonumber(@amount)
            local actual = tonumber(@actual)
            if redis.call('EXISTS', @counter) == 1 then
                if @credits == '1' then redis.call('INCRBY', @counter, amount - actual)
                else redis.call('DECRBY', @counter, amount - actual) end
            end
            if redis.call('EXISTS', @heldKey) == 1 then redis.call('DECRBY', @heldKey, amount) end
            if actual > 0 then
                redis.call('HSET', @unbilled, @id, actual)
                pending = true
            end
            redis.call('INCR', @version)
            local delta = tonumber(@tokenDelta)
            if delta ~= 0 then
                if redis.call('EXISTS', @keyTokens) == 1 then redis.call('INCRBY', @keyTokens, delta) end
                if redis.call('EXISTS', @orgTokens) == 1 then redis.call('INCRBY', @orgTokens, delta) end
            end
            if @budgeted == '1' and redis.call('EXISTS', @keyBudget) == 1 then
                redis.call('HINCRBY', @keyBudget, 'u', tonumber(@budgetActual) - tonumber(@budgetUnits))
                if delta ~= 0 then redis.call('HINCRBY', @keyBudget, 't', delta) end
            end
            if @onlyIfHeld == '1' and @file == '1' then
                redis.call('SET', @reaped, @reapedTokens, 'EX', 604800)
            end
        elseif @onlyIfHeld == '1' then
            return 0
        else
            -- A request that outlived its reaping kept reporting progress: that field would stay in the hash for good.
            redis.call('HDEL', @progress, @id)
            local reaped = redis.call('GET', @reaped)
            if reaped == 'settled' then return 0 end
            if reaped then return reaped end
        end
        if @file == '1' then
            if pending then redis.call('XADD', @stream, '*', @field, @payload, @pendingField, @unbilled)
            else redis.call('XADD', @stream, '*', @field, @payload) end
        end
        return held
        """);

    /// <summary>
    /// The rest of a request the reaper settled as abandoned while it was still running (its replica was cut off from
    /// Redis for longer than <c>Limits:ReplicaSilenceSeconds</c>, or it outlived its deadline): once per reaped note,
    /// the difference between what the request used and what the reaper billed (never below nothing) is taken from the counter directly
    /// (the hold is long given back), pending for the ledger like any charge, and the correction record goes to the
    /// stream under its own event id (the reaper's record holds the request's). The key budget gets the difference too.
    /// The note is marked settled (until it expires), not removed: a replay of the request's settlement then files nothing.
    /// The rate-limit windows are not touched: the minute the request counted in is long over.
    /// </summary>
    public static readonly LuaScript SettleLate = LuaScript.Prepare("""
        if redis.call('GET', @reaped) ~= @note then return 0 end
        redis.call('SET', @reaped, 'settled', 'KEEPTTL')
        local extra = tonumber(@extra)
        if extra > 0 and redis.call('EXISTS', @counter) == 1 then
            if @credits == '1' then redis.call('DECRBY', @counter, extra)
            else redis.call('INCRBY', @counter, extra) end
        end
        if @budgeted == '1' and redis.call('EXISTS', @keyBudget) == 1 then
            redis.call('HINCRBY', @keyBudget, 'u', tonumber(@budgetExtra))
            redis.call('HINCRBY', @keyBudget, 't', tonumber(@tokensExtra))
        end
        if extra > 0 then
            redis.call('HSET', @unbilled, @correction, extra)
            redis.call('XADD', @stream, '*', @field, @payload, @pendingField, @unbilled)
        else
            redis.call('XADD', @stream, '*', @field, @payload)
        end
        redis.call('INCR', @version)
        return 1
        """);

    /// <summary>
    /// A grant about to be committed to the ledger, noted first (reference → credit units) so that whoever meets it next
    /// knows whether the hot balance has it: reconciliation, reading the ledger, folds in the noted grants the ledger
    /// already has and strikes them; <see cref="ApplyGrant"/> adds only a grant still noted. The version moves, so a
    /// comparison whose snapshot predates the note (and so cannot strike it) is not set.
    /// </summary>
    public static readonly LuaScript PendGrant = LuaScript.Prepare("""
        redis.call('HSET', @grants, @reference, @note)
        redis.call('INCR', @version)
        return 1
        """);

    /// <summary>
    /// A committed grant reaches the hot balance once: only if its own note is still there (reconciliation did not fold
    /// it in already, and the note is not another delivery's of the same reference, made after reconciliation struck this
    /// one), and only if Redis holds the balance (else the next admission loads it whole, grant included).
    /// </summary>
    public static readonly LuaScript ApplyGrant = LuaScript.Prepare("""
        if redis.call('HGET', @grants, @reference) ~= @note then return nil end
        redis.call('HDEL', @grants, @reference)
        redis.call('INCR', @version)
        if redis.call('EXISTS', @counter) == 1 then return redis.call('INCRBY', @counter, @amount) end
        return nil
        """);

    /// <summary>A grant whose commit failed: its own note is struck, never another delivery's.</summary>
    public static readonly LuaScript DropGrant = LuaScript.Prepare("""
        if redis.call('HGET', @grants, @reference) == @note then return redis.call('HDEL', @grants, @reference) end
        return 0
        """);

    /// <summary>
    /// What reconciliation compares, read at one instant: counter, holds, version, the charges pending for the ledger
    /// and how many there are, and (credits) the grants noted but not yet applied. Above <c>maxPending</c> the charges are
    /// not read: a script blocks all of Redis while it runs. Grants are few (one per top-up or admin grant in flight).
    /// </summary>
    public static readonly LuaScript Snapshot = LuaScript.Prepare("""
        local n = redis.call('HLEN', @unbilled)
        local pending = {}
        if n <= tonumber(@maxPending) then pending = redis.call('HGETALL', @unbilled) end
        local grants = {}
        if @credits == '1' then grants = redis.call('HKEYS', @grants) end
        return {redis.call('GET', @counter) or '', redis.call('GET', @heldKey) or '0',
                redis.call('GET', @version) or '0', pending, n, grants}
        """);

    /// <summary>
    /// Sets a counter to the ledger's figure only if nothing moved it since the snapshot, and strikes the noted grants that
    /// figure includes (<c>written</c>, one reference a line): the balance has them now, and applying them would count them twice.
    /// </summary>
    public static readonly LuaScript CompareAndSet = LuaScript.Prepare("""
        if (redis.call('GET', @version) or '0') ~= @seen then return 0 end
        if @onlyIfMissing == '1' and redis.call('EXISTS', @counter) == 1 then return 0 end
        redis.call('SET', @counter, @value)
        if tonumber(@ttl) > 0 then redis.call('EXPIRE', @counter, @ttl) end
        for reference in string.gmatch(@written, '[^\n]+') do redis.call('HDEL', @grants, reference) end
        redis.call('INCR', @version)
        return 1
        """);
}
