#!/usr/bin/env bash
# make fuzz: each fuzz target for FUZZTIME (default 60s). `make test` runs
# their seed corpora (testdata/fuzz and the f.Add seeds) as ordinary tests.
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH=$PATH:/usr/local/go/bin
t=${FUZZTIME:-60s}
# every `func FuzzX` in a tracked test file, so a new target cannot be left out
git ls-files '*_test.go' | xargs grep -Ho '^func Fuzz[A-Za-z0-9_]*' | sed 's/:func /:/' | sort |
while IFS=: read -r file name; do
  pkg=./$(dirname "$file")
  echo "== $name (${pkg#./}, $t)"
  go test "$pkg" -run '^$' -fuzz "^$name\$" -fuzztime "$t" </dev/null
done
