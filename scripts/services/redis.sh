# shellcheck shell=bash
# Redis: the system redis-server (apt-get install redis-server if missing).
# Sourced by scripts/services.sh (which sets ROOT, SERVICES_DIR, INSTALL_LOG, REDIS_URL,
# KAFKA_BROKERS and KAFKA_IMPL first); defines functions and settings only, runs nothing.

REDIS_PID_FILE="$SERVICES_DIR/redis.pid"
REDIS_LOG="$SERVICES_DIR/redis.log"

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
