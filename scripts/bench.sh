#!/usr/bin/env bash
# make bench: measures mediaslot and writes docs/BENCHMARKS.md.
#
#   1. Go benchmarks (-benchmem) of the hot paths, and CPU profiles of the slot
#      and PUT paths; slot issue and the relay queue on bbolt and on PostgreSQL
#      (a private cluster) side by side;
#   2. the demo stack (scripts/demo.sh: Prosody + mediaslot, Prosody's own
#      mod_http_file_share as share.localhost) on free ports in a temp DEMO_DIR:
#      `mediaslot bench` against upload.localhost --vs share.localhost with the
#      bare handler, a strace of downloads (sendfile), a 1 GiB upload;
#   3. the same with DEMO_STORE=s3 (versitygw): CPU per slot, data path;
#   4. the offline relay end to end: 10,000 messages queued and flushed;
#      then the server's own offline storage (mod_offline) against the relay
#      on Prosody and ejabberd (bench.BenchmarkOfflineVsRelay, issue 17);
#      one and three instances on ejabberd, PostgreSQL and S3: slots and
#      relay messages per second, each process's CPU (bench.BenchmarkCluster,
#      issue 16);
#   5. 1,000,000 queued stanzas: mediaslot's memory;
#   6. `mediaslot bench report` renders docs/BENCHMARKS.md from the results.
#
# Environment: BENCH_OUT=DIR keeps the raw results there (default: a temp dir,
# removed at the end); BENCH_QUICK=1 shrinks every phase (a smoke test of this
# script, not numbers to publish); BENCH_REPORT=FILE writes the report elsewhere.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
export PATH=$PATH:/usr/local/go/bin:$HOME/go/bin
started=$(date +%s)

keep=${BENCH_OUT:+1}
OUT=${BENCH_OUT:-$(mktemp -d "${TMPDIR:-/tmp}/mediaslot-bench-XXXXXX")}
mkdir -p "$OUT"
OUT=$(cd "$OUT" && pwd)
REPORT=${BENCH_REPORT:-$root/docs/BENCHMARKS.md}
QUICK=${BENCH_QUICK:-}
q() { if [ -n "$QUICK" ]; then echo "$2"; else echo "$1"; fi; }

say() { printf '\nbench: %s\n' "$*" >&2; }
die() { printf 'bench: %s\n' "$*" >&2; exit 1; }

# run logs a command (with the results directory shown as $OUT) and runs it.
plain='^[-A-Za-z0-9_./:=@,+]+$'
run() {
	local shown="" a
	for a in "$@"; do
		a=${a//$OUT/\$OUT}
		a=${a//$root\//}
		if [[ $a =~ $plain || $a =~ ^\$OUT[-A-Za-z0-9_./]*$ ]]; then shown+="$a "; else shown+="'$a' "; fi
	done
	printf '%s\n' "${shown% }" >>"$OUT/commands.txt"
	"$@"
}
: >"$OUT/commands.txt"
: >"$OUT/tests.txt"

# --- machine ---
machine() {
	echo "date=$(date -u '+%Y-%m-%d %H:%M UTC')"
	echo "commit=$(git rev-parse --short HEAD 2>/dev/null || echo unknown)$(git diff-index --quiet HEAD -- 2>/dev/null || echo ' (with uncommitted changes)')"
	echo "nproc=$(nproc)"
	echo "cpu=$(lscpu 2>/dev/null | sed -n 's/^Model name: *//p' | head -1)"
	echo "memory=$(awk '/MemTotal/ {printf "%.1f GiB", $2/1048576}' /proc/meminfo)"
	echo "kernel=$(uname -sr)"
	echo "go=$(go version | cut -d' ' -f3-)"
	echo "prosody=$(dpkg-query -W -f='${Version}' prosody 2>/dev/null || prosody --version 2>/dev/null | head -1)"
	echo "fs=$(df -PT "$OUT" | awk 'NR==2 {print $2 " (" $1 ")"}')"
	echo "load_before=$(cut -d' ' -f1-3 /proc/loadavg)"
}
machine >"$OUT/machine.txt"

say "dependencies and build"
scripts/deps.sh postgres # prosody, and PostgreSQL for the data backends side by side
command -v strace >/dev/null || { DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends strace >/dev/null 2>&1 || true; }
BIN=$OUT/mediaslot
go build -o "$BIN" ./cmd/mediaslot
GW=$(scripts/versitygw.sh) # builds versitygw once (about 3 minutes cold)

# --- 1. Go benchmarks and profiles ---
say "Go benchmarks"
gobench() { run go test -run '^$' -benchmem "$@" | tee -a "$OUT/gobench.txt" | grep '^Benchmark' >&2 || true; }
: >"$OUT/gobench.txt"
gobench -bench 'BenchmarkIssue$|BenchmarkIssueParallel$|BenchmarkIssueS3$|BenchmarkTokenVerify$' -benchtime "$(q 2s 200ms)" -count "$(q 2 1)" ./upload
gobench -bench 'BenchmarkPut$|BenchmarkGet$' -benchtime "$(q 10x 2x)" ./upload
gobench -bench 'BenchmarkPut$' -benchtime "$(q 10x 2x)" ./store/disk
gobench -bench 'BenchmarkBarePut$|BenchmarkBareGet$' -benchtime "$(q 10x 2x)" ./bench
gobench -bench 'BenchmarkPutVsBare$' -benchtime "$(q 8x 2x)" -count "$(q 3 1)" ./bench
gobench -bench 'BenchmarkSlotIQ$|BenchmarkSlotIQService$|BenchmarkSlotIQServiceS3$' -benchtime "$(q 2s 200ms)" -count "$(q 2 1)" ./xmpp
gobench -bench 'BenchmarkRelayEnqueue$' -benchtime "$(q 20000x 2000x)" ./xmpp
gobench -bench 'BenchmarkRelayDrain$' -benchtime "$(q 3x 1x)" ./xmpp
gobench -bench 'BenchmarkEnqueueParallel$' -benchtime "$(q 2s 200ms)" ./offline
gobench -bench 'BenchmarkDrain$' -benchtime "$(q 3x 1x)" ./offline
# The relay queue on bbolt and on PostgreSQL side by side (a private cluster; skipped without PostgreSQL).
gobench -bench 'BenchmarkQueue$' -benchtime "$(q 20000x 2000x)" ./offline/pgqueue
if run go test -count=1 -run '^TestGetHandsFileToSendfile$' ./upload >/dev/null; then
	echo "TestGetHandsFileToSendfile=PASS" >>"$OUT/tests.txt"
else
	echo "TestGetHandsFileToSendfile=FAIL" >>"$OUT/tests.txt"
fi

say "CPU profiles"
run go test -c -o "$OUT/upload.test" ./upload
run go test -c -o "$OUT/xmpp.test" ./xmpp
# pprof_top NAME BINARY: $OUT/NAME.prof as profile-NAME.txt, by flat and by cumulative time.
pprof_top() {
	{
		run go tool pprof -top -nodecount=15 "$2" "$OUT/$1.prof" 2>/dev/null | sed -n '/^ *flat/,$p'
		echo
		run go tool pprof -top -cum -nodecount=25 "$2" "$OUT/$1.prof" 2>/dev/null | sed -n '/^ *flat/,$p'
	} >"$OUT/profile-$1.txt"
}
profile() { # name binary benchmark benchtime
	run "$2" -test.run '^$' -test.bench "^$3\$" -test.benchtime "$4" -test.cpuprofile "$OUT/$1.prof" >/dev/null
	pprof_top "$1" "$2"
}
profile slot-path "$OUT/xmpp.test" BenchmarkSlotIQService "$(q 3s 300ms)"
profile slot-issue "$OUT/upload.test" 'BenchmarkIssueParallel$/^bbolt' "$(q 3s 300ms)"
profile slot-path-s3 "$OUT/xmpp.test" BenchmarkSlotIQServiceS3 "$(q 3s 300ms)"
profile put-path "$OUT/upload.test" BenchmarkPut "$(q 20x 2x)"

# --- the demo stack ---
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1]); s.close()'; }

# The wrapper demo.sh starts instead of mediaslot: it records the PID,
# raises the demo's upload and relay limits for the benchmark and turns on
# the profiler on the admin listener.
WRAP=$OUT/mediaslot-wrapper
cat >"$WRAP" <<WRAPPER
#!/usr/bin/env bash
cfg=""; prev=""
for a in "\$@"; do [ "\$prev" = --config ] && cfg=\$a; prev=\$a; done
if [ -n "\$cfg" ]; then
	sed -i '/^max_messages = /d; /^max_bytes = /d; /^sender_share = /d; /^max_sender_/d; /^max_total_/d; /^max_unseen_/d; s/^max_file_size = .*/max_file_size = 2147483648/' "\$cfg"
	if grep -q '^\[relay\]' "\$cfg"; then
		sed -i 's/^\[relay\]\$/[relay]\nmax_messages = 2000000\nmax_bytes = 17179869184\nsender_share = 1.0\nmax_sender_messages = 2000000\nmax_sender_bytes = 17179869184\nmax_total_messages = 2000000\nmax_total_bytes = 17179869184\nmax_unseen_messages = 2000000\nmax_unseen_bytes = 17179869184/' "\$cfg"
	else
		printf '\n[relay]\nmax_messages = 2000000\nmax_bytes = 17179869184\nsender_share = 1.0\nmax_sender_messages = 2000000\nmax_sender_bytes = 17179869184\nmax_total_messages = 2000000\nmax_total_bytes = 17179869184\nmax_unseen_messages = 2000000\nmax_unseen_bytes = 17179869184\n' >>"\$cfg"
	fi
	sed -i 's/^\[admin\]\$/[admin]\npprof = true/' "\$cfg"
	echo \$\$ >"\$(dirname "\$cfg")/mediaslot.pid"
fi
exec "$BIN" "\$@"
WRAPPER
chmod +x "$WRAP"

DEMO_PID=""
stop_demo() {
	[ -n "$DEMO_PID" ] || return 0
	kill -TERM "$DEMO_PID" 2>/dev/null || true
	for _ in $(seq 1 100); do kill -0 "$DEMO_PID" 2>/dev/null || break; sleep 0.1; done
	kill -KILL "$DEMO_PID" 2>/dev/null || true
	DEMO_PID=""
}
cleanup() {
	stop_demo
	[ -n "$keep" ] || rm -rf "$OUT"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# start_demo DIR [disk|s3]: the demo stack on free ports; sets C2S, MP, PP.
start_demo() {
	local dir=$1 store=${2:-disk} t0
	mkdir -p "$dir"
	C2S=$(free_port)
	local comp http phttp s3 admin
	comp=$(free_port) http=$(free_port) phttp=$(free_port) s3=$(free_port) admin=$(free_port)
	t0=$(date +%s.%N)
	DEMO_DIR=$dir MEDIASLOT_BIN=$WRAP DEMO_STORE=$store DEMO_C2S_PORT=$C2S DEMO_COMPONENT_PORT=$comp \
		DEMO_HTTP_PORT=$http DEMO_PROSODY_HTTP_PORT=$phttp DEMO_S3_PORT=$s3 DEMO_ADMIN_PORT=$admin \
		setsid scripts/demo.sh >"$dir/demo.out" 2>&1 &
	DEMO_PID=$!
	for _ in $(seq 1 1200); do
		grep -q "mediaslot demo ready" "$dir/demo.out" 2>/dev/null && break
		kill -0 "$DEMO_PID" 2>/dev/null || { cat "$dir/demo.out" >&2; die "the demo stack did not start"; }
		sleep 0.1
	done
	grep -q "mediaslot demo ready" "$dir/demo.out" || die "the demo stack was not ready within 120 s"
	STARTUP=$(awk -v a="$t0" -v b="$(date +%s.%N)" 'BEGIN { printf "%.1f", b - a }')
	MP=$(cat "$dir/mediaslot/mediaslot.pid") ADMIN_ADDR=127.0.0.1:$admin
	PP=$(cat "$dir/prosody/prosody.pid")
	S3PORT=$s3
}

login=(--jid alice@localhost --password alice --insecure)
relay_args=(--service upload.localhost --to bob@localhost --to-password bob --witness carol@localhost --witness-password carol)

# bench NAME ARGS...: `mediaslot bench ARGS... --json` on the running stack into
# NAME.json; fails if the command fails or a service reported errors.
bench() {
	local name=$1
	shift
	run "$BIN" bench "$@" --json >"$OUT/$name.json" 2>"$OUT/$name.log" || { tail -1 "$OUT/$name.log" >&2; return 1; }
	if grep -q '"errors"' "$OUT/$name.json"; then
		grep -A1 '"errors"' "$OUT/$name.json" | tail -1 | sed 's/^ *"//; s/",\{0,1\}$//' >&2
		return 1
	fi
}

# attempt NAME STORE TRIES FUNC: FUNC on a fresh stack, again on a new one
# if it fails (up to TRIES times); each failure is recorded in NAME.errors
# and listed in the report, so that a flaky phase cannot hide.
attempt() {
	local name=$1 store=$2 tries=$3 fn=$4 n err
	for n in $(seq 1 "$tries"); do
		D=$OUT/demo-$name
		[ "$name" = queue ] || rm -rf "$D"
		start_demo "$D" "$store"
		if err=$("$fn" 2>&1 >/dev/null); then
			stop_demo
			return 0
		fi
		stop_demo
		err=$(printf '%s' "$err" | grep -v '^bench' | tail -1)
		echo "${err:-failed}" >>"$OUT/$name.errors"
		say "$name: attempt $n failed: ${err:-failed}"
	done
	: >"$OUT/$name.json"
	return 0
}

# --- 2. disk store ---
# Sequential slots, PUT and GET in one run; slots with 16 in flight in another,
# on a fresh stack, so that one phase's state (a grown database, a loaded page
# cache) does not weigh on the other.
phase_disk() {
	bench disk "${login[@]}" --server "127.0.0.1:$C2S" --service upload.localhost --vs share.localhost \
		--size "$(q 16MiB 1MiB)" --n "$(q 3000 200)" --burst 0 --rounds "$(q 5 1)" --bare-dir "$D/bare" \
		--pid "mediaslot=$MP" --pid "prosody=$PP"
}
# profile_e2e NAME SECONDS: a CPU profile of the running mediaslot from its
# admin listener, taken while a phase runs, as profile-NAME.txt.
profile_e2e() {
	run go tool pprof -proto -seconds "$2" -output "$OUT/$1.prof" "http://$ADMIN_ADDR/debug/pprof/profile" 2>/dev/null || return 0
	pprof_top "$1" "$BIN"
}
phase_disk_burst() {
	bench disk-burst "${login[@]}" --server "127.0.0.1:$C2S" --service upload.localhost --vs share.localhost \
		--size 0 --n 0 --burst "$(q 3000 200)" --inflight 16 --rounds "$(q 3 1)" \
		--pid "mediaslot=$MP" --pid "prosody=$PP"
}
# A longer burst to mediaslot alone (about 8 s), profiled for 6 s of it.
phase_profile_slots() {
	profile_e2e e2e-slots "$(q 6 1)" &
	bench e2e-slots "${login[@]}" --server "127.0.0.1:$C2S" --service upload.localhost \
		--size 0 --n 0 --burst "$(q 20000 500)" --inflight 16 --rounds 1 --pid "mediaslot=$MP" || return
	wait
}
say "disk store: mediaslot vs Prosody's mod_http_file_share vs the bare handler"
attempt disk disk 3 phase_disk
say "disk store: slots with 16 in flight"
attempt disk-burst disk 4 phase_disk_burst
say "disk store: a CPU profile of mediaslot with 16 slots in flight"
attempt e2e-slots disk 2 phase_profile_slots
# mediaslot against the bare handler alone: without Prosody's 3 MB/s PUTs in
# the rounds, larger files and more rounds fit in a few seconds, and a 64 MiB
# PUT lasts long enough (about 80 ms) to be measured rather than the noise.
phase_disk_bare() {
	profile_e2e e2e-put "$(q 3 1)" &
	bench disk-bare "${login[@]}" --server "127.0.0.1:$C2S" --service upload.localhost \
		--size "$(q 64MiB 1MiB)" --n 0 --burst 0 --rounds "$(q 9 3)" --bare-dir "$D/bare" \
		--pid "mediaslot=$MP" || return
	wait
}
say "disk store: PUT and GET against the bare handler"
attempt disk-bare disk 3 phase_disk_bare

phase_sendfile() {
	local size strace rc=0
	size=$(q 64 4)
	strace -f -e trace=sendfile -o "$OUT/strace.log" -p "$MP" 2>/dev/null &
	strace=$!
	sleep 0.5
	bench sendfile "${login[@]}" --server "127.0.0.1:$C2S" --service upload.localhost --n 0 --burst 0 \
		--size "${size}MiB" --rounds 2 --quiet || rc=1
	sleep 0.3
	kill -INT "$strace" 2>/dev/null || true
	wait "$strace" 2>/dev/null || true
	awk -v get=$((3 * size * 1048576)) '/sendfile\(/ { n++; if (match($0, /= [0-9]+/)) b += substr($0, RSTART + 2, RLENGTH - 2) }
		END { printf "sendfile_calls=%d\nsendfile_bytes=%d\nget_bytes=%d\n", n, b, get }' "$OUT/strace.log" >"$OUT/sendfile.txt"
	return $rc
}
say "sendfile: strace of mediaslot during downloads"
attempt sendfile disk 2 phase_sendfile

phase_big() {
	bench big "${login[@]}" --server "127.0.0.1:$C2S" --service upload.localhost --n 0 --burst 0 \
		--size "$(q 1GiB 64MiB)" --rounds 1 --pid "mediaslot=$MP"
}
say "one 1 GiB upload and download"
attempt big disk 2 phase_big

# --- 3. S3 store ---
phase_s3() {
	local gwp gwpid=()
	gwp=$(pgrep -f "$GW --port 127.0.0.1:$S3PORT" | head -1 || true)
	[ -n "$gwp" ] && gwpid=(--pid "versitygw=$gwp")
	bench s3 "${login[@]}" --server "127.0.0.1:$C2S" --service upload.localhost \
		--size "$(q 16MiB 1MiB)" --n "$(q 2000 200)" --burst 0 --rounds "$(q 3 1)" \
		--pid "mediaslot=$MP" --pid "prosody=$PP" "${gwpid[@]}"
}
phase_s3_burst() {
	bench s3-burst "${login[@]}" --server "127.0.0.1:$C2S" --service upload.localhost \
		--size 0 --n 0 --burst "$(q 3000 200)" --inflight 16 --rounds "$(q 3 1)" \
		--pid "mediaslot=$MP" --pid "prosody=$PP"
}
say "S3 store (versitygw)"
attempt s3 s3 3 phase_s3
say "S3 store: slots with 16 in flight"
attempt s3-burst s3 4 phase_s3_burst

# --- 4. offline relay, end to end ---
phase_relay() {
	bench relay relay "${login[@]}" --server "127.0.0.1:$C2S" "${relay_args[@]}" --n "$(q 10000 500)" \
		--senders 4 --pipeline 4 --pid "mediaslot=$MP" --pid "prosody=$PP"
}
say "offline relay: 10,000 messages queued for an offline user, then flushed"
attempt relay disk 3 phase_relay

# --- 4b. the server's own offline storage vs the relay (issue 17) ---
# BenchmarkOfflineVsRelay starts its own private Prosody and ejabberd (the
# test servers) with this mediaslot attached: 2 rounds of 500 messages per side
# (1 of 100 with BENCH_QUICK).
command -v ejabberdctl >/dev/null || { DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends ejabberd >/dev/null 2>&1 || true; }
say "offline storage: the server's mod_offline vs the relay, on Prosody and ejabberd"
for n in 1 2; do
	if run go test -run '^$' -bench '^BenchmarkOfflineVsRelay$' -benchtime 1x -timeout 20m ./bench \
		-args -offline.mediaslot "$BIN" -offline.out "$OUT" -offline.n "$(q 500 100)" -offline.rounds "$(q 2 1)" \
		>"$OUT/offline.txt" 2>&1; then
		break
	fi
	err=$(grep -E 'FAIL|Error|error|timed out' "$OUT/offline.txt" | grep -v '^bench' | tail -1)
	echo "${err:-failed}" >>"$OUT/offline.errors"
	say "offline: attempt $n failed: ${err:-failed}"
	rm -f "$OUT"/offline-*.json
done

# --- 4c. several instances (issue 16) ---
# BenchmarkCluster starts its own ejabberd, PostgreSQL and versitygw, and one,
# then three instances of this mediaslot on them (the order turning each
# round): each process's CPU idle, slots and relay messages per second, each
# process's CPU per operation (about a minute; seconds with BENCH_QUICK).
say "several instances: one and three on ejabberd, PostgreSQL and S3"
for n in 1 2; do
	if run go test -run '^$' -bench '^BenchmarkCluster$' -benchtime 1x -timeout 20m ./bench \
		-args -cluster.mediaslot "$BIN" -cluster.out "$OUT" -cluster.rounds "$(q 2 1)" \
		-cluster.slots "$(q 4000 300)" -cluster.n "$(q 1500 100)" -cluster.idle "$(q 5s 1s)" >"$OUT/cluster.txt" 2>&1; then
		break
	fi
	err=$(grep -E 'FAIL|Error|error|timed out' "$OUT/cluster.txt" | grep -v '^bench' | tail -1)
	echo "${err:-failed}" >>"$OUT/cluster.errors"
	say "cluster: attempt $n failed: ${err:-failed}"
	rm -f "$OUT/cluster.json"
done

# --- 5. 1,000,000 queued stanzas ---
phase_queue() {
	{
		grep -E '^(VmHWM|VmRSS|RssAnon|RssFile):' "/proc/$MP/status" | tr -d ' \t' | sed 's/kB$//; s/:/=/'
		echo "db_size=$(du -h "$D/mediaslot/data/mediaslot.db" | cut -f1)B"
		echo "startup=${STARTUP} s"
	} >"$OUT/queue-mem.txt"
	bench queue relay "${login[@]}" --server "127.0.0.1:$C2S" "${relay_args[@]}" --n "$(q 2000 200)" \
		--senders 4 --pipeline 4 --pid "mediaslot=$MP" --pid "prosody=$PP"
}
say "1,000,000 queued stanzas: memory"
D=$OUT/demo-queue
rm -rf "$D"
mkdir -p "$D/mediaslot/data"
run "$BIN" bench fill-queue --db "$D/mediaslot/data/mediaslot.db" --n "$(q 1000000 20000)" --recipients 1000 \
	--include bob@localhost --size 1024 2>/dev/null >"$OUT/fill.txt"
attempt queue disk 2 phase_queue
rm -rf "$OUT"/demo-*

# --- 6. the report ---
echo "load_after=$(cut -d' ' -f1-3 /proc/loadavg)" >>"$OUT/machine.txt"
echo "duration=$((($(date +%s) - started) / 60)) min $((($(date +%s) - started) % 60)) s" >>"$OUT/machine.txt"
"$BIN" bench report --dir "$OUT" --out "$REPORT"
say "wrote ${REPORT#"$root"/}${keep:+; raw results in $OUT}"
