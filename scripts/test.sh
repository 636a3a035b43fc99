#!/usr/bin/env bash
# Runs rcsso's whole test suite on a fresh Debian machine: installs what the
# tests need (Debian chromium for the browser tests, postgresql and
# redis-server for the shared stores, slapd and ldap-utils for the ldap
# identity source, Go modules, staticcheck), checks formatting and static
# analysis, then runs every test with the race detector. The PostgreSQL,
# Redis and OpenLDAP tests start their own throw-away servers from these
# binaries (initdb in a temporary directory, redis-server --port and slapd
# -h on free loopback ports) and stop them when they end; the script tells
# them where the binaries are (RCSSO_TEST_PG_BIN, RCSSO_TEST_REDIS_SERVER,
# RCSSO_TEST_SLAPD). slapd is installed without a directory of its own
# (debconf slapd/no_configuration), so no system slapd runs.
# Usage: scripts/test.sh [extra go test flags]
set -euo pipefail
cd "$(dirname "$0")/.."
started=$SECONDS
testlog="$(mktemp)"
# The closing summary line, whatever happened.
summary() {
  local rc=$?
  local ok failed
  ok=$(grep -c '^ok ' "$testlog" || true)
  failed=$(grep -c '^FAIL[[:space:]]' "$testlog" || true)
  if [ "$rc" -eq 0 ]; then
    echo "== summary: PASS: gofmt, go vet, staticcheck clean; $ok packages' tests passed in $((SECONDS - started)) s"
  else
    echo "== summary: FAIL (exit $rc) after $((SECONDS - started)) s: $ok packages passed, $failed failed; the first error is above"
  fi
  rm -f "$testlog"
}
trap summary EXIT

need_apt=()
command -v chromium >/dev/null 2>&1 || need_apt+=(chromium)
ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 || need_apt+=(postgresql)
command -v redis-server >/dev/null 2>&1 || need_apt+=(redis-server)
[ -x /usr/sbin/slapd ] || need_apt+=(slapd)
command -v ldapsearch >/dev/null 2>&1 || need_apt+=(ldap-utils)
if [ ${#need_apt[@]} -gt 0 ]; then
  echo "== installing ${need_apt[*]} (apt-get)"
  SUDO=""
  [ "$(id -u)" -eq 0 ] || SUDO="sudo"
  # The tests run slapd of their own: the package asks no questions and
  # sets up no system directory (slapd/no_configuration), so its service
  # has nothing to serve.
  echo "slapd slapd/no_configuration boolean true" | $SUDO debconf-set-selections
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${need_apt[@]}" >/dev/null
  if command -v systemctl >/dev/null 2>&1 && systemctl is-active --quiet slapd 2>/dev/null; then
    $SUDO systemctl stop slapd
  fi
fi

echo "== go modules"
go mod download

echo "== gofmt"
unformatted=$(gofmt -l $(git ls-files '*.go' 2>/dev/null || find . -name '*.go'))
if [ -n "$unformatted" ]; then
  echo "gofmt would change:"; echo "$unformatted"; exit 1
fi

echo "== go vet"
go vet ./...

echo "== staticcheck"
STATICCHECK="$(go env GOPATH)/bin/staticcheck"
if [ ! -x "$STATICCHECK" ]; then
  go install honnef.co/go/tools/cmd/staticcheck@v0.8.2
fi
"$STATICCHECK" ./...

echo "== go test"
export E2E_CHROMIUM="${E2E_CHROMIUM:-$(command -v chromium)}"
RCSSO_TEST_PG_BIN="${RCSSO_TEST_PG_BIN:-$(ls -d /usr/lib/postgresql/*/bin | sort -V | tail -n 1)}"
RCSSO_TEST_REDIS_SERVER="${RCSSO_TEST_REDIS_SERVER:-$(command -v redis-server)}"
RCSSO_TEST_SLAPD="${RCSSO_TEST_SLAPD:-/usr/sbin/slapd}"
export RCSSO_TEST_PG_BIN RCSSO_TEST_REDIS_SERVER RCSSO_TEST_SLAPD
go test -race -count=1 -timeout 15m "$@" ./... 2>&1 | tee "$testlog"
