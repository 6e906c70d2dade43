using System.Diagnostics;
using System.Globalization;
using System.Net.Http.Headers;
using System.Text.Json;
using Cortensor.Api.Limits;
using Cortensor.Api.Metering;
using Npgsql;
using StackExchange.Redis;

namespace Cortensor.Bench;

/// <summary>
/// `chaos check`: after a chaos run, waits for the pipeline to drain (usage stream empty, nothing
/// pending, no open reservation, no spool left, then a reconcile period), and prints each money
/// invariant per organisation and in total, PASS or FAIL. Exit code 1 on any FAIL.
/// </summary>
public static class ChaosCheck
{
    public static async Task<int> RunAsync(string[] args)
    {
        string Arg(string name, string? fallback = null) =>
            args.SkipWhile(a => a != name).Skip(1).FirstOrDefault() ?? fallback ?? throw new ArgumentException($"{name} is required");
        string[] All(string name) => args.Select((a, i) => (a, i)).Where(x => x.a == name).Select(x => args[x.i + 1]).ToArray();
        var apis = All("--api").Select(a => new Uri(a)).ToArray();
        var spools = All("--spool");
        var orgs = ChaosOrg.Load(Arg("--orgs"));
        var records = File.ReadAllLines(Arg("--records")).Where(l => l.Length > 0)
            .Select(l => JsonSerializer.Deserialize<ChaosRecord>(l)!).ToArray();
        var reconcile = TimeSpan.FromSeconds(int.Parse(Arg("--reconcile-seconds", "10"), CultureInfo.InvariantCulture));
        var adminToken = Arg("--admin-token");
        await using var redis = await ConnectionMultiplexer.ConnectAsync(Arg("--redis"));
        await using var postgres = NpgsqlDataSource.Create(Arg("--postgres"));
        var db = redis.GetDatabase();

        // 1. Drain: stream empty, nothing pending, no reservation open, no spool left.
        var clock = Stopwatch.StartNew();
        var drainDeadline = TimeSpan.FromSeconds(int.Parse(Arg("--drain-seconds", "180"), CultureInfo.InvariantCulture));
        string state;
        while (true)
        {
            var length = await db.StreamLengthAsync(UsageMeter.Stream);
            var pending = (await db.StreamPendingAsync(UsageMeter.Stream, UsageWriter.Group)).PendingMessageCount;
            long open = 0;
            foreach (var o in orgs) open += await db.HashLengthAsync(LimitKeys.Reservations(o.Id));
            var due = await db.SortedSetLengthAsync(LimitKeys.Due);
            var spooled = spools.Where(Directory.Exists).SelectMany(d => Directory.EnumerateFiles(d, "usage-*.jsonl"))
                .Sum(f => new FileInfo(f).Length);
            state = $"stream length {length}, pending {pending}, open reservations {open}, due {due}, spool bytes {spooled}";
            if (length == 0 && pending == 0 && open == 0 && due == 0 && spooled == 0) break;
            if (clock.Elapsed > drainDeadline) { Console.WriteLine($"drain NOT reached after {clock.Elapsed.TotalSeconds:0} s: {state}"); break; }
            await Task.Delay(500);
        }
        var drained = clock.Elapsed;
        Console.WriteLine($"drained after {drained.TotalSeconds:0.0} s ({state}); waiting one reconcile period ({reconcile.TotalSeconds:0} s) and more for hot == ledger");

        // 2. Hot balance == ledger: must hold within a reconcile period of the drain (waited for, up to three).
        var hotDeadline = clock.Elapsed + reconcile * 3;
        await Task.Delay(reconcile);
        Dictionary<Guid, (long Hot, long Ledger, bool Loaded)> hot;
        while (true)
        {
            hot = [];
            foreach (var o in orgs) hot[o.Id] = await HotAndLedgerAsync(db, postgres, o);
            if (hot.Values.All(h => !h.Loaded || h.Hot == h.Ledger) || clock.Elapsed > hotDeadline) break;
            await Task.Delay(500);
        }
        var hotAfter = clock.Elapsed - drained;

        var byId = records.GroupBy(r => r.RequestId).ToDictionary(g => g.Key, g => g.First());
        var failures = 0;
        void Line(string name, string figures, bool pass)
        {
            if (!pass) failures++;
            Console.WriteLine($"| {name} | {figures} | {(pass ? "PASS" : "**FAIL**")} |");
        }

        Console.WriteLine();
        Console.WriteLine("| invariant | figures | verdict |");
        Console.WriteLine("|---|---|---|");
        long tAnswered = 0, tRecorded = 0, tMissing = 0, tDup = 0, tStranger = 0, tNoResp = 0, tNoRespBilled = 0, tMismatch = 0, tCompared = 0;
        decimal tDebits = 0, tCosts = 0;
        long tLedgerTokens = 0, tUsageTokens = 0;
        foreach (var o in orgs)
        {
            var mine = records.Where(r => r.Org == o.Name).ToArray();
            var rows = await UsageRowsAsync(postgres, o.Id);
            var byRequest = rows.GroupBy(r => r.RequestId).ToDictionary(g => g.Key, g => g.ToArray());
            var answered = mine.Where(r => r.Status is not null).ToArray();
            var noResponse = mine.Where(r => r.Status is null).ToArray();
            var missing = answered.Count(r => !byRequest.ContainsKey(r.RequestId));
            var duplicated = byRequest.Count(g => g.Value.Length > 1);
            var strangers = byRequest.Keys.Count(id => !byId.ContainsKey(id));
            var noRespBilled = noResponse.Count(r => byRequest.ContainsKey(r.RequestId));
            var refused = noResponse.Count(r => r.Outcome == "refused");
            // What the client was told must be what was recorded: status (when no body broke), tokens (when usage was told).
            var compared = 0;
            var mismatched = new List<string>();
            foreach (var r in answered)
            {
                if (!byRequest.TryGetValue(r.RequestId, out var found) || found.Length != 1) continue;
                var u = found[0];
                var statusComparable = !r.Stream || r.Status != 200;
                var tokensComparable = r.PromptTokens is not null;
                if (!statusComparable && !tokensComparable) continue;
                compared++;
                if ((statusComparable && u.Status != r.Status)
                    || (tokensComparable && (u.Prompt != r.PromptTokens || u.Completion != r.CompletionTokens)))
                    mismatched.Add($"{r.RequestId}: told {r.Status} {r.PromptTokens}+{r.CompletionTokens}, recorded {u.Status} {u.Prompt}+{u.Completion}");
            }
            Line($"{o.Name}: requests told == usage recorded",
                $"{answered.Length} answered, {answered.Length - missing} recorded, {missing} missing, {duplicated} recorded twice, {strangers} unknown ids; " +
                $"{noResponse.Length} got no response ({refused} refused, {noResponse.Length - refused} died in flight; {noRespBilled} of them recorded)",
                missing == 0 && duplicated == 0 && strangers == 0);
            Line($"{o.Name}: status and usage told == recorded", $"{compared} compared, {mismatched.Count} differ" +
                (mismatched.Count > 0 ? " (e.g. " + string.Join("; ", mismatched.Take(3)) + ")" : ""), mismatched.Count == 0);

            var (debits, ledgerTokens) = await LedgerUsageAsync(postgres, o.Id);
            var costs = rows.Sum(r => r.Cost);
            var usageTokens = rows.Sum(r => (long)r.Prompt + r.Completion);
            Line($"{o.Name}: Σ ledger usage == Σ usage costs",
                string.Create(CultureInfo.InvariantCulture, $"debits ${debits:0.##########} vs costs ${costs:0.##########}; tokens {ledgerTokens} vs {usageTokens}"),
                (o.Credits ? debits == costs : debits == 0) && ledgerTokens == usageTokens);
            var h = hot[o.Id];
            if (o.Credits)
            {
                // Never below zero while Redis answers; during an outage at most the stated allowance
                // (docs/operations.md: $0.50 per organisation per replica per hour, two replicas here).
                var balance = Pricing.FromUnits(h.Ledger);
                Line($"{o.Name}: overspend within the stated bound", string.Create(CultureInfo.InvariantCulture,
                    $"ledger balance ${balance} (granted ${balance + debits:0.##########}); bound -$1.00"), balance >= -1.00m);
            }
            Line($"{o.Name}: hot {(o.Credits ? "balance" : "month tokens")} == ledger",
                h.Loaded ? (o.Credits
                    ? string.Create(CultureInfo.InvariantCulture, $"hot ${Pricing.FromUnits(h.Hot)} vs ledger ${Pricing.FromUnits(h.Ledger)}")
                    : $"hot {h.Hot} vs ledger {h.Ledger} tokens") : "not loaded in Redis (nothing to compare)",
                !h.Loaded || h.Hot == h.Ledger);

            tAnswered += answered.Length; tRecorded += answered.Length - missing; tMissing += missing; tDup += duplicated; tStranger += strangers;
            tNoResp += noResponse.Length; tNoRespBilled += noRespBilled; tMismatch += mismatched.Count; tCompared += compared;
            tDebits += debits; tCosts += o.Credits ? costs : 0; tLedgerTokens += ledgerTokens; tUsageTokens += usageTokens;
        }

        Line("total: requests told == usage recorded",
            $"{records.Length} sent: {tAnswered} answered, {tRecorded} recorded, {tMissing} missing, {tDup} recorded twice, {tStranger} unknown ids; " +
            $"{tNoResp} got no response ({tNoRespBilled} of them recorded)", tMissing == 0 && tDup == 0 && tStranger == 0);
        Line("total: status and usage told == recorded", $"{tCompared} compared, {tMismatch} differ", tMismatch == 0);
        Line("total: Σ ledger usage == Σ usage costs",
            string.Create(CultureInfo.InvariantCulture, $"debits ${tDebits:0.##########} vs costs ${tCosts:0.##########}; tokens {tLedgerTokens} vs {tUsageTokens}"),
            tDebits == tCosts && tLedgerTokens == tUsageTokens);
        Line("total: hot == ledger", $"{hot.Values.Count(v => v.Loaded && v.Hot == v.Ledger)} of {hot.Values.Count(v => v.Loaded)} loaded counters equal, " +
            $"{hotAfter.TotalSeconds:0} s after the drain", hot.Values.All(v => !v.Loaded || v.Hot == v.Ledger));

        var lengthNow = await db.StreamLengthAsync(UsageMeter.Stream);
        var pendingNow = (await db.StreamPendingAsync(UsageMeter.Stream, UsageWriter.Group)).PendingMessageCount;
        Line("total: 0 pending stream entries", $"stream length {lengthNow}, pending {pendingNow}", lengthNow == 0 && pendingNow == 0);
        var deadLetters = await db.StreamLengthAsync(UsageDeadLetters.Stream);
        Line("total: 0 dead letters", $"usage:dead-letters length {deadLetters}", deadLetters == 0);
        long openNow = 0;
        foreach (var o in orgs) openNow += await db.HashLengthAsync(LimitKeys.Reservations(o.Id));
        var dueNow = await db.SortedSetLengthAsync(LimitKeys.Due);
        Line("total: 0 open reservations", $"resv:{{org}} entries {openNow}, resv:due {dueNow}", openNow == 0 && dueNow == 0);
        // Every charge is in the ledger now, so none is still listed as on its way (the writers forget what they commit).
        long pendingCharges = 0;
        foreach (var o in orgs)
            pendingCharges += await db.HashLengthAsync(LimitKeys.Unbilled(LimitKeys.Counter(o.Id, o.Credits, DateTimeOffset.UtcNow)));
        Line("total: 0 pending charges", $"unbilled:{{counter}} entries {pendingCharges}", pendingCharges == 0);
        // The totals balances are read from (kept by a trigger) against the ledger summed row by row.
        await using (var command = postgres.CreateCommand("""
            SELECT count(*) FROM (
                SELECT organization_id, date_trunc('month', created_at AT TIME ZONE 'UTC')::date AS month, sum(amount) AS amount,
                       coalesce(sum(tokens) FILTER (WHERE kind = 'Usage'), 0) AS tokens, count(*) FILTER (WHERE kind = 'Usage') AS entries
                FROM billing_ledger GROUP BY 1, 2) l
            FULL JOIN ledger_totals t USING (organization_id, month)
            WHERE l.amount IS DISTINCT FROM t.amount OR l.tokens IS DISTINCT FROM t.usage_tokens OR l.entries IS DISTINCT FROM t.usage_entries
            """))
        {
            var differing = (long)(await command.ExecuteScalarAsync())!;
            Line("total: ledger totals == ledger", $"{differing} organisation-months differ", differing == 0);
        }
        var inFlight = await RoutersInFlightAsync(apis, adminToken);
        Line("total: routers' in-flight 0", string.Join(", ", inFlight.Select(kv => $"{kv.Key}: {kv.Value}")), inFlight.Values.All(v => v == 0));

        Console.WriteLine();
        Console.WriteLine(failures == 0 ? "ALL INVARIANTS PASS" : $"{failures} INVARIANT(S) FAIL");
        return failures == 0 ? 0 : 1;
    }

    private sealed record UsageRow(string RequestId, int Status, int Prompt, int Completion, decimal Cost);

    private static async Task<List<UsageRow>> UsageRowsAsync(NpgsqlDataSource postgres, Guid org)
    {
        await using var command = postgres.CreateCommand(
            "SELECT request_id, status, prompt_tokens, completion_tokens, cost FROM usage_events WHERE organization_id = $1");
        command.Parameters.Add(new NpgsqlParameter { Value = org });
        await using var reader = await command.ExecuteReaderAsync();
        var rows = new List<UsageRow>();
        while (await reader.ReadAsync())
            rows.Add(new UsageRow(reader.GetString(0), reader.GetInt32(1), reader.GetInt32(2), reader.GetInt32(3), reader.GetDecimal(4)));
        return rows;
    }

    /// <summary>Σ of the ledger's usage debits (positive) and tokens.</summary>
    private static async Task<(decimal Debits, long Tokens)> LedgerUsageAsync(NpgsqlDataSource postgres, Guid org)
    {
        await using var command = postgres.CreateCommand(
            "SELECT coalesce(-sum(amount), 0), coalesce(sum(tokens), 0)::bigint FROM billing_ledger WHERE organization_id = $1 AND kind = 'Usage'");
        command.Parameters.Add(new NpgsqlParameter { Value = org });
        await using var reader = await command.ExecuteReaderAsync();
        await reader.ReadAsync();
        return (reader.GetDecimal(0), reader.GetInt64(1));
    }

    /// <summary>The hot counter (credit units, or this month's tokens) and the ledger's figure for it.</summary>
    private static async Task<(long Hot, long Ledger, bool Loaded)> HotAndLedgerAsync(IDatabase db, NpgsqlDataSource postgres, ChaosOrg o)
    {
        var now = DateTimeOffset.UtcNow;
        var monthStart = new DateTimeOffset(now.Year, now.Month, 1, 0, 0, 0, TimeSpan.Zero);
        await using var command = postgres.CreateCommand("""
            SELECT coalesce(sum(amount), 0), coalesce(sum(tokens) FILTER (WHERE kind = 'Usage' AND created_at >= $2), 0)::bigint
            FROM billing_ledger WHERE organization_id = $1
            """);
        command.Parameters.Add(new NpgsqlParameter { Value = o.Id });
        command.Parameters.Add(new NpgsqlParameter { Value = monthStart });
        await using var reader = await command.ExecuteReaderAsync();
        await reader.ReadAsync();
        var (balance, tokens) = (reader.GetDecimal(0), reader.GetInt64(1));
        var value = await db.StringGetAsync(LimitKeys.Counter(o.Id, o.Credits, now));
        return value.IsNull ? (0, o.Credits ? Pricing.ToUnits(balance) : tokens, false)
            : ((long)value, o.Credits ? Pricing.ToUnits(balance) : tokens, true);
    }

    /// <summary>Every router's in-flight count as each replica sees it (GET /admin/pools).</summary>
    private static async Task<Dictionary<string, int>> RoutersInFlightAsync(Uri[] apis, string token)
    {
        using var client = new HttpClient();
        client.DefaultRequestHeaders.Authorization = new AuthenticationHeaderValue("Bearer", token);
        var seen = new Dictionary<string, int>();
        foreach (var api in apis)
        {
            string body;
            try
            {
                using var response = await client.GetAsync(new Uri(api, "/admin/pools"));
                response.EnsureSuccessStatusCode();
                body = await response.Content.ReadAsStringAsync();
            }
            catch (HttpRequestException ex)
            {
                Console.WriteLine($"GET {api}admin/pools failed: {ex.Message}");
                seen[api.Authority] = -1; // unknown: a FAIL, never a silent pass
                continue;
            }
            using var pools = JsonDocument.Parse(body);
            var total = 0;
            foreach (var pool in pools.RootElement.EnumerateArray())
                foreach (var router in pool.GetProperty("routers").EnumerateArray())
                    total += router.GetProperty("in_flight").GetInt32();
            seen[api.Authority] = total;
        }
        return seen;
    }
}
