#!/usr/bin/env bash
# Installs what the stack and the tests need and a fresh Debian 12 machine lacks. Idempotent.
set -euo pipefail

sudo_cmd=()
if [ "$(id -u)" != 0 ]; then
  if command -v sudo >/dev/null 2>&1; then sudo_cmd=(sudo); else
    echo "setup: not root and no sudo; install redis-server, postgresql and chromium yourself" >&2
  fi
fi

missing=()
command -v redis-server >/dev/null 2>&1 || missing+=(redis-server)
ls /usr/lib/postgresql/*/bin/postgres >/dev/null 2>&1 || missing+=(postgresql)
if [ "${CORTENSOR_SETUP_BROWSER:-1}" = 1 ]; then
  command -v chromium >/dev/null 2>&1 || missing+=(chromium)
fi
command -v wrk >/dev/null 2>&1 || missing+=(wrk)

if [ ${#missing[@]} -gt 0 ]; then
  echo "setup: installing ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  "${sudo_cmd[@]}" apt-get update -qq
  "${sudo_cmd[@]}" apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
  # The packaged services are not used: the AppHost and the tests run their own servers.
  if command -v systemctl >/dev/null 2>&1; then
    "${sudo_cmd[@]}" systemctl disable --now redis-server postgresql >/dev/null 2>&1 || true
  fi
fi

if ! command -v dotnet >/dev/null 2>&1; then
  echo "setup: the .NET SDK 10 is required (https://dot.net); dotnet is not on PATH" >&2
  exit 1
fi
export DOTNET_CLI_TELEMETRY_OPTOUT=1 DOTNET_NOLOGO=1
echo "setup: ok ($(dotnet --version), $(redis-server --version | awk '{print $3}'), postgres $(ls -d /usr/lib/postgresql/*/ | xargs -n1 basename | tr '\n' ' '))"
