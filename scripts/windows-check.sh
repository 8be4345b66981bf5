#!/usr/bin/env bash
# Cross-compiles both crates for Windows x64 (x86_64-pc-windows-gnu, with Debian's mingw-w64), so
# code that builds only on Unix is caught here; the MSVC binary users get is built and tested on a
# Windows runner by the release workflow only. Build scripts compile librdkafka (with CMake, as on
# Windows: crates/engine/Cargo.toml) and OpenSSL (openssl-src) with mingw's gcc. Links, runs nothing.
# Installs what is missing: mingw-w64 and cmake (apt-get, as root) and the rustup target.
# Output goes to CARGO_TARGET_DIR (default target/; the Windows build is under
# target/x86_64-pc-windows-gnu/). Extra arguments go to cargo build (`--release`).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
TARGET=x86_64-pc-windows-gnu

missing=()
command -v x86_64-w64-mingw32-gcc >/dev/null || missing+=(mingw-w64)
command -v cmake >/dev/null || missing+=(cmake)
command -v make >/dev/null || missing+=(make)
command -v perl >/dev/null || missing+=(perl)
if [ ${#missing[@]} -gt 0 ]; then
  if [ "$(id -u)" != 0 ] || ! command -v apt-get >/dev/null; then
    echo "windows-check needs ${missing[*]}: install them (Debian/Ubuntu: apt-get install -y ${missing[*]})" >&2
    exit 1
  fi
  echo "== apt-get install ${missing[*]}"
  apt-get install -y --no-install-recommends "${missing[@]}" || {
    apt-get update
    apt-get install -y --no-install-recommends "${missing[@]}"
  }
fi

if ! rustup target list --installed | grep -qx "$TARGET"; then
  echo "== rustup target add $TARGET"
  rustup target add "$TARGET"
fi

# napi-build links a windows-gnu build against a libnode.dll (LIBNODE_PATH). The addon takes no
# symbol from it: napi's dyn-symbols feature (Cargo.toml) looks Node-API up in the running node at
# load time. An empty DLL satisfies the link; the check below shows the result imports nothing
# from it.
stub="${CARGO_TARGET_DIR:-target}/$TARGET/libnode-stub"
if [ ! -f "$stub/libnode.dll" ]; then
  mkdir -p "$stub"
  echo 'void kafka_redis_retry_libnode_stub(void) {}' >"$stub/stub.c"
  x86_64-w64-mingw32-gcc -shared -o "$stub/libnode.dll" "$stub/stub.c"
fi
LIBNODE_PATH="$(cd "$stub" && pwd)"
export LIBNODE_PATH

echo "== cargo build --workspace --target $TARGET $*"
start=$(date +%s)
cargo build --workspace --target "$TARGET" "$@"
profile=debug
case " $* " in *" --release "*) profile=release ;; esac
# The addon itself, linked: a Windows DLL (a PE file starts with "MZ").
dll="${CARGO_TARGET_DIR:-target}/$TARGET/$profile/kafka_redis_retry.dll"
if [ "$(head -c 2 "$dll" 2>/dev/null)" != MZ ]; then
  echo "windows-check: $dll is missing or not a Windows DLL" >&2
  exit 1
fi
if x86_64-w64-mingw32-objdump -p "$dll" | grep -qi 'DLL Name: libnode.dll'; then
  echo "windows-check: $dll imports from libnode.dll: Node-API must come from napi's dyn-symbols" >&2
  exit 1
fi
echo "windows-check: built for $TARGET in $(($(date +%s) - start)) s: $dll ($(wc -c <"$dll") bytes)"
