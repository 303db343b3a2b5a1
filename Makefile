# mediaslot: the two newcomer commands are `make demo` and `make test`.
SHELL := /bin/bash
export PATH := $(PATH):/usr/local/go/bin:$(HOME)/go/bin
VERSION := $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)
COMMIT  := $(shell git rev-parse --short HEAD 2>/dev/null || echo unknown)
comma   := ,
LDFLAGS := -X main.version=$(VERSION) -X main.commit=$(COMMIT)

.PHONY: build demo demo-s3 demo-pg demo-clean test test-s3-servers lint bench fuzz
build:
	go build -ldflags "$(LDFLAGS)" -o bin/mediaslot ./cmd/mediaslot

# Prosody + mediaslot (disk store) on loopback, in the foreground; state in ./.demo/.
demo: build
	scripts/demo.sh

# The same with versitygw (a real S3 server) on 127.0.0.1:7070 and mediaslot on the S3 store.
demo-s3: build
	DEMO_STORE=s3 scripts/demo.sh

# The same with its data (slot records, quotas, the relay queue) in a PostgreSQL the
# demo starts on 127.0.0.1:5433, its files in .demo/postgres/.
demo-pg: build
	DEMO_DATA=postgres scripts/demo.sh

demo-clean:
	rm -rf .demo

# Everything CI runs: installs missing packages, checks formatting, vet and
# staticcheck, then unit and integration tests against a real Prosody and real clients.
test:
	scripts/test.sh

lint:
	scripts/test.sh lint

# For release checks: the S3 store's suites (store, slots, real clients, faults)
# against versitygw, MinIO, rclone `serve s3` and SeaweedFS; builds rclone and
# SeaweedFS the first time (about 5 minutes each on two cores). See docs/S3.md.
S3_SERVERS := versitygw,minio,rclone,seaweedfs
test-s3-servers:
	set -e; for s in $(subst $(comma), ,$(S3_SERVERS)); do scripts/gotool.sh $$s >/dev/null; done
	MEDIASLOT_S3_SERVERS=$(S3_SERVERS) MEDIASLOT_REQUIRE_INTEGRATION=1 go test -count=1 -timeout 30m ./store/s3/
	MEDIASLOT_S3_SERVERS=$(S3_SERVERS) MEDIASLOT_REQUIRE_INTEGRATION=1 go test -count=1 -timeout 30m \
		-run 'S3|SlotSuite' -skip 'TestDemo' ./upload/ ./internal/integration/

# Every fuzz target for 60 s each (FUZZTIME=5m make fuzz for longer).
fuzz:
	scripts/fuzz.sh

# Measures mediaslot (Go benchmarks, then the demo stack against Prosody's
# mod_http_file_share, a bare Go handler and versitygw) and writes
# docs/BENCHMARKS.md; about 10 minutes. BENCH_OUT=DIR keeps the raw results.
bench:
	scripts/bench.sh
