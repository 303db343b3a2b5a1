#!/usr/bin/python3
"""Real-client XEP-0363 check with Debian's python3-slixmpp (1.8.3) + python3-aiohttp.

Usage: /usr/bin/python3 slix_upload.py JID PASSWORD HOST PORT SERVICE_JID FILE

Logs in over c2s (STARTTLS if offered, self-signed certificate accepted; plaintext
otherwise), sends initial presence, runs disco#info on SERVICE_JID and disco#items on
the server domain, requests an upload slot for FILE with the xep_0363 plugin, then
PUTs the bytes, GETs, HEADs and range-GETs (Range: bytes=N-, N = size//2) the URL.

Prints exactly ONE JSON object on stdout (diagnostics go to stderr):
  features, identities [[category,type,name]], forms [{type, values}], listed_in_items,
  put_url, get_url, put_headers, put_status, get_status, get_sha256, head_status,
  head_content_length, head_content_type, range_status, range_content_range,
  range_sha256, error (string or null)  -- plus extras: file_size, file_sha256,
  content_type, range_start, slot_ms.

Exit status: 0 when the run completed (even if an HTTP status or an IQ result was bad:
the caller asserts on the JSON), 2 on login failure, connection failure or any timeout,
1 on usage errors. Everything is bounded: 30 s overall.

Notes (see /work/shared/notes/TESTENV.md):
  * Debian's python3-* packages import only under /usr/bin/python3.
  * slixmpp 1.8.3's xep_0363 find_upload_service()/upload_file() without a preset
    service crash on Python 3.11, so discovery is done by hand here.
  * With mod_privilege loaded, Prosody sends every c2s client an empty
    <privilege xmlns='urn:xmpp:privilege:2'/> message; it is ignored here.
"""
import asyncio
import hashlib
import json
import logging
import mimetypes
import os
import ssl
import sys
import time

OVERALL_TIMEOUT = 30.0  # seconds, whole run
LOGIN_TIMEOUT = 10.0    # connect + STARTTLS + SASL + bind
IQ_TIMEOUT = 5          # each IQ round trip
HTTP_TIMEOUT = 20.0     # each HTTP request (total), bounded again by OVERALL_TIMEOUT
UPLOAD_NS = "urn:xmpp:http:upload:0"

result = {
    "features": [],
    "identities": [],
    "forms": [],
    "listed_in_items": False,
    "put_url": None,
    "get_url": None,
    "put_headers": {},
    "put_status": None,
    "get_status": None,
    "get_sha256": None,
    "head_status": None,
    "head_content_length": None,
    "head_content_type": None,
    "range_status": None,
    "range_content_range": None,
    "range_sha256": None,
    "error": None,
    # extras
    "file_size": None,
    "file_sha256": None,
    "content_type": None,
    "range_start": None,
    "slot_ms": None,
}
errors = []


class Fatal(Exception):
    """Login/connection failure or timeout: exit status 2."""


def emit(code):
    if errors:
        result["error"] = "; ".join(errors)
    sys.stdout.write(json.dumps(result, sort_keys=True) + "\n")
    sys.stdout.flush()
    # os._exit: don't let pending slixmpp/aiohttp tasks or destructors delay or
    # pollute the exit (stdout is flushed above).
    sys.stderr.flush()
    os._exit(code)


def to_jsonable(v):
    if isinstance(v, (list, tuple)):
        return [to_jsonable(x) for x in v]
    if v is None or isinstance(v, (bool, int, float, str)):
        return v
    return str(v)


async def run(jid, password, host, port, service, path):
    import aiohttp
    import slixmpp
    from slixmpp.exceptions import IqError, IqTimeout

    with open(path, "rb") as f:
        data = f.read()
    filename = os.path.basename(path)
    ctype = mimetypes.guess_type(filename)[0] or "application/octet-stream"
    result["file_size"] = len(data)
    result["file_sha256"] = hashlib.sha256(data).hexdigest()
    result["content_type"] = ctype

    loop = asyncio.get_running_loop()
    client = slixmpp.ClientXMPP(jid, password)
    client.loop = loop
    client.register_plugin("xep_0030")  # service discovery
    client.register_plugin("xep_0004")  # data forms
    client.register_plugin("xep_0128")  # extended disco#info (forms)
    client.register_plugin("xep_0363")  # HTTP File Upload
    # Loopback test server with a self-signed certificate: accept it.
    client.ssl_context.check_hostname = False
    client.ssl_context.verify_mode = ssl.CERT_NONE

    session = loop.create_future()

    def settle(exc=None):
        if session.done():
            return
        if exc is None:
            session.set_result(True)
        else:
            session.set_exception(exc)

    client.add_event_handler("session_start", lambda _: settle())
    client.add_event_handler("failed_all_auth", lambda _: settle(Fatal("authentication failed")))
    client.add_event_handler("connection_failed", lambda e: settle(Fatal("connection failed: %s" % (e,))))
    client.add_event_handler("disconnected", lambda r: settle(Fatal("disconnected before session start: %s" % (r,))))

    def iq_error(what, e):
        err = e.iq["error"]
        return "%s: %s/%s %s" % (what, err["type"], err["condition"], err["text"] or "")

    # force_starttls=False + disable_starttls=False: STARTTLS if the server offers it, plaintext otherwise.
    client.connect(address=(host, int(port)), force_starttls=False, disable_starttls=False)
    try:
        try:
            await asyncio.wait_for(session, LOGIN_TIMEOUT)
        except asyncio.TimeoutError:
            raise Fatal("login timed out after %.0f s" % LOGIN_TIMEOUT)

        client.send_presence()  # mod_privilege forwards it to a managed_entity component

        # disco#info on the upload service
        try:
            info = await client["xep_0030"].get_info(jid=service, cached=False, timeout=IQ_TIMEOUT)
            q = info["disco_info"]
            result["features"] = [str(x) for x in q["features"]]
            # slixmpp identities are (category, type, lang, name)
            result["identities"] = [[i[0], i[1], i[3]] for i in q["identities"]]
            for form in q.iterables:
                if form.name != "x":
                    continue
                values = {str(k): to_jsonable(v) for k, v in dict(form["values"]).items()}
                result["forms"].append({"type": form["type"], "values": values})
        except IqError as e:
            errors.append(iq_error("disco#info " + service, e))
        except IqTimeout:
            raise Fatal("disco#info %s timed out" % service)

        # disco#items on the server domain: is the service listed?
        try:
            items = await client["xep_0030"].get_items(jid=client.boundjid.domain, timeout=IQ_TIMEOUT)
            listed = [str(it[0]) for it in items["disco_items"]["items"]]
            result["listed_in_items"] = slixmpp.JID(service).bare in listed
        except IqError as e:
            errors.append(iq_error("disco#items " + client.boundjid.domain, e))
        except IqTimeout:
            raise Fatal("disco#items %s timed out" % client.boundjid.domain)

        # slot request
        try:
            t0 = time.monotonic()
            slot_iq = await client["xep_0363"].request_slot(
                slixmpp.JID(service), filename, len(data), ctype, timeout=IQ_TIMEOUT)
            result["slot_ms"] = round((time.monotonic() - t0) * 1000, 3)
        except IqError as e:
            errors.append(iq_error("slot request", e))
            return 0
        except IqTimeout:
            raise Fatal("slot request timed out")
        slot = slot_iq["http_upload_slot"]
        put_url, get_url = slot["put"]["url"], slot["get"]["url"]
        put_headers = {h["name"]: h["value"] for h in slot["put"]["headers"]}
        result["put_url"], result["get_url"], result["put_headers"] = put_url, get_url, put_headers

        # HTTP: PUT, GET, HEAD, ranged GET
        timeout = aiohttp.ClientTimeout(total=HTTP_TIMEOUT)
        async with aiohttp.ClientSession(timeout=timeout, auto_decompress=False) as http:
            async def step(name, coro):
                try:
                    return await coro
                except asyncio.TimeoutError:
                    raise Fatal("HTTP %s timed out" % name)
                except aiohttp.ClientError as e:
                    errors.append("HTTP %s: %s: %s" % (name, type(e).__name__, e))
                    return None

            async def do_put():
                hdrs = dict(put_headers)
                hdrs["Content-Type"] = ctype
                async with http.put(put_url, data=data, headers=hdrs) as r:
                    await r.read()
                    result["put_status"] = r.status

            async def do_get():
                async with http.get(get_url) as r:
                    body = await r.read()
                    result["get_status"] = r.status
                    result["get_sha256"] = hashlib.sha256(body).hexdigest()

            async def do_head():
                async with http.head(get_url, allow_redirects=False) as r:
                    result["head_status"] = r.status
                    cl = r.headers.get("Content-Length")
                    result["head_content_length"] = int(cl) if cl is not None and cl.isdigit() else cl
                    result["head_content_type"] = r.headers.get("Content-Type")

            async def do_range():
                n = len(data) // 2
                result["range_start"] = n
                async with http.get(get_url, headers={"Range": "bytes=%d-" % n}) as r:
                    body = await r.read()
                    result["range_status"] = r.status
                    result["range_content_range"] = r.headers.get("Content-Range")
                    result["range_sha256"] = hashlib.sha256(body).hexdigest()

            await step("PUT", do_put())
            await step("GET", do_get())
            await step("HEAD", do_head())
            await step("range GET", do_range())
        return 0
    finally:
        try:
            await asyncio.wait_for(client.disconnect(wait=1.0), 2.0)
        except Exception:  # noqa: BLE001 - best effort, we exit anyway
            client.abort()


def main():
    if len(sys.argv) != 7:
        sys.stderr.write("usage: %s JID PASSWORD HOST PORT SERVICE_JID FILE\n" % sys.argv[0])
        sys.exit(1)
    logging.basicConfig(level=logging.WARNING, stream=sys.stderr,
                        format="%(levelname)-8s %(name)s: %(message)s")
    jid, password, host, port, service, path = sys.argv[1:7]

    async def bounded():
        return await asyncio.wait_for(run(jid, password, host, port, service, path), OVERALL_TIMEOUT)

    try:
        code = asyncio.run(bounded())
    except Fatal as e:
        errors.append(str(e))
        code = 2
    except asyncio.TimeoutError:
        errors.append("overall timeout of %.0f s exceeded" % OVERALL_TIMEOUT)
        code = 2
    except Exception as e:  # noqa: BLE001 - report anything as JSON
        errors.append("%s: %s" % (type(e).__name__, e))
        code = 2
    emit(code)


if __name__ == "__main__":
    main()
