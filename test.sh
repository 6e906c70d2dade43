#!/usr/bin/env bash
# Sets up a fresh machine and runs every test: unit, integration (real Postgres and Redis),
# and end-to-end (the whole AppHost graph). Extra arguments go to dotnet test, e.g. --filter.
set -euo pipefail
cd "$(dirname "$0")"
./scripts/setup.sh
export DOTNET_CLI_TELEMETRY_OPTOUT=1 DOTNET_NOLOGO=1
dotnet build Cortensor.sln -c Debug -nologo -warnaserror
log=$(mktemp)
set +e
dotnet test Cortensor.sln -c Debug --no-build "$@" 2>&1 | tee "$log"
status=${PIPESTATUS[0]}
set -e
summary=$(grep -E "Failed:\s+[0-9]+, Passed:\s+[0-9]+, Skipped:\s+[0-9]+" "$log" | tail -n 1 || true)
if [ -n "$summary" ]; then
  failed=$(sed -E 's/.*Failed:\s+([0-9]+),.*/\1/' <<<"$summary")
  passed=$(sed -E 's/.*Passed:\s+([0-9]+),.*/\1/' <<<"$summary")
  skipped=$(sed -E 's/.*Skipped:\s+([0-9]+),.*/\1/' <<<"$summary")
  echo "tests: $passed passed, $failed failed, $skipped skipped"
fi
rm -f "$log"
exit "$status"
