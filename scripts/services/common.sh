# shellcheck shell=bash
# Helpers every service uses: messages, addresses, probes, pid files, apt-get, the lock.
# Sourced by scripts/services.sh (which sets ROOT, SERVICES_DIR, INSTALL_LOG, REDIS_URL,
# KAFKA_BROKERS and KAFKA_IMPL first); defines functions and settings only, runs nothing.

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
  KAFKA_CONTROLLER_PORT="${KAFKA_CONTROLLER_PORT:-$((KAFKA_PORT + 1))}"
  [[ "$KAFKA_CONTROLLER_PORT" =~ ^[0-9]+$ ]] || die "bad KAFKA_CONTROLLER_PORT '$KAFKA_CONTROLLER_PORT'"
  KAFKA_SECURED_PORT="${KAFKA_SECURED_PORT:-$((KAFKA_PORT + 2))}"
  [[ "$KAFKA_SECURED_PORT" =~ ^[0-9]+$ ]] || die "bad KAFKA_SECURED_PORT '$KAFKA_SECURED_PORT'"
  KAFKA_SSL_PORT="${KAFKA_SSL_PORT:-$((KAFKA_PORT + 3))}"
  [[ "$KAFKA_SSL_PORT" =~ ^[0-9]+$ ]] || die "bad KAFKA_SSL_PORT '$KAFKA_SSL_PORT'"
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

# The name and pid of the process listening on a local TCP port, if `ss` can tell.
listener_process() { # port
  command -v ss >/dev/null 2>&1 || return 0
  ss -ltnpH "( sport = :$1 )" 2>/dev/null |
    sed -n 's/.*users:(("\([^"]*\)",pid=\([0-9]*\).*/\1, pid \2/p' | head -n 1
}

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

stop_pidfile() { # pidfile name label [tenths of a second to wait before SIGKILL]
  local f="$1" name="$2" label="$3" wait="${4:-50}" pid i
  if pid="$(pid_alive "$f" "$name")"; then
    kill -TERM "$pid" 2>/dev/null || true
    for ((i = 0; i < wait; i++)); do
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


# -------------------------------------------------------------------- misc --

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
