#!/usr/bin/env bash
# make fuzz: each fuzz target for FUZZTIME (default 60s). `make test` runs
# their seed corpora (testdata/fuzz and the f.Add seeds) as ordinary tests.
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH=$PATH:/usr/local/go/bin
t=${FUZZTIME:-60s}
for target in upload:FuzzCheckFilename upload:FuzzVerifyToken xmpp:FuzzParseSlotRequest offline:FuzzDecodeEntry; do
  pkg=${target%%:*} name=${target#*:}
  echo "== $name ($pkg, $t)"
  go test "./$pkg" -run '^$' -fuzz "^$name\$" -fuzztime "$t"
done
