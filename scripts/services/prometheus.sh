# shellcheck shell=bash
# Prometheus and promtool (Debian's prometheus package): `npm run lint` runs `promtool check rules`
# and `promtool test rules` on observability/, and __test__/metrics/prometheus-alerts.test.js runs
# the server against the package's metrics. Sourced by scripts/services.sh (which sets ROOT,
# SERVICES_DIR, INSTALL_LOG, REDIS_URL, KAFKA_BROKERS and KAFKA_IMPL first); defines functions
# and settings only, runs nothing.

# Prints the path of the prometheus server, installing Debian's prometheus package (the server and
# promtool, beside it) if needed. PROMETHEUS_BIN, when set, wins. On a machine with systemd the
# package also enables a prometheus service on :9090; the tests start their own on a free port.
prometheus_bin() {
  if [[ -n "${PROMETHEUS_BIN:-}" ]]; then
    [[ -x "$PROMETHEUS_BIN" ]] || die "PROMETHEUS_BIN=$PROMETHEUS_BIN is not executable"
    printf '%s\n' "$PROMETHEUS_BIN"; return
  fi
  if ! command -v prometheus >/dev/null 2>&1 || ! command -v promtool >/dev/null 2>&1; then
    apt_install --no-install-recommends prometheus
  fi
  command -v prometheus >/dev/null 2>&1 || die "prometheus not found after installing Debian's prometheus package"
  command -v prometheus
}
