# shellcheck shell=bash
# libfaketime (Debian's faketime package): the clock-skew test runs a listener under it.
# Sourced by scripts/services.sh (which sets ROOT, SERVICES_DIR, INSTALL_LOG, REDIS_URL,
# KAFKA_BROKERS and KAFKA_IMPL first); defines functions and settings only, runs nothing.

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
