#!/usr/bin/env bash
# Prints the path of a Chromium for the dashboard's browser tests (__test__/dashboard/dashboard.test.js),
# installing Debian's `chromium` package when none is there. playwright-core drives it; nothing
# is downloaded by npm or Playwright. CHROMIUM_PATH, when set, wins.
set -euo pipefail
if [ -n "${CHROMIUM_PATH:-}" ]; then
  echo "$CHROMIUM_PATH"
  exit 0
fi
if ! command -v chromium >/dev/null 2>&1; then
  echo "== apt-get install -y chromium (for the dashboard's browser tests)" >&2
  sudo=""
  [ "$(id -u)" = 0 ] || sudo="sudo"
  $sudo apt-get update -qq >&2
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq chromium >&2
fi
command -v chromium
