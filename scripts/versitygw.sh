#!/usr/bin/env bash
# Prints the path of the versitygw binary (a real S3 server for tests and
# `make demo-s3`), building it first if it is missing. The cache is the one
# the Go tests use (internal/testserver/versitygw.go): $MEDIASLOT_TOOLS_DIR,
# by default <repo>/bin/tools. A cold build takes about 3 minutes on two
# cores; build output goes to stderr, so `bin=$(scripts/versitygw.sh)` works.
set -euo pipefail

version=v1.8.0 # keep in step with versityGWVersion in internal/testserver/versitygw.go
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
dir=${MEDIASLOT_TOOLS_DIR:-$root/bin/tools}
bin=$dir/versitygw

if [[ ! -x $bin ]]; then
	command -v go >/dev/null || { echo "versitygw.sh: $bin is missing and go is not on PATH" >&2; exit 1; }
	mkdir -p "$dir"
	# Same lock file as the Go tests, so parallel builders build once.
	exec 9>"$dir/.versitygw.lock"
	flock 9
	if [[ ! -x $bin ]]; then
		tmp=$(mktemp -d "$dir/.build-XXXXXX")
		trap 'rm -rf "$tmp"' EXIT
		echo "versitygw.sh: building versitygw $version into $dir" >&2
		(cd "$tmp" && GOBIN=$tmp go install "github.com/versity/versitygw/cmd/versitygw@$version") >&2
		mv "$tmp/versitygw" "$bin"
	fi
fi
echo "$bin"
