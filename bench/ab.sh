#!/usr/bin/env bash
# Compares two Api builds or settings side by side, on a VM whose speed drifts from minute to minute.
# Runs them as two replicas at once, against the same Postgres, Redis and RouterSim, and alternates short wrk cells
# between them (A B, B A, ...), so each pair of cells sees the same VM. Sequential runs with a restart in between
# differed by up to 15 % for identical builds here; two identical replicas measured this way came out 2-4 % apart
# over ten pairs (bench/limits.md, eleventh round).
#
# Needs the bench stack: `BENCH_STACK_ONLY=1 bench/run.sh` in another shell (it writes /tmp/cortensor-bench.env).
# The replicas start with that stack's Api environment (its connection strings, secrets and routers), read from the
# running process, plus each side's own settings. The stack's own Api stays up, serving no requests.
#
# What "CPU per request" covers: the replica's request path, and a share of the usage ledger's work. Every replica's ledger
# writers read one shared stream, so A's usage records are written partly by B and by the stack's Api, and the other way
# round. A setting that changes only the ledger writer's cost is therefore diluted here; measure it with bench/run.sh.
#
# Knobs (environment):
#   AB_A_DLL, AB_B_DLL      the builds (default: src/Cortensor.Api/bin/Release/net10.0/Cortensor.Api.dll for both);
#                           for another revision: git worktree add /tmp/ab-b <rev> && dotnet build /tmp/ab-b/src/Cortensor.Api -c Release
#   AB_A_ENV, AB_B_ENV      extra NAME=value settings for one side (e.g. AB_B_ENV="OTEL_SDK_DISABLED=true")
#   AB_ROUNDS=10            pairs of cells;  AB_SECONDS=5 seconds per cell;  AB_CONNECTIONS=16
#   AB_WARMUP=30            seconds of load per side before the first pair (tiered compilation settles in 20-35 s)
#   AB_BODY_FILE            a chat completion request to send instead of the five-word prompt, e.g. a long conversation:
#                           python3 bench/long-conversation.py > /tmp/conversation.json
#                           or a coding agent's turn with ten tools: python3 bench/agent-turn.py > /tmp/agent.json
# Prints every cell, then per side the medians of req/s, p50, p99, the Api's CPU µs per request (user+system time of
# that replica over the cell) and its allocations per request (one more 5 s cell each, dotnet-counters attached).
set -euo pipefail
cd "$(dirname "$0")/.."
root=$(pwd)
[ -f /tmp/cortensor-bench.env ] || { echo "no bench stack: run BENCH_STACK_ONLY=1 bench/run.sh first" >&2; exit 1; }
. /tmp/cortensor-bench.env
stack_api=$(ss -ltnpH "sport = :${API##*:}" | grep -o 'pid=[0-9]*' | head -1 | cut -d= -f2 || true)
[ -n "$stack_api" ] || { echo "the bench stack's Api is not listening on $API" >&2; exit 1; }

release=$root/src/Cortensor.Api/bin/Release/net10.0/Cortensor.Api.dll
a_dll=${AB_A_DLL:-$release}; b_dll=${AB_B_DLL:-$release}
rounds=${AB_ROUNDS:-10}; seconds=${AB_SECONDS:-5}; connections=${AB_CONNECTIONS:-16}; warmup=${AB_WARMUP:-30}
for dll in "$a_dll" "$b_dll"; do [ -f "$dll" ] || { echo "no build at $dll" >&2; exit 1; }; done
# The body goes to wrk as a file (post.lua's BODY_FILE): an environment string may hold at most 128 KiB.
body_file=${AB_BODY_FILE:-}
if [ -n "$body_file" ]; then
  [ -r "$body_file" ] || { echo "AB_BODY_FILE: cannot read $body_file" >&2; exit 1; }
  body_file=$(realpath "$body_file")
fi
counters=$(command -v dotnet-counters || true)
[ -z "$counters" ] && [ -x "$HOME/.dotnet/tools/dotnet-counters" ] && counters=$HOME/.dotnet/tools/dotnet-counters
[ -z "$counters" ] && [ -x "$root/.tools/dotnet/dotnet-counters" ] && counters=$root/.tools/dotnet/dotnet-counters
hz=$(getconf CLK_TCK)

# NUL-separated, as the kernel keeps it: a value may hold a newline.
mapfile -d '' -t stack_env < <(grep -zv '^ASPNETCORE_URLS=' "/proc/$stack_api/environ")
. bench/free-ports.sh
pids=()
log=$(mktemp /tmp/cortensor-ab.XXXX)
cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; wait 2>/dev/null || true
  rm -f "$log" /tmp/cortensor-ab-alloc-A.csv /tmp/cortensor-ab-alloc-B.csv
  [ -n "${AB_BODY_FILE:-}" ] || rm -f "$body_file"
}
trap cleanup EXIT
if [ -z "$body_file" ]; then
  body_file=$(mktemp /tmp/cortensor-ab-body.XXXXXX)
  echo '{"model":"gpt-oss-20b","messages":[{"role":"user","content":"Say hello to the pool"}],"max_tokens":16}' > "$body_file"
fi

declare -A port pid
start() { # side dll settings
  port[$1]=$(free_ports 1) # the other side is already listening on its own
  # shellcheck disable=SC2086 # the side's settings are a list of NAME=value words
  env -i "${stack_env[@]}" ASPNETCORE_URLS="http://127.0.0.1:${port[$1]}" ${3:-} dotnet "$2" > "/tmp/cortensor-ab-$1.log" 2>&1 &
  pid[$1]=$!; pids+=($!) # env execs dotnet: this is the replica's own process
  for _ in $(seq 1 120); do curl -fs "http://127.0.0.1:${port[$1]}/health" >/dev/null 2>&1 && return; sleep 0.5; done
  echo "replica $1 did not become healthy (/tmp/cortensor-ab-$1.log)" >&2; exit 1
}
start A "$a_dll" "${AB_A_ENV:-}"
start B "$b_dll" "${AB_B_ENV:-}"

cell() { # side seconds
  local u1 s1 u2 s2 out reqs
  read -r u1 s1 < <(awk '{print $14, $15}' "/proc/${pid[$1]}/stat")
  out=$(BODY_FILE=$body_file TOKEN=$KEY wrk -t1 -c"$connections" -d"$2"s --latency -s bench/post.lua "http://127.0.0.1:${port[$1]}/v1/chat/completions")
  read -r u2 s2 < <(awk '{print $14, $15}' "/proc/${pid[$1]}/stat")
  reqs=$(awk '/requests in/{print $1}' <<<"$out")
  # /proc/<pid>/stat counts clock ticks
  printf '%s rps=%s p50=%s p99=%s cpu_us_per_req=%s non2xx=%s\n' "$1" "$(awk '/Requests\/sec/{print $2}' <<<"$out")" \
    "$(awk '$1=="50%"{print $2}' <<<"$out")" "$(awk '$1=="99%"{print $2}' <<<"$out")" \
    $(( ((u2 + s2) - (u1 + s1)) * 1000000 / hz / (reqs > 0 ? reqs : 1) )) "$(awk '/Non-2xx/{print $NF}' <<<"$out")"
}
alloc() { # side -> bytes per request over a 5 s cell, or n/a
  local csv=/tmp/cortensor-ab-alloc-$1.csv out reqs cp
  rm -f "$csv"
  [ -n "$counters" ] || { echo n/a; return; }
  "$counters" collect -p "${pid[$1]}" --counters 'System.Runtime[dotnet.gc.heap.total_allocated]' --format csv -o "$csv" \
    --refresh-interval 1 --duration 00:00:00:09 >/dev/null 2>&1 & cp=$!
  sleep 2
  out=$(BODY_FILE=$body_file TOKEN=$KEY wrk -t1 -c"$connections" -d5s -s bench/post.lua "http://127.0.0.1:${port[$1]}/v1/chat/completions")
  wait "$cp" || true
  reqs=$(awk '/requests in/{print $1}' <<<"$out")
  python3 - "$csv" "$reqs" <<'PY' || echo n/a
import csv, sys
rows = list(csv.DictReader(open(sys.argv[1])))
print(round(sum(float(r['Mean/Increment']) for r in rows if 'total_allocated' in r['Counter Name']) / int(sys.argv[2])))
PY
}

for _ in $(seq 1 $(( (warmup + 5) / 6 ))); do cell A 6 >/dev/null; cell B 6 >/dev/null; done
for r in $(seq 1 "$rounds"); do
  if (( r % 2 )); then cell A "$seconds"; cell B "$seconds"; else cell B "$seconds"; cell A "$seconds"; fi
done | tee "$log"
alloc_a=$(alloc A); alloc_b=$(alloc B)

python3 - "$log" "$alloc_a" "$alloc_b" "$a_dll ${AB_A_ENV:-}" "$b_dll ${AB_B_ENV:-}" <<'PY'
import re, statistics as st, sys
cells = {'A': [], 'B': []}
for line in open(sys.argv[1]):
    m = re.match(r'(A|B) rps=([\d.]+) p50=(\S+) p99=(\S+) cpu_us_per_req=(\d+) non2xx=(\d*)', line)
    if not m: sys.exit(f"a cell without figures (wrk failed?): {line.strip()}")
    cells[m[1]].append((float(m[2]), m[3], m[4], int(m[5]), int(m[6] or 0)))
def ms(t): return float(t[:-2]) if t.endswith('ms') else float(t[:-2]) / 1000 if t.endswith('us') else float(t[:-1]) * 1000
alloc = {'A': sys.argv[2], 'B': sys.argv[3]}; what = {'A': sys.argv[4], 'B': sys.argv[5]}
for side, rows in cells.items():
    cpu = [r[3] for r in rows]
    print(f"{side}: req/s {st.median(r[0] for r in rows):.0f}, p50 {st.median(ms(r[1]) for r in rows):.2f} ms, "
          f"p99 {st.median(ms(r[2]) for r in rows):.2f} ms, CPU {st.median(cpu):.0f} µs/req ({min(cpu)}-{max(cpu)}), "
          f"alloc {alloc[side]} B/req  [{what[side].strip()}]")
for side, rows in cells.items():
    if failed := sum(r[4] for r in rows):
        print(f"WARNING: {side} answered {failed} requests with an error status; its figures are not comparable")
pairs = [(a, b) for a, b in zip(cells['A'], cells['B']) if a[3] > 0]
print(f"B used less CPU per request than A in {sum(b[3] < a[3] for a, b in pairs)} of {len(pairs)} pairs; "
      f"median of B/A per pair {st.median(b[3] / a[3] for a, b in pairs):.3f}")
PY
