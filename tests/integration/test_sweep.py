"""
Hostile-input sweep: regressions for what the sweep found, and a short seeded fuzz loop.

One moat (1 worker, so upstream connections are pooled deterministically) with
RecordingUpstreams behind five sites:
  app.localhost    TLS            -> up     (fuzz loop)
  plain.localhost  plain http     -> up     (redirect: false; fuzz loop)
  smug.localhost   TLS            -> smug   (request smuggling via Connection)
  misc.localhost   TLS and http   -> misc   (retries, hostile responses, slow clients)
  wsgi.localhost   TLS            -> Python's stdlib wsgiref server (a real CGI-style peer)

Findings covered (each test states the input and the right behaviour):
  - "Connection: Content-Length" made moat drop the Content-Length it framed the
    body with: the upstream read the body as a second request (smuggling), and a
    body without CRLFCRLF poisoned the pooled upstream connection for the next client.
  - the same on responses: an unframed response on a kept-alive client connection.
  - a non-idempotent request (POST/PATCH, no body) was sent again, up to 3 times,
    when a reused upstream connection closed after reading it (RFC 9112 9.3.1.1).
  - a "Content-Length: 0" response never finished: the next request on the
    connection got no answer until timeouts.response, then the connection was cut.
  - "X_Forwarded_For", "X_Real_IP", ... were forwarded: CGI/WSGI upstreams read them
    as X-Forwarded-For / X-Real-IP (spoofed client identity, threat-model breach).
Regression checks that pass: hostile upstream responses (502 or close, never
reused), slow and abusive clients, and a seeded mutation fuzz loop whose oracle is
a strict RFC 9112 parser (what reaches the upstream must be what it would read).
"""

import collections
import os
import random
import re
import resource
import socket
import ssl
import threading
import time
import wsgiref.simple_server
from concurrent.futures import ThreadPoolExecutor

import moatlib as M

OK_BODY = b"ok"


def _reply(req):
    t = req.target
    if t.startswith("/close/"):
        return M.Reply(action="close")
    if t.startswith("/empty/"):
        return M.Reply(200, [("X-Up", "1")], b"")
    if t.startswith("/hopcl/"):
        return M.Reply(raw=b"HTTP/1.1 200 OK\r\nConnection: Content-Length\r\nContent-Length: 2\r\n\r\nok")
    if t.startswith("/bad/"):
        name = t.split("/")[2]
        raw, closes = dict((n, (r, c)) for n, r, c, _ in BAD_RESPONSES)[name]
        return M.Reply(raw=raw, headers=[("Connection", "close")] if closes else [])
    if t.startswith("/big/"):
        return M.Reply(200, [("X-Up", "1")], b"B" * (16 << 20))
    return M.Reply(200, [("X-Up", "1")], OK_BODY)


# (name, raw response, upstream closes after it, expected: 502 | "close" | 200)
BAD_RESPONSES = [
    ("bare_lf", b"HTTP/1.1 200 OK\nContent-Length: 2\n\nok", False, 502),
    ("bare_lf_field", b"HTTP/1.1 200 OK\r\nContent-Length: 2\nX: y\r\n\r\nok", False, 502),
    ("huge_head", b"HTTP/1.1 200 OK\r\nX: " + b"a" * 70000 + b"\r\nContent-Length: 2\r\n\r\nok", False, 502),
    ("101_fields", b"HTTP/1.1 200 OK\r\n" + b"X: y\r\n" * 101 + b"Content-Length: 2\r\n\r\nok", False, 502),
    ("cl_negative", b"HTTP/1.1 200 OK\r\nContent-Length: -1\r\n\r\nok", False, 502),
    ("cl_alpha", b"HTTP/1.1 200 OK\r\nContent-Length: 2x\r\n\r\nok", False, 502),
    ("cl_list", b"HTTP/1.1 200 OK\r\nContent-Length: 2, 2\r\n\r\nok", False, 502),
    ("cl_twice", b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nContent-Length: 2\r\n\r\nok", False, 502),
    ("cl_and_te", b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nok\r\n0\r\n\r\n",
     False, 502),
    ("te_gzip", b"HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip\r\n\r\nok", False, 502),
    ("te_on_1_0", b"HTTP/1.0 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nok\r\n0\r\n\r\n", False, 502),
    ("obs_fold", b"HTTP/1.1 200 OK\r\nX: a\r\n b\r\nContent-Length: 2\r\n\r\nok", False, 502),
    ("nul", b"HTTP/1.1 200 OK\r\nX: a\x00b\r\nContent-Length: 2\r\n\r\nok", False, 502),
    ("status_4_digits", b"HTTP/1.1 2000 OK\r\nContent-Length: 2\r\n\r\nok", False, 502),
    ("http_2_0", b"HTTP/2.0 200 OK\r\nContent-Length: 2\r\n\r\nok", False, 502),
    ("1xx_with_body", b"HTTP/1.1 100 Continue\r\nContent-Length: 5\r\n\r\nhelloHTTP/1.1 200 OK\r\n"
     b"Content-Length: 2\r\n\r\nok", False, 502),
    ("101_unasked", b"HTTP/1.1 101 Switching Protocols\r\nConnection: upgrade\r\nUpgrade: websocket\r\n\r\nRAW",
     False, 502),
    ("closed_in_head", b"HTTP/1.1 200 OK\r\nContent-Le", True, 502),
    ("chunk_size_not_hex", b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\nok\r\n0\r\n\r\n", False,
     "close"),
    ("chunk_size_17_digits", b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n00000000000000002\r\nok\r\n"
     b"0\r\n\r\n", False, "close"),
    ("chunk_no_crlf", b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nokX\r\n0\r\n\r\n", False, "close"),
    ("closed_mid_chunk", b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nab", True, "close"),
    ("closed_mid_length", b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nab", True, "close"),
    ("1xx_flood", b"HTTP/1.1 100 Continue\r\n\r\n" * 3000 + b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok",
     False, 200),
    ("extra_after_body", b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nokHTTP/1.1 200 OK\r\n"
     b"Content-Length: 4\r\n\r\nevil", False, 200),
    ("204_then_bytes", b"HTTP/1.1 204 No Content\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: 4\r\n\r\nevil", False, 204),
]


class Sweep(M.MoatTestCase):
    @classmethod
    def setUpClass(cls):
        cls.up = M.RecordingUpstream(reply=_reply, owner=cls)
        cls.smug = M.RecordingUpstream(reply=_reply, owner=cls)
        cls.misc = M.RecordingUpstream(reply=_reply, owner=cls)
        cls.wsgi_seen = []

        def app(environ, start_response):
            cls.wsgi_seen.append({k: v for k, v in environ.items() if k.startswith("HTTP_")})
            start_response("200 OK", [("Content-Type", "text/plain"), ("Content-Length", "2")])
            return [b"ok"]

        class Quiet(wsgiref.simple_server.WSGIRequestHandler):
            def log_message(self, *a):
                pass

        cls.wsgi = wsgiref.simple_server.make_server("127.0.0.1", 0, app, handler_class=Quiet)
        t = threading.Thread(target=cls.wsgi.serve_forever, kwargs={"poll_interval": 0.1}, daemon=True)
        t.start()
        cls.addClassCleanup(lambda: (cls.wsgi.shutdown(), cls.wsgi.server_close(), t.join(10)))
        cls.moat_ = M.Moat(cls)
        cls.moat_.start(cls.moat_.config({
            "app.localhost": M.site(cls.up),
            "plain.localhost": M.site(cls.up, redirect=False),
            "smug.localhost": M.site(cls.smug),
            "misc.localhost": M.site(cls.misc, redirect=False),
            "wsgi.localhost": M.site("http://127.0.0.1:%d" % cls.wsgi.server_port),
        }, workers=1, timeouts={"header": "3s"},
            # 400 slow connections come from one address here; the per-client
            # cap has its own tests (test_abuse.py)
            limits={"connections_per_client": 1000}))

    def client(self, site, tls=True):
        if tls:
            s = M.tls_connect(self.moat_, site)
        else:
            s = socket.create_connection(("127.0.0.1", self.moat_.http_port), timeout=10)
        self.addCleanup(s.close)
        return M.H1Client(s)

    def wait_quiet(self, up, quiet=0.3, limit=10.0):
        end = time.monotonic() + limit
        last = up.counts()
        while time.monotonic() < end:
            time.sleep(quiet)
            now = up.counts()
            if now == last:
                return
            last = now

    # ------------------------------------------------------------ findings

    def test_connection_header_cannot_strip_request_content_length(self):
        """POST with "Connection: Content-Length" and a body that is itself a request:
        moat must forward the body as the body (or refuse with 400), never let the
        upstream read it as a second request."""
        smuggled = b"GET /smuggled HTTP/1.1\r\nHost: smug.localhost\r\nX-Forwarded-For: 6.6.6.6\r\n\r\n"
        for i, conn in enumerate((b"Content-Length", b"keep-alive, content-length")):
            with self.subTest(connection=conn):
                n = len(self.smug.requests)
                c = self.client("smug.localhost")
                c.send(b"POST /cl-hop/%d HTTP/1.1\r\nHost: smug.localhost\r\nConnection: %s\r\n"
                       b"Content-Length: %d\r\n\r\n%s" % (i, conn, len(smuggled), smuggled))
                r = c.read_response()
                c.close()
                self.wait_quiet(self.smug)
                got = self.smug.requests[n:]
                self.assertEqual(self.smug.find("/smuggled"), [],
                                 "the upstream read the body as a request: %r" % got)
                if r.status == 400:
                    self.assertEqual(got, [], "refused, yet the upstream saw %r" % got)
                    continue
                self.assertEqual(r.status, 200, r)
                self.assertEqual([q.target for q in got], ["/cl-hop/%d" % i], got)
                self.assertEqual(got[0].body, smuggled, got[0])
                self.assertEqual(got[0].headers.get_all("content-length"), [str(len(smuggled))], got[0])

    def test_connection_header_cannot_poison_pooled_upstream_connection(self):
        """An attacker's body left unread in a pooled upstream connection must never
        become the start of another client's request."""
        c = self.client("smug.localhost")
        c.send(b"POST /poison HTTP/1.1\r\nHost: smug.localhost\r\nConnection: Content-Length\r\n"
               b"Content-Length: 10\r\n\r\nXXXXXXXXXX")
        c.read_response()
        c.close()
        for k in range(3):
            n = len(self.smug.requests)
            v = self.client("smug.localhost")
            v.request("GET", "/victim/%d" % k, "smug.localhost")
            r = v.read_response()
            self.assertEqual(r.status, 200, r)
            got = self.smug.wait_requests(n + 1)[n]
            self.assertEqual(got.head.split(b"\r\n")[0], b"GET /victim/%d HTTP/1.1" % k,
                             "another client's request reached the upstream altered: %r" % got)

    def test_connection_header_cannot_strip_response_content_length(self):
        """Upstream: "Connection: Content-Length" + "Content-Length: 2". The client
        must get a framed response (or 502), and the next request must work."""
        c = self.client("misc.localhost")
        c.request("GET", "/hopcl/1", "misc.localhost")
        end = time.monotonic() + 5
        while b"\r\n\r\n" not in c.buf and not c.closed and time.monotonic() < end:
            c.sock.settimeout(0.2)
            try:
                d = M._recv(c.sock)
            except (socket.timeout, TimeoutError):
                continue
            c.closed = not d
            c.buf += d
        head = c.buf.split(b"\r\n\r\n")[0].lower()
        self.assertTrue(head.startswith(b"http/1.1 "), c.buf)
        if M.parse_status(c.buf) == 502:
            return
        framed = (re.search(rb"\r\ncontent-length: *2\r", head + b"\r") is not None
                  or re.search(rb"\r\ntransfer-encoding: *chunked\r", head + b"\r") is not None)
        self.assertTrue(framed or b"connection: close" in head,
                        "response relayed without framing on a kept-alive connection: %r" % c.buf)
        r = c.read_response(timeout=5)
        self.assertEqual(r.body, b"ok")
        if not framed:
            return
        c.request("GET", "/after-hopcl", "misc.localhost")
        self.assertEqual(c.read_response(timeout=5).body, OK_BODY)

    def test_non_idempotent_request_is_never_sent_twice(self):
        """A reused upstream connection that closes after reading a POST (no body):
        the client gets 502 and the upstream has seen the POST once."""
        for method in ("POST", "PATCH"):
            with self.subTest(method=method):
                c = self.client("misc.localhost")
                c.request("GET", "/warm/%s" % method, "misc.localhost")
                self.assertEqual(c.read_response().status, 200)
                c.send(b"%s /close/%s HTTP/1.1\r\nHost: misc.localhost\r\nContent-Length: 0\r\n\r\n"
                       % (method.encode(), method.encode()))
                r = c.read_response()
                self.assertEqual(r.status, 502, r)
                self.wait_quiet(self.misc)
                seen = self.misc.find("/close/%s" % method)
                self.assertEqual(len(seen), 1, "upstream saw the %s %d times: %r" % (method, len(seen), seen))

    def test_content_length_zero_response_keeps_connection_usable(self):
        """An upstream "200, Content-Length: 0" must complete the exchange: the next
        request on the same connection is answered at once."""
        for site, tls in (("misc.localhost", True), ("misc.localhost", False)):
            with self.subTest(tls=tls):
                c = self.client(site, tls)
                c.request("GET", "/empty/%s" % tls, site)
                r = c.read_response()
                self.assertEqual((r.status, r.body), (200, b""), r)
                c.request("GET", "/after-empty/%s" % tls, site)
                r = c.read_response(timeout=5)
                self.assertEqual((r.status, r.body), (200, OK_BODY), r)

    def test_underscore_spellings_of_identity_headers_are_not_forwarded(self):
        """CGI/WSGI map "X_Forwarded_For" to the same variable as "X-Forwarded-For":
        a client must not be able to set the client identity that way."""
        spoof = [("X_Forwarded_For", "6.6.6.6"), ("X_Real_IP", "6.6.6.6"),
                 ("X_Forwarded_Proto", "http"), ("X_Forwarded_Host", "evil.example"),
                 ("x_forwarded_port", "1")]
        c = self.client("misc.localhost")
        c.request("GET", "/ids", "misc.localhost", headers=spoof)
        self.assertEqual(c.read_response().status, 200)
        q = self.misc.find("/ids")[-1]
        ident = {"x-forwarded-for", "x-forwarded-proto", "x-forwarded-host", "x-forwarded-port",
                 "x-real-ip", "forwarded"}
        leaked = [(k, v) for k, v in q.headers if k.lower() not in ident and k.lower().replace("_", "-") in ident]
        self.assertEqual(leaked, [], "upstream got identity headers spelled with '_': %r" % q)
        # the same through a real CGI-style gateway (wsgiref)
        c = self.client("wsgi.localhost")
        c.request("GET", "/ids", "wsgi.localhost", headers=spoof)
        self.assertEqual(c.read_response().status, 200)
        env = self.wsgi_seen[-1]
        self.assertEqual(env.get("HTTP_X_FORWARDED_FOR"), "127.0.0.1", env)
        self.assertEqual(env.get("HTTP_X_FORWARDED_PROTO"), "https", env)
        self.assertIsNone(env.get("HTTP_X_REAL_IP"), env)
        self.assertIsNone(env.get("HTTP_X_FORWARDED_PORT"), env)

    # ------------------------------------------------------------ regressions that pass

    def test_hostile_upstream_responses(self):
        """Malformed responses: 502 before any head byte went out, or a close after
        a relayed head; moat stays up and never reuses that upstream connection."""
        for name, raw, closes, want in BAD_RESPONSES:
            with self.subTest(name):
                n = len(self.misc.requests)
                c = self.client("misc.localhost")
                c.request("GET", "/bad/%s" % name, "misc.localhost")
                if want == "close":
                    out, closed = M.raw_exchange(c.sock, b"", timeout=5)
                    self.assertTrue(closed, "%s: connection left open: %r" % (name, out[:200]))
                    self.assertTrue(out.startswith(b"HTTP/1.1 200 "), out[:200])
                    try:
                        complete = M._try_parse(out, eof=False) is not None
                    except ValueError:
                        complete = False
                    self.assertFalse(complete, "%s: relayed as a complete response: %r" % (name, out[:300]))
                else:
                    r = c.read_response(timeout=10)
                    self.assertEqual(r.status, want, "%s: %r" % (name, r))
                    if want == 502:
                        self.assertIn("close", (r.headers.get("connection") or "").lower(), r)
                c.close()
                bad = [q.conn_id for q in self.misc.requests[n:] if q.target == "/bad/%s" % name]
                d = self.client("misc.localhost")
                d.request("GET", "/next/%s" % name, "misc.localhost", headers=["Connection: close"])
                r = d.read_response()
                self.assertEqual((r.status, r.body), (200, OK_BODY), "%s: next client got %r" % (name, r))
                nxt = self.misc.find("/next/%s" % name)
                self.assertEqual(len(nxt), 1, nxt)
                if want != 200 or name in ("extra_after_body",):
                    self.assertNotIn(nxt[0].conn_id, bad, "%s: the bad upstream connection was reused" % name)
                self.moat_.assert_alive()

    def test_slow_and_abusive_clients(self):
        """Idle and half-open connections, a trickled head, 1 MiB in 1-byte chunks,
        clients that never read a 16 MiB response: normal requests keep working and
        (release build) memory stays bounded."""
        soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
        if soft < 1200 and hard >= 1200:
            resource.setrlimit(resource.RLIMIT_NOFILE, (1200, hard))
        rss0 = rss(self.moat_.pid)

        def normal():
            r = M.curl(self.moat_, "misc.localhost", "/normal", timeout=10)
            self.assertEqual((r.status, r.body), (200, OK_BODY), r)

        socks = []
        try:
            for i in range(400):
                s = socket.create_connection(("127.0.0.1", self.moat_.https_port if i % 2 else self.moat_.http_port))
                if i % 4 == 0:
                    s.sendall(b"GET /half HTTP/1.1\r\nHost: misc.localhost\r\nX: ")
                socks.append(s)
            normal()
            # trickle one byte per 50 ms: the 3 s header deadline answers 408
            t = self.client("misc.localhost", tls=False)
            data = b"GET /trickle HTTP/1.1\r\nHost: misc.localhost\r\nX: " + b"a" * 200 + b"\r\n\r\n"
            t.sock.settimeout(0.05)
            got = b""
            for b in data:
                try:
                    t.sock.sendall(bytes([b]))
                    got += t.sock.recv(4096)
                except (socket.timeout, TimeoutError):
                    continue
                except OSError:
                    break
                if got:
                    break
            self.assertEqual(M.parse_status(got), 408, got[:100])
            normal()
            # 1 MiB body in 1-byte chunks
            c = self.client("misc.localhost")
            c.send(b"POST /chunks HTTP/1.1\r\nHost: misc.localhost\r\nTransfer-Encoding: chunked\r\n\r\n"
                   + b"1\r\nZ\r\n" * (1 << 20) + b"0\r\n\r\n")
            self.assertEqual(c.read_response(timeout=60).status, 200)
            self.assertEqual(self.misc.find("/chunks")[-1].body, b"Z" * (1 << 20))
            # clients that never read a 16 MiB response
            for i in range(10):
                s = M.tls_connect(self.moat_, "misc.localhost") if i % 2 else \
                    socket.create_connection(("127.0.0.1", self.moat_.http_port))
                s.sendall(b"GET /big/%d HTTP/1.1\r\nHost: misc.localhost\r\n\r\n" % i)
                socks.append(s)
            time.sleep(1.5)
            normal()
            grew = rss(self.moat_.pid) - rss0
            if not os.environ.get("MOAT_FLAVOUR"):
                self.assertLess(grew, 64 * 1024, "moat's RSS grew by %d kB" % grew)
        finally:
            for s in socks:
                s.close()
        self.moat_.assert_alive()
        self.moat_.assert_clean()

    def test_seeded_fuzz_loop(self):
        """2,000 mutated requests (seed 20240611) over TLS and plain http, each from
        its own 127.x.y.z address so moat's X-Forwarded-For attributes what reaches the
        upstream. Checked against a strict RFC 9112 parser of the bytes sent."""
        findings = run_fuzz(self.moat_, self.up, seed=20240611, count=2000, threads=16)
        self.moat_.assert_alive()
        self.moat_.assert_clean()
        self.assertEqual(findings, [], "\n".join(repr(f) for f in findings[:10]))

    def test_zz_no_sanitizer_reports(self):
        self.moat_.assert_alive()
        self.moat_.assert_clean()


def rss(pid):
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            if line.startswith("VmRSS"):
                return int(line.split()[1])
    return 0


# ====================================================================== strict reference parser
# RFC 9112 plus moat's documented policy (docs/internals/h1.md, runtime-contract.md):
# what a correct moat forwards for a byte stream, and what it answers otherwise.

TCHAR = set(b"!#$%&'*+-.^_`|~0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ")
UNRESERVED = set(b"abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-._~")
KNOWN_CODINGS = {"chunked", "gzip", "x-gzip", "deflate", "compress", "x-compress"}
MAX_HEAD = 32 * 1024
# host -> redirect flag; the TLS connections of the fuzz loop use SNI app.localhost
SITES = {"app.localhost": True, "plain.localhost": False, "smug.localhost": True,
         "misc.localhost": False, "wsgi.localhost": True}


class Refuse(Exception):
    def __init__(self, status, why):
        super().__init__(why)
        self.status, self.why = status, why


class More(Exception):
    pass


def hexval(c):
    return "0123456789abcdef".find(chr(c).lower()) if chr(c).lower() in "0123456789abcdef" else -1


def canon_host(v):
    if not v or "@" in v:
        return None
    if v[0] == "[":
        e = v.find("]")
        lit = v[1:e] if e > 0 else ""
        if not lit or ":" not in lit or not all(c in "0123456789abcdefABCDEF:." for c in lit):
            return None
        hn = e + 1
    else:
        hn = v.find(":") if ":" in v else len(v)
    port = 0
    if hn < len(v):
        p = v[hn:]
        if not (2 <= len(p) <= 6) or p[0] != ":" or not p[1:].isdigit() or not p[1:].isascii():
            return None
        port = int(p[1:])
        if not 1 <= port <= 65535:
            return None
    h = v[:hn]
    if v[0] != "[":
        if len(h) > 1 and h.endswith("."):
            h = h[:-1]
        if not h or len(h) > 253:
            return None
        for lab in h.split("."):
            if not lab or len(lab) > 63 or not all(c in "abcdefghijklmnopqrstuvwxyz0123456789-_" for c in lab.lower()):
                return None
    return h.lower(), port


def normalize_target(t):
    q = t.find(b"?")
    path, query = (t, b"") if q < 0 else (t[:q], t[q:])
    out, trailing = [], False
    for seg in path[1:].split(b"/"):
        dec, enc, escaped, i = bytearray(), bytearray(), False, 0
        while i < len(seg):
            c = seg[i]
            if c < 0x21 or c >= 0x7f or c in b"\\#":
                return None
            if c == 0x25:
                if i + 2 >= len(seg) or hexval(seg[i + 1]) < 0 or hexval(seg[i + 2]) < 0:
                    return None
                d = hexval(seg[i + 1]) * 16 + hexval(seg[i + 2])
                if d in (0x2f, 0x5c, 0):
                    return None
                escaped = True
                dec.append(d)
                enc += bytes([d]) if d in UNRESERVED else b"%%%02X" % d
                i += 3
                continue
            dec.append(c)
            enc.append(c)
            i += 1
        if (dec in (b".", b"..") and escaped) or dec.startswith(b".;") or dec.startswith(b"..;"):
            return None
        trailing = len(dec) == 0 or dec in (b".", b"..")
        if dec == b".." and out:
            out.pop()
        elif not trailing:
            out.append(bytes(enc))
    p = b"".join(b"/" + s for s in out)
    if not p or trailing:
        p += b"/"
    if any(c < 0x21 or c > 0x7e or c == 0x23 for c in query):
        return None
    return p + query


def take_line(data, pos, lim):
    for i in range(pos, lim):
        c = data[i]
        if c == 13:
            if i + 1 == lim:
                raise More()
            if data[i + 1] != 10:
                raise Refuse(400, "bare CR")
            return data[pos:i], i + 2
        if c == 10:
            raise Refuse(400, "bare LF")
        if (c < 0x20 and c != 9) or c == 0x7f:
            raise Refuse(400, "control byte")
    raise More()


def elements(v):
    return [e.strip(" \t") for e in v.split(",") if e.strip(" \t")]


def request_line(line):
    i = 0
    while i < len(line) and line[i] in TCHAR:
        i += 1
    if i == 0 or i == len(line) or line[i] != 0x20:
        raise Refuse(400, "method")
    if i > 32:
        raise Refuse(400, "method too long")
    method, j = line[:i], i + 1
    while j < len(line) and line[j] != 0x20:
        if not 0x21 <= line[j] <= 0x7e or line[j] == 0x23:
            raise Refuse(400, "target byte")
        j += 1
    if j == i + 1 or j == len(line):
        raise Refuse(400, "target or version missing")
    target, ver = line[i + 1:j], line[j + 1:]
    if re.fullmatch(rb"HTTP/1\.[01]", ver):
        minor = ver[7] - 48
    elif re.fullmatch(rb"HTTP/[0-9]\.[0-9]", ver):
        raise Refuse(505, "version")
    else:
        raise Refuse(400, "version")
    if method == b"CONNECT":
        raise Refuse(501, "CONNECT")
    authority = None
    if target[:1] == b"/":
        path = target
    elif target == b"*":
        if method != b"OPTIONS":
            raise Refuse(400, "asterisk")
        path = target
    else:
        low = target.lower()
        skip = 7 if low.startswith(b"http://") else 8 if low.startswith(b"https://") else 0
        if not skip:
            raise Refuse(400, "target form")
        k = skip
        while k < len(target) and target[k:k + 1] not in (b"/", b"?"):
            k += 1
        authority = target[skip:k]
        if not authority or b"@" in authority or target[k:k + 1] == b"?":
            raise Refuse(400, "absolute form")
        path = target[k:] or b"/"
    return dict(method=method, minor=minor, authority=authority, path=path)


def field(line, st):
    if line[0] in (0x20, 0x09):
        raise Refuse(400, "obs-fold")
    k = 0
    while k < len(line) and line[k] in TCHAR:
        k += 1
    if k == 0 or k == len(line) or line[k] != 0x3a:
        raise Refuse(400, "field name")
    name = line[:k].decode("latin-1").lower()
    raw = line[k + 1:].decode("latin-1")
    v = raw.strip(" \t")
    st["nfields"] += 1
    if st["nfields"] > 100:
        raise Refuse(431, "too many fields")
    n = st["count"]
    n[name] += 1
    if name == "host":
        if n[name] > 1:
            raise Refuse(400, "two Host")
        st["host"] = v
    elif name == "content-length":
        if n[name] > 1 or "\t" in raw or not re.fullmatch(r"[0-9]{1,18}", v):
            raise Refuse(400, "Content-Length")
        st["cl"] = int(v)
    elif name == "transfer-encoding":
        if n[name] > 1 or st["minor"] == 0 or "\t" in raw:
            raise Refuse(400, "Transfer-Encoding")
        if not re.fullmatch(r"[!#$%&'*+\-.^_`|~0-9A-Za-z]+(?: *, *[!#$%&'*+\-.^_`|~0-9A-Za-z]+)*", v):
            raise Refuse(400, "Transfer-Encoding syntax")
        el = [e.lower() for e in elements(v)]
        if v.lower() != "chunked":
            nch = el.count("chunked")
            if nch and (nch != 1 or el[-1] != "chunked"):
                raise Refuse(400, "chunked not last")
            if all(e in KNOWN_CODINGS for e in el) and not nch:
                raise Refuse(400, "no chunked")
            st["te501"] = True
    elif name == "connection":
        for e in elements(v):
            st["conn"].add(e.lower())
    elif name == "upgrade":
        if n[name] > 1:
            raise Refuse(400, "two Upgrade")
    elif name == "expect":
        st["expect_other"] |= v.lower() != "100-continue"
    if n["transfer-encoding"] and n["content-length"]:
        raise Refuse(400, "TE and CL")


def parse_head(data, tls):
    """dict of the request a correct moat forwards, or {"moat": status}; raises Refuse/More."""
    lim, pos, nempty, start = min(len(data), MAX_HEAD), 0, 0, None
    st = dict(nfields=0, count=collections.Counter(), host=None, cl=None, te501=False, conn=set(),
              expect_other=False)
    while True:
        try:
            line, pos = take_line(data, pos, lim)
        except More:
            if len(data) >= MAX_HEAD:
                raise Refuse(431, "head too large")
            raise
        if start is None and line == b"":
            nempty += 1
            if nempty > 4:
                raise Refuse(400, "empty lines")
            continue
        if start is None:
            start = line
            st.update(request_line(line))
            continue
        if line == b"":
            break
        field(line, st)
    if st["minor"] == 1 and not st["count"]["host"]:
        raise Refuse(400, "no Host")
    host = canon_host(st["host"]) if st["count"]["host"] else None
    if st["count"]["host"] and host is None:
        raise Refuse(400, "bad Host")
    if st["authority"] is not None:
        auth = canon_host(st["authority"].decode("latin-1"))
        if auth is None or (host is not None and auth != host):
            raise Refuse(400, "authority")
    if st["te501"]:
        raise Refuse(501, "transfer coding")
    framing = "chunked" if st["count"]["transfer-encoding"] else "length" if st["count"]["content-length"] else None
    close = "close" in st["conn"] or (st["minor"] == 0 and "keep-alive" not in st["conn"])
    h = dict(head_len=pos, framing=framing, cl=st["cl"], close=close, method=st["method"])
    if host is None:
        raise Refuse(400, "no Host")
    if host[0] not in SITES or (tls and host[0] != "app.localhost"):
        return dict(h, moat=421)
    path = st["path"] if st["path"] == b"*" else normalize_target(st["path"])
    if path is None:
        return dict(h, moat=400)
    if not tls and SITES[host[0]]:
        return dict(h, moat=308)
    if st["expect_other"]:
        return dict(h, moat=417)
    return dict(h, target=path)


_CHUNK_EXT = re.compile(rb"(?:[ \t]*;[ \t]*[!#$%&'*+\-.^_`|~0-9A-Za-z]+(?:[ \t]*=[ \t]*(?:[!#$%&'*+\-.^_`|~0-9A-Za-z]+"
                        rb"|\"(?:[\t !#-\[\]-~\x80-\xff]|\\[\t\x20-\x7e\x80-\xff])*\"))?)*")
_TRAILER = re.compile(rb"[!#$%&'*+\-.^_`|~0-9A-Za-z]+:[\t\x20-\x7e\x80-\xff]*")


def _ext_prefix_ok(rest):
    """Could rest (no CR yet) still become a valid chunk-ext? Try the completions
    a streaming parser would still accept."""
    for tail in (b"", b"a", b"\"", b"a\"", b"\\\"\"", b"\"\"", b"=a", b";a"):
        if _CHUNK_EXT.fullmatch(rest + tail):
            return True
    return False


def dechunk(data, pos):
    """(body, end) | raise Refuse (400) | raise More. A streaming parser refuses
    as soon as the offending byte arrives, so partial lines are checked too."""
    body = bytearray()
    while True:
        m = re.match(rb"[0-9A-Fa-f]*", data[pos:pos + 17])
        digits = m.group(0)
        if len(digits) > 16:
            raise Refuse(400, "17 hex digits")
        i = pos + len(digits)
        if i >= len(data):
            raise More()
        if not digits:
            raise Refuse(400, "size not hex")
        e = i
        while e < len(data) and data[e] not in (10, 13):
            e += 1
        if e - pos > 1024:
            raise Refuse(400, "size line too long")
        if e == len(data):
            if not _ext_prefix_ok(data[i:e]):
                raise Refuse(400, "chunk ext")
            raise More()
        if data[e] == 10 or not _CHUNK_EXT.fullmatch(data[i:e]):
            raise Refuse(400, "chunk line")
        if e + 1 == len(data):
            raise More()
        if data[e + 1] != 10:
            raise Refuse(400, "bare CR")
        size, pos = int(digits, 16), e + 2
        if size == 0:
            break
        if len(data) < pos + size:
            raise More()
        body += data[pos:pos + size]
        pos += size
        for k, want in ((0, 13), (1, 10)):
            if len(data) <= pos + k:
                raise More()
            if data[pos + k] != want:
                raise Refuse(400, "chunk data CRLF")
        pos += 2
    total = 0
    while True:
        e = pos
        while e < len(data) and data[e] not in (10, 13):
            e += 1
        line = data[pos:e]
        total += len(line) + (1 if e < len(data) else 0)
        if total > 8192:
            raise Refuse(400, "trailers too large")
        if line and not (_TRAILER.fullmatch(line) or (e == len(data) and (
                re.fullmatch(rb"[!#$%&'*+\-.^_`|~0-9A-Za-z]*", line) or _TRAILER.fullmatch(line)))):
            raise Refuse(400, "trailer")
        if e == len(data):
            raise More()
        if data[e] == 10:
            raise Refuse(400, "bare LF")
        if e + 1 == len(data):
            raise More()
        if data[e + 1] != 10:
            raise Refuse(400, "bare CR")
        total += 1
        if total > 8192:
            raise Refuse(400, "trailers too large")
        pos = e + 2
        if not line:
            return bytes(body), pos


def parse_stream(data, tls):
    """[("fwd", method, target, body) | ("partial",) | ("answer", status)], state"""
    events, pos = [], 0
    while pos < len(data):
        try:
            h = parse_head(data[pos:], tls)
        except More:
            return events, "more"
        except Refuse as e:
            return events + [("answer", e.status)], "stop"
        pos += h["head_len"]
        if "moat" in h:
            events.append(("answer", h["moat"]))
            if h["moat"] == 308 and h["framing"] is None and not h["close"]:
                continue
            return events, "stop"
        body = b""
        try:
            if h["framing"] == "length":
                if len(data) - pos < h["cl"]:
                    raise More()
                body, pos = data[pos:pos + h["cl"]], pos + h["cl"]
            elif h["framing"] == "chunked":
                body, pos = dechunk(data, pos)
        except More:
            return events + [("partial",)], "more"
        except Refuse as e:
            return events + [("partial",), ("answer", e.status)], "stop"
        events.append(("fwd", h["method"], h["target"], body))
        if h["close"]:
            return events, "stop"
    return events, "eof"


# ====================================================================== the fuzz loop

SEEDS = [
    b"GET /f/a?x=1&y=%2f HTTP/1.1\r\nHost: {H}\r\nUser-Agent: fz\r\nAccept: */*\r\n\r\n",
    b"POST /f/b HTTP/1.1\r\nHost: {H}\r\nContent-Type: text/plain\r\nContent-Length: 11\r\n\r\nhello world",
    b"POST /f/c HTTP/1.1\r\nHost: {H}\r\nTransfer-Encoding: chunked\r\n\r\n5;ext=1\r\nhello\r\n"
    b"6;a=\"q v\" ; b\r\n world\r\n0\r\nX-Trailer: t\r\n\r\n",
    b"GET /f/p1 HTTP/1.1\r\nHost: {H}\r\n\r\nPOST /f/p2 HTTP/1.1\r\nHost: {H}\r\nContent-Length: 3\r\n\r\nabc",
    b"POST /f/e HTTP/1.1\r\nHost: {H}\r\nExpect: 100-continue\r\nContent-Length: 4\r\n\r\nbody",
    b"GET /f/u HTTP/1.1\r\nHost: {H}\r\nConnection: Upgrade\r\nUpgrade: websocket\r\nSec-WebSocket-Version: 13\r\n\r\n",
    b"GET /f/10 HTTP/1.0\r\nHost: {H}\r\nConnection: keep-alive\r\n\r\nGET /f/10b HTTP/1.0\r\nHost: {H}\r\n\r\n",
    b"PUT /f/1b HTTP/1.1\r\nHost: {H}\r\nTransfer-Encoding: chunked\r\nExpect: 100-continue\r\n\r\n"
    b"1\r\na\r\n1\r\nb\r\n1\r\nc\r\n0\r\n\r\n",
    b"OPTIONS * HTTP/1.1\r\nHost: {H}\r\n\r\nHEAD /f/h HTTP/1.1\r\nHost: {H}\r\nConnection: close\r\n\r\n",
    b"GET http://{H}/f/abs/./x/../y HTTP/1.1\r\nHost: {H}\r\nConnection: keep-alive, x-custom\r\nX-Custom: 1\r\n\r\n",
    b"DELETE /f/d HTTP/1.1\r\nHost: {H}\r\nContent-Length: 0\r\n\r\nPOST /f/d2 HTTP/1.1\r\nHost: {H}\r\n"
    b"Transfer-Encoding: chunked\r\n\r\n3\r\nxyz\r\n0\r\n\r\n",
]
SPECIAL = [b"\r", b"\n", b"\x00", b" ", b"\t", b"\x80", b"\xa0", b"\xff", b",", b";", b":", b"\"", b"\r\n",
           b"\r\n\r\n", b"0", b"a", b"-", b"+", b"\x0b", b"\x7f", b"/", b"%", b".", b"\\"]
# Connection naming Content-Length is left to its own tests above.
HEADERS = [b"Transfer-Encoding: chunked", b"Transfer-Encoding: identity", b"Transfer-Encoding: gzip, chunked",
           b"Content-Length: 0", b"Content-Length: 5", b"Content-Length: 99999", b"Content-Length: 5, 5",
           b"Connection: close", b"Connection: keep-alive", b"Connection: Transfer-Encoding", b"Connection: Host",
           b"Connection: Upgrade", b"Upgrade: h2c", b"Expect: 100-continue", b"Expect: foo", b"Host: {H}",
           b"Host: other.localhost", b"Trailer: X", b"TE: trailers", b"X-Forwarded-For: 6.6.6.6",
           b"Forwarded: for=1.2.3.4", b"Proxy-Connection: keep-alive", b"Keep-Alive: timeout=5",
           b"Connection: X-Forwarded-For", b"Connection: TE, close", b"Connection: Expect",
           b"Connection: transfer-encoding, upgrade", b"Content-Length: 18446744073709551616",
           b"Transfer-Encoding: chunked, chunked", b"X: " + b"a" * 300]
ALLOWED = {100, 200, 308, 400, 408, 413, 417, 421, 431, 501, 505}


def mutate(r, data, host):
    for _ in range(r.choice([0, 1, 1, 1, 2, 2, 3, 4])):
        k = r.randrange(11)
        if k == 0 and data:
            i = r.randrange(len(data))
            data = data[:i] + bytes([r.randrange(256)]) + data[i + 1:]
        elif k == 1:
            i = r.randrange(len(data) + 1)
            data = data[:i] + r.choice(SPECIAL) + data[i:]
        elif k == 2 and data:
            i = r.randrange(len(data))
            data = data[:i] + data[i + r.choice([1, 1, 2, 5]):]
        elif k in (3, 4, 9, 10):
            lines = data.split(b"\r\n")
            idx = [j for j in range(1, len(lines)) if b":" in lines[j]]
            if not idx:
                continue
            j = r.choice(idx)
            if k == 3 and r.random() < 0.5:
                lines.insert(j, lines[j])
            elif k == 4:
                del lines[j]
            else:
                lines.insert(j + r.choice([0, 1]), r.choice(HEADERS).replace(b"{H}", host))
            data = b"\r\n".join(lines)
        elif k == 5:
            pos = [j for j in range(len(data)) if data[j:j + 1] in b"0123456789abcdefABCDEF"
                   and (data[j - 1:j] in (b" ", b"\n") or data[j + 1:j + 2] == b"\r")]
            if pos:
                j = r.choice(pos)
                data = data[:j] + r.choice([b"0", b"1", b"2", b"4", b"9", b"10", b"ff", b"00", b"-1", b"1 ",
                                            b"0x3", b"FFFFFFFFFFFFFFFF", b"11111111111111111", b"3", b"7",
                                            b"12"]) + data[j + 1:]
        elif k == 6:
            idx = [j for j in range(len(data) - 1) if data[j:j + 2] == b"\r\n"]
            if idx:
                j = r.choice(idx)
                data = data[:j] + r.choice([b"\n", b"\r", b"\n\r", b"\r\r\n"]) + data[j + 2:]
        elif k == 7:
            data += r.choice(SEEDS).replace(b"{H}", host)
        elif k == 8 and data:
            data = data[:r.randrange(len(data))]
    return data


def _responses(buf, closed, heads):
    """Final responses in buf (1xx skipped); ("bad", why) on garbage."""
    out = []
    while buf:
        try:
            res = M._try_parse(buf, eof=closed, keep_1xx=True,
                               head=len(out) < len(heads) and heads[len(out)] and not buf.startswith(b"HTTP/1.1 1"))
        except Exception as e:
            return out + [("bad", str(e))]
        if res is None:
            return out
        rsp, buf = res
        if rsp.status not in ALLOWED:
            return out + [("bad", "status %d" % rsp.status)]
        if rsp.status >= 200:
            out.append(rsp)
    return out


def _one_case(moat, ctx, seed, i, net):
    r = random.Random(seed * 1000003 + i)
    tls = r.random() < 0.5
    host = b"app.localhost" if tls else b"plain.localhost"
    data = mutate(r, r.choice(SEEDS).replace(b"{H}", host), host)
    mode = r.choices(["normal", "early", "half"], [0.8, 0.1, 0.1])[0]
    if tls and mode == "half":
        mode = "normal"
    if mode == "early":
        data = data[:r.randrange(len(data) + 1)]
    cuts = sorted(r.randrange(len(data) + 1) for _ in range(r.choice([0, 0, 1, 2, 4])))
    pauses = [r.choice([0, 0.001, 0.005, 0.02]) for _ in cuts]
    ip = "127.%d.%d.%d" % (net, 1 + i // 250, 1 + i % 250)
    ev, state = parse_stream(data, tls)
    res = dict(i=i, tls=tls, mode=mode, data=data, ip=ip, ev=ev, state=state, resp=b"", closed=False)
    raw = s = socket.socket()
    try:
        raw.bind((ip, 0))
        raw.settimeout(5)
        raw.connect(("127.0.0.1", moat.https_port if tls else moat.http_port))
        if tls:
            s = ctx.wrap_socket(raw, server_hostname="app.localhost")
        prev = 0
        try:
            for c, p in zip(cuts, pauses):
                s.sendall(data[prev:c])
                prev = c
                time.sleep(p)
            s.sendall(data[prev:])
        except (OSError, ssl.SSLError):
            pass
        if mode == "early":
            return res
        if mode == "half":
            s.shutdown(socket.SHUT_WR)
        answers = [e for e in ev if e[0] in ("fwd", "answer")]
        heads = [e[0] == "fwd" and e[1] == b"HEAD" for e in answers]
        buf, quiet, end = b"", None, time.monotonic() + 2.0
        while time.monotonic() < end:
            if quiet is None and len(_responses(buf, False, heads)) >= len(answers):
                quiet = time.monotonic() + (0.05 if state == "eof" else 0.2)
            if quiet is not None and time.monotonic() >= quiet and state != "stop":
                break
            s.settimeout(max(0.01, min(end, quiet or end) - time.monotonic()))
            try:
                d = M._recv(s)
            except (socket.timeout, TimeoutError):
                if quiet is not None and time.monotonic() > quiet + (0.5 if state == "stop" else 0):
                    break
                continue
            except (OSError, ssl.SSLError):
                res["closed"] = True
                break
            if not d:
                res["closed"] = True
                break
            buf += d
        res["resp"] = buf
    except (OSError, ssl.SSLError) as e:
        res["error"] = repr(e)
    finally:
        s.close()
        raw.close()
    return res


def _check(res, ups):
    """Problems with one case: what reached the upstream vs the strict parse, and
    what the client got vs what moat should answer."""
    probs = []
    ev = res["ev"]
    fwd = [e for e in ev if e[0] == "fwd"]
    mine = ups.get(res["ip"], [])
    for k, u in enumerate(mine):
        if u.error:
            probs.append("upstream could not parse what moat sent: %s %r" % (u.error, u.head[:200]))
        if not u.complete:
            if k != len(fwd) or ("partial",) not in ev:
                probs.append("incomplete upstream request #%d %r not in the strict parse" % (k, u.head[:100]))
            continue
        if k >= len(fwd):
            probs.append("upstream got request #%d %s %s; the strict parse has %d" % (k, u.method, u.target, len(fwd)))
            continue
        got = (u.method.encode("latin-1"), u.target.encode("latin-1"), u.body)
        if got != fwd[k][1:]:
            probs.append("desync: upstream got %r, strict parse %r" % (got[:2] + (got[2][:60],),
                                                                       fwd[k][1:3] + (fwd[k][3][:60],)))
    if res["mode"] != "early" and "error" not in res:
        answers = [e for e in ev if e[0] in ("fwd", "answer")]
        if res["mode"] == "half" and res["state"] == "more" and ev and ev[-1] == ("partial",):
            answers.append(("answer", 400))
        heads = [e[0] == "fwd" and e[1] == b"HEAD" for e in answers]
        got = _responses(res["resp"], res["closed"], heads)
        for k, x in enumerate(got):
            if isinstance(x, tuple):
                probs.append("bad response: %s in %r" % (x[1], res["resp"][:200]))
                break
            if k >= len(answers):
                probs.append("response #%d (%d) beyond the strict parse" % (k, x.status))
                break
            want = 200 if answers[k][0] == "fwd" else answers[k][1]
            if x.status != want and {x.status, want} != {400, 413}:
                probs.append("response #%d: moat %d, strict parse %d" % (k, x.status, want))
                break
            if want == 200 and x.headers.get("x-up") != "1":
                probs.append("200 that did not come from the upstream")
        oks = sum(1 for x in got if not isinstance(x, tuple) and x.status == 200)
        refused = next((k for k, x in enumerate(got) if not isinstance(x, tuple)
                        and x.status in (400, 501, 505, 431, 413)), None)
        complete = [u for u in mine if u.complete]
        if refused is not None and len(complete) > refused:
            probs.append("upstream has %d requests after moat refused request #%d" % (len(complete), refused))
        if res["closed"] and res["mode"] == "normal" and len(complete) != oks:
            probs.append("upstream got %d complete requests, client got %d answers from it" % (len(complete), oks))
    return [(res["i"], "tls" if res["tls"] else "plain", res["mode"], p, res["data"][:300]) for p in probs]


def run_fuzz(moat, up, seed, count, threads, net=42):
    """Runs count cases in batches; returns a list of findings (empty when clean)."""
    ctx = M.tls_context(moat.ca)
    findings = []
    for b0 in range(0, count, 500):
        with ThreadPoolExecutor(threads) as ex:
            results = list(ex.map(lambda i: _one_case(moat, ctx, seed, i, net), range(b0, min(count, b0 + 500))))
        last = None
        for _ in range(40):  # moat may still be forwarding after a client left
            time.sleep(0.25)
            now = up.counts()
            if now == last:
                break
            last = now
        with up._lock:
            reqs = list(up.requests)
            del up.requests[:]
        ups = collections.defaultdict(list)
        for u in reqs:
            xff = u.headers.get_all("x-forwarded-for")
            if len(xff) != 1:
                findings.append((-1, "", "", "upstream request without moat's X-Forwarded-For (smuggled): %r"
                                 % u.head[:300], b""))
            else:
                ups[xff[0]].append(u)
        for res in results:
            findings += _check(res, ups)
        moat.assert_alive()
    return findings


if __name__ == "__main__":
    M.main()
