#!/usr/bin/env bash
# Prints the path of a Go-built test server (versitygw, minio, rclone or
# seaweedfs: the S3 servers of the tests and of `make demo-s3`), building it
# first from the Go module proxy if it is missing: with `go install`, or,
# for SeaweedFS, whose go.mod has replace directives that `go install`
# refuses, with `go build` in a throwaway module that requires it. The cache is the
# one the Go tests use (testserver/versitygw.go):
# $MEDIASLOT_TOOLS_DIR, by default <repo>/bin/tools. Cold builds take
# minutes on two cores (versitygw about 3, MinIO longer), so `make test`
# builds both before the tests; build output goes to stderr, so
# `bin=$(scripts/gotool.sh minio)` works.
#   scripts/gotool.sh versitygw|minio|rclone|seaweedfs
set -euo pipefail

# keep in step with the s3Server entries in testserver/versitygw.go
case "${1:-}" in
versitygw) pkg=github.com/versity/versitygw/cmd/versitygw version=v1.8.0 ;;
minio) pkg=github.com/minio/minio version=v0.0.0-20260212201848-7aac2a2c5b7c ;;
rclone) pkg=github.com/rclone/rclone version=v1.76.0 ;;
seaweedfs) pkg=github.com/seaweedfs/seaweedfs/weed version=v0.0.0-20261109003541-7506e5f91cd6 module=github.com/seaweedfs/seaweedfs ;;
*) echo "usage: $0 versitygw|minio|rclone|seaweedfs" >&2; exit 2 ;;
esac
name=$1
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
dir=${MEDIASLOT_TOOLS_DIR:-$root/bin/tools}
bin=$dir/$name

if [[ ! -x $bin ]]; then
	command -v go >/dev/null || { echo "gotool.sh: $bin is missing and go is not on PATH" >&2; exit 1; }
	mkdir -p "$dir"
	# Same lock file as the Go tests, so parallel builders build once.
	exec 9>"$dir/.$name.lock"
	flock 9
	if [[ ! -x $bin ]]; then
		tmp=$(mktemp -d "$dir/.build-XXXXXX")
		trap 'rm -rf "$tmp"' EXIT
		echo "gotool.sh: building $name $version into $dir" >&2
		start=$SECONDS
		if [[ -n ${module:-} ]]; then
			# As testserver's buildInModule: replace directives count only in the main module.
			printf 'module build\n' >"$tmp/go.mod"
			printf '//go:build tools\n\npackage build\n\nimport _ "%s"\n' "$pkg" >"$tmp/tools.go"
			(cd "$tmp" && go get "$module@$version" && go mod tidy && go build -o "$name" "$pkg") >&2
		else
			(cd "$tmp" && GOBIN=$tmp go install "$pkg@$version") >&2
		fi
		mv "$tmp/$name" "$bin"
		echo "gotool.sh: built $name in $((SECONDS - start)) s" >&2
	fi
fi
echo "$bin"
