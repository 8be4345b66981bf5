#!/usr/bin/env bash
# Runs a command in a private network namespace that has a Redis of its own, for the silent
# connection drop test (__test__/faults/heal.test.js):
#
#   bash __test__/children/netns/run.sh <command...>
#
# Env: REDIS_PORTS, the ports of the namespace's Redis on 127.0.0.1: one port, a server; several, a
# Redis Cluster of that many masters (no replicas).
#
# Inside, loopback carries an htb qdisc whose class 1:20 ends in a blackhole qdisc: a
# `tc filter ... u32 match ip sport/dport PORT ... flowid 1:20` then drops one connection's
# packets without a FIN or RST, as an expired NAT entry or a cut network does. Nothing outside
# the namespace is touched. Needs root (unshare -n, tc); installs iproute2 and redis-server with
# apt-get when missing (redis-cli comes with redis-server). The command's stdin, stdout and
# stderr are this script's.
set -euo pipefail

fail() {
  echo "children/netns/run.sh: $*" >&2
  exit 2
}

if [ "${1:-}" != --inside ]; then
  [ "$(id -u)" = 0 ] ||
    fail "needs root: the silent drop is made in a private network namespace (unshare -n) with tc; run the test as root (CI does)"
  missing=()
  for tool in ip tc ss; do command -v "$tool" >/dev/null 2>&1 || missing+=(iproute2); done
  command -v redis-server >/dev/null 2>&1 || missing+=(redis-server)
  command -v unshare >/dev/null 2>&1 || missing+=(util-linux)
  if [ "${#missing[@]}" -gt 0 ]; then
    packages="$(printf '%s\n' "${missing[@]}" | sort -u | tr '\n' ' ')"
    echo "children/netns/run.sh: installing $packages with apt-get" >&2
    command -v apt-get >/dev/null 2>&1 || fail "apt-get not found; install $packages by hand"
    # shellcheck disable=SC2086
    { DEBIAN_FRONTEND=noninteractive apt-get update &&
      DEBIAN_FRONTEND=noninteractive apt-get install -y $packages; } </dev/null >&2 ||
      fail "apt-get install $packages failed"
  fi
  exec unshare -n bash "$0" --inside "$@"
fi
shift

: "${REDIS_PORTS:?REDIS_PORTS must be set}"
read -r -a ports <<<"$REDIS_PORTS"
ip link set lo up
# quantum: htb's default (rate / r2q) is too big for a 10gbit class and warns on every run.
tc qdisc add dev lo root handle 1: htb default 10
tc class add dev lo parent 1: classid 1:10 htb rate 10gbit quantum 200000
tc class add dev lo parent 1: classid 1:20 htb rate 10gbit quantum 200000
tc qdisc add dev lo parent 1:20 handle 20: blackhole

dir="$(mktemp -d)"
servers=()
trap 'kill "${servers[@]}" 2>/dev/null || true; wait 2>/dev/null || true; rm -rf "$dir"' EXIT
cluster=()
[ "${#ports[@]}" -gt 1 ] && cluster=(--cluster-enabled yes --cluster-node-timeout 1000)
for port in "${ports[@]}"; do
  redis-server --bind 127.0.0.1 --port "$port" --save "" --appendonly no --dir "$dir" \
    --cluster-config-file "nodes-$port.conf" --logfile "$dir/redis-$port.log" "${cluster[@]}" \
    </dev/null >/dev/null 2>&1 &
  servers+=("$!")
done
for port in "${ports[@]}"; do
  for _ in $(seq 100); do
    if (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then break; fi
    sleep 0.1
  done
  (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null ||
    fail "redis-server did not listen on 127.0.0.1:$port in the namespace: $(tail -n 5 "$dir/redis-$port.log" 2>/dev/null)"
done
if [ "${#cluster[@]}" -gt 0 ]; then
  redis-cli --cluster create "${ports[@]/#/127.0.0.1:}" --cluster-replicas 0 --cluster-yes >/dev/null ||
    fail "redis-cli --cluster create failed"
  for _ in $(seq 100); do
    redis-cli -p "${ports[0]}" cluster info | grep -q cluster_state:ok && break
    sleep 0.1
  done
  redis-cli -p "${ports[0]}" cluster info | grep -q cluster_state:ok ||
    fail "the namespace's Redis Cluster did not reach cluster_state:ok"
fi
"$@"
