#!/usr/bin/env bash
# Sets up a fresh machine and runs the whole Cortensor Portal stack under the Aspire AppHost.
# Ctrl+C stops everything. Extra arguments go to the AppHost, e.g. --Api:Replicas=2.
set -euo pipefail
cd "$(dirname "$0")"
CORTENSOR_SETUP_BROWSER=0 ./scripts/setup.sh
export DOTNET_CLI_TELEMETRY_OPTOUT=1 DOTNET_NOLOGO=1
dotnet build src/Cortensor.AppHost -c Debug -nologo -v quiet
cat <<MSG

  Cortensor Portal is starting. When the dashboard reports every resource healthy:
    Api        http://localhost:5080   (OpenAI-compatible /v1, Portal /portal, reference /reference)
    Web        http://localhost:5090
    Dashboard  http://localhost:15080  (log in with the URL printed below)

MSG
exec dotnet run --no-build --project src/Cortensor.AppHost --launch-profile http -- "$@"
