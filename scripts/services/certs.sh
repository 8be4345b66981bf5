# shellcheck shell=bash
# The test CA and broker certificate of Apache Kafka's SASL_SSL and SSL listeners.
# Sourced by scripts/services.sh (which sets ROOT, SERVICES_DIR, INSTALL_LOG, REDIS_URL,
# KAFKA_BROKERS and KAFKA_IMPL first); defines functions and settings only, runs nothing.

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
