#!/usr/bin/env bash
# Prints the path of the versitygw binary, building it first if it is
# missing: scripts/gotool.sh versitygw.
exec "$(dirname "${BASH_SOURCE[0]}")/gotool.sh" versitygw
