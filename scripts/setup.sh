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
# maildev, the local mail catcher, is an npm package.
command -v node >/dev/null 2>&1 || missing+=(nodejs)
command -v npm >/dev/null 2>&1 || missing+=(npm)

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

# The local mail catcher the AppHost runs (account mail in development; the tests read it), in a
# project-local folder so nothing global changes.
maildev_version=2.2.1
repo_root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
maildev_package="$repo_root/.tools/maildev/node_modules/maildev/package.json"
if ! grep -q "\"version\": \"$maildev_version\"" "$maildev_package" 2>/dev/null; then
  echo "setup: installing maildev $maildev_version into .tools/maildev"
  npm install --prefix "$repo_root/.tools/maildev" --no-audit --no-fund --loglevel=error "maildev@$maildev_version" >/dev/null
fi
echo "setup: ok ($(dotnet --version), $(redis-server --version | awk '{print $3}'), node $(node --version), maildev $maildev_version, postgres $(ls -d /usr/lib/postgresql/*/ | xargs -n1 basename | tr '\n' ' '))"
