#!/usr/bin/python3
"""Real-client relay check with Debian's python3-slixmpp (1.8.3).

Usage:
  slix_relay.py send    JID PASSWORD HOST PORT STANZA_FILE WAIT_SECONDS
      logs in, sends initial presence, sends the stanza in STANZA_FILE as it is
      (the server stamps 'from'), then collects error messages for WAIT_SECONDS.
  slix_relay.py receive JID PASSWORD HOST PORT COUNT TIMEOUT_SECONDS
      logs in, sends initial presence (which makes the server, and mediaslot
      through mod_privilege, see it online), and collects COUNT messages.

Prints ONE JSON object on stdout: {"messages": [xml, ...], "errors": [xml, ...],
"ready_ms": ms from start to presence sent, "error": string or null}. Prosody's
empty <privilege/> message to every client is ignored. Exit 0 when the run
completed, 2 on login failure or timeout of the login.
"""
import asyncio
import json
import logging
import os
import ssl
import sys
import time

LOGIN_TIMEOUT = 10.0
out = {"messages": [], "errors": [], "ready_ms": None, "error": None}


def emit(code):
    sys.stdout.write(json.dumps(out) + "\n")
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)


async def run(mode, jid, password, host, port, arg, seconds):
    import slixmpp

    t0 = time.monotonic()
    loop = asyncio.get_running_loop()
    client = slixmpp.ClientXMPP(jid, password)
    client.loop = loop
    client.ssl_context.check_hostname = False
    client.ssl_context.verify_mode = ssl.CERT_NONE
    session = loop.create_future()
    want = int(arg) if mode == "receive" else 0
    done = loop.create_future()

    def settle(exc=None):
        if not session.done():
            session.set_result(True) if exc is None else session.set_exception(exc)

    def on_message(msg):
        xml = str(msg)
        if msg["type"] == "error":
            out["errors"].append(xml)
            return
        if "urn:xmpp:privilege" in xml and not msg["body"]:
            return  # mod_privilege's empty advertisement to every client
        out["messages"].append(xml)
        if want and len(out["messages"]) >= want and not done.done():
            done.set_result(True)

    client.add_event_handler("session_start", lambda _: settle())
    client.add_event_handler("failed_all_auth", lambda _: settle(RuntimeError("authentication failed")))
    client.add_event_handler("connection_failed", lambda e: settle(RuntimeError("connection failed: %s" % (e,))))
    client.add_event_handler("message", on_message)
    client.add_event_handler("message_error", on_message)
    client.connect(address=(host, int(port)), force_starttls=False, disable_starttls=False)
    try:
        await asyncio.wait_for(session, LOGIN_TIMEOUT)
        client.send_presence()
        out["ready_ms"] = round((time.monotonic() - t0) * 1000)
        sys.stderr.write("ready\n")
        sys.stderr.flush()
        if mode == "send":
            with open(arg) as f:
                client.send_raw(f.read())
            await asyncio.sleep(seconds)
        else:
            try:
                await asyncio.wait_for(done, seconds)
            except asyncio.TimeoutError:
                out["error"] = "received %d of %d messages within %.0f s" % (len(out["messages"]), want, seconds)
    finally:
        try:
            await asyncio.wait_for(client.disconnect(wait=1.0), 2.0)
        except Exception:  # noqa: BLE001 - best effort
            client.abort()


def main():
    if len(sys.argv) != 8 or sys.argv[1] not in ("send", "receive"):
        sys.stderr.write(__doc__)
        sys.exit(1)
    logging.basicConfig(level=getattr(logging, os.environ.get("SLIX_LOG", "WARNING")), stream=sys.stderr)
    mode, jid, password, host, port, arg, seconds = sys.argv[1:8]
    try:
        asyncio.run(run(mode, jid, password, host, port, arg, float(seconds)))
    except Exception as e:  # noqa: BLE001 - report as JSON
        out["error"] = "%s: %s" % (type(e).__name__, e)
        emit(2)
    emit(0)


if __name__ == "__main__":
    main()
