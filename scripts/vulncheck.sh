#!/usr/bin/env bash
# Checks rcsso and the modules it uses against the Go vulnerability database
# (https://vuln.go.dev) with govulncheck, which reports only vulnerabilities
# in code rcsso actually calls. It needs network access to vuln.go.dev, so
# it is not part of scripts/test.sh (CI runs offline). Usage:
#   scripts/vulncheck.sh            # source scan of ./...
#   GOVULNDB=file:///path/to/db scripts/vulncheck.sh   # a local mirror of the database
set -euo pipefail
cd "$(dirname "$0")/.."
GOVULNCHECK="$(go env GOPATH)/bin/govulncheck"
if [ ! -x "$GOVULNCHECK" ]; then
  go install golang.org/x/vuln/cmd/govulncheck@v1.9.0
fi
exec "$GOVULNCHECK" ${GOVULNDB:+-db "$GOVULNDB"} ./...
