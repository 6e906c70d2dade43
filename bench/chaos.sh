#!/usr/bin/env bash
# Chaos run: mixed traffic through two Api replicas for CHAOS_SECONDS (default 180) while an Api replica,
# Redis and Postgres are killed and restarted and router streams are cut; then waits for the usage
# pipeline to drain and prints the money invariants (per organisation and in total), PASS or FAIL.
# Exits non-zero on a FAIL. Plain processes (as bench/run.sh), no AppHost. Run it alone:
#   flock /tmp/cortensor-e2e.lock bash bench/chaos.sh
# Results and every log are kept in $CHAOS_OUT (default a fresh /tmp/cortensor-chaos.XXXX).
set -euo pipefail
cd "$(dirname "$0")/.."
CORTENSOR_SETUP_BROWSER=0 ./scripts/setup.sh >/dev/null
export DOTNET_CLI_TELEMETRY_OPTOUT=1 DOTNET_NOLOGO=1
seconds=${CHAOS_SECONDS:-180}
reconcile=10
out=${CHAOS_OUT:-$(mktemp -d /tmp/cortensor-chaos.XXXX)}
mkdir -p "$out"
# Postgres runs as the postgres user when started as root: it must reach its data under this folder.
chmod 755 "$out"
data=$out/data # Postgres, Redis (AOF) and both spools persist here across the restarts below
rm -rf "$data"; mkdir -p "$data"

declare -A pid=()
cleanup() {
  for name in "${!pid[@]}"; do kill "${pid[$name]}" 2>/dev/null || true; done
  wait 2>/dev/null || true
}
trap cleanup EXIT
say() { printf '[%s] %s\n' "$(date -u +%H:%M:%S)" "$*" | tee -a "$out/timeline.log"; }

. bench/free-ports.sh
# Throwaway secrets per run: the Api runs in Production here and refuses published or weak ones.
pw=$(openssl rand -hex 16); router_token=$(openssl rand -hex 16); admin_password="Chaos-$(openssl rand -hex 8)-A1"
{ read -r pg_port; read -r redis_port; read -r router_a; read -r router_b; read -r api_a; read -r api_b; } < <(free_ports 6)

say "building (Release)"
dotnet build src/Cortensor.Api -c Release -nologo -v quiet >/dev/null
dotnet build src/Cortensor.RouterSim -c Release -nologo -v quiet >/dev/null
dotnet build bench/Cortensor.Bench -c Release -nologo -v quiet >/dev/null

start_postgres() {
  PGPORT=$pg_port PGDATA=$data/postgres POSTGRES_PASSWORD=$pw bash scripts/local-postgres.sh >> "$out/postgres.log" 2>&1 & pid[postgres]=$!
  for _ in $(seq 1 120); do
    PGPASSWORD=$pw psql -h 127.0.0.1 -p "$pg_port" -U postgres -c 'select 1' >/dev/null 2>&1 && return; sleep 0.5
  done
  echo "postgres did not start" >&2; exit 1
}
start_redis() {
  REDIS_PORT=$redis_port REDIS_DATA=$data/redis REDIS_PASSWORD=$pw bash scripts/local-redis.sh >> "$out/redis.log" 2>&1 & pid[redis]=$!
  for _ in $(seq 1 60); do
    redis-cli -p "$redis_port" -a "$pw" --no-auth-warning ping >/dev/null 2>&1 && return; sleep 0.2
  done
  echo "redis did not start" >&2; exit 1
}
start_router() { # name port
  ASPNETCORE_URLS=http://127.0.0.1:$2 Router__ApiKey=$router_token Router__Model=gpt-oss-20b Router__Name=$1 \
    Router__Behaviour__AssignmentDelayMs=0 Router__Behaviour__PrecommitDelayMs=0 Router__Behaviour__TokensPerSecond=40 Logging__LogLevel__Default=Warning \
    dotnet src/Cortensor.RouterSim/bin/Release/net10.0/Cortensor.RouterSim.dll \
    --Router:Sessions:0=2001 --Router:Sessions:1=2002 --Router:Sessions:2=2003 --Router:Sessions:3=2004 --Router:Sessions:4=2005 --Router:Sessions:5=2006 \
    >> "$out/$1.log" 2>&1 & pid[$1]=$!
}
export ConnectionStrings__portaldb="Host=127.0.0.1;Port=$pg_port;Username=postgres;Password=$pw;Database=portal;Maximum Pool Size=50"
export ConnectionStrings__redis="127.0.0.1:$redis_port,password=$pw"
export Auth__SigningKey=$(openssl rand -base64 32) Routers__Token=$router_token # the migrate step validates them too
# No mail is sent in the chaos run; the Api only needs to know where it would go.
export Mail__Host=127.0.0.1 Mail__Port=2525 Mail__LinkBaseUrl=http://127.0.0.1
start_api() { # name port
  env ASPNETCORE_URLS=http://127.0.0.1:$2 Routers__Token=$router_token Logging__LogLevel__Default=Warning \
    Metering__SpoolDirectory="$data/spool-$1" Metering__ReconcileSeconds=$reconcile Limits__ReplicaSilenceSeconds=10 \
    services__router-oss20b-1__http__0=http://127.0.0.1:$router_a \
    services__router-oss20b-2__http__0=http://127.0.0.1:$router_b \
    services__router-oss20b-3__http__0=http://127.0.0.1:$router_a \
    dotnet src/Cortensor.Api/bin/Release/net10.0/Cortensor.Api.dll >> "$out/$1.log" 2>&1 & pid[$1]=$!
}
wait_api() { # port
  for _ in $(seq 1 120); do curl -fs "http://127.0.0.1:$1/health" >/dev/null 2>&1 && return; sleep 0.5; done
  echo "api on $1 did not become healthy" >&2; exit 1
}
kill9() { kill -9 "${pid[$1]}" 2>/dev/null || true; wait "${pid[$1]}" 2>/dev/null || true; unset "pid[$1]"; }
cut_streams() { # router-port cut-after-tokens|null
  curl -fs -X PUT -H "Authorization: Bearer $router_token" -H "Content-Type: application/json" \
    -d "{\"tokens_per_second\":40,\"cut_stream_after_tokens\":$2}" "http://127.0.0.1:$1/control/behaviour" >/dev/null
}

say "starting Postgres, Redis, two RouterSims, two Api replicas"
start_postgres; start_redis
Admin__Email=chaos-admin@cortensor.local Admin__Password=$admin_password \
  dotnet src/Cortensor.Api/bin/Release/net10.0/Cortensor.Api.dll migrate > "$out/migrate.log" 2>&1
start_router router-a "$router_a"; start_router router-b "$router_b"
start_api api-a "$api_a"; start_api api-b "$api_b"
wait_api "$api_a"; wait_api "$api_b"

api=http://127.0.0.1:$api_a
token=$(curl -fs -H "Content-Type: application/json" -d "{\"email\":\"chaos-admin@cortensor.local\",\"password\":\"$admin_password\"}" \
  "$api/portal/auth/login" | python3 -c 'import json,sys; print(json.load(sys.stdin)["access_token"])')
admin=(-H "Authorization: Bearer $token" -H "Content-Type: application/json")
json() { python3 -c "import json,sys; print(json.load(sys.stdin)[\"$1\"])"; }
: > "$out/orgs.txt"
add_org() { # name plan mode credits
  local org key
  org=$(curl -fs "${admin[@]}" -d "{\"name\":\"chaos-$1\",\"plan\":\"$2\"}" "$api/admin/organizations" | json id)
  if [ "$4" != 0 ]; then curl -fs "${admin[@]}" -d "{\"amount\":$4,\"reason\":\"chaos run\"}" "$api/admin/organizations/$org/credits" >/dev/null; fi
  key=$(curl -fs "${admin[@]}" -d '{"name":"chaos"}' "$api/admin/organizations/$org/api-keys" | json key)
  echo "$1 $3 $org $key" >> "$out/orgs.txt"
}
# Two credit organisations (one rich, one that runs out mid-run) and two on the free plan's monthly quota.
add_org pro-rich pro credits 1000
add_org pro-poor pro credits 0.004
add_org free-a free quota 0
add_org free-b free quota 0
for _ in $(seq 1 60); do # both replicas see healthy routers
  ok=0
  for p in "$api_a" "$api_b"; do
    curl -fs -H "Authorization: Bearer $token" "http://127.0.0.1:$p/admin/pools" | python3 -c '
import json,sys; pools=json.load(sys.stdin); sys.exit(0 if any(r["healthy"] for p in pools for r in p["routers"]) else 1)' && ok=$((ok+1))
  done
  [ "$ok" = 2 ] && break; sleep 0.5
done

bench=bench/Cortensor.Bench/bin/Release/net10.0/Cortensor.Bench.dll
say "traffic for $seconds s over both replicas"
dotnet $bench chaos drive --api "http://127.0.0.1:$api_a" --api "http://127.0.0.1:$api_b" --orgs "$out/orgs.txt" \
  --seconds "$seconds" --out "$out/records.jsonl" > "$out/driver.log" 2>&1 &
driver=$!
t0=$(date +%s)
at() { local target=$(( t0 + $1 * seconds / 100 )); while [ "$(date +%s)" -lt "$target" ]; do sleep 0.2; done; }

kills=0; outages=0; cuts=0
# The schedule, in percent of the run.
at 8;  say "router-b: streams cut after 5 tokens"; cut_streams "$router_b" 5; cuts=$((cuts+1))
at 15; say "SIGKILL api-a mid-traffic"; kill9 api-a; kills=$((kills+1))
at 22; say "restart api-a (same spool directory)"; start_api api-a "$api_a"; wait_api "$api_a"; say "api-a healthy"
at 28; say "router-b: streams whole again"; cut_streams "$router_b" null
at 33; say "SIGKILL redis"; kill9 redis; kills=$((kills+1)); outages=$((outages+1))
at 40; say "restart redis (AOF, same data directory)"; start_redis; say "redis up"
at 50; say "stop postgres (fast shutdown) for 20 s"; kill -INT "${pid[postgres]}"; wait "${pid[postgres]}" 2>/dev/null || true; unset "pid[postgres]"; outages=$((outages+1))
sleep 20; say "restart postgres"; start_postgres; say "postgres up"
at 68; say "router-a: streams cut after 3 tokens"; cut_streams "$router_a" 3; cuts=$((cuts+1))
at 72; say "SIGKILL api-b mid-traffic"; kill9 api-b; kills=$((kills+1))
at 79; say "restart api-b (same spool directory)"; start_api api-b "$api_b"; wait_api "$api_b"; say "api-b healthy"
at 85; say "router-a: streams whole again"; cut_streams "$router_a" null
wait $driver || { echo "the driver failed: see $out/driver.log" >&2; exit 1; }
say "traffic done: $(tail -1 "$out/driver.log")"
echo "schedule: $kills SIGKILLs (api-a, redis, api-b), $outages outages (redis, postgres 20 s), $cuts stream-cut windows" | tee -a "$out/timeline.log"

say "waiting for the pipeline to drain, then checking the invariants"
set +e
dotnet $bench chaos check --api "http://127.0.0.1:$api_a" --api "http://127.0.0.1:$api_b" --orgs "$out/orgs.txt" \
  --records "$out/records.jsonl" --redis "127.0.0.1:$redis_port,password=$pw" \
  --postgres "Host=127.0.0.1;Port=$pg_port;Username=postgres;Password=$pw;Database=portal" \
  --admin-token "$token" --spool "$data/spool-api-a" --spool "$data/spool-api-b" --reconcile-seconds "$reconcile" \
  | tee "$out/invariants.md"
verdict=${PIPESTATUS[0]}
set -e
echo "logs, records and invariants in $out"
exit "$verdict"
