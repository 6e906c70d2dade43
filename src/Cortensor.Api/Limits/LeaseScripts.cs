using StackExchange.Redis;

namespace Cortensor.Api.Limits;

/// <summary>
/// The Lua scripts of admission leases (<see cref="AdmissionLeases"/>). A lease is a slice of a key's and
/// its organisation's per-minute allowance, of the organisation's concurrency and of its credit or quota,
/// taken from the shared counters ahead of need, exactly as if that many requests had been admitted: the
/// shared totals can never be exceeded. Its money is held (<c>held:…</c>) like a reservation's, so
/// reconciliation counts it; its fields live in the organisation's lease hash (<c>lease:{org}</c>) as
/// <c>&lt;id&gt;.m</c> (money still held), <c>&lt;id&gt;.c</c> (concurrency slots), <c>&lt;id&gt;.counter</c>; it is on
/// the due-sets like a reservation, so a dead replica's lease is given back by the reaper.
/// </summary>
internal static class LeaseScripts
{
    /// <summary>
    /// Takes a slice (or tops one up): every window must have room for the whole slice (the organisation's windows
    /// within three quarters of their limits), the concurrency for its slots, and the money must be large enough that the
    /// slice is a small part of it; otherwise nothing is taken and the key stays on the exact path. Returns {verdict, key requests, key tokens,
    /// balance or quota used, org requests, org tokens, money taken, slots taken}.
    /// </summary>
    public static readonly LuaScript Grant = LuaScript.Prepare("""
        local r = tonumber(@requests)
        local t = tonumber(@tokens)
        local c = tonumber(@slots)
        -- A top-up of a lease the reaper already gave back (its replica was silent, not dead) would bring it back without
        -- its money, and the charges filed against it would then leave nothing: refused, and the replica retires it.
        if @topUp == '1' and redis.call('HEXISTS', @leases, @id .. '.counter') == 0 then return {100, 0, 0, 0, 0, 0, 0} end
        local kr = tonumber(redis.call('GET', @keyRequests) or '0')
        local kt = tonumber(redis.call('GET', @keyTokens) or '0')
        local orq = tonumber(redis.call('GET', @orgRequests) or '0')
        local ot = tonumber(redis.call('GET', @orgTokens) or '0')
        -- An organisation's window is leased only up to three quarters: its many keys' leases, each holding a slice ahead
        -- of need, could otherwise hold all of it, and its other keys' requests were refused with most of it unused.
        if r > 0 and (orq + r) * 4 > tonumber(@orgRequestLimit) * 3 then return {3, kr, kt, 0, orq, ot, 0} end
        if t > 0 and (ot + t) * 4 > tonumber(@orgTokenLimit) * 3 then return {4, kr, kt, 0, orq, ot, 0} end
        if kr + r > tonumber(@keyRequestLimit) then return {1, kr, kt, 0, orq, ot, 0} end
        if kt + t > tonumber(@keyTokenLimit) then return {2, kr, kt, 0, orq, ot, 0} end
        if orq + r > tonumber(@orgRequestLimit) then return {3, kr, kt, 0, orq, ot, 0} end
        if ot + t > tonumber(@orgTokenLimit) then return {4, kr, kt, 0, orq, ot, 0} end
        local slotsHeld = tonumber(redis.call('GET', @leasedSlots) or '0')
        if redis.call('HLEN', @reservations) + slotsHeld + c > tonumber(@concurrency) then return {5, kr, kt, 0, orq, ot, 0} end
        -- Concurrency likewise: leases' slots, held ahead of need, may take at most three quarters of it. A top-up then
        -- takes the rest of what it asked for without slots (refused whole, the lease would drain and stay exact).
        if c > 0 and (slotsHeld + c) * 4 > tonumber(@concurrency) * 3 then
            if @topUp ~= '1' then return {5, kr, kt, 0, orq, ot, 0} end
            c = 0
        end
        local m = 0
        local balance
        if @takeMoney ~= '1' then
            -- A top-up of slots, requests or tokens only: the lease's money is not low.
            balance = tonumber(redis.call('GET', @counter) or '0')
        elseif @credits == '1' then
            local b = redis.call('GET', @counter)
            if not b then return {6, kr, kt, 0, orq, ot, 0} end
            m = math.min(tonumber(@maxMoney), math.floor(tonumber(b) / tonumber(@share)))
            if m < tonumber(@minMoney) then return {7, kr, kt, tonumber(b), orq, ot, 0} end
            balance = redis.call('DECRBY', @counter, m)
        else
            local used = tonumber(redis.call('GET', @counter) or '0')
            m = math.min(tonumber(@maxMoney), math.floor((tonumber(@quota) - used) / tonumber(@share)))
            if m < tonumber(@minMoney) then return {7, kr, kt, used, orq, ot, 0} end
            balance = redis.call('INCRBY', @counter, m)
            redis.call('EXPIRE', @counter, @quotaTtl)
        end
        redis.call('INCRBY', @held, m)
        if @credits ~= '1' then redis.call('EXPIRE', @held, @quotaTtl) end
        redis.call('INCRBY', @leasedSlots, c)
        redis.call('INCR', @version)
        redis.call('HINCRBY', @leases, @id .. '.m', m)
        redis.call('HINCRBY', @leases, @id .. '.c', c)
        redis.call('HSET', @leases, @id .. '.counter', @counter, @id .. '.replica', @replica)
        redis.call('ZADD', @due, @deadline, @dueMember)
        redis.call('ZADD', @replicaDue, @deadline, @dueMember)
        kr = redis.call('INCRBY', @keyRequests, r)
        redis.call('EXPIRE', @keyRequests, @ttl)
        kt = redis.call('INCRBY', @keyTokens, t)
        redis.call('EXPIRE', @keyTokens, @ttl)
        orq = redis.call('INCRBY', @orgRequests, r)
        redis.call('EXPIRE', @orgRequests, @ttl)
        ot = redis.call('INCRBY', @orgTokens, t)
        redis.call('EXPIRE', @orgTokens, @ttl)
        return {0, kr, kt, balance, orq, ot, m, c}
        """);

    /// <summary>
    /// Files the requests of one lease that ended together, in one step: their charges (<c>@total</c>, summed by the
    /// caller as an exact integer) leave the lease's held money for the pending charges (<c>unbilled:…</c>), and each
    /// usage record goes to the stream naming that key. If the lease was already given back (the reaper took this replica
    /// for dead), the charges are taken from the counter itself, so the hot balance still matches the ledger.
    /// <c>@charges</c> is each request's event id, charge and record, each followed by a zero byte: usage records are
    /// JSON, which never holds a raw zero byte. One call for many requests because a call's own cost (about 7 µs of
    /// Redis, measured with INFO commandstats) was most of what filing a request cost Redis, and Redis is shared by
    /// every replica.
    /// </summary>
    public static readonly LuaScript File = LuaScript.Prepare("""
        local money = @lease .. '.m'
        if redis.call('HEXISTS', @leases, money) == 1 then
            redis.call('HINCRBY', @leases, money, @negativeTotal)
            if redis.call('EXISTS', @heldKey) == 1 then redis.call('DECRBY', @heldKey, @total) end
        elseif redis.call('EXISTS', @counter) == 1 then
            if @credits == '1' then redis.call('DECRBY', @counter, @total) else redis.call('INCRBY', @counter, @total) end
        end
        redis.call('INCR', @version)
        local charges, at, filed = @charges, 1, 0
        while at <= #charges do
            local idEnd = string.find(charges, '\0', at, true)
            local chargeEnd = string.find(charges, '\0', idEnd + 1, true)
            local payloadEnd = string.find(charges, '\0', chargeEnd + 1, true)
            local id, charge = string.sub(charges, at, idEnd - 1), string.sub(charges, idEnd + 1, chargeEnd - 1)
            local payload = string.sub(charges, chargeEnd + 1, payloadEnd - 1)
            if charge ~= '0' then
                redis.call('HSET', @unbilled, id, charge)
                redis.call('XADD', @stream, '*', @field, payload, @pendingField, @unbilled)
            else
                redis.call('XADD', @stream, '*', @field, payload)
            end
            filed = filed + 1
            at = payloadEnd + 1
        end
        return filed
        """);

    /// <summary>
    /// Gives a lease back: the money it still holds returns to the counter, its slots to the
    /// organisation's concurrency, and (from its own replica, within its window) the requests and tokens
    /// it did not use to the windows. Whoever closes first (the replica, the reaper) gives back; later
    /// closes find nothing.
    /// </summary>
    public static readonly LuaScript Close = LuaScript.Prepare("""
        local m = redis.call('HGET', @leases, @id .. '.m')
        if not m then
            redis.call('ZREM', @due, @dueMember)
            redis.call('ZREM', @replicaDue, @dueMember)
            return 0
        end
        m = tonumber(m)
        local c = tonumber(redis.call('HGET', @leases, @id .. '.c') or '0')
        if m > 0 and redis.call('EXISTS', @counter) == 1 then
            if @credits == '1' then redis.call('INCRBY', @counter, m) else redis.call('DECRBY', @counter, m) end
        end
        if redis.call('EXISTS', @heldKey) == 1 then redis.call('DECRBY', @heldKey, m) end
        if redis.call('EXISTS', @leasedSlots) == 1 then redis.call('DECRBY', @leasedSlots, c) end
        redis.call('HDEL', @leases, @id .. '.m', @id .. '.c', @id .. '.counter', @id .. '.replica')
        redis.call('ZREM', @due, @dueMember)
        redis.call('ZREM', @replicaDue, @dueMember)
        redis.call('INCR', @version)
        local r = tonumber(@unusedRequests)
        local t = tonumber(@unusedTokens)
        if r > 0 then
            if redis.call('EXISTS', @keyRequests) == 1 then redis.call('DECRBY', @keyRequests, r) end
            if redis.call('EXISTS', @orgRequests) == 1 then redis.call('DECRBY', @orgRequests, r) end
        end
        if t > 0 then
            if redis.call('EXISTS', @keyTokens) == 1 then redis.call('DECRBY', @keyTokens, t) end
            if redis.call('EXISTS', @orgTokens) == 1 then redis.call('DECRBY', @orgTokens, t) end
        end
        return 1
        """);
}
