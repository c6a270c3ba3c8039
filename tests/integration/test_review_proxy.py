"""Regression tests for runtime bugs found in review (src/conn.c, src/proxy.c).

Each test failed before its fix:
- a partial first chunk-size line ("0\\r\\n" without the final CRLF) made the
  worker spin forever (deliver() handed the same bytes to the chunked precheck
  again and again), so the worker answered nothing and ignored SIGTERM;
- an HTTP/1.0 keep-alive client got a chunked upstream body decoded and
  unframed on a connection moat kept open: it could never tell where the body
  ended;
- limits.body_size was only enforced for Content-Length bodies, never for
  chunked ones;
- pipelined requests that moat answers itself (redirects) were read and
  answered without bound while the client read nothing: moat's write queue,
  and its memory, grew with whatever the client sent;
- timeouts.response ran from the moment the request head went upstream, so an
  upload that took longer than it got a 504 mid-body.
"""

import os
import socket
import threading
import time

import moatlib as M

HOST = "app.localhost"
SAN = os.environ.get("MOAT_FLAVOUR") == "_san"


def rss_kib(pid):
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


def read_all(sock, timeout):
    """Bytes until EOF; (data, True) or (data, False) on timeout."""
    sock.settimeout(timeout)
    data = b""
    try:
        while True:
            d = sock.recv(65536)
            if not d:
                return data, True
            data += d
    except (socket.timeout, TimeoutError):
        return data, False
    except ConnectionResetError:
        return data, True


class Framing(M.MoatTestCase):
    def test_partial_last_chunk_does_not_stall_the_worker(self):
        up = self.upstream()
        moat = self.moat({HOST: M.site(up, redirect=False)}, workers=1)
        s = socket.create_connection(("127.0.0.1", moat.http_port))
        self.addCleanup(s.close)
        s.sendall(b"POST /partial HTTP/1.1\r\nHost: app.localhost\r\n"
                  b"Transfer-Encoding: chunked\r\n\r\n")
        time.sleep(0.2)
        s.sendall(b"0\r\n")  # the last chunk, its final CRLF still to come
        time.sleep(0.3)
        # the only worker must still serve other connections
        r = M.curl(moat, HOST, "/other", scheme="http", port=moat.http_port, timeout=5)
        self.assertEqual(r.status, 200, r)
        s.sendall(b"\r\n")
        s.settimeout(5)
        resp = M.H1Client(s).read_response(timeout=5)
        self.assertEqual(resp.status, 200)
        got = up.find("/partial")
        self.assertEqual(len(got), 1)
        self.assertEqual(got[0].body, b"")

    def test_http10_keepalive_client_chunked_upstream_is_closed(self):
        body = b"0123456789" * 700
        up = self.upstream(M.Reply(200, [("Content-Type", "text/plain")], body, chunked=True,
                                   chunk_size=1000))
        moat = self.moat({HOST: M.site(up, redirect=False)})
        s = socket.create_connection(("127.0.0.1", moat.http_port))
        self.addCleanup(s.close)
        s.sendall(b"GET /ten HTTP/1.0\r\nHost: app.localhost\r\nConnection: keep-alive\r\n\r\n")
        data, closed = read_all(s, 5)
        self.assertTrue(closed, "moat kept an unframed HTTP/1.0 response open: %r" % data[:300])
        head, _, got = data.partition(b"\r\n\r\n")
        lower = head.lower()
        self.assertNotIn(b"transfer-encoding", lower)
        self.assertNotIn(b"keep-alive", lower)
        self.assertIn(b"connection: close", lower)
        self.assertEqual(got, body)

    def test_http10_keepalive_with_content_length_stays_open(self):
        up = self.upstream()
        moat = self.moat({HOST: M.site(up, redirect=False)})
        s = socket.create_connection(("127.0.0.1", moat.http_port))
        self.addCleanup(s.close)
        c = M.H1Client(s)
        for i in range(2):
            s.sendall(b"GET /k%d HTTP/1.0\r\nHost: app.localhost\r\nConnection: keep-alive\r\n\r\n" % i)
            r = c.read_response(timeout=5)
            self.assertEqual(r.status, 200)
            self.assertEqual((r.headers.get("connection") or "").lower(), "keep-alive")

    def test_chunked_body_over_limit_413_before_upstream(self):
        up = self.upstream()
        moat = self.moat({HOST: M.site(up, redirect=False)}, limits={"body_size": 1000})
        s = socket.create_connection(("127.0.0.1", moat.http_port))
        self.addCleanup(s.close)
        resp, closed = M.raw_exchange(
            s, b"POST /big1 HTTP/1.1\r\nHost: app.localhost\r\nTransfer-Encoding: chunked\r\n\r\n"
               b"1000\r\n" + b"y" * 100, timeout=5)
        self.assertEqual(M.parse_status(resp), 413, resp[:200])
        self.assertTrue(closed)
        time.sleep(0.3)
        self.assertEqual(up.find("/big1"), [])

    def test_chunked_body_over_limit_in_small_chunks_413(self):
        up = self.upstream()
        moat = self.moat({HOST: M.site(up, redirect=False)}, limits={"body_size": 1000})
        s = socket.create_connection(("127.0.0.1", moat.http_port))
        self.addCleanup(s.close)
        body = b"".join(b"c8\r\n" + b"y" * 200 + b"\r\n" for _ in range(10)) + b"0\r\n\r\n"
        resp, closed = M.raw_exchange(
            s, b"POST /big2 HTTP/1.1\r\nHost: app.localhost\r\nTransfer-Encoding: chunked\r\n\r\n" + body,
            timeout=5)
        self.assertEqual(M.parse_status(resp), 413, resp[:200])
        self.assertTrue(closed)
        time.sleep(0.3)
        for r in up.find("/big2"):
            self.assertFalse(r.complete, "the upstream received a whole over-limit body")
            self.assertLessEqual(len(r.body), 1000)

    def test_chunked_body_at_limit_passes(self):
        up = self.upstream()
        moat = self.moat({HOST: M.site(up, redirect=False)}, limits={"body_size": 1000})
        s = socket.create_connection(("127.0.0.1", moat.http_port))
        self.addCleanup(s.close)
        body = b"".join(b"c8\r\n" + b"y" * 200 + b"\r\n" for _ in range(5)) + b"0\r\n\r\n"
        s.sendall(b"POST /ok HTTP/1.1\r\nHost: app.localhost\r\nTransfer-Encoding: chunked\r\n\r\n" + body)
        r = M.H1Client(s).read_response(timeout=5)
        self.assertEqual(r.status, 200)
        self.assertEqual(len(up.find("/ok")[0].body), 1000)


class Backpressure(M.MoatTestCase):
    def test_pipelined_redirects_pause_for_a_client_that_does_not_read(self):
        up = self.upstream()
        moat = self.moat({HOST: M.site(up)}, workers=1)  # http -> 308, answered by moat
        req = b"GET /" + b"p" * 400 + b" HTTP/1.1\r\nHost: app.localhost\r\n\r\n"
        count = 40000                                     # ~18 MB of requests
        s = socket.create_connection(("127.0.0.1", moat.http_port))
        self.addCleanup(s.close)
        sent = [0]

        def writer():
            blob = req * 1000
            try:
                for _ in range(count // 1000):
                    s.sendall(blob)
                    sent[0] += len(blob)
            except OSError:
                pass
        rss0 = rss_kib(moat.pid)
        t = threading.Thread(target=writer, daemon=True)
        t.start()
        time.sleep(3)
        stuck_at = sent[0]
        rss1 = rss_kib(moat.pid)
        self.assertTrue(t.is_alive(), "moat read all %d bytes of requests from a client that "
                        "read nothing (grew from %d to %d KiB)" % (sent[0], rss0, rss1))
        if not SAN:
            self.assertLess(rss1 - rss0, 32 * 1024)
        # once the client reads, every request gets its answer
        s.settimeout(30)
        seen, buf = 0, b""
        marker = b"HTTP/1.1 308 "
        end = time.monotonic() + 60
        while seen < count and time.monotonic() < end:
            d = s.recv(1 << 20)
            if not d:
                break
            buf += d
            seen += buf.count(marker)
            buf = buf[-(len(marker) - 1):]
        t.join(30)
        self.assertEqual(seen, count, "answers after the client started reading "
                         "(writer was stuck at %d bytes)" % stuck_at)
        moat.assert_clean()


class Timeouts(M.MoatTestCase):
    def test_upload_longer_than_response_timeout(self):
        up = self.upstream()
        moat = self.moat({HOST: M.site(up, redirect=False)}, timeouts={"response": "1s"})
        s = socket.create_connection(("127.0.0.1", moat.http_port))
        self.addCleanup(s.close)
        s.sendall(b"POST /slow HTTP/1.1\r\nHost: app.localhost\r\nContent-Length: 10\r\n\r\n")
        for _ in range(10):
            time.sleep(0.3)
            s.sendall(b"x")
        r = M.H1Client(s).read_response(timeout=5)
        self.assertEqual(r.status, 200)
        self.assertEqual(up.find("/slow")[0].body, b"x" * 10)

    def test_response_timeout_still_counts_after_the_body(self):
        up = self.upstream(M.Reply(action="hang"))
        moat = self.moat({HOST: M.site(up, redirect=False)}, timeouts={"response": "1s"})
        s = socket.create_connection(("127.0.0.1", moat.http_port))
        self.addCleanup(s.close)
        t0 = time.monotonic()
        s.sendall(b"POST /hang HTTP/1.1\r\nHost: app.localhost\r\nContent-Length: 3\r\n\r\nabc")
        r = M.H1Client(s).read_response(timeout=10)
        self.assertEqual(r.status, 504)
        self.assertLess(time.monotonic() - t0, 8)


if __name__ == "__main__":
    M.main()
