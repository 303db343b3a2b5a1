#!/usr/bin/env bash
# make test: install what is missing, lint, then the whole test suite.
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

step "tests (unit, fuzz seed corpora, integration with Prosody, slixmpp, go-sendxmpp)"
export MEDIASLOT_REQUIRE_INTEGRATION=1
go test -count=1 -timeout 30m ./...
