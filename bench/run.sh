#!/usr/bin/env bash
# Benchmarks the gateway on this machine and writes docs/benchmarks.md.
# Runs Postgres, Redis, one RouterSim (zero delay) and the Api as plain processes (Release, no
# orchestrator proxies in between), so "direct" and "via Api" differ only by the gateway.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$(pwd)
CORTENSOR_SETUP_BROWSER=0 ./scripts/setup.sh
export DOTNET_CLI_TELEMETRY_OPTOUT=1 DOTNET_NOLOGO=1
seconds=${BENCH_SECONDS:-10}
out=$(mktemp -d /tmp/cortensor-bench.XXXX)
data=/tmp/cortensor-bench-data
rm -rf "$data"; mkdir -p "$data"
pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; wait 2>/dev/null || true; }
trap cleanup EXIT

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1]); s.close()'; }
# Throwaway secrets per run: the Api runs in Production here and refuses published or weak ones.
pw=$(openssl rand -hex 16); router_token=$(openssl rand -hex 16); admin_password="Bench-$(openssl rand -hex 8)-A1"
pg_port=$(free_port); redis_port=$(free_port); router_port=$(free_port); api_port=$(free_port)

dotnet build Cortensor.sln -c Release -nologo -v quiet >/dev/null

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
env ASPNETCORE_URLS=http://127.0.0.1:$api_port Routers__Token=$router_token Logging__LogLevel__Default=Warning \
  services__router-oss20b-1__http__0=http://127.0.0.1:$router_port \
  services__router-oss20b-2__http__0=http://127.0.0.1:$router_port \
  services__router-oss20b-3__http__0=http://127.0.0.1:$router_port \
  dotnet src/Cortensor.Api/bin/Release/net10.0/Cortensor.Api.dll > "$out/api.log" 2>&1 & pids+=($!)

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
dotnet $bench load --api "http://127.0.0.1:$api_port" --router "http://127.0.0.1:$router_port" --key "$key" --router-token $router_token --seconds "$seconds" > "$out/latency.md"

chat='{"model":"gpt-oss-20b","messages":[{"role":"user","content":"Say hello to the pool"}],"max_tokens":16}'
direct='{"prompt":"Say hello to the pool","max_tokens":16}'
saturate() { # name url token body
  BODY=$4 TOKEN=$3 wrk -t2 -c64 -d"${seconds}s" --latency -s bench/post.lua "$2" > "$out/wrk-$1.txt" 2>&1
  awk '/Requests\/sec/ {print $2}' "$out/wrk-$1.txt"
}
BODY=$direct TOKEN=$router_token wrk -t2 -c64 -d3s -s bench/post.lua "http://127.0.0.1:$router_port/api/v1/completions/2001" >/dev/null 2>&1
direct_rps=$(saturate direct "http://127.0.0.1:$router_port/api/v1/completions/2001" $router_token "$direct")
# Warm the Api's JIT (tiered compilation with PGO) before measuring it, as the router was warmed above.
BODY=$chat TOKEN=$key wrk -t2 -c64 -d10s -s bench/post.lua "http://127.0.0.1:$api_port/v1/chat/completions" >/dev/null 2>&1
for _ in $(seq 1 100); do
  [ "$(redis-cli -p "$redis_port" -a "$pw" --no-auth-warning xlen usage:events)" = 0 ] && break; sleep 0.2
done
usage_before=$(PGPASSWORD=$pw psql -h 127.0.0.1 -p "$pg_port" -U postgres -d portal -tAc 'select count(*) from usage_events')
load_start=$(date +%s.%N)
api_rps=$(saturate api "http://127.0.0.1:$api_port/v1/chat/completions" "$key" "$chat")
load_end=$(date +%s.%N)
api_requests=$(awk '/requests in/ {print $1}' "$out/wrk-api.txt")
api_non200=$(awk '/non-200 responses/ {print $3}' "$out/wrk-api.txt")
# The usage pipeline under that peak: how long until every request of the run is in Postgres.
expected=$((usage_before + api_requests))
for _ in $(seq 1 600); do
  n=$(PGPASSWORD=$pw psql -h 127.0.0.1 -p "$pg_port" -U postgres -d portal -tAc 'select count(*) from usage_events')
  [ "$n" -ge "$expected" ] && break; sleep 0.1
done
drained=$(date +%s.%N)
drain_lag=$(python3 -c "print(f'{$drained - $load_end:.2f}')")
ratio=$(python3 -c "print(f'{100*$api_rps/$direct_rps:.1f}')")

dotnet $bench ledger --postgres "Host=127.0.0.1;Port=$pg_port;Username=postgres;Password=$pw;Database=ledgerbench" --events "${BENCH_EVENTS:-200000}" > "$out/ledger.md"

(cd "$out" && dotnet "$root/$bench" micro --filter '*' > micro.log 2>&1) || true
micro=$(find "$out" -name '*SnapshotLookupBenchmark-report-github.md' | head -1)

{
  echo "# Benchmarks"
  echo
  echo "Produced by \`bench/run.sh\` on $(date -u '+%Y-%m-%d %H:%M UTC'): $(nproc) cores, $(free -g | awk '/Mem:/ {print $2}') GiB,"
  echo "$(lscpu | awk -F: '/Model name/ {gsub(/^ +/,"",$2); print $2}'), .NET $(dotnet --version), Release builds."
  echo "Postgres, Redis, one RouterSim (zero delay, 16 tokens per answer) and the Api run as plain processes on this one"
  echo "machine, together with the load generators. Enforcement (key snapshot, shared Redis rate limits, credit"
  echo "reservation and settlement) and metering (Redis Stream, batched ledger writer) are **on** for every request through the Api."
  echo
  echo "## Added latency (fixed rate, open loop)"
  echo
  echo "\`dotnet bench/Cortensor.Bench load\` — the same request direct to the router (its own API) and as an OpenAI chat"
  echo "completion through the Api, latency measured from each request's scheduled send time; $seconds s per cell."
  echo
  cat "$out/latency.md"
  echo
  echo "## Throughput at saturation"
  echo
  echo "\`wrk -t2 -c64 -d${seconds}s\` (POST, \`bench/post.lua\`), the load generator sharing the 2 cores with everything else."
  echo
  echo "| target | requests/s | p50 | p99 | non-200 |"
  echo "|---|---|---|---|---|"
  echo "| direct to RouterSim | $direct_rps | $(awk '/ 50%/ {print $2}' "$out/wrk-direct.txt") | $(awk '/ 99%/ {print $2}' "$out/wrk-direct.txt") | $(awk '/non-200 responses/ {print $3}' "$out/wrk-direct.txt") |"
  echo "| through the Api | $api_rps | $(awk '/ 50%/ {print $2}' "$out/wrk-api.txt") | $(awk '/ 99%/ {print $2}' "$out/wrk-api.txt") | $api_non200 |"
  echo
  echo "Through the Api: **$ratio %** of direct throughput."
  echo
  echo "## Usage pipeline under that load"
  echo
  echo "Every one of the $api_requests requests of the Api run became a usage event (Redis Stream → batched writer → Postgres)."
  echo "The last of them was committed **$drain_lag s** after the load stopped."
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
  if [ -n "$micro" ]; then sed -n '/^|/,$p' "$micro"; else echo "(BenchmarkDotNet did not produce a report; see $out/micro.log)"; fi
  echo
  echo "## Against the targets"
  echo
  python3 - "$out/latency.md" "$api_rps" "$direct_rps" "$out/ledger.md" <<'PY'
import re, sys
rows = [l for l in open(sys.argv[1]) if l.startswith('| latency') or l.startswith('| streaming')]
def added(row, col):
    return float(re.findall(r'[+-][0-9.]+ ms', row)[col].split()[0])
api, direct = float(sys.argv[2]), float(sys.argv[3])
ledger = float(re.search(r'\*\*([0-9,]+) events/s', open(sys.argv[4]).read()).group(1).replace(',', ''))
def verdict(ok): return 'met' if ok else '**missed**'
print('| target | measured | |')
print('|---|---|---|')
for row, name in zip(rows[:2], ['1 connection', '16 connections']):
    print(f'| added p50 <= 0.5 ms at {name} | {added(row, 0):+.3f} ms | {verdict(added(row, 0) <= 0.5)} |')
    print(f'| added p99 <= 2 ms at {name} | {added(row, 1):+.3f} ms | {verdict(added(row, 1) <= 2)} |')
print(f'| throughput via Api >= 25 % of direct | {100*api/direct:.1f} % | {verdict(api >= 0.25*direct)} |')
print(f'| >= 10x Portkey on this kind of machine (550 req/s) | {api/550:.1f}x | {verdict(api >= 5500)} |')
print(f'| ledger writes >= 20,000 events/s | {ledger:,.0f} events/s | {verdict(ledger >= 20000)} |')
PY
  echo
  cat bench/limits.md
} > docs/benchmarks.md
echo "wrote docs/benchmarks.md (raw output in $out)"
