#!/usr/bin/env bash
# Lints .github/workflows with actionlint (and shellcheck on `run:` blocks when shellcheck is
# installed). actionlint is a Go tool: installed once with `go install` into .services/bin.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
ACTIONLINT_VERSION=v1.7.12
bin=.services/bin/actionlint
if [ ! -x "$bin" ] || ! "$bin" -version | grep -qx "$ACTIONLINT_VERSION"; then
  go=$(command -v go || echo /usr/local/go/bin/go)
  if [ ! -x "$go" ]; then
    echo "actionlint needs Go (https://go.dev/dl/) to be installed" >&2
    exit 1
  fi
  echo "installing actionlint $ACTIONLINT_VERSION into .services/bin"
  GOBIN="$PWD/.services/bin" "$go" install "github.com/rhysd/actionlint/cmd/actionlint@$ACTIONLINT_VERSION"
fi
"$bin" -no-color "$@"
