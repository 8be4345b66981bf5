# shellcheck shell=bash
# Shopify's toxiproxy, built from the Go module proxy with `go install`: the network-fault suite
# (__test__/faults/chaos.test.js) puts it between the package and Redis, and between the package and a
# broker of its own. Sourced by scripts/services.sh (which sets ROOT, SERVICES_DIR, INSTALL_LOG,
# REDIS_URL, KAFKA_BROKERS and KAFKA_IMPL first); defines functions and settings only, runs nothing.

TOXIPROXY_VERSION="v2.5.0"
TOXIPROXY_MODULE="github.com/Shopify/toxiproxy/v2"
# `go install` names the binary after its package directory (cmd/server); it is kept under a
# name that says what it is.
TOXIPROXY_BIN_PATH="$SERVICES_DIR/bin/toxiproxy-server"

# The go command: on PATH, or where the official tarball puts it; Debian's golang-go otherwise.
go_command() {
  if command -v go >/dev/null 2>&1; then command -v go; return; fi
  if [[ -x /usr/local/go/bin/go ]]; then printf '%s\n' /usr/local/go/bin/go; return; fi
  apt_install golang-go
  command -v go >/dev/null 2>&1 || die "go not found after installing golang-go"
  command -v go
}

# Whether `$1` is toxiproxy's server at TOXIPROXY_VERSION (Go records the module and its version
# in the binary).
toxiproxy_is_current() {
  local go="$1" bin="$2"
  [[ -x "$bin" ]] || return 1
  "$go" version -m "$bin" 2>/dev/null | grep -Eq "^[[:space:]]+mod[[:space:]]+$TOXIPROXY_MODULE[[:space:]]+$TOXIPROXY_VERSION([[:space:]]|$)"
}

# Prints the path of toxiproxy's server, building it with `go install` into .services/bin if needed
# (about 40 s of CPU the first time; the module cache makes later builds quick).
toxiproxy_bin() {
  if [[ -n "${TOXIPROXY_BIN:-}" ]]; then
    [[ -x "$TOXIPROXY_BIN" ]] || die "TOXIPROXY_BIN=$TOXIPROXY_BIN is not executable"
    printf '%s\n' "$TOXIPROXY_BIN"; return
  fi
  local go
  go="$(go_command)"
  if ! toxiproxy_is_current "$go" "$TOXIPROXY_BIN_PATH"; then
    local t0=$SECONDS gobin
    note "building toxiproxy $TOXIPROXY_VERSION with go install into $SERVICES_DIR/bin (log: $INSTALL_LOG)"
    mkdir -p "$SERVICES_DIR/bin"
    gobin="$(mktemp -d "$SERVICES_DIR/bin/.toxiproxy-XXXXXX")"
    # GOFLAGS from the caller's environment could ask for a vendor directory this module lacks.
    if ! (cd "$SERVICES_DIR" && GOBIN="$gobin" GOFLAGS= "$go" install "$TOXIPROXY_MODULE/cmd/server@$TOXIPROXY_VERSION") \
         </dev/null >>"$INSTALL_LOG" 2>&1 9>&-; then
      rm -rf "$gobin"
      tail -n 20 "$INSTALL_LOG" >&2
      die "go install $TOXIPROXY_MODULE/cmd/server@$TOXIPROXY_VERSION failed"
    fi
    mv -f "$gobin/server" "$TOXIPROXY_BIN_PATH"
    rm -rf "$gobin"
    toxiproxy_is_current "$go" "$TOXIPROXY_BIN_PATH" || die "$TOXIPROXY_BIN_PATH is not toxiproxy $TOXIPROXY_VERSION"
    note "built toxiproxy in $((SECONDS - t0)) s"
  fi
  printf '%s\n' "$TOXIPROXY_BIN_PATH"
}
