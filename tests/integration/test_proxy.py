"""
moat as an HTTPS reverse proxy in front of recording upstreams
(runtime-contract.md "HTTPS" and "Proxying").

Most tests share one moat (class Proxy); each uses its own path prefix or
site so that they do not see each other's requests. Tests that need other
top-level settings start their own moat.
"""

import hashlib
import os
import re
import socket
import ssl

import moatlib as M

HSTS = "max-age=31536000"
BIG = bytes(range(256)) * 800  # 204800 bytes, every byte value


def app_reply(req):
    if req.target.startswith("/echo"):
        return M.Reply(200, [("Content-Type", "application/octet-stream")], req.body)
    if req.target.startswith("/chunked"):
        return M.Reply(200, [("Content-Type", "application/octet-stream")], BIG,
                       chunked=True, chunk_size=1000)
    if req.target.startswith("/hop"):
        return M.Reply(200, [("Connection", "X-Hop, keep-alive"), ("X-Hop", "1"),
                             ("Keep-Alive", "timeout=5"), ("Proxy-Connection", "keep-alive"),
                             ("Trailer", "X-T"), ("Upgrade", "h2c"),
                             ("Proxy-Authenticate", "Basic"), ("X-End", "kept")], b"hop\n")
    return M.Reply(200, [("Content-Type", "text/plain")], b"hello from upstream\n")


def tokens(v):
    return {t.strip().lower() for t in (v or "").split(",") if t.strip()}


HOP_BY_HOP = {"connection", "keep-alive", "te", "trailer", "transfer-encoding", "upgrade",
              "proxy-connection", "proxy-authorization", "proxy-authenticate"}


class Proxy(M.MoatTestCase):
    @classmethod
    def setUpClass(cls):
        cls.tmpd = M.tempdir(cls)
        cls.files_cert = M.make_cert(cls.tmpd, ["files.localhost"])
        cls.up = M.RecordingUpstream(app_reply, owner=cls)
        cls.ka = M.RecordingUpstream(owner=cls)
        cls.rr1 = M.RecordingUpstream(owner=cls)
        cls.rr2 = M.RecordingUpstream(owner=cls)
        cls.live = M.RecordingUpstream(owner=cls)
        cls.reset = M.RecordingUpstream(M.Reply(action="reset"), owner=cls)
        cls.plain = M.RecordingUpstream(owner=cls)
        cls.closed1, cls.closed2 = M.free_ports(2)
        cls.moat_ = m = M.Moat(cls)
        m.start(m.config({
            "app.localhost": M.site(cls.up),
            "other.localhost": M.site(cls.up),
            "ka.localhost": M.site(cls.ka),
            "rr.localhost": M.site(cls.rr1, cls.rr2),
            "half.localhost": M.site(cls.closed1, cls.live),
            "dead.localhost": M.site(cls.closed2),
            "reset.localhost": M.site(cls.reset),
            "plain.localhost": M.site(cls.plain, redirect=False),
            "nohsts.localhost": M.site(cls.up, hsts=False),
            "files.localhost": M.site(cls.up, tls={"cert": cls.files_cert.cert,
                                                  "key": cls.files_cert.key}),
        }))

    def curl(self, host, path, **kw):
        return M.curl(self.moat_, host, path, **kw)

    def one(self, up, prefix):
        reqs = up.find(prefix)
        self.assertEqual(len(reqs), 1, "upstream requests for %s: %r" % (prefix, reqs))
        return reqs[0]

    # ------------------------------------------------------------ basics

    def test_get_returns_upstream_body(self):
        r = self.curl("app.localhost", "/get/1?a=b")
        self.assertEqual(r.status, 200, r)
        self.assertEqual(r.body, b"hello from upstream\n")
        self.assertEqual(r.headers.get("content-type"), "text/plain")
        q = self.one(self.up, "/get/1")
        self.assertEqual((q.method, q.target, q.version), ("GET", "/get/1?a=b", "HTTP/1.1"))

    def test_forwarded_headers_set_and_client_values_replaced(self):
        r = self.curl("app.localhost", "/fwd/1", headers=[
            "X-Forwarded-For: 6.6.6.6", "X-Forwarded-Proto: http",
            "X-Forwarded-Host: evil.example", "X-Forwarded-Port: 1",
            "Forwarded: for=6.6.6.6;proto=http"])
        self.assertEqual(r.status, 200, r)
        q = self.one(self.up, "/fwd/1")
        host = "app.localhost:%d" % self.moat_.https_port  # curl sends the port
        self.assertEqual(q.headers.get_all("host"), [host])
        self.assertEqual(q.headers.get_all("x-forwarded-for"), ["127.0.0.1"])
        self.assertEqual(q.headers.get_all("x-forwarded-proto"), ["https"])
        self.assertEqual(q.headers.get_all("x-forwarded-host"), [host])
        self.assertEqual(q.headers.get_all("forwarded"),
                         ['for=127.0.0.1;proto=https;host="%s"' % host])
        self.assertEqual(q.headers.get_all("x-forwarded-port"), [])

    def test_hop_by_hop_request_headers_removed_end_to_end_kept_in_order(self):
        sock = M.tls_connect(self.moat_, "app.localhost")
        self.addCleanup(sock.close)
        c = M.H1Client(sock)
        c.send(b"GET /hopreq HTTP/1.1\r\nHost: app.localhost\r\nX-First: 1\r\n"
               b"Connection: foo\r\nFoo: bar\r\nKeep-Alive: timeout=5\r\nTE: trailers\r\n"
               b"Proxy-Connection: keep-alive\r\nUpgrade: websocket\r\n"
               b"Proxy-Authorization: Basic eDp5\r\nX-Forwarded-For: 6.6.6.6\r\n"
               b"Forwarded: for=6.6.6.6\r\nX-Second: 2\r\nX-First: 3\r\nAccept: */*\r\n\r\n")
        r = c.read_response()
        self.assertEqual(r.status, 200, r)
        q = self.one(self.up, "/hopreq")
        names = q.headers.names()
        for h in ("foo", "keep-alive", "te", "proxy-connection", "upgrade",
                  "proxy-authorization", "trailer"):
            self.assertNotIn(h, names, "upstream got hop-by-hop %s: %r" % (h, q))
        self.assertLessEqual(tokens(q.headers.get("connection")), {"keep-alive", "close"}, q)
        self.assertEqual(q.headers.get_all("x-forwarded-for"), ["127.0.0.1"])
        self.assertEqual(q.headers.get_all("forwarded"),
                         ['for=127.0.0.1;proto=https;host="app.localhost"'])
        self.assertEqual(q.headers.get_all("x-forwarded-host"), ["app.localhost"])
        moat_added = {"host", "connection", "x-forwarded-for", "x-forwarded-proto",
                      "x-forwarded-host", "forwarded", "content-length"}
        e2e = [(k.lower(), v) for k, v in q.headers if k.lower() not in moat_added]
        self.assertEqual(e2e, [("x-first", "1"), ("x-second", "2"), ("x-first", "3"),
                               ("accept", "*/*")])

    def test_hsts_on_https_responses(self):
        r = self.curl("app.localhost", "/hsts/1")
        self.assertEqual(r.status, 200, r)
        self.assertEqual(r.headers.get_all("strict-transport-security"), [HSTS])

    def test_hsts_false_site_has_no_hsts(self):
        r = self.curl("nohsts.localhost", "/nohsts/1")
        self.assertEqual(r.status, 200, r)
        self.assertIsNone(r.headers.get("strict-transport-security"), r)

    def test_hop_by_hop_response_headers_removed(self):
        r = self.curl("app.localhost", "/hop/1")
        self.assertEqual(r.status, 200, r)
        self.assertEqual(r.body, b"hop\n")
        names = r.headers.names()
        for h in ("x-hop", "keep-alive", "proxy-connection", "trailer", "upgrade",
                  "proxy-authenticate"):
            self.assertNotIn(h, names, "client got hop-by-hop %s: %r" % (h, r))
        self.assertLessEqual(tokens(r.headers.get("connection")), {"keep-alive", "close"}, r)
        self.assertEqual(r.headers.get("x-end"), "kept")
        self.assertEqual(r.headers.get_all("strict-transport-security"), [HSTS])

    # ------------------------------------------------------------ bodies

    def test_post_content_length_body_exact(self):
        body = os.urandom(300000)
        r = self.curl("app.localhost", "/echo/cl", data=body)
        self.assertEqual(r.status, 200, r)
        self.assertEqual(r.body, body)
        q = self.one(self.up, "/echo/cl")
        self.assertEqual(q.method, "POST")
        self.assertEqual(q.headers.get_all("content-length"), [str(len(body))])
        self.assertEqual(q.headers.get_all("transfer-encoding"), [])
        self.assertEqual(q.body, body)

    def test_chunked_upload_arrives_intact(self):
        body = os.urandom(500000)
        r = self.curl("app.localhost", "/echo/chunked-up", data=body,
                      headers=["Transfer-Encoding: chunked"])
        self.assertEqual(r.status, 200, r)
        self.assertEqual(r.body, body)
        q = self.one(self.up, "/echo/chunked-up")
        self.assertEqual(q.body, body)
        if not q.chunked:
            self.assertEqual(q.headers.get_all("content-length"), [str(len(body))])

    def test_chunked_upload_extensions_and_trailers_dropped(self):
        sock = M.tls_connect(self.moat_, "app.localhost")
        self.addCleanup(sock.close)
        c = M.H1Client(sock)
        c.send(b"POST /echo/ext HTTP/1.1\r\nHost: app.localhost\r\nTransfer-Encoding: chunked\r\n\r\n"
               b"5;name=value\r\nhello\r\n6\r\n world\r\n0\r\nX-Trailer: t\r\n\r\n")
        r = c.read_response()
        self.assertEqual((r.status, r.body), (200, b"hello world"), r)
        q = self.one(self.up, "/echo/ext")
        self.assertEqual(q.body, b"hello world")
        self.assertEqual(list(q.trailers), [])
        if q.chunked:
            self.assertNotIn(b"name=value", q.head)

    def test_chunked_response_rechunked_intact(self):
        r = self.curl("app.localhost", "/chunked/1")
        self.assertEqual(r.status, 200, r)
        self.assertEqual(len(r.body), len(BIG))
        self.assertEqual(r.body, BIG)
        self.assertEqual(r.headers.get("transfer-encoding"), "chunked", r)

    def test_expect_100_continue_with_curl(self):
        body = os.urandom(200000)
        r = self.curl("app.localhost", "/echo/expect", data=body, headers=["Expect: 100-continue"])
        self.assertEqual(r.status, 200, r)
        self.assertEqual(r.body, body)
        self.assertEqual(self.one(self.up, "/echo/expect").body, body)

    def test_expect_100_continue_interim_before_body(self):
        sock = M.tls_connect(self.moat_, "app.localhost")
        self.addCleanup(sock.close)
        c = M.H1Client(sock)
        c.send(b"POST /echo/raw-expect HTTP/1.1\r\nHost: app.localhost\r\n"
               b"Expect: 100-continue\r\nContent-Length: 5\r\n\r\n")
        r = c.read_response(keep_1xx=True, timeout=15)
        self.assertEqual(r.status, 100, "expected 100 Continue before sending the body: %r" % r)
        c.send(b"hello")
        r = c.read_response()
        self.assertEqual((r.status, r.body), (200, b"hello"), r)

    # ------------------------------------------------------------ connections and balancing

    def test_keepalive_reuses_one_upstream_connection(self):
        sock = M.tls_connect(self.moat_, "ka.localhost")
        self.addCleanup(sock.close)
        c = M.H1Client(sock)
        for i in range(4):
            c.request("GET", "/ka/%d" % i, "ka.localhost")
            r = c.read_response()
            self.assertEqual(r.status, 200, r)
            self.assertEqual(r.body, b"hello from upstream\n")
        self.assertFalse(c.closed)
        self.assertEqual(len(self.ka.requests), 4)
        self.assertEqual(self.ka.connections, 1, self.ka.requests)
        self.assertEqual({q.conn_id for q in self.ka.requests}, {1})

    def test_round_robin_uses_both_upstreams(self):
        for i in range(8):
            r = self.curl("rr.localhost", "/rr/%d" % i)
            self.assertEqual(r.status, 200, r)
        self.assertEqual(len(self.rr1.requests) + len(self.rr2.requests), 8)
        self.assertGreater(len(self.rr1.requests), 0)
        self.assertGreater(len(self.rr2.requests), 0)

    def test_closed_upstream_is_skipped(self):
        for i in range(6):
            r = self.curl("half.localhost", "/half/%d" % i)
            self.assertEqual(r.status, 200, "request %d: %r" % (i, r))
        self.assertEqual(len(self.live.find("/half/")), 6)

    def test_only_upstream_closed_is_502(self):
        r = self.curl("dead.localhost", "/dead/1")
        self.assertEqual(r.status, 502, r)
        self.assertEqual(r.headers.get("server"), "moat")
        self.assertEqual(r.headers.get_all("strict-transport-security"), [HSTS])

    def test_upstream_reset_is_502(self):
        r = self.curl("reset.localhost", "/reset/1")
        self.assertEqual(r.status, 502, r)
        self.assertGreaterEqual(len(self.reset.requests), 1)

    # ------------------------------------------------------------ plain http listener

    def test_http_redirects_308(self):
        r = self.curl("app.localhost", "/some/path?q=1&r=%2F", scheme="http")
        self.assertEqual(r.status, 308, r)
        self.assertEqual(r.headers.get("location"), "https://app.localhost:%d/some/path?q=1&r=%%2F"
                         % self.moat_.https_port)
        self.assertEqual(self.up.find("/some/path"), [])

    def test_http_redirect_keeps_a_long_url_whole(self):
        # login callbacks carry long queries; the redirect must not cut them
        target = "/oauth/callback?state=" + "s" * 3000 + "&code=xyz"
        r = self.curl("app.localhost", target, scheme="http")
        self.assertEqual(r.status, 308, r)
        self.assertEqual(r.headers.get("location"),
                         "https://app.localhost:%d%s" % (self.moat_.https_port, target))

    def test_http_unknown_host_is_421(self):
        r = self.curl("unknown.localhost", "/u", scheme="http")
        self.assertEqual(r.status, 421, r)

    def test_redirect_false_site_proxied_over_http(self):
        r = self.curl("plain.localhost", "/plain/1", scheme="http")
        self.assertEqual(r.status, 200, r)
        self.assertEqual(r.body, b"hello from upstream\n")
        self.assertIsNone(r.headers.get("strict-transport-security"))
        q = self.one(self.plain, "/plain/1")
        host = "plain.localhost:%d" % self.moat_.http_port
        self.assertEqual(q.headers.get_all("x-forwarded-proto"), ["http"])
        self.assertEqual(q.headers.get_all("forwarded"),
                         ['for=127.0.0.1;proto=http;host="%s"' % host])

    # ------------------------------------------------------------ TLS

    def test_unknown_sni_handshake_fails(self):
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE  # any failure is then the server's refusal
        with self.assertRaises(ssl.SSLError) as cm:
            s = M.tls_connect(self.moat_, "unknown.localhost", ctx=ctx)
            s.close()
        self.assertIn("unrecognized", str(cm.exception).lower(), cm.exception)

    def test_sni_of_one_site_host_of_another_is_421(self):
        sock = M.tls_connect(self.moat_, "app.localhost")
        self.addCleanup(sock.close)
        c = M.H1Client(sock)
        c.request("GET", "/misdirected", "other.localhost")
        r = c.read_response()
        self.assertEqual(r.status, 421, r)
        self.assertEqual(self.up.find("/misdirected"), [])

    def test_tls_1_1_refused(self):
        ctx = M.tls_context(self.moat_.ca, max_version=ssl.TLSVersion.TLSv1_1)
        with self.assertRaises(ssl.SSLError) as cm:
            s = M.tls_connect(self.moat_, "app.localhost", ctx=ctx)
            s.close()
        self.assertNotIsInstance(cm.exception, ssl.SSLCertVerificationError)

    def test_tls_1_2_and_1_3_work(self):
        for ver, name in ((ssl.TLSVersion.TLSv1_2, "TLSv1.2"), (ssl.TLSVersion.TLSv1_3, "TLSv1.3")):
            with self.subTest(name):
                ctx = M.tls_context(self.moat_.ca, min_version=ver, max_version=ver)
                sock = M.tls_connect(self.moat_, "app.localhost", ctx=ctx)
                self.addCleanup(sock.close)
                self.assertEqual(sock.version(), name)
                c = M.H1Client(sock)
                c.request("GET", "/tls/" + name, "app.localhost")
                self.assertEqual(c.read_response().status, 200)

    def test_files_site_serves_given_certificate(self):
        ctx = M.tls_context(self.files_cert.ca_file)
        sock = M.tls_connect(self.moat_, "files.localhost", ctx=ctx)
        self.addCleanup(sock.close)
        self.assertEqual(hashlib.sha256(sock.getpeercert(True)).hexdigest(), self.files_cert.sha256)
        c = M.H1Client(sock)
        c.request("GET", "/files/1", "files.localhost")
        r = c.read_response()
        self.assertEqual(r.status, 200, r)
        self.assertEqual(r.body, b"hello from upstream\n")

    def test_internal_site_cert_chains_to_internal_ca(self):
        sock = M.tls_connect(self.moat_, "app.localhost")  # verifies against internal-ca.pem
        self.addCleanup(sock.close)
        self.assertIn(("DNS", "app.localhost"), sock.getpeercert()["subjectAltName"])

    # ------------------------------------------------------------ access log

    def test_access_log_one_json_line_per_request(self):
        r1 = self.curl("app.localhost", "/log/get?x=1")
        r2 = self.curl("app.localhost", "/echo/log-post", data=b"0123456789")
        r3 = self.curl("app.localhost", "/log/redirect", scheme="http")
        self.assertEqual((r1.status, r2.status, r3.status), (200, 200, 308))
        keys = {"time", "client", "host", "method", "path", "status", "bytes_in", "bytes_out",
                "duration_ms", "upstream", "tls"}
        want = [("/log/get", "GET", 200, "TLSv1.3", len(r1.body)),
                ("/echo/log-post", "POST", 200, "TLSv1.3", 10),
                ("/log/redirect", "GET", 308, None, 0)]
        for path, method, status, tls, nbytes in want:
            with self.subTest(path):
                lines = self.moat_.wait_access_log(
                    lambda x, p=path: str(x.get("path", "")).startswith(p))
                self.assertEqual(len(lines), 1, lines)
                x = lines[0]
                self.assertLessEqual(keys, set(x), x)
                self.assertRegex(x["time"], r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$")
                self.assertEqual(x["client"], "127.0.0.1")
                self.assertIn(re.sub(r":\d+$", "", x["host"]), ("app.localhost",), x)
                self.assertEqual((x["method"], x["status"], x["tls"]), (method, status, tls), x)
                for k in ("bytes_in", "bytes_out", "duration_ms"):
                    self.assertIsInstance(x[k], (int, float), x)
                    self.assertGreaterEqual(x[k], 0, x)
                if status == 200:
                    self.assertIn(str(self.up.port), str(x["upstream"]), x)
                    self.assertGreaterEqual(x["bytes_out"], nbytes, x)
                if method == "POST":
                    self.assertGreaterEqual(x["bytes_in"], nbytes, x)

    def test_zz_no_sanitizer_reports(self):
        self.moat_.assert_clean()


class ResponseTimeout(M.MoatTestCase):
    def test_upstream_that_never_answers_is_504(self):
        up = self.upstream(M.Reply(action="hang"))
        m = self.moat({"app.localhost": M.site(up)}, timeouts={"response": "1s"})
        r = M.curl(m, "app.localhost", "/slow", timeout=30)
        self.assertEqual(r.status, 504, r)
        self.assertEqual(r.headers.get("server"), "moat")
        self.assertEqual(len(up.requests), 1)


class DefaultSite(M.MoatTestCase):
    def test_unknown_sni_uses_default_site(self):
        up = self.upstream()
        m = self.moat({"app.localhost": M.site(up, default=True),
                       "other.localhost": M.site(up)})
        ctx = M.tls_context(m.ca, check_hostname=False)  # chain still verified
        for sni in ("unknown.localhost", None):
            with self.subTest(sni=sni):
                sock = M.tls_connect(m, sni, ctx=ctx)
                self.addCleanup(sock.close)
                self.assertIn(("DNS", "app.localhost"), sock.getpeercert()["subjectAltName"])
                c = M.H1Client(sock)
                c.request("GET", "/default", "app.localhost")
                r = c.read_response()
                self.assertEqual(r.status, 200, r)


if __name__ == "__main__":
    M.main()
