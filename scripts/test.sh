#!/usr/bin/env bash
# make test: install what is missing, lint, then the whole test suite: the unit
# packages with -race, then the integration tests (without: they drive real
# servers and the built binary, and -race would only slow them).
# Integration tests are required here: a missing server or client fails the run.
#   scripts/test.sh        lint + all tests
#   scripts/test.sh lint   lint only
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH=$PATH:/usr/local/go/bin:$HOME/go/bin
command -v go >/dev/null || { echo "test: Go is not installed (https://go.dev/dl/, 1.26 or newer)" >&2; exit 1; }

step() { printf '\n== %s\n' "$*"; }

if [ "${1:-all}" != lint ]; then
  step "dependencies"
  scripts/deps.sh test
  go mod download
  step "S3 servers of the tests (go install, cached in bin/tools; minutes the first time)"
  scripts/gotool.sh versitygw
  scripts/gotool.sh minio
fi

step "gofmt"
bad=$(gofmt -l $(git ls-files '*.go' 2>/dev/null || find . -name '*.go' -not -path './.demo/*'))
[ -z "$bad" ] || { echo "gofmt would change:"; echo "$bad"; exit 1; }
step "go vet"
go vet ./...
step "staticcheck"
go tool staticcheck ./...
[ "${1:-all}" = lint ] && exit 0

# Required here: a missing server or client (Prosody, versitygw, ...) fails the
# tests that use it instead of skipping them, unit packages' included.
export MEDIASLOT_REQUIRE_INTEGRATION=1
step "unit tests and fuzz seed corpora, with the race detector (every package but internal/integration)"
go test -count=1 -race -timeout 20m $(go list ./... | grep -v '/internal/integration$')
step "integration tests (Prosody, ejabberd, slixmpp, go-sendxmpp, versitygw, nginx, PostgreSQL)"
go test -count=1 -timeout 30m ./internal/integration/
