"""Signals: SIGTERM/SIGINT drain and exit 0; SIGHUP reloads a good config
(new connections see it, existing keep-alive connections keep the old one)
and refuses a bad one with file:line:col while the old config keeps serving."""

import os
import signal
import socket
import ssl
import subprocess
import threading

import moatlib as M
from peers import Client, ScriptedUpstream, Stream, hget

WAIT = 30.0
A, B = "a.test", "b.test"


class Signals(M.MoatTestCase):
    def wait_exit(self, moat):
        try:
            rc = moat.proc.wait(WAIT)
        except subprocess.TimeoutExpired:
            self.fail("moat still running %.0f s after the signal:\n%s" % (WAIT, moat.stderr()))
        self.assertEqual(rc, 0, "exit code after the signal:\n" + moat.stderr())
        moat.stop()  # exited already: checks the exit code and sanitizer reports

    def test_sigterm_lets_inflight_request_finish(self):
        arrived, release = threading.Event(), threading.Event()
        late_body = os.urandom(200000)

        def handler(conn):
            req = conn.read_request()
            assert req is not None and req.target == "/slow", req
            arrived.set()
            if not release.wait(WAIT):
                raise AssertionError("test never released the response")
            conn.respond(200, late_body, headers=[("Content-Type", "application/octet-stream")])

        up = ScriptedUpstream(handler)
        self.addCleanup(up.stop)
        moat = self.moat({A: M.site(up.url)})
        c = Client(moat.https_port, A, moat.ca)
        self.addCleanup(c.close)
        c.send_request("GET", "/slow")
        self.assertTrue(arrived.wait(WAIT), "request never reached the upstream")

        os.kill(moat.pid, signal.SIGTERM)
        # listeners close: a refused connect, then every later one refused too
        M.wait_until(lambda: M.connect_refused(moat.https_port), WAIT,
                     "the https listener to close after SIGTERM")
        for _ in range(10):
            self.assertTrue(M.connect_refused(moat.https_port),
                            "a new connection was accepted after the listener closed")
        self.assertTrue(M.connect_refused(moat.http_port), "http listener still open")
        self.assertIsNone(moat.proc.poll(), "moat exited with a request in flight")

        release.set()
        status, headers, body = c.read_response()
        self.assertEqual(status, 200)
        self.assertEqual(body, late_body)
        self.assertEqual((hget(headers, "connection") or "").lower(), "close",
                         "moat will close after this response, so it must say so")
        self.wait_exit(moat)
        self.assertEqual(up.errors, [])

    def test_sigterm_closes_idle_keepalive(self):
        """Idle keep-alive connections (https, and plain http after a 308)
        are closed at SIGTERM, not at the drain deadline: drain is set far
        beyond this test's waits, so only an immediate close passes."""
        up = self.upstream()
        moat = M.Moat(self)
        moat.start(moat.config({A: M.site(up)}, timeouts={"drain": "10m"}))
        c = Client(moat.https_port, A, moat.ca)
        self.addCleanup(c.close)
        status, _, _ = c.request("GET", "/one")
        self.assertEqual(status, 200)
        p = socket.create_connection(("127.0.0.1", moat.http_port), timeout=WAIT)
        self.addCleanup(p.close)
        ps = Stream(p)
        ps.send(b"GET /two HTTP/1.1\r\nHost: %s\r\n\r\n" % A.encode())
        start, headers = ps.read_head()
        self.assertIn(" 308 ", start)
        b"".join(ps.iter_body(headers))
        self.assertNotEqual((hget(headers, "connection") or "").lower(), "close",
                            "308 closed the connection: nothing idle to test")

        os.kill(moat.pid, signal.SIGTERM)
        for name, sock, stream in (("https", c.sock, c.s), ("http", p, ps)):
            sock.settimeout(WAIT)
            try:
                data = stream.read_some()
            except (ConnectionResetError, ssl.SSLError):
                data = b""
            except (socket.timeout, TimeoutError):
                self.fail("idle %s keep-alive connection still open %.0f s after SIGTERM"
                          % (name, WAIT))
            self.assertEqual(data, b"", "unexpected bytes on an idle %s connection: %r"
                             % (name, data[:200]))
        self.wait_exit(moat)

    def test_sigint_exits_0(self):
        up = self.upstream()
        moat = self.moat({A: M.site(up)})
        self.assertEqual(M.curl(moat, A, "/").status, 200)
        os.kill(moat.pid, signal.SIGINT)
        self.wait_exit(moat)

    def two_upstreams(self):
        up_a = self.upstream(M.Reply(200, [("Content-Type", "text/plain")], b"site A\n"))
        up_b = self.upstream(M.Reply(200, [("Content-Type", "text/plain")], b"site B\n"))
        return up_a, up_b

    def test_sighup_adds_site(self):
        up_a, up_b = self.two_upstreams()
        moat = M.Moat(self)
        moat.start(moat.config({A: M.site(up_a)}))
        old = Client(moat.https_port, A, moat.ca)
        self.addCleanup(old.close)
        self.assertEqual(old.request("GET", "/before")[::2], (200, b"site A\n"))
        # b.test is unknown before the reload: no certificate for it
        with self.assertRaises((ssl.SSLError, ConnectionError)):
            Client(moat.https_port, B, moat.ca).close()

        self.assertTrue(moat.reload(moat.config({A: M.site(up_a), B: M.site(up_b)})),
                        "reload refused:\n" + moat.stderr())
        self.assertRegex(moat.stderr(), r"moat: info: reloaded")

        # new connections see the new site
        self.assertEqual(M.curl(moat, B, "/new").status, 200)
        self.assertEqual(M.curl(moat, B, "/new").body, b"site B\n")
        self.assertEqual(M.curl(moat, A, "/new").body, b"site A\n")
        # the keep-alive connection opened before the reload still works
        self.assertEqual(old.request("GET", "/after")[::2], (200, b"site A\n"))
        self.assertEqual([r.target for r in up_a.find("/after")], ["/after"])
        self.assertEqual(len(up_b.find("/after")), 0)

    def test_sighup_bad_config_refused(self):
        up_a, up_b = self.two_upstreams()
        moat = M.Moat(self)
        moat.start(moat.config({A: M.site(up_a)}))
        bad = M.to_yaml(moat.config({A: M.site(up_a), B: M.site(up_b)}))
        lines = bad.splitlines()
        lines.insert(1, "no_such_key: 1")   # line 2, col 1
        before = len(moat.stderr())
        self.assertFalse(moat.reload("\n".join(lines) + "\n"), "a bad config was accepted")
        err = moat.stderr()[before:]
        self.assertIn("moat: error: reload refused", err)
        self.assertIn("%s:2:1:" % moat.conf_file, err, "no file:line:col in:\n" + err)
        self.assertIn("no_such_key", err)
        # the old config keeps serving; the new site never appeared
        self.assertEqual(M.curl(moat, A, "/still").body, b"site A\n")
        r = M.curl(moat, B, "/never")
        self.assertNotEqual(r.status, 200, r)
        self.assertEqual(up_b.find("/never"), [])
        # and a later good reload still works
        self.assertTrue(moat.reload(moat.config({A: M.site(up_a), B: M.site(up_b)})))
        self.assertEqual(M.curl(moat, B, "/now").body, b"site B\n")


if __name__ == "__main__":
    M.main()
