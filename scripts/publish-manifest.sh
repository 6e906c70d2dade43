#!/usr/bin/env bash
# Regenerates the Aspire deployment manifest from the AppHost (publish mode: the container and
# connection-string resources a cloud deployment provisions or is given).
#   scripts/publish-manifest.sh            -> docs/aspire-manifest.json
#   scripts/publish-manifest.sh OUT.json   -> OUT.json (the manifest test compares it with docs/)
# Set NO_BUILD=1 to reuse an existing build of the AppHost.
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
out="$(realpath -m "${1:-$root/docs/aspire-manifest.json}")"
build=()
[ "${NO_BUILD:-0}" = 1 ] && build=(--no-build)
cd "$root"
DOTNET_CLI_TELEMETRY_OPTOUT=1 DOTNET_NOLOGO=1 \
  dotnet run --project src/Cortensor.AppHost --no-launch-profile "${build[@]}" -- \
  --publisher manifest --output-path "$out" >/dev/null
echo "manifest written to $out"
