#!/usr/bin/env bash
# make demo: Prosody + mediaslot (embedded disk store) on loopback, in the foreground.
# State lives in $DEMO_DIR (default ./.demo) and survives restarts; `make demo-clean` wipes it.
# Ctrl-C (SIGINT) or SIGTERM stops everything.
# DEMO_STORE=s3 (make demo-s3) adds versitygw, a real S3 server, on 127.0.0.1:7070
# (DEMO_S3_PORT) and puts mediaslot on the S3 store: slot PUT URLs point at it,
# GET URLs stay on mediaslot's HTTP front.
# DEMO_DATA=postgres (make demo-pg) keeps mediaslot's data (slot records, quotas, the
# relay queue) in a PostgreSQL cluster the demo creates in $DEMO_DIR/postgres and starts on
# 127.0.0.1:5433 (DEMO_PG_PORT), as the postgres user when run as root; database and
# user mediaslot, the password in $DEMO_DIR/postgres.secret.
#
# Fixed demo facts: XMPP domain localhost; users alice, bob, carol (password = name);
# c2s 127.0.0.1:5222 (STARTTLS offered, self-signed; plaintext auth allowed);
# component upload.localhost on 127.0.0.1:5347; mediaslot HTTP on 127.0.0.1:5050;
# mediaslot's admin listener (/metrics, /healthz, /readyz) on 127.0.0.1:5051;
# Prosody's own mod_http_file_share as share.localhost on 127.0.0.1:5280 (hidden from disco#items).
# The ports can be moved with DEMO_C2S_PORT, DEMO_COMPONENT_PORT, DEMO_PROSODY_HTTP_PORT,
# DEMO_HTTP_PORT and DEMO_ADMIN_PORT (the integration test does, to run beside a live demo).
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
DEMO_DIR=$(mkdir -p "${DEMO_DIR:-$root/.demo}" && cd "${DEMO_DIR:-$root/.demo}" && pwd)
C2S=${DEMO_C2S_PORT:-5222} COMP=${DEMO_COMPONENT_PORT:-5347}
PHTTP=${DEMO_PROSODY_HTTP_PORT:-5280} HTTP=${DEMO_HTTP_PORT:-5050} ADMIN=${DEMO_ADMIN_PORT:-5051}
STORE=${DEMO_STORE:-disk} S3PORT=${DEMO_S3_PORT:-7070}
DATA=${DEMO_DATA:-bbolt} PGPORT=${DEMO_PG_PORT:-5433}
DOMAIN=localhost

. scripts/demo-lib.sh

case $DATA in
  bbolt) scripts/deps.sh prosody ;;
  postgres) scripts/deps.sh postgres ;;
  *) die "DEMO_DATA=$DATA: bbolt or postgres" ;;
esac

MEDIASLOT_BIN=${MEDIASLOT_BIN:-$root/bin/mediaslot}
[ -x "$MEDIASLOT_BIN" ] || die "$MEDIASLOT_BIN is missing: run 'make build' (make demo does)"

[ "$DATA" = postgres ] && pg_init

ports=("$C2S" "$COMP" "$PHTTP" "$HTTP" "$ADMIN")
[ "$STORE" = s3 ] && ports+=("$S3PORT")
[ "$DATA" = postgres ] && ports+=("$PGPORT")
ports_free "${ports[@]}"

# --- Prosody, from the same config the integration tests use ---
export XMPP_TEST_DIR=$DEMO_DIR/prosody XMPP_DOMAIN=$DOMAIN
export XMPP_C2S_PORT=$C2S XMPP_COMPONENT_PORT=$COMP XMPP_HTTP_PORT=$PHTTP
mkdir -p "$XMPP_TEST_DIR/data" "$XMPP_TEST_DIR/certs"
export MEDIASLOT_COMPONENT_SECRET=$(secret "$DEMO_DIR/component.secret")
cfg=$XMPP_TEST_DIR/prosody.cfg.lua
# the attach snippet in it is the README's, for example.net: put in the domain and the secret
(umask 077; sed -e "s/example\.net/$DOMAIN/g" -e "s/PASTE-THE-SECRET-HERE/$MEDIASLOT_COMPONENT_SECRET/" \
  testdata/prosody/prosody.cfg.lua > "$cfg")
self_signed "$XMPP_TEST_DIR/certs" "$DOMAIN"
for u in alice bob carol; do
  prosodyctl --config "$cfg" register "$u" "$DOMAIN" "$u" >/dev/null 2>&1 || die "could not register $u (see $XMPP_TEST_DIR)"
done

# --- the store: the embedded disk store, or S3 (versitygw) ---
mkdir -p "$DEMO_DIR/mediaslot"
store_conf='[store]
type = "disk"
dir = "files"'
[ "$STORE" = s3 ] && store_conf=$(s3_conf "$S3PORT")

data_conf='[data]
dir = "data"'
[ "$DATA" = postgres ] && data_conf=$(pg_conf "$PGPORT")

cat > "$DEMO_DIR/mediaslot/mediaslot.toml" <<TOML
# Written by scripts/demo.sh on every start. The secrets come from MEDIASLOT_COMPONENT_SECRET
# (and MEDIASLOT_DATA_PASSWORD).
[component]
jid = "upload.$DOMAIN"
server = "127.0.0.1:$COMP"
reconnect_max = "2s"

[http]
listen = "127.0.0.1:$HTTP"
public_url = "http://127.0.0.1:$HTTP"

[upload]
max_file_size = 104857600
# Generous for benchmarks (make bench), like share.localhost's 100 GiB daily quota.
daily_quota = 107374182400
slot_rate = 0.0

$store_conf

$data_conf

[admin]
listen = "127.0.0.1:$ADMIN"
TOML

cleanup() {
  trap - INT TERM EXIT
  [ ${#pids[@]} = 0 ] && [ $pg_started = 0 ] && return
  say "stopping"
  stop_all
  say "stopped"
}
trap 'cleanup; exit 0' INT TERM
trap cleanup EXIT

prosody --config "$cfg" -F >>"$XMPP_TEST_DIR/stdout.log" 2>&1 &
pids+=($!)
[ "$STORE" = s3 ] && s3_start "$S3PORT"
for p in "$C2S" "$COMP" "$PHTTP"; do wait_port "$p" "Prosody (see $XMPP_TEST_DIR/stdout.log)"; done
[ "$STORE" = s3 ] && wait_port "$S3PORT" "versitygw (see $DEMO_DIR/s3.log)"

[ "$DATA" = postgres ] && pg_start "$PGPORT"

log=$DEMO_DIR/mediaslot.log
: > "$log.start"
"$MEDIASLOT_BIN" serve --config "$DEMO_DIR/mediaslot/mediaslot.toml" > >(tee -a "$log" "$log.start") 2>&1 &
pids+=($!)
for _ in $(seq 1 200); do
  grep -q "component connected" "$log.start" && break
  kill -0 "${pids[-1]}" 2>/dev/null || die "mediaslot exited; see $log"
  sleep 0.05
done
grep -q "component connected" "$log.start" || die "mediaslot did not connect to Prosody; see $log"
rm -f "$log.start"

cat <<READY
mediaslot demo ready: XMPP domain $DOMAIN, c2s 127.0.0.1:$C2S (STARTTLS, self-signed), users alice/alice bob/bob carol/carol
  upload service  upload.$DOMAIN (component on 127.0.0.1:$COMP), files at http://127.0.0.1:$HTTP/
  admin           http://127.0.0.1:$ADMIN/metrics, /healthz, /readyz
  store           $STORE$([ "$STORE" = s3 ] && echo " (versitygw S3 on http://127.0.0.1:$S3PORT, bucket mediaslot; PUTs go there)")
  data            $([ "$DATA" = postgres ] && echo "PostgreSQL on 127.0.0.1:$PGPORT, database and user mediaslot (password in $DEMO_DIR/postgres.secret); log $PGDIR/postgres.log" || echo "bbolt, $DEMO_DIR/mediaslot/data/mediaslot.db")
  baseline        share.$DOMAIN (Prosody mod_http_file_share, http://127.0.0.1:$PHTTP/, hidden from disco#items)
  try             go-sendxmpp -u alice@$DOMAIN -p alice -j 127.0.0.1:$C2S -n -h FILE bob@$DOMAIN
  state           $DEMO_DIR (make demo-clean wipes it); logs $log, $XMPP_TEST_DIR/prosody.log
  stop            Ctrl-C
READY

# Run until a signal or until either process dies.
while :; do
  for pid in "${pids[@]}"; do
    # On Ctrl-C the whole process group gets SIGINT and a child may die before
    # our trap runs: the sleep lets a pending trap end the demo normally first.
    kill -0 "$pid" 2>/dev/null || { sleep 0.3; say "process $pid exited; see the logs above"; exit 1; }
  done
  if [ $pg_started = 1 ] && ! pg_alive; then
    say "PostgreSQL exited; see $PGDIR/postgres.log"; exit 1
  fi
  sleep 0.5 & wait $! || true
done
