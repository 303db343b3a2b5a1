#!/usr/bin/env bash
# make demo-cluster: three mediaslot instances as one service, on loopback, in the
# foreground: ejabberd 23.01 (Debian's package) with one component and three
# connections to it, PostgreSQL (slot records, quotas, the relay queue, the leases of
# the background work), versitygw (the S3 store all three share) and nginx in front
# of their HTTP listeners. State lives in $DEMO_DIR (default ./.demo-cluster) and
# survives restarts; `make demo-clean` wipes it. Ctrl-C (SIGINT) or SIGTERM stops
# everything within 10 s.
#
# Fixed demo facts: XMPP domain localhost; users alice, bob, carol (password = name);
# c2s 127.0.0.1:5222 (STARTTLS offered, self-signed); component upload.localhost on
# 127.0.0.1:5347 with three connections, balanced by bare source JID (DEMO_BALANCING=random:
# ejabberd's default; docs/EJABBERD.md, "Several instances");
# nginx, the public HTTP front, on 127.0.0.1:5050 (slot GET URLs point there);
# S3 (versitygw) on 127.0.0.1:7070 (slot PUT URLs point there); PostgreSQL on
# 127.0.0.1:5433; instance N (1..3): HTTP listener 127.0.0.1:507N behind nginx, admin
# listener (/metrics, /healthz, /readyz) 127.0.0.1:506N, PID in $DEMO_DIR/mediaslot-N.pid,
# config and log in $DEMO_DIR/mediaslot-N/.
# An instance that dies stays dead (the operator's supervisor restarts it in
# production): `scripts/demo-cluster.sh restart N` starts it again by hand.
# The ports can be moved (the integration test does, to run beside a live demo) with
# DEMO_C2S_PORT, DEMO_COMPONENT_PORT, DEMO_HTTP_PORT (nginx), DEMO_S3_PORT, DEMO_PG_PORT,
# DEMO_EJABBERD_HTTP_PORT (mod_http_api, which registers the users; 5280),
# DEMO_ADMIN_PORTS and DEMO_INSTANCE_PORTS (three each, space-separated).
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
DEMO_DIR=$(mkdir -p "${DEMO_DIR:-$root/.demo-cluster}" && cd "${DEMO_DIR:-$root/.demo-cluster}" && pwd)
DEMO_NAME=demo-cluster
C2S=${DEMO_C2S_PORT:-5222} COMP=${DEMO_COMPONENT_PORT:-5347} HTTP=${DEMO_HTTP_PORT:-5050}
S3PORT=${DEMO_S3_PORT:-7070} PGPORT=${DEMO_PG_PORT:-5433} EHTTP=${DEMO_EJABBERD_HTTP_PORT:-5280}
read -r -a ADMIN <<<"${DEMO_ADMIN_PORTS:-5061 5062 5063}"
read -r -a IHTTP <<<"${DEMO_INSTANCE_PORTS:-5071 5072 5073}"
DOMAIN=localhost
MEDIASLOT_BIN=${MEDIASLOT_BIN:-$root/bin/mediaslot}

. scripts/demo-lib.sh

# instance N: starts mediaslot instance N in the background (its own process
# group: a Ctrl-C reaches the script, which stops it by its PID file).
instance() {
  local dir=$DEMO_DIR/mediaslot-$1
  setsid "$MEDIASLOT_BIN" serve --config "$dir/mediaslot.toml" >>"$dir/mediaslot.log" 2>&1 </dev/null &
  echo $! > "$DEMO_DIR/mediaslot-$1.pid"
  disown $!   # its death is reported below, not by bash as a killed job
}

# instance_pid N: the PID of instance N if it runs (a PID file whose process
# is gone, or is not mediaslot any more, gives nothing).
instance_pid() {
  local pid
  pid=$(cat "$DEMO_DIR/mediaslot-$1.pid" 2>/dev/null) || return 0
  grep -qa mediaslot "/proc/$pid/cmdline" 2>/dev/null && echo "$pid"
  return 0
}

if [ "${1:-}" = restart ]; then
  n=${2:-}
  [[ $n =~ ^[123]$ ]] || die "usage: $0 restart 1|2|3"
  [ -n "$(instance_pid "$n")" ] && die "instance $n runs (PID $(instance_pid "$n"))"
  MEDIASLOT_S3_SECRET_ACCESS_KEY=$(cat "$DEMO_DIR/s3.secret") instance "$n"
  say "instance $n started again, PID $(cat "$DEMO_DIR/mediaslot-$n.pid"), log $DEMO_DIR/mediaslot-$n/mediaslot.log"
  exit 0
fi

scripts/deps.sh cluster
[ -x "$MEDIASLOT_BIN" ] || die "$MEDIASLOT_BIN is missing: run 'make build' (make demo-cluster does)"
ERL_LIBS=$(dirname "$(ls -d /usr/lib/*/ejabberd-[0-9]* 2>/dev/null | sort -V | tail -1)")
[ -d "$ERL_LIBS" ] && command -v erl >/dev/null || die "ejabberd is not installed (no /usr/lib/*/ejabberd-*): scripts/deps.sh cluster installs it"
NGINX=$(command -v nginx || echo /usr/sbin/nginx)
pg_init
ports_free "$C2S" "$COMP" "$HTTP" "$S3PORT" "$PGPORT" "$EHTTP" "${ADMIN[@]}" "${IHTTP[@]}"

# --- ejabberd, from the config the integration tests use ---
EDIR=$DEMO_DIR/ejabberd
mkdir -p "$EDIR/certs" "$EDIR/spool" "$EDIR/log" "$EDIR/upload"
self_signed "$EDIR/certs" "$DOMAIN"
COMPONENT_SECRET=$(secret "$DEMO_DIR/component.secret")
# DEMO_BALANCING=random leaves ejabberd's default: each stanza to any live
# connection (a sender's stanzas may overtake each other); bare_source (the
# default) keeps a sender on one connection, and drops what a dead instance's
# share of senders send until it is back (docs/EJABBERD.md, "Several instances").
BALANCING=${DEMO_BALANCING:-bare_source}
case $BALANCING in
  bare_source) balancing=testdata/ejabberd/balancing.yml.in ;;
  random) balancing=/dev/null ;;
  *) die "DEMO_BALANCING=$BALANCING: bare_source or random" ;;
esac
(umask 077; sed -e "s|@DIR@|$EDIR|g" -e "s|@DOMAIN@|$DOMAIN|g" -e "s|@C2S@|$C2S|g" -e "s|@COMP@|$COMP|g" \
  -e "s|@HTTP@|$EHTTP|g" -e "s|@SECRET@|$COMPONENT_SECRET|g" -e "s|@N@|3|g" \
  testdata/ejabberd/ejabberd.yml.in "$balancing" > "$EDIR/ejabberd.yml")
printf '{lookup,[file,native]}.\n' > "$EDIR/inetrc"

# --- nginx: the public front, spreading requests over the instances ---
NDIR=$DEMO_DIR/nginx
mkdir -p "$NDIR"
{
  cat <<NGINX
# Written by scripts/demo-cluster.sh on every start.
daemon off;
master_process off;
pid $NDIR/nginx.pid;
error_log $NDIR/error.log;
events { worker_connections 512; }
http {
    access_log $NDIR/access.log;
    client_body_temp_path $NDIR/body;
    proxy_temp_path $NDIR/proxy;
    fastcgi_temp_path $NDIR/fastcgi;
    uwsgi_temp_path $NDIR/uwsgi;
    scgi_temp_path $NDIR/scgi;
    upstream mediaslot {
NGINX
  # a dead instance is skipped for 5 s after one failed attempt; GET and HEAD
  # (idempotent) go on to the next instance at once
  for p in "${IHTTP[@]}"; do echo "        server 127.0.0.1:$p max_fails=1 fail_timeout=5s;"; done
  cat <<NGINX
        keepalive 16;
    }
    server {
        listen 127.0.0.1:$HTTP;
        client_max_body_size 101m;
        location / {
            proxy_pass http://mediaslot;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
            proxy_request_buffering off;
            proxy_buffering off;
            proxy_connect_timeout 2s;
            proxy_next_upstream error timeout;
            proxy_set_header Host \$host;
            proxy_set_header X-Forwarded-For \$proxy_add_x_forwarded_for;
        }
    }
}
NGINX
} > "$NDIR/nginx.conf"
"$NGINX" -t -q -c "$NDIR/nginx.conf" -p "$NDIR" 2>"$NDIR/check.log" || die "nginx refuses its config; see $NDIR/check.log"

# --- the three instances: one S3 bucket, one database, one token key ---
secret "$DEMO_DIR/token.key" >/dev/null
for n in 1 2 3; do
  mkdir -p "$DEMO_DIR/mediaslot-$n"
  cat > "$DEMO_DIR/mediaslot-$n/mediaslot.toml" <<TOML
# Written by scripts/demo-cluster.sh on every start: instance $n of 3. The S3
# secret comes from MEDIASLOT_S3_SECRET_ACCESS_KEY, the others from their files.
[component]
jid = "upload.$DOMAIN"
server = "127.0.0.1:$COMP"
secret_file = "$DEMO_DIR/component.secret"
reconnect_max = "2s"

[http]
listen = "127.0.0.1:${IHTTP[n-1]}"
public_url = "http://127.0.0.1:$HTTP"
# every request comes from nginx
max_connections_per_address = 0

[upload]
max_file_size = 104857600
daily_quota = 107374182400
slot_rate = 0.0
# one key for the cluster: a slot issued by one instance is good on all
token_key_file = "$DEMO_DIR/token.key"

$(s3_conf "$S3PORT")

$(pg_conf "$PGPORT")
password_file = "$DEMO_DIR/postgres.secret"

[admin]
listen = "127.0.0.1:${ADMIN[n-1]}"
TOML
done

cleanup() {
  trap - INT TERM EXIT
  for n in 1 2 3; do
    pid=$(instance_pid $n)
    [ -n "$pid" ] && pids+=("$pid")
  done
  [ ${#pids[@]} = 0 ] && [ $pg_started = 0 ] && return
  say "stopping"
  stop_all
  say "stopped"
}
trap 'cleanup; exit 0' INT TERM
trap cleanup EXIT

HOME=$EDIR EJABBERD_CONFIG_PATH=$EDIR/ejabberd.yml EJABBERD_LOG_PATH=$EDIR/log/ejabberd.log \
  ERL_LIBS=$ERL_LIBS ERL_INETRC=$EDIR/inetrc ERL_CRASH_DUMP_BYTES=0 \
  erl -noinput +K true -mnesia dir "\"$EDIR/spool\"" -s ejabberd >>"$EDIR/stdout.log" 2>&1 &
pids+=($!)
ejabberd_pid=$!
s3_start "$S3PORT"
"$NGINX" -c "$NDIR/nginx.conf" -p "$NDIR" >>"$NDIR/stdout.log" 2>&1 &
pids+=($!)
pg_start "$PGPORT"
for p in "$C2S" "$COMP" "$EHTTP"; do wait_port "$p" "ejabberd (see $EDIR/log/ejabberd.log)"; done
wait_port "$S3PORT" "versitygw (see $DEMO_DIR/s3.log)"
wait_port "$HTTP" "nginx (see $NDIR/error.log)"
for u in alice bob carol; do
  out=$(curl -sS -m 10 -d "{\"user\":\"$u\",\"host\":\"$DOMAIN\",\"password\":\"$u\"}" "http://127.0.0.1:$EHTTP/api/register" 2>&1) ||
    die "could not register $u: $out (see $EDIR/log/ejabberd.log)"
done

for n in 1 2 3; do instance $n; done
# Ready once each instance says so: connected to ejabberd, the store probed.
for n in 1 2 3; do
  for _ in $(seq 1 300); do
    curl -sf -m 1 "http://127.0.0.1:${ADMIN[n-1]}/readyz" >/dev/null 2>&1 && break
    [ -n "$(instance_pid $n)" ] || die "instance $n exited; see $DEMO_DIR/mediaslot-$n/mediaslot.log"
    sleep 0.1
  done
  curl -sf -m 1 "http://127.0.0.1:${ADMIN[n-1]}/readyz" >/dev/null 2>&1 ||
    die "instance $n is not ready: $(curl -s -m 1 "http://127.0.0.1:${ADMIN[n-1]}/readyz"); see $DEMO_DIR/mediaslot-$n/mediaslot.log"
done

cat <<READY
mediaslot demo ready: 3 instances; XMPP domain $DOMAIN, c2s 127.0.0.1:$C2S (STARTTLS, self-signed), users alice/alice bob/bob carol/carol
  upload service  upload.$DOMAIN (component on 127.0.0.1:$COMP, 3 connections, balancing $BALANCING)
  files           http://127.0.0.1:$HTTP/ (nginx in front of 127.0.0.1:${IHTTP[0]}, :${IHTTP[1]}, :${IHTTP[2]}); PUTs go to S3 (versitygw) on http://127.0.0.1:$S3PORT
  data            PostgreSQL on 127.0.0.1:$PGPORT, database and user mediaslot (password in $DEMO_DIR/postgres.secret)
  instances       admin http://127.0.0.1:${ADMIN[0]}/, :${ADMIN[1]}/, :${ADMIN[2]}/ (metrics, healthz, readyz); PIDs in $DEMO_DIR/mediaslot-{1,2,3}.pid
  failover        kill -9 \$(cat $DEMO_DIR/mediaslot-2.pid); it stays dead until: scripts/demo-cluster.sh restart 2
                  ($([ "$BALANCING" = bare_source ] && echo "bare_source: the users hashed to its slot get no answers meanwhile" || echo "random: the others answer everyone"))
  try             go-sendxmpp -u alice@$DOMAIN -p alice -j 127.0.0.1:$C2S -n -h FILE bob@$DOMAIN
  state           $DEMO_DIR (make demo-clean wipes it); logs $DEMO_DIR/mediaslot-N/mediaslot.log, $EDIR/log/ejabberd.log
  stop            Ctrl-C
READY

# Run until a signal or until a shared service dies; instances may die (and
# be restarted by hand) without ending the demo.
gone=()
while :; do
  for pid in "${pids[@]}"; do
    # On Ctrl-C the whole process group gets SIGINT and a child may die before
    # our trap runs: the sleep lets a pending trap end the demo normally first.
    kill -0 "$pid" 2>/dev/null || { sleep 0.3; say "process $pid exited ($([ "$pid" = "$ejabberd_pid" ] && echo ejabberd || echo "versitygw or nginx")); see the logs in $DEMO_DIR"; exit 1; }
  done
  pg_alive || { say "PostgreSQL exited; see $PGDIR/postgres.log"; exit 1; }
  for n in 1 2 3; do
    if [ -n "$(instance_pid $n)" ]; then
      gone[n]=0
    elif [ "${gone[n]:-0}" = 0 ]; then
      gone[n]=1
      say "instance $n is gone; the others serve. Start it again: scripts/demo-cluster.sh restart $n"
    fi
  done
  sleep 0.5 & wait $! || true
done
