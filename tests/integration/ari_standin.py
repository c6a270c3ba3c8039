#!/usr/bin/python3
"""
ari_standin - an ACME directory front for pebble that adds ACME Renewal
Information (RFC 9773) and can answer the directory with errors.

pebble 2.4 has no renewalInfo resource. This HTTPS server (the same
localhost/127.0.0.1 certificate as pebble's API, so the client's ca_roots
covers both) answers:

  GET /dir                     pebble's directory JSON (fetched from pebble at
                               each request) plus "renewalInfo":
                               "https://127.0.0.1:PORT/renewal-info"; every other
                               URL in it still points at pebble. While the fail
                               queue is not empty, the next entry is answered
                               instead: its status (503, 429, ...) with
                               Retry-After and an RFC 7807 problem document.
  GET /renewal-info/<certid>   {"suggestedWindow": {"start", "end"}} (RFC 3339),
                               Retry-After: the configured seconds. The window
                               is, in this order: the one set for that certid;
                               "first" for the first certid ever asked;
                               "default". 404 when none applies.
  POST /control                JSON: any of "default", "first" (each {"start",
                               "end"} or null), "windows" ({certid: window}
                               merged), "fail" (list of [status, retry_after]
                               appended to the fail queue), "retry_after" (int).
  GET /control                 {"dir": [{"t", "status"}], "ari": [{"t",
                               "certid", "status"}], "fail_left"}: what was
                               asked, in order (t: time.time() at arrival).

Run: ari_standin.py --pebble-dir URL --pebble-ca PEM --cert PEM --key PEM
It prints "port N" as its first line once it listens on 127.0.0.1:N.
Started and stopped by pid by acmelib.DirStandin.

A certid is base64url(authorityKeyIdentifier) "." base64url(serial bytes), no
padding (RFC 9773 section 4.1); this server does not parse it, it only
records it.
"""

import argparse
import json
import ssl
import sys
import threading
import time
import urllib.request
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


class State:
    def __init__(self):
        self.lock = threading.Lock()
        self.default = None
        self.first = None
        self.first_certid = None
        self.windows = {}
        self.fail = []
        self.retry_after = 3600
        self.dir_log = []
        self.ari_log = []


def make_handler(state, pebble_dir, pebble_ctx, base_url):
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"
        server_version = "ari-standin"

        def log_message(self, fmt, *args):  # quiet; the control log is the record
            pass

        def send(self, status, body, ctype="application/json", headers=()):
            data = body if isinstance(body, bytes) else json.dumps(body, indent=1).encode()
            self.send_response(status)
            self.send_header("Content-Type", ctype)
            self.send_header("Content-Length", str(len(data)))
            self.send_header("Cache-Control", "no-store")
            for k, v in headers:
                self.send_header(k, v)
            self.end_headers()
            if self.command != "HEAD":
                self.wfile.write(data)

        def do_HEAD(self):
            self.do_GET()

        def do_GET(self):
            path = self.path.split("?", 1)[0]
            if path == "/dir":
                return self.directory()
            if path.startswith("/renewal-info/"):
                return self.renewal_info(path[len("/renewal-info/"):])
            if path == "/control":
                with state.lock:
                    return self.send(200, {"dir": list(state.dir_log),
                                           "ari": list(state.ari_log),
                                           "fail_left": len(state.fail)})
            return self.send(404, {"type": "about:blank", "detail": "no such resource"})

        def do_POST(self):
            n = int(self.headers.get("Content-Length") or 0)
            body = self.rfile.read(n)
            if self.path != "/control":
                return self.send(405, {"type": "about:blank", "detail": "POST not here"})
            try:
                req = json.loads(body or b"{}")
            except ValueError as e:
                return self.send(400, {"detail": str(e)})
            with state.lock:
                if "default" in req:
                    state.default = req["default"]
                if "first" in req:
                    state.first = req["first"]
                state.windows.update(req.get("windows") or {})
                for status, ra in req.get("fail") or []:
                    state.fail.append((int(status), ra))
                if "retry_after" in req:
                    state.retry_after = int(req["retry_after"])
            return self.send(200, {"ok": True})

        def directory(self):
            with state.lock:
                failure = state.fail.pop(0) if state.fail else None
                entry = {"t": time.time(), "status": failure[0] if failure else 200}
                state.dir_log.append(entry)
            if failure:
                status, ra = failure
                hdrs = [("Retry-After", str(ra))] if ra is not None else []
                kind = "rateLimited" if status == 429 else "serverInternal"
                return self.send(status, {"type": "urn:ietf:params:acme:error:" + kind,
                                          "detail": "stand-in says %d" % status,
                                          "status": status},
                                 "application/problem+json", hdrs)
            try:
                with urllib.request.urlopen(pebble_dir, context=pebble_ctx, timeout=10) as r:
                    d = json.loads(r.read())
            except Exception as e:  # pebble unreachable: say so, as a CA front would
                with state.lock:
                    entry["status"] = 502
                return self.send(502, {"type": "urn:ietf:params:acme:error:serverInternal",
                                       "detail": "pebble: %s" % e})
            d["renewalInfo"] = base_url + "/renewal-info"
            return self.send(200, d)

        def renewal_info(self, certid):
            with state.lock:
                if state.first_certid is None:
                    state.first_certid = certid
                w = state.windows.get(certid)
                if w is None and certid == state.first_certid:
                    w = state.first
                if w is None:
                    w = state.default
                state.ari_log.append({"t": time.time(), "certid": certid,
                                      "status": 200 if w else 404})
                ra = state.retry_after
            if not w:
                return self.send(404, {"type": "urn:ietf:params:acme:error:malformed",
                                       "detail": "no renewal information for %s" % certid},
                                 "application/problem+json")
            return self.send(200, {"suggestedWindow": {"start": w["start"], "end": w["end"]}},
                             headers=[("Retry-After", str(ra))])

    return Handler


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--pebble-dir", required=True, help="pebble's directory URL")
    ap.add_argument("--pebble-ca", required=True, help="PEM that verifies pebble's API")
    ap.add_argument("--cert", required=True)
    ap.add_argument("--key", required=True)
    ap.add_argument("--port", type=int, default=0)
    a = ap.parse_args()

    state = State()
    pebble_ctx = ssl.create_default_context(cafile=a.pebble_ca)
    srv = ThreadingHTTPServer(("127.0.0.1", a.port), None)
    srv.daemon_threads = True
    port = srv.server_address[1]
    srv.RequestHandlerClass = make_handler(state, a.pebble_dir, pebble_ctx,
                                           "https://127.0.0.1:%d" % port)
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(a.cert, a.key)
    # the handshake runs in the handler's thread (first read), not in accept()
    srv.socket = ctx.wrap_socket(srv.socket, server_side=True, do_handshake_on_connect=False)
    sys.stdout.write("port %d\n" % port)
    sys.stdout.flush()
    srv.serve_forever()


if __name__ == "__main__":
    main()
