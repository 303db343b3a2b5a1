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

say() { printf 'demo: %s\n' "$*"; }
die() { printf 'demo: %s\n' "$*" >&2; exit 1; }

case $DATA in
  bbolt) scripts/deps.sh prosody ;;
  postgres) scripts/deps.sh postgres ;;
  *) die "DEMO_DATA=$DATA: bbolt or postgres" ;;
esac

MEDIASLOT_BIN=${MEDIASLOT_BIN:-$root/bin/mediaslot}
[ -x "$MEDIASLOT_BIN" ] || die "$MEDIASLOT_BIN is missing: run 'make build' (make demo does)"

# --- PostgreSQL (DEMO_DATA=postgres): the cluster's files in $PGDIR, run as the
# postgres user when we are root (PostgreSQL refuses root) ---
PGDIR=$DEMO_DIR/postgres PGDATA=$DEMO_DIR/postgres/data
pg_run() { if [ "$(id -u)" = 0 ]; then runuser -u postgres -- "$@"; else "$@"; fi; }
pg_stop() {
  # fast: sessions are ended, the data checkpointed; immediate (recovered from
  # the WAL at the next start) if that takes too long.
  pg_run "$PGBIN/pg_ctl" stop -D "$PGDATA" -m fast -w -t 4 >/dev/null 2>&1 ||
    pg_run "$PGBIN/pg_ctl" stop -D "$PGDATA" -m immediate -w -t 2 >/dev/null 2>&1 || true
}
if [ "$DATA" = postgres ]; then
  PGBIN=$(pg_config --bindir 2>/dev/null || true)
  if [ ! -x "$PGBIN/initdb" ]; then
    PGBIN=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -t/ -k5 -n | tail -1)
  fi
  [ -x "$PGBIN/initdb" ] || die "PostgreSQL's initdb is not in pg_config --bindir or /usr/lib/postgresql/*/bin: install the package postgresql"
  mkdir -p "$PGDIR"
  [ "$(id -u)" = 0 ] && chown postgres: "$PGDIR"
  pg_run test -w "$PGDIR" -a -x "$PGDIR" ||
    die "the postgres user cannot write in $PGDIR (a parent directory is private to $(id -un)?): set DEMO_DIR to a directory it can reach"
  # A cluster of an earlier demo that was killed before it could stop it.
  if pg_run "$PGBIN/pg_ctl" status -D "$PGDATA" >/dev/null 2>&1; then
    say "stopping the PostgreSQL an earlier demo left running"
    pg_stop
  fi
fi

ports=("$C2S" "$COMP" "$PHTTP" "$HTTP" "$ADMIN")
[ "$STORE" = s3 ] && ports+=("$S3PORT")
[ "$DATA" = postgres ] && ports+=("$PGPORT")
for p in "${ports[@]}"; do
  if (exec 3<>"/dev/tcp/127.0.0.1/$p") 2>/dev/null; then
    die "port $p on 127.0.0.1 is already in use (another demo or XMPP server?); stop it first"
  fi
done

# --- Prosody, from the same config the integration tests use ---
export XMPP_TEST_DIR=$DEMO_DIR/prosody XMPP_DOMAIN=$DOMAIN
export XMPP_C2S_PORT=$C2S XMPP_COMPONENT_PORT=$COMP XMPP_HTTP_PORT=$PHTTP
mkdir -p "$XMPP_TEST_DIR/data" "$XMPP_TEST_DIR/certs"
[ -s "$DEMO_DIR/component.secret" ] || { umask 077; head -c 24 /dev/urandom | od -An -tx1 | tr -d ' \n' > "$DEMO_DIR/component.secret"; }
export MEDIASLOT_COMPONENT_SECRET=$(cat "$DEMO_DIR/component.secret")
cfg=$XMPP_TEST_DIR/prosody.cfg.lua
# the attach snippet in it is the README's, for example.net: put in the domain and the secret
(umask 077; sed -e "s/example\.net/$DOMAIN/g" -e "s/PASTE-THE-SECRET-HERE/$MEDIASLOT_COMPONENT_SECRET/" \
  testdata/prosody/prosody.cfg.lua > "$cfg")
if [ ! -s "$XMPP_TEST_DIR/certs/$DOMAIN.crt" ]; then
  openssl req -x509 -newkey rsa:2048 -nodes -days 3650 -subj "/CN=$DOMAIN" \
    -addext "subjectAltName=DNS:$DOMAIN,DNS:*.$DOMAIN" \
    -keyout "$XMPP_TEST_DIR/certs/$DOMAIN.key" -out "$XMPP_TEST_DIR/certs/$DOMAIN.crt" 2>/dev/null
fi
for u in alice bob carol; do
  prosodyctl --config "$cfg" register "$u" "$DOMAIN" "$u" >/dev/null 2>&1 || die "could not register $u (see $XMPP_TEST_DIR)"
done

# --- the store: the embedded disk store, or S3 (versitygw) ---
mkdir -p "$DEMO_DIR/mediaslot"
store_conf='[store]
type = "disk"
dir = "files"'
if [ "$STORE" = s3 ]; then
  gw=$(scripts/versitygw.sh)
  mkdir -p "$DEMO_DIR/s3/mediaslot"   # posix backend: a directory per bucket
  [ -s "$DEMO_DIR/s3.secret" ] || { umask 077; head -c 18 /dev/urandom | od -An -tx1 | tr -d ' \n' > "$DEMO_DIR/s3.secret"; }
  export MEDIASLOT_S3_SECRET_ACCESS_KEY=$(cat "$DEMO_DIR/s3.secret")
  store_conf="[store]
type = \"s3\"

[store.s3]
endpoint = \"http://127.0.0.1:$S3PORT\"
region = \"us-east-1\"
bucket = \"mediaslot\"
path_style = true
access_key_id = \"demo\"
download = \"redirect\"
cors_origins = [\"*\"]"
fi

data_conf='[data]
dir = "data"'
if [ "$DATA" = postgres ]; then
  [ -s "$DEMO_DIR/postgres.secret" ] || { umask 077; head -c 18 /dev/urandom | od -An -tx1 | tr -d ' \n' > "$DEMO_DIR/postgres.secret"; }
  export MEDIASLOT_DATA_PASSWORD=$(cat "$DEMO_DIR/postgres.secret")
  data_conf="[data]
dir = \"data\"
backend = \"postgres\"
dsn = \"postgres://mediaslot@127.0.0.1:$PGPORT/mediaslot?sslmode=disable\""
fi

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

pids=() pg_started=0
cleanup() {
  trap - INT TERM EXIT
  [ ${#pids[@]} = 0 ] && [ $pg_started = 0 ] && return
  say "stopping"
  for pid in "${pids[@]}"; do kill -TERM "$pid" 2>/dev/null || true; done
  # PostgreSQL last, once mediaslot is gone, within the 10 s of a stop.
  waits=90
  [ $pg_started = 1 ] && waits=60
  for _ in $(seq 1 $waits); do
    alive=0
    for pid in "${pids[@]}"; do kill -0 "$pid" 2>/dev/null && alive=1; done
    [ $alive = 0 ] && break
    sleep 0.1
  done
  for pid in "${pids[@]}"; do kill -KILL "$pid" 2>/dev/null || true; done
  [ $pg_started = 1 ] && pg_stop
  say "stopped"
}
trap 'cleanup; exit 0' INT TERM
trap cleanup EXIT

prosody --config "$cfg" -F >>"$XMPP_TEST_DIR/stdout.log" 2>&1 &
pids+=($!)
if [ "$STORE" = s3 ]; then
  ROOT_ACCESS_KEY_ID=demo ROOT_SECRET_ACCESS_KEY=$MEDIASLOT_S3_SECRET_ACCESS_KEY \
    "$gw" --port "127.0.0.1:$S3PORT" --region us-east-1 --quiet --keep-alive posix "$DEMO_DIR/s3" >>"$DEMO_DIR/s3.log" 2>&1 &
  pids+=($!)
fi
wait_port() { for _ in $(seq 1 200); do (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null && return 0; sleep 0.05; done; die "Prosody did not open port $1; see $XMPP_TEST_DIR/stdout.log"; }
wait_port "$C2S"; wait_port "$COMP"; wait_port "$PHTTP"
[ "$STORE" = s3 ] && wait_port "$S3PORT"

if [ "$DATA" = postgres ]; then
  if [ ! -s "$PGDATA/PG_VERSION" ]; then
    say "creating the PostgreSQL cluster in $PGDATA"
    rm -rf "$PGDATA"
    printf '%s\n' "$MEDIASLOT_DATA_PASSWORD" | pg_run sh -c 'umask 077; cat > "$1"' sh "$PGDIR/pwfile"
    pg_run "$PGBIN/initdb" -D "$PGDATA" -U mediaslot --pwfile "$PGDIR/pwfile" --auth-local=trust \
      --auth-host=scram-sha-256 -E UTF8 --locale=C >"$PGDIR/initdb.log" 2>&1 || die "initdb failed; see $PGDIR/initdb.log"
    rm -f "$PGDIR/pwfile"
  fi
  # pg_ctl starts the server in a session of its own: a Ctrl-C reaches the
  # script, which stops PostgreSQL after mediaslot.
  pg_started=1
  pg_run "$PGBIN/pg_ctl" start -D "$PGDATA" -l "$PGDIR/postgres.log" -w -t 60 -o "-c listen_addresses=127.0.0.1 -c port=$PGPORT -c unix_socket_directories='$PGDIR' -c shared_buffers=32MB" >/dev/null ||
    die "PostgreSQL did not start; see $PGDIR/postgres.log"
  psql_demo() { pg_run "$PGBIN/psql" -h "$PGDIR" -p "$PGPORT" -U mediaslot -d postgres -Atqc "$1"; }
  [ "$(psql_demo "SELECT 1 FROM pg_database WHERE datname = 'mediaslot'")" = 1 ] ||
    psql_demo "CREATE DATABASE mediaslot" || die "could not create the database mediaslot; see $PGDIR/postgres.log"
fi

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
  if [ $pg_started = 1 ] && ! kill -0 "$(head -1 "$PGDATA/postmaster.pid" 2>/dev/null)" 2>/dev/null; then
    say "PostgreSQL exited; see $PGDIR/postgres.log"; exit 1
  fi
  sleep 0.5 & wait $! || true
done
