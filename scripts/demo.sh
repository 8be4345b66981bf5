#!/usr/bin/env bash
# End-to-end demo of kafka-redis-retry (`npm run demo`): a consumer fails one message,
# KafkaRetry retries it 3 times 1.2 s apart, then dead-letters it into a Redis
# hash; see examples/server.js.
#
#   1. npm ci / npm install        if node_modules is missing
#   2. npm run build               if kafka-redis-retry.*.node is missing or older than
#                                  src/, Cargo.toml or build.rs
#                                  (KAFKA_RETRY_SKIP_BUILD=1: only if missing)
#   3. scripts/services.sh start   Redis + a Kafka broker (reuses REDIS_URL /
#                                  KAFKA_BROKERS if they answer, e.g. the ones
#                                  of `docker compose up`)
#   4. node examples/server.js     exits 0 once the dead letter is read back
#
# The services are left running for the next run; stop them with
# `scripts/services.sh stop`.
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."

say() { printf 'demo: %s\n' "$*"; }

# ------------------------------------------------------------ dependencies --
if [[ ! -d node_modules ]]; then
  if [[ -f package-lock.json ]]; then
    say "node_modules missing: npm ci"
    npm ci
  else
    say "node_modules missing: npm install"
    npm install
  fi
elif [[ ! -d node_modules/kafkajs ]]; then
  say "node_modules/kafkajs missing: npm install"
  npm install
fi

# ------------------------------------------------------------------- addon --
shopt -s nullglob
addons=(kafka-redis-retry.*.node)
shopt -u nullglob
reason=""
if ((${#addons[@]} == 0)); then
  reason="no kafka-redis-retry.*.node built yet"
elif [[ "${KAFKA_RETRY_SKIP_BUILD:-}" != 1 ]]; then
  newest="${addons[0]}"
  for f in "${addons[@]}"; do [[ "$f" -nt "$newest" ]] && newest="$f"; done
  changed="$(find src Cargo.toml build.rs -type f -newer "$newest" -print -quit 2>/dev/null || true)"
  [[ -n "$changed" ]] && reason="$changed is newer than $newest"
fi
if [[ -n "$reason" ]]; then
  say "building the addon ($reason): npm run build"
  npm run build
fi

# ---------------------------------------------------------------- services --
scripts/services.sh start
eval "$(scripts/services.sh env)"
say "REDIS_URL=$REDIS_URL KAFKA_BROKERS=$KAFKA_BROKERS"

# ----------------------------------------------------------------- example --
# Run in the background and forward SIGTERM/SIGINT, so that `kill` of this
# script (or of npm) reaches node, which then shuts down gracefully.
node examples/server.js &
child=$!
trap 'kill -TERM "$child" 2>/dev/null || true' TERM
trap 'kill -INT "$child" 2>/dev/null || true' INT
while kill -0 "$child" 2>/dev/null; do
  wait "$child" || true # returns early when a trapped signal arrives
done
rc=0
wait "$child" || rc=$?
trap - TERM INT

say "the services are still running for the next run; stop them with: scripts/services.sh stop"
if ((rc != 0)); then say "examples/server.js failed (exit $rc)"; fi
exit "$rc"
