#!/usr/bin/env bash
# Installs the Debian packages a make target needs, if they are missing.
#   scripts/deps.sh prosody   the demo stack (prosody, prosody-modules, lua-unbound, openssl)
#   scripts/deps.sh postgres  the demo stack and postgresql (make demo-pg)
#   scripts/deps.sh test      also the real clients of the integration suite, ejabberd (second server)
#                             systemd (systemd-analyze checks contrib/mediaslot.service) and nginx
#                             (the TLS proxy of docs/OPERATIONS.md is tested) and postgresql (the tests start
#                             private clusters of their own; the package's cluster is not started)
# Needs root (or sudo) only when something is missing.
set -euo pipefail
want=(prosody prosody-modules lua-unbound openssl ca-certificates)
[ "${1:-prosody}" = postgres ] && want+=(postgresql)
[ "${1:-prosody}" = test ] && want+=(go-sendxmpp python3-slixmpp python3-aiohttp ejabberd systemd nginx postgresql)
missing=()
for p in "${want[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
[ ${#missing[@]} = 0 ] && exit 0
echo "installing: ${missing[*]}"
sudo=""
[ "$(id -u)" = 0 ] || sudo="sudo"
# Packages must not start system services (the system Prosody would take port 5222).
if [ ! -e /usr/sbin/policy-rc.d ]; then
  printf '#!/bin/sh\nexit 101\n' | $sudo tee /usr/sbin/policy-rc.d >/dev/null
  $sudo chmod +x /usr/sbin/policy-rc.d
  trap '$sudo rm -f /usr/sbin/policy-rc.d' EXIT
fi
$sudo apt-get update -qq
DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
