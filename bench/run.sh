#!/usr/bin/env bash
# `npm run bench`: starts (or reuses) Redis and the broker, builds the addon only if it is missing
# and the plain-producer baseline, then runs bench/index.js, which prints one table.
#
#   BENCH_QUICK=1   shorter run (fewer and smaller runs, 200k instead of 1M scheduled)
#   BENCH_REPS=n    runs per figure (default 5, quick 3)
#   BENCH_ADDON=f   benchmark this kafka-redis-retry .node file instead of the one at the repo root
#   BENCH_BASELINE_ADDON=f  also measure this build (say main's) side by side: CPU per push, fire
#                           (f: a .node file, or a package folder with its own JavaScript)
#   KAFKA_IMPL=apache  Apache Kafka instead of Tansu when scripts/services.sh starts the broker
#
# The addon is copied to bench/.snapshot/ and loaded from there (NAPI_RS_NATIVE_LIBRARY_PATH), so
# a rebuild during the run cannot mix two builds into one table.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"

if ! node -e "for (const m of ['ioredis', 'bullmq', 'kafkajs']) require.resolve(m)" 2>/dev/null; then
  echo "== npm ci (bench needs ioredis, bullmq, kafkajs)" >&2
  npm ci --no-audit --no-fund >&2
fi

addon="${BENCH_ADDON:-}"
if [[ -n "$addon" ]]; then
  [[ -f "$addon" ]] || { echo "BENCH_ADDON=$addon: no such file" >&2; exit 1; }
  addon="$(cd "$(dirname "$addon")" && pwd)/$(basename "$addon")"
else
  addon="$(ls "$ROOT"/kafka-redis-retry.*.node 2>/dev/null | head -n 1 || true)"
fi
if [[ -z "$addon" ]]; then
  echo "== build the addon (none found)" >&2
  npm run build >&2
  addon="$(ls "$ROOT"/kafka-redis-retry.*.node | head -n 1)"
fi
mkdir -p bench/.snapshot
if [[ "$addon" != "$ROOT/bench/.snapshot/kafka-redis-retry.node" ]]; then
  cp "$addon" bench/.snapshot/kafka-redis-retry.node
fi
export NAPI_RS_NATIVE_LIBRARY_PATH="$ROOT/bench/.snapshot/kafka-redis-retry.node"
export BENCH_ADDON_SOURCE="$addon"

# BENCH_BASELINE_ADDON: another build (say main's) measured interleaved with this one: CPU per
# push at 256 callers and fire rate, "before and after" in the same run. A .node file is loaded
# through this checkout's JavaScript; a folder is a whole package (a checkout of the previous
# build with its .node at the top), loaded through its own JavaScript: needed when the JavaScript
# layer and the native module changed together.
if [[ -n "${BENCH_BASELINE_ADDON:-}" ]]; then
  base="$BENCH_BASELINE_ADDON"
  if [[ -d "$base" ]]; then
    export BENCH_BASELINE_PACKAGE="$(cd "$base" && pwd)"
    base="$(ls "$BENCH_BASELINE_PACKAGE"/kafka-redis-retry.*.node 2>/dev/null | head -n 1 || true)"
    [[ -n "$base" ]] || { echo "BENCH_BASELINE_ADDON=$BENCH_BASELINE_ADDON: no kafka-redis-retry.*.node in that folder" >&2; exit 1; }
  fi
  [[ -f "$base" ]] || { echo "BENCH_BASELINE_ADDON=$BENCH_BASELINE_ADDON: no such file" >&2; exit 1; }
  cp "$base" bench/.snapshot/baseline.node
  export BENCH_BASELINE_PATH="$ROOT/bench/.snapshot/baseline.node"
  export BENCH_BASELINE_SOURCE="$(cd "$(dirname "$base")" && pwd)/$(basename "$base")"
fi

echo "== build bench/plain-producer (cargo, release)" >&2
cargo build --release --quiet \
  --manifest-path bench/plain-producer/Cargo.toml \
  --target-dir bench/plain-producer/target >&2

echo "== start or reuse Redis and the broker" >&2
bash scripts/services.sh start >&2
eval "$(bash scripts/services.sh env)"
export REDIS_URL KAFKA_BROKERS

exec node bench/index.js
