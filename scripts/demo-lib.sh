# Pieces shared by scripts/demo.sh (make demo, demo-s3, demo-pg) and
# scripts/demo-cluster.sh (make demo-cluster); sourced, not run. The caller
# sets DEMO_DIR (an absolute path) and runs from the repository's root.

# pids are the processes the demo started and stops (stop_all).
pids=()

say() { printf '%s: %s\n' "${DEMO_NAME:-demo}" "$*"; }
die() { printf '%s: %s\n' "${DEMO_NAME:-demo}" "$*" >&2; exit 1; }

# secret FILE: prints the random secret kept in FILE, made on first use.
secret() {
  [ -s "$1" ] || (umask 077; head -c 18 /dev/urandom | od -An -tx1 | tr -d ' \n' > "$1")
  cat "$1"
}

# ports_free PORT...: dies if something listens on one of them on 127.0.0.1.
ports_free() {
  for p in "$@"; do
    if (exec 3<>"/dev/tcp/127.0.0.1/$p") 2>/dev/null; then
      die "port $p on 127.0.0.1 is already in use (another demo or XMPP server?); stop it first"
    fi
  done
}

# wait_port PORT WHAT: waits up to 10 s for 127.0.0.1:PORT to accept.
wait_port() {
  for _ in $(seq 1 200); do (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null && return 0; sleep 0.05; done
  die "$2 did not open port $1"
}

# self_signed DIR DOMAIN: a certificate for DOMAIN and its subdomains in
# DIR/DOMAIN.crt and .key, made once.
self_signed() {
  [ -s "$1/$2.crt" ] && return 0
  openssl req -x509 -newkey rsa:2048 -nodes -days 3650 -subj "/CN=$2" \
    -addext "subjectAltName=DNS:$2,DNS:*.$2" -keyout "$1/$2.key" -out "$1/$2.crt" 2>/dev/null
}

# s3_conf PORT: the [store] section of mediaslot on the demo's versitygw;
# the secret comes from MEDIASLOT_S3_SECRET_ACCESS_KEY.
s3_conf() {
  cat <<TOML
[store]
type = "s3"

[store.s3]
endpoint = "http://127.0.0.1:$1"
region = "us-east-1"
bucket = "mediaslot"
path_style = true
access_key_id = "demo"
download = "redirect"
cors_origins = ["*"]
TOML
}

# s3_start PORT: versitygw (built on first use) in the background on
# 127.0.0.1:PORT with its buckets in $DEMO_DIR/s3 (the bucket mediaslot
# made), its root key demo/$DEMO_DIR/s3.secret exported as
# MEDIASLOT_S3_SECRET_ACCESS_KEY; its PID is appended to pids.
s3_start() {
  local gw
  gw=$(scripts/versitygw.sh)
  mkdir -p "$DEMO_DIR/s3/mediaslot"   # posix backend: a directory per bucket
  MEDIASLOT_S3_SECRET_ACCESS_KEY=$(secret "$DEMO_DIR/s3.secret")
  export MEDIASLOT_S3_SECRET_ACCESS_KEY
  ROOT_ACCESS_KEY_ID=demo ROOT_SECRET_ACCESS_KEY=$MEDIASLOT_S3_SECRET_ACCESS_KEY \
    "$gw" --port "127.0.0.1:$1" --region us-east-1 --quiet --keep-alive posix "$DEMO_DIR/s3" >>"$DEMO_DIR/s3.log" 2>&1 &
  pids+=($!)
}

# --- PostgreSQL: the cluster's files in $PGDIR, run as the postgres user
# when we are root (PostgreSQL refuses root). pg_init finds it and stops a
# cluster an earlier demo left running; pg_start creates (once) and starts
# it on 127.0.0.1:PORT with the database and user mediaslot, whose
# password is $DEMO_DIR/postgres.secret (exported as MEDIASLOT_DATA_PASSWORD);
# pg_stop stops it. pg_started says whether the demo must stop it.
PGDIR=$DEMO_DIR/postgres PGDATA=$DEMO_DIR/postgres/data pg_started=0
pg_run() { if [ "$(id -u)" = 0 ]; then runuser -u postgres -- "$@"; else "$@"; fi; }
pg_stop() {
  # fast: sessions are ended, the data checkpointed; immediate (recovered from
  # the WAL at the next start) if that takes too long.
  pg_run "$PGBIN/pg_ctl" stop -D "$PGDATA" -m fast -w -t 4 >/dev/null 2>&1 ||
    pg_run "$PGBIN/pg_ctl" stop -D "$PGDATA" -m immediate -w -t 2 >/dev/null 2>&1 || true
}
pg_init() {
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
  MEDIASLOT_DATA_PASSWORD=$(secret "$DEMO_DIR/postgres.secret")
  export MEDIASLOT_DATA_PASSWORD
}
pg_start() {
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
  pg_run "$PGBIN/pg_ctl" start -D "$PGDATA" -l "$PGDIR/postgres.log" -w -t 60 -o "-c listen_addresses=127.0.0.1 -c port=$1 -c unix_socket_directories='$PGDIR' -c shared_buffers=32MB" >/dev/null ||
    die "PostgreSQL did not start; see $PGDIR/postgres.log"
  local q="SELECT 1 FROM pg_database WHERE datname = 'mediaslot'"
  [ "$(pg_run "$PGBIN/psql" -h "$PGDIR" -p "$1" -U mediaslot -d postgres -Atqc "$q")" = 1 ] ||
    pg_run "$PGBIN/psql" -h "$PGDIR" -p "$1" -U mediaslot -d postgres -Atqc "CREATE DATABASE mediaslot" ||
    die "could not create the database mediaslot; see $PGDIR/postgres.log"
}
# pg_alive: the cluster pg_start started still runs.
pg_alive() { kill -0 "$(head -1 "$PGDATA/postmaster.pid" 2>/dev/null)" 2>/dev/null; }

# pg_conf PORT: the [data] section of mediaslot on the demo's PostgreSQL.
pg_conf() {
  cat <<TOML
[data]
dir = "data"
backend = "postgres"
dsn = "postgres://mediaslot@127.0.0.1:$1/mediaslot?sslmode=disable"
TOML
}

# stop_all: SIGTERM to every PID of pids, SIGKILL to what still runs after
# 9 s (6 s with PostgreSQL, which is stopped last, once mediaslot is gone),
# within the 10 s of a stop.
stop_all() {
  local waits=90 alive pid
  [ "$pg_started" = 1 ] && waits=60
  for pid in "${pids[@]}"; do kill -TERM "$pid" 2>/dev/null || true; done
  for _ in $(seq 1 $waits); do
    alive=0
    for pid in "${pids[@]}"; do kill -0 "$pid" 2>/dev/null && alive=1; done
    [ $alive = 0 ] && break
    sleep 0.1
  done
  for pid in "${pids[@]}"; do kill -KILL "$pid" 2>/dev/null || true; done
  [ "$pg_started" = 1 ] && pg_stop
  return 0
}
