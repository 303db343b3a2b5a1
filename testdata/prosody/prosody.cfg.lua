-- Private Prosody 0.12 instance for mediaslot's demo stack and integration tests.
-- Loopback only, no s2s. Everything is parameterised through environment variables:
-- Prosody's config resolves any global named ENV_FOO to os.getenv("FOO").
--
--   XMPP_TEST_DIR          directory holding data/, certs/<domain>.crt/.key, the pidfile and prosody.log
--   XMPP_DOMAIN            VirtualHost name (default "localhost"); components are upload.<domain> and share.<domain>
--   XMPP_C2S_PORT          client port (default 5222)
--   XMPP_COMPONENT_PORT    XEP-0114 component port (default 5347)
--   XMPP_HTTP_PORT         Prosody's own HTTP port, used by share.<domain> (default 5280)
--   XMPP_HIDE_COMPONENT    "1" hides upload.<domain> from the host's disco#items (optional)
--
-- The attach snippet below is the README's, for example.net, so it is not run as it is: a copy with
-- example.net replaced by the domain and PASTE-THE-SECRET-HERE by the component secret is (testserver
-- and scripts/demo.sh make it).
--
-- Run (as root or not):  prosody --config THE_COPY -F      (foreground; SIGTERM stops it)
-- Users:                 prosodyctl --config THE_COPY register alice <domain> alice

local dir    = ENV_XMPP_TEST_DIR or "/tmp/mediaslot-prosody"
local domain = ENV_XMPP_DOMAIN or "localhost"

run_as_root = true                 -- tests/CI run as root: without this mod_posix refuses to start and prosodyctl setuid()s to 'prosody'
pidfile     = dir.."/prosody.pid"
data_path   = dir.."/data"

-- Listen on loopback only.
interfaces           = { "127.0.0.1" }
local_interfaces     = { "127.0.0.1" }
c2s_ports            = { tonumber(ENV_XMPP_C2S_PORT) or 5222 }
c2s_direct_tls_ports = { }         -- no direct-TLS c2s listener
component_interfaces = { "127.0.0.1" }
component_ports      = { tonumber(ENV_XMPP_COMPONENT_PORT) or 5347 }
http_interfaces      = { "127.0.0.1" }
http_ports           = { tonumber(ENV_XMPP_HTTP_PORT) or 5280 }
https_ports          = { }         -- else mod_http also opens :5281 and http_url() (slot URLs) prefers https
use_ipv6             = false

modules_enabled = {
  "roster"; "saslauth"; "tls"; "disco"; "ping"; "version"; "time"; "posix";
  "privilege";                     -- prosody-modules, XEP-0356 (urn:xmpp:privilege:2); must ALSO be enabled on the Component
  "offline";                       -- plain messages to offline users kept, as on a stock Debian Prosody (Prosody autoloads it;
                                   -- listed to say so; TestRelayNotStoredByServerOffline checks the relay's are not kept too)
  ENV_PROSODY_LUAPROF and "luaprof" or nil; -- make bench's profile of Prosody's Lua code only (bench/testdata/mod_luaprof.lua)
}
plugin_paths = { ENV_PROSODY_LUAPROF }  -- unset: none besides Prosody's own
modules_disabled = { "s2s" }       -- no s2s listener, no outgoing DNS/s2s

authentication     = "internal_hashed"  -- offers PLAIN and SCRAM-SHA-1 (no -PLUS, no SCRAM-SHA-256 in 0.12)
storage            = "internal"
allow_registration = false         -- accounts are created with prosodyctl

-- STARTTLS offered with a self-signed cert (go-sendxmpp refuses to authenticate without TLS) but not required.
ssl = {
  certificate = dir.."/certs/"..domain..".crt";
  key         = dir.."/certs/"..domain..".key";
}
certificates = dir.."/certs"        -- certificate dir (default "certs" next to this file); avoids an indexing error when run in place
c2s_require_encryption       = false
allow_unencrypted_plain_auth = true  -- plaintext clients may use SASL PLAIN

log = {
  { levels = { min = "info" },  to = "console" };
  { levels = { min = "debug" }, to = "file", filename = dir.."/prosody.log" };  -- includes every stanza
}

-- BEGIN attach snippet (README.md shows these lines; a test keeps them equal; testserver and demo.sh put in XMPP_DOMAIN and the secret)
VirtualHost "example.net"
  -- XEP-0356: let mediaslot see local users' presence and send messages on their behalf
  privileged_entities = {
    ["upload.example.net"] = { presence = "managed_entity"; message = "outgoing"; };
  }

-- mediaslot connects here (XEP-0114)
Component "upload.example.net"
  component_secret = "PASTE-THE-SECRET-HERE" -- the same secret mediaslot has, e.g. the contents of /etc/mediaslot/component.secret
  modules_enabled  = { "privilege" } -- also needed here: it sends the privilege advertisement
-- END attach snippet
  disco_hidden     = ENV_XMPP_HIDE_COMPONENT == "1"

-- Another external component on the same server: tests connect as it to play an untrusted
-- peer of mediaslot (forged XEP-0356 advertisements).
Component ("other."..domain)
  component_secret = "PASTE-THE-SECRET-HERE" -- the test server's secret, put in like the snippet's
  disco_hidden     = true

-- Prosody's own XEP-0363 service, as a conformance/benchmark baseline.
Component ("share."..domain) "http_file_share"
  http_host = "127.0.0.1"          -- slot URLs become http://127.0.0.1:<http port>/file_share/...; no DNS/hosts entry needed
  http_file_share_size_limit  = 104857600               -- 100 MiB per file (default 10 MiB)
  http_file_share_daily_quota = 100*1024*1024*1024      -- 100 GiB per user and day (default 10 x size limit), for benchmarks
  -- mod_http_file_share keeps one archive item per slot in store "uploads"; mod_storage_internal refuses
  -- appends beyond storage_archive_item_limit (default 10000) -> every further slot request fails.
  -- The storage driver is loaded per host, so this host-scoped option applies to this component only.
  storage_archive_item_limit = 10000000
  disco_hidden = true              -- not listed in the host's disco#items: clients that discover pick upload.<domain>
