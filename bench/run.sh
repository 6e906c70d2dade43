#!/usr/bin/env bash
# Benchmarks the gateway on this machine, against its peers in the same run, and writes docs/benchmarks.md.
# Runs Postgres, Redis, one RouterSim (zero delay) and the Api as plain processes (Release, no
# orchestrator proxies in between), so "direct" and "via Api" differ only by the gateway; beside them a
# bare YARP in front of the same RouterSim (the .NET floor) and Portkey OSS in front of a trivial
# OpenAI-shaped upstream (the peer). Installs what it needs (npm into .tools/peers, dotnet-counters).
#
# Knobs (environment):
#   BENCH_SECONDS=10        seconds per measured cell (wrk, 1 thread), and per open-loop latency cell
#   BENCH_CONNECTIONS="1 16 64"  the concurrencies of the peer table
#   BENCH_WARMUP=30         seconds of warm-up per target (16 connections) before the table; the Api needs 20-35 s
#                           of load before tiered compilation has settled, and a shorter warm-up measures the JIT
#   BENCH_LOAD=1            0 skips the open-loop latency and streaming time-to-first-token cells
#   BENCH_LEDGER=1          0 skips the ledger writer throughput run; BENCH_EVENTS=200000 events in it
#   BENCH_MICRO=1           0 skips the BenchmarkDotNet micro benchmarks (key lookup, prompt counting)
#   BENCH_OUT=docs/benchmarks.md  where the report goes
#   BENCH_API_ENV="..."     extra NAME=value settings for the Api only (e.g. DOTNET_gcServer=0, Limits__Leasing=false)
#   BENCH_BUILD=1           0 uses the Release builds already there (Api, RouterSim, Bench, YarpFloor)
#   BENCH_STACK_ONLY=1      only start the stack and wait (writes /tmp/cortensor-bench.env)
# A quick run: BENCH_SECONDS=3 BENCH_WARMUP=2 BENCH_LEDGER=0 BENCH_MICRO=0 BENCH_OUT=/tmp/bench.md bench/run.sh
set -euo pipefail
cd "$(dirname "$0")/.."
root=$(pwd)
CORTENSOR_SETUP_BROWSER=0 ./scripts/setup.sh
export DOTNET_CLI_TELEMETRY_OPTOUT=1 DOTNET_NOLOGO=1
seconds=${BENCH_SECONDS:-10}
connections=${BENCH_CONNECTIONS:-"1 16 64"}
warmup=${BENCH_WARMUP:-30}
report=${BENCH_OUT:-docs/benchmarks.md}
out=$(mktemp -d /tmp/cortensor-bench.XXXX)
data=/tmp/cortensor-bench-data
rm -rf "$data"; mkdir -p "$data"
pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; wait 2>/dev/null || true; }
trap cleanup EXIT

# The peer gateway, pinned: Portkey's default install resolves @hono/node-server 1.19, which breaks streaming.
tools=$root/.tools
if ! cmp -s bench/peers/package.json "$tools/peers/package.json" || [ ! -f "$tools/peers/node_modules/@portkey-ai/gateway/build/start-server.js" ]; then
  rm -rf "$tools/peers"; mkdir -p "$tools/peers"; cp bench/peers/package.json "$tools/peers/"
  (cd "$tools/peers" && npm install --no-audit --no-fund --ignore-scripts --loglevel=error >/dev/null)
fi
# Allocations per request come from the runtime's allocated-bytes counter, read with dotnet-counters.
counters=$(command -v dotnet-counters || true)
[ -z "$counters" ] && [ -x "$HOME/.dotnet/tools/dotnet-counters" ] && counters=$HOME/.dotnet/tools/dotnet-counters
if [ -z "$counters" ]; then
  dotnet tool install --tool-path "$tools/dotnet" dotnet-counters --version 10.0.750501 >/dev/null 2>&1 || true
  [ -x "$tools/dotnet/dotnet-counters" ] && counters=$tools/dotnet/dotnet-counters
fi

. bench/free-ports.sh
# Throwaway secrets per run: the Api runs in Production here and refuses published or weak ones.
pw=$(openssl rand -hex 16); router_token=$(openssl rand -hex 16); admin_password="Bench-$(openssl rand -hex 8)-A1"

if [ "${BENCH_BUILD:-1}" = 1 ]; then
  dotnet build Cortensor.sln -c Release -nologo -v quiet >/dev/null
  dotnet build bench/YarpFloor -c Release -nologo -v quiet >/dev/null
fi
# Picked after the build, just before they are bound: a port picked before it could be taken by anything during it.
{ read -r pg_port; read -r redis_port; read -r router_port; read -r api_port; } < <(free_ports 4)

PGPORT=$pg_port PGDATA=$data/postgres POSTGRES_PASSWORD=$pw bash scripts/local-postgres.sh > "$out/postgres.log" 2>&1 & pids+=($!)
REDIS_PORT=$redis_port REDIS_DATA=$data/redis REDIS_PASSWORD=$pw bash scripts/local-redis.sh > "$out/redis.log" 2>&1 & pids+=($!)
for _ in $(seq 1 60); do
  PGPASSWORD=$pw psql -h 127.0.0.1 -p "$pg_port" -U postgres -c 'select 1' >/dev/null 2>&1 && break; sleep 0.5
done

export ConnectionStrings__portaldb="Host=127.0.0.1;Port=$pg_port;Username=postgres;Password=$pw;Database=portal;Maximum Pool Size=50"
export ConnectionStrings__redis="127.0.0.1:$redis_port,password=$pw"
export Auth__SigningKey=$(openssl rand -base64 32)
export Routers__Token=$router_token
# No mail is sent in a benchmark; the Api only needs to know where it would go.
export Mail__Host=127.0.0.1 Mail__Port=2525 Mail__LinkBaseUrl=http://127.0.0.1
Admin__Email=bench-admin@cortensor.local Admin__Password=$admin_password \
  dotnet src/Cortensor.Api/bin/Release/net10.0/Cortensor.Api.dll migrate > "$out/migrate.log" 2>&1

sessions=(--Router:Sessions:0=2001 --Router:Sessions:1=2002 --Router:Sessions:2=2003 --Router:Sessions:3=2004 --Router:Sessions:4=2005 --Router:Sessions:5=2006)
ASPNETCORE_URLS=http://127.0.0.1:$router_port Router__ApiKey=$router_token Router__Model=gpt-oss-20b Logging__LogLevel__Default=Warning \
  Router__Behaviour__AssignmentDelayMs=0 Router__Behaviour__PrecommitDelayMs=0 Router__Behaviour__TokensPerSecond=0 \
  dotnet src/Cortensor.RouterSim/bin/Release/net10.0/Cortensor.RouterSim.dll "${sessions[@]}" > "$out/router.log" 2>&1 & pids+=($!)

# Names with dashes are not shell identifiers: env sets them.
# shellcheck disable=SC2086 # BENCH_API_ENV is a list of NAME=value words
env ${BENCH_API_ENV:-} ASPNETCORE_URLS=http://127.0.0.1:$api_port Routers__Token=$router_token Logging__LogLevel__Default=Warning \
  services__router-oss20b-1__http__0=http://127.0.0.1:$router_port \
  services__router-oss20b-2__http__0=http://127.0.0.1:$router_port \
  services__router-oss20b-3__http__0=http://127.0.0.1:$router_port \
  dotnet src/Cortensor.Api/bin/Release/net10.0/Cortensor.Api.dll > "$out/api.log" 2>&1 & pids+=($!)
api_pid=$! # env execs dotnet: this is the Api's own process, whose CPU time the table reports

for _ in $(seq 1 120); do curl -fs "http://127.0.0.1:$api_port/health" >/dev/null 2>&1 && break; sleep 0.5; done
token=$(curl -fs -H "Content-Type: application/json" -d "{\"email\":\"bench-admin@cortensor.local\",\"password\":\"$admin_password\"}" \
  "http://127.0.0.1:$api_port/portal/auth/login" | python3 -c 'import json,sys; print(json.load(sys.stdin)["access_token"])')
admin=(-H "Authorization: Bearer $token" -H "Content-Type: application/json")
org=$(curl -fs "${admin[@]}" -d '{"name":"bench","plan":"scale"}' "http://127.0.0.1:$api_port/admin/organizations" | python3 -c 'import json,sys; print(json.load(sys.stdin)["id"])')
curl -fs "${admin[@]}" -d '{"amount":1000000,"reason":"benchmark"}' "http://127.0.0.1:$api_port/admin/organizations/$org/credits" >/dev/null
key=$(curl -fs "${admin[@]}" -d '{"name":"bench"}' "http://127.0.0.1:$api_port/admin/organizations/$org/api-keys" | python3 -c 'import json,sys; print(json.load(sys.stdin)["key"])')
sleep 3 # the health probe marks the routers healthy
if [ "${BENCH_STACK_ONLY:-0}" = 1 ]; then
  printf 'API=http://127.0.0.1:%s\nROUTER=http://127.0.0.1:%s\nKEY=%s\nPGPORT=%s\nREDISPORT=%s\n' "$api_port" "$router_port" "$key" "$pg_port" "$redis_port" > /tmp/cortensor-bench.env
  echo "stack up: /tmp/cortensor-bench.env"; wait
fi

bench=bench/Cortensor.Bench/bin/Release/net10.0/Cortensor.Bench.dll
if [ "${BENCH_LOAD:-1}" = 1 ]; then
  dotnet $bench load --api "http://127.0.0.1:$api_port" --router "http://127.0.0.1:$router_port" --key "$key" --router-token $router_token --seconds "$seconds" > "$out/latency.md"
else
  echo "(skipped: BENCH_LOAD=0)" > "$out/latency.md"
fi

# The peers, in the same run: Portkey OSS in front of a trivial OpenAI-shaped upstream, and a bare
# YARP in front of the same RouterSim the Portal uses. Each gateway's added latency is over its own upstream.
{ read -r up_port; read -r pk_port; read -r yarp_port; } < <(free_ports 3)
node bench/peers/upstream.js "$up_port" > "$out/upstream.log" 2>&1 & pids+=($!)
PORT=$pk_port node "$tools/peers/node_modules/@portkey-ai/gateway/build/start-server.js" --port="$pk_port" > "$out/portkey.log" 2>&1 & pids+=($!)
FLOOR_UPSTREAM=http://127.0.0.1:$router_port ASPNETCORE_URLS=http://127.0.0.1:$yarp_port \
  dotnet bench/YarpFloor/bin/Release/net10.0/YarpFloor.dll > "$out/yarp.log" 2>&1 & pids+=($!)
for port in $up_port $pk_port $yarp_port; do
  for _ in $(seq 1 60); do curl -s -o /dev/null "http://127.0.0.1:$port/" && break; sleep 0.5; done
done

chat='{"model":"gpt-oss-20b","messages":[{"role":"user","content":"Say hello to the pool"}],"max_tokens":16}'
direct='{"prompt":"Say hello to the pool","max_tokens":16}'
portkey_headers="x-portkey-provider: openai|x-portkey-custom-host: http://127.0.0.1:$up_port/v1"
# name url token body headers
targets=(
  "direct|http://127.0.0.1:$router_port/api/v1/completions/2001|$router_token|$direct|"
  "api|http://127.0.0.1:$api_port/v1/chat/completions|$key|$chat|"
  "yarp|http://127.0.0.1:$yarp_port/api/v1/completions/2001|$router_token|$direct|"
  "upstream|http://127.0.0.1:$up_port/v1/chat/completions|x|$chat|"
  "portkey|http://127.0.0.1:$pk_port/v1/chat/completions|x|$chat|$portkey_headers"
)
hz=$(getconf CLK_TCK)
cpu_ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }
run_wrk() { # seconds connections target-line output
  local IFS='|'; read -r name url token body headers <<< "$3"
  BODY=$body TOKEN=$token HEADERS=$headers wrk -t1 -c"$2" -d"$1s" --latency -s bench/post.lua "$url" > "$4" 2>&1 || true
}
api_requests=0
for t in "${targets[@]}"; do run_wrk "$warmup" 16 "$t" /dev/null; done # JIT tiering (PGO) and connection pools, every target
for _ in $(seq 1 100); do
  [ "$(redis-cli -p "$redis_port" -a "$pw" --no-auth-warning xlen usage:events)" = 0 ] && break; sleep 0.2
done
usage_before=$(PGPASSWORD=$pw psql -h 127.0.0.1 -p "$pg_port" -U postgres -d portal -tAc 'select count(*) from usage_events')
i=0
for c in $connections; do
  order=("${targets[@]}")
  if [ $((i % 2)) = 1 ]; then order=(); for ((j=${#targets[@]}-1; j>=0; j--)); do order+=("${targets[$j]}"); done; fi
  for t in "${order[@]}"; do
    name=${t%%|*}
    if [ "$name" = api ]; then
      # The measured cell runs with nothing attached to the Api (like every other target's); allocations are
      # read over a second, shorter cell at the same concurrency with dotnet-counters attached.
      before=$(cpu_ticks "$api_pid")
      run_wrk "$seconds" "$c" "$t" "$out/peer-api-$c.txt"
      after=$(cpu_ticks "$api_pid"); api_last_end=$(date +%s.%N)
      n=$(awk '/requests in/ {print $1}' "$out/peer-api-$c.txt"); n=${n:-0}; api_requests=$((api_requests + n))
      alloc_csv="$out/alloc-$c.csv"; rm -f "$alloc_csv"; alloc_n=0
      if [ -n "$counters" ]; then
        alloc_seconds=$((seconds < 5 ? seconds : 5))
        "$counters" collect -p "$api_pid" --counters 'System.Runtime[dotnet.gc.heap.total_allocated],Cortensor[cortensor.admission.leased,cortensor.request.overhead]' --format csv \
          -o "$alloc_csv" --refresh-interval 1 --duration "$(d=$((alloc_seconds + 4)); printf '00:%02d:%02d:%02d' $((d / 3600)) $((d % 3600 / 60)) $((d % 60)))" > "$out/counters-$c.log" 2>&1 &
        counters_pid=$!; sleep 2 # attached before the cell starts
        run_wrk "$alloc_seconds" "$c" "$t" "$out/alloc-api-$c.txt"
        wait "$counters_pid" 2>/dev/null || true
        alloc_n=$(awk '/requests in/ {print $1}' "$out/alloc-api-$c.txt"); alloc_n=${alloc_n:-0}; api_requests=$((api_requests + alloc_n))
        api_last_end=$(date +%s.%N)
      fi
      python3 - "$alloc_csv" "$n" "$before" "$after" "$hz" "$alloc_n" > "$out/peer-api-$c.json" <<'PY'
import csv, json, os, sys
path, n, before, after, hz, alloc_n = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4]), int(sys.argv[5]), int(sys.argv[6])
r = {'requests': n}
if n: r['cpu_us'] = (after - before) / hz * 1e6 / n
if alloc_n and os.path.exists(path):
    rows = list(csv.DictReader(open(path)))
    total = sum(float(row['Mean/Increment']) for row in rows if 'total_allocated' in row['Counter Name'])
    if total: r['alloc_bytes'] = total / alloc_n
    r['leased'] = sum(float(row['Mean/Increment']) for row in rows if 'admission.leased' in row['Counter Name']) / alloc_n
    # The Portal's own time (the request less its wait on the router): the median of the cell's per-second percentiles.
    for q in (50, 99):
        seconds = sorted(float(row['Mean/Increment']) for row in rows
                         if 'request.overhead' in row['Counter Name'] and f'Percentile={q}]' in row['Counter Name'])
        if seconds: r[f'own_p{q}_ms'] = seconds[len(seconds) // 2] * 1000
print(json.dumps(r))
PY
    else
      run_wrk "$seconds" "$c" "$t" "$out/peer-$name-$c.txt"
    fi
  done
  i=$((i + 1))
done
python3 bench/peers/table.py "$out" "$connections" > "$out/peers.md"
# The usage pipeline under that load: how long until every request of the Api's cells is in Postgres.
expected=$((usage_before + api_requests))
for _ in $(seq 1 600); do
  n=$(PGPASSWORD=$pw psql -h 127.0.0.1 -p "$pg_port" -U postgres -d portal -tAc 'select count(*) from usage_events')
  [ "$n" -ge "$expected" ] && break; sleep 0.1
done
drained=$(date +%s.%N)
drain_lag=$(python3 -c "print(f'{max(0.0, $drained - ${api_last_end:-$drained}):.2f}')")

if [ "${BENCH_LEDGER:-1}" = 1 ]; then
  dotnet $bench ledger --postgres "Host=127.0.0.1;Port=$pg_port;Username=postgres;Password=$pw;Database=ledgerbench" --events "${BENCH_EVENTS:-200000}" > "$out/ledger.md"
else
  echo "(skipped: BENCH_LEDGER=0)" > "$out/ledger.md"
fi

micro= prompt_micro=
if [ "${BENCH_MICRO:-1}" = 1 ]; then
  (cd "$out" && dotnet "$root/$bench" micro --filter '*' > micro.log 2>&1) || true
  micro=$(find "$out" -name '*SnapshotLookupBenchmark-report-github.md' | head -1)
  prompt_micro=$(find "$out" -name '*PromptCountBenchmark-report-github.md' | head -1)
fi

{
  echo "# Benchmarks"
  echo
  echo "Produced by \`bench/run.sh\` on $(date -u '+%Y-%m-%d %H:%M UTC'): $(nproc) cores, $(free -g | awk '/Mem:/ {print $2}') GiB,"
  echo "$(lscpu | awk -F: '/Model name/ {gsub(/^ +/,"",$2); print $2}'), .NET $(dotnet --version), Release builds, $(uptime | sed 's/.*load average/load average/') at the end."
  echo "Postgres, Redis, one RouterSim (zero delay, 16 tokens per answer) and the Api run as plain processes on this one"
  echo "machine, together with the load generators and the peers. Enforcement (key snapshot, shared rate limits, credit"
  echo "reservation and settlement) and metering (Redis Stream, batched ledger writer) are **on** for every request through the Api."
  echo
  echo "## Side by side: the Portal, a bare YARP and Portkey OSS, in one run"
  echo
  echo "\`wrk -t1 -c<connections> -d${seconds}s --latency\` (POST, \`bench/post.lua\`), one cell per target and concurrency,"
  echo "the order of targets reversed at every other concurrency. **Portal**: an OpenAI chat completion through the Api to the"
  echo "RouterSim; added latency is over the same request sent **direct** to the RouterSim (its own API). **YARP**"
  echo "(\`Yarp.ReverseProxy\` 2.3.0, \`bench/YarpFloor\`, nothing but proxying) in front of the same RouterSim: the floor of a .NET"
  echo "hop. **Portkey** (\`@portkey-ai/gateway\` 1.15.2 on Node $(node --version), \`@hono/node-server\` 1.14.1) in front of a trivial"
  echo "OpenAI-shaped upstream (\`bench/peers/upstream.js\`); its added latency is over that upstream called directly."
  echo "Api CPU µs/req: the Api process's user+system time (\`/proc/<pid>/stat\`) over the cell ÷ requests; Api alloc/req and"
  echo "admitted from leases: the runtime's \`dotnet.gc.heap.total_allocated\` and the leases' counter (dotnet-counters) over a"
  echo "second, shorter cell at the same concurrency ÷ its requests, so that nothing is attached to the Api in the measured cell."
  echo "Api own time: the Api's \`cortensor.request.overhead\` histogram over that second cell (the median of its per-second p50s and"
  echo "p99s): from the request entering the Portal's pipeline to its answer being ready, less the time spent waiting on the router."
  echo "It counts the Portal's own steps only; the added latency also holds the second hop's kernel and thread wake-ups."
  echo
  cat "$out/peers.md"
  echo
  echo "## Added latency (fixed rate, open loop) and streaming time to first token"
  echo
  echo "\`dotnet bench/Cortensor.Bench load\` — the same request direct to the router (its own API) and as an OpenAI chat"
  echo "completion through the Api, latency measured from each request's scheduled send time; $seconds s per cell."
  echo
  cat "$out/latency.md"
  echo
  echo "## Usage pipeline under that load"
  echo
  echo "Every one of the $api_requests requests of the Api's cells became a usage event (Redis Stream → batched writer → Postgres)."
  echo "The last of them was committed **$drain_lag s** after the Api's last cell ended (other targets' cells may have run in between)."
  echo
  echo "## Ledger writer throughput"
  echo
  echo "\`dotnet bench/Cortensor.Bench ledger\` — the writer's own statement, fed directly, on the same Postgres, by 4"
  echo "concurrent writers as two Api replicas run them (\`Metering:Writers=2\` each)."
  echo
  cat "$out/ledger.md"
  echo
  echo "## Key snapshot lookup on a cache hit (BenchmarkDotNet)"
  echo
  if [ -n "$micro" ]; then sed -n '/^|/,$p' "$micro"; else echo "(not run or no report: BENCH_MICRO=0, or see $out/micro.log)"; fi
  echo
  echo "## Counting a conversation's prompt before admission (BenchmarkDotNet)"
  echo
  echo 'A gpt-oss conversation of about `Tokens` tokens, in turns of 150-500, counted whole (FirstSight); through the'
  echo 'replica'"'"'s cache when none of its message bodies is there yet (FirstSightWithTheCache: counted, then kept); and on'
  echo 'its next turn (NextTurn: the bodies found, only the pieces between them counted).'
  echo
  if [ -n "$prompt_micro" ]; then sed -n '/^|/,$p' "$prompt_micro"; else echo "(not run or no report: BENCH_MICRO=0, or see $out/micro.log)"; fi
  echo
  echo "## Against the targets"
  echo
  python3 - "$out/latency.md" "$out/peers.json" "$out/ledger.md" <<'PY'
import json, re, sys
def verdict(ok): return 'met' if ok else '**missed**'
print('| target | measured | |')
print('|---|---|---|')
peers = {int(r['c']): r for r in json.load(open(sys.argv[2]))}
for c, r in sorted(peers.items()):
    a50, a99 = r['portal_added']
    y50 = r['yarp_added'][0]
    if c in (1, 16):
        print(f'| added p50 <= 0.5 ms at {c} connection(s) (wrk) | {a50:+.2f} ms | {verdict(a50 <= 0.5)} |')
        print(f'| added p99 <= 2 ms at {c} connection(s) (wrk) | {a99:+.2f} ms | {verdict(a99 <= 2)} |')
    ratio = r['portal']['rps'] / r['portkey']['rps'] if r['portkey']['rps'] else float('nan')
    need = 10 if c >= 16 else 1
    print(f'| throughput >= {need}x Portkey at {c} connection(s) | {ratio:.2f}x | {verdict(ratio >= need)} |')
    print(f"| added p50 within 2x of YARP's at {c} connection(s) | {a50:+.2f} ms vs {y50:+.2f} ms | {verdict(a50 <= 2 * max(y50, 0.0) + 0.005)} |")
    if c == 64:
        share = r['portal']['rps'] / r['direct']['rps']
        print(f'| throughput via Api >= 25 % of direct at 64 connections | {100*share:.1f} % | {verdict(share >= 0.25)} |')
rows = [l for l in open(sys.argv[1]) if l.startswith('| streaming')]
if rows:
    ttft = float(re.findall(r'[+-][0-9.]+ ms', rows[0])[0].split()[0])
    print(f'| streaming time-to-first-token overhead <= 0.5 ms (p50, open loop) | {ttft:+.3f} ms | {verdict(ttft <= 0.5)} |')
m = re.search(r'\*\*([0-9,]+) events/s', open(sys.argv[3]).read())
if m:
    ledger = float(m.group(1).replace(',', ''))
    print(f'| ledger writes >= 20,000 events/s | {ledger:,.0f} events/s | {verdict(ledger >= 20000)} |')
PY
  echo
  cat bench/limits.md
} > "$report"
echo "wrote $report (raw output in $out)"
