"""Long-lived streams through moat over TLS, without buffering.

"No buffering" is proven by causality, never by timing: the upstream sends
event N and then waits until the test's client has *received* event N before
it sends event N+1.  If moat held event N back (waiting for more bytes, or
for the end of the response), the upstream would never be released and the
test would fail with "client never got event N" after a deadlock breaker."""

import hashlib
import os
import random
import socket
import threading

import moatlib as M
from peers import Client, ScriptedUpstream, hget, parse_status

WAIT = 30.0
HOST = "stream.test"


class Gates:
    """One threading.Event per step: the client sets it when step i arrived."""

    def __init__(self, n):
        self.ev = [threading.Event() for _ in range(n + 1)]

    def arrived(self, i):
        self.ev[i].set()

    def wait(self, i):
        if not self.ev[i].wait(WAIT):
            raise AssertionError("client never got step %d: moat buffered it" % i)


class Streaming(M.MoatTestCase):
    def start(self, handler):
        up = ScriptedUpstream(handler)
        self.addCleanup(up.stop)
        moat = self.moat({HOST: M.site(up.url)})
        c = Client(moat.https_port, HOST, moat.ca)
        self.addCleanup(c.close)
        return up, moat, c

    def assert_upstream_ok(self, up):
        self.assertEqual(up.errors, [], "upstream handler failed")

    # ------------------------------------------------------------ SSE
    def test_sse(self):
        n = 6
        gates = Gates(n)
        done = threading.Event()

        def event(i):
            return ("id: %d\nevent: tick\ndata: event number %d\n\n" % (i, i)).encode()

        def handler(conn):
            conn.read_request()
            conn.send(b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\n"
                      b"Cache-Control: no-cache\r\nTransfer-Encoding: chunked\r\n\r\n")
            for i in range(1, n + 1):
                ev = event(i)
                # split an event over two chunks once, so that moat cannot
                # rely on chunk == event
                if i == 3:
                    conn.send_chunk(ev[:7])
                    conn.send_chunk(ev[7:])
                else:
                    conn.send_chunk(ev)
                gates.wait(i)
            conn.end_chunks()
            done.set()
            # keep the connection open until moat or the test closes it
            conn.stream.read_some()

        up, moat, c = self.start(handler)
        c.send_request("GET", "/events", headers=[("Accept", "text/event-stream")])
        start, headers = c.s.read_head()
        self.assertEqual(parse_status(start), 200, start)
        self.assertTrue(hget(headers, "content-type").startswith("text/event-stream"))
        self.assertIsNone(hget(headers, "content-length"))
        expected = b"".join(event(i) for i in range(1, n + 1))
        ends = [sum(len(event(k)) for k in range(1, i + 1)) for i in range(1, n + 1)]
        buf = b""
        got = 0
        for piece in c.s.iter_body(headers):
            buf += piece
            self.assertEqual(buf, expected[:len(buf)], "stream differs after %d events" % got)
            while got < n and len(buf) >= ends[got]:
                got += 1
                gates.arrived(got)  # releases the upstream to send the next one
        self.assertEqual(got, n, "stream ended after %d events" % got)
        self.assertEqual(buf, expected)
        self.assertTrue(done.wait(WAIT))
        self.assert_upstream_ok(up)

    def test_client_abort_on_idle_stream(self):
        """A viewer closes an SSE stream while the upstream has nothing to
        send: moat must notice the client's close and release the upstream
        connection then, not at the response timeout (set far beyond this
        test's waits so that only a reaction to the close passes)."""
        released = threading.Event()

        def handler(conn):
            conn.read_request()
            conn.send(b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\n"
                      b"Transfer-Encoding: chunked\r\n\r\n")
            conn.send_chunk(b"data: only event\n\n")
            conn.sock.settimeout(WAIT)
            try:
                conn.stream.read_some()  # b"" at moat's close
                released.set()
            except (socket.timeout, TimeoutError):
                pass
            except OSError:
                released.set()

        up = ScriptedUpstream(handler)
        self.addCleanup(up.stop)
        moat = M.Moat(self)
        moat.start(moat.config({HOST: M.site(up.url)}, timeouts={"response": "10m"}))
        c = Client(moat.https_port, HOST, moat.ca)
        self.addCleanup(c.close)
        c.send_request("GET", "/events")
        start, headers = c.s.read_head()
        self.assertEqual(parse_status(start), 200, start)
        self.assertEqual(next(c.s.iter_body(headers)), b"data: only event\n\n")
        c.close()
        self.assertTrue(released.wait(WAIT + 5),
                        "upstream connection still open after the client closed an idle stream")

    # ------------------------------------------------------------ MJPEG
    def test_mjpeg(self):
        nframes = 20
        rnd = random.Random(7)
        frames = [os.urandom(45000 + rnd.randrange(10000)) for _ in range(nframes)]
        gates = Gates(nframes)
        saw_close = threading.Event()

        def handler(conn):
            req = conn.read_request()
            assert req.target == "/cam/stream.mjpg", req.target
            conn.send(b"HTTP/1.1 200 OK\r\nContent-Type: multipart/x-mixed-replace; "
                      b"boundary=frame\r\nCache-Control: no-cache\r\nConnection: close\r\n\r\n")
            for i, f in enumerate(frames, 1):
                conn.send(b"--frame\r\nContent-Type: image/jpeg\r\nContent-Length: %d\r\n\r\n"
                          % len(f) + f + b"\r\n")
                gates.wait(i)
            # A camera never ends the stream: it keeps sending frames until
            # the viewer goes away.  The client closes after frame N; moat
            # must then close the upstream side, which the camera notices as
            # a failed send (or EOF).  Bounded so a broken moat cannot make
            # this loop run forever.
            conn.sock.settimeout(WAIT)
            f = frames[0]
            part = (b"--frame\r\nContent-Type: image/jpeg\r\nContent-Length: %d\r\n\r\n"
                    % len(f) + f + b"\r\n")
            try:
                for _ in range(4000):  # ~200 MB, far beyond any socket buffers
                    conn.send(part)
            except (socket.timeout, TimeoutError):
                return  # moat stopped reading but kept the connection: not closed
            except OSError:
                saw_close.set()  # EPIPE / ECONNRESET: moat closed the upstream

        up, moat, c = self.start(handler)
        c.send_request("GET", "/cam/stream.mjpg")
        start, headers = c.s.read_head()
        self.assertEqual(parse_status(start), 200, start)
        self.assertEqual(hget(headers, "content-type"),
                         "multipart/x-mixed-replace; boundary=frame")
        buf = b""
        got = 0
        body = c.s.iter_body(headers)
        while got < nframes:
            # parse one part: boundary line, part headers, Content-Length bytes, CRLF
            while True:
                i = buf.find(b"\r\n\r\n")
                if i >= 0:
                    head = buf[:i].decode("latin-1").split("\r\n")
                    self.assertEqual(head[0], "--frame")
                    length = int([h.split(":", 1)[1] for h in head[1:]
                                  if h.lower().startswith("content-length:")][0])
                    if len(buf) >= i + 4 + length + 2:
                        break
                try:
                    buf += next(body)
                except StopIteration:
                    self.fail("stream ended after %d frames" % got)
            data = buf[i + 4:i + 4 + length]
            self.assertEqual(buf[i + 4 + length:i + 4 + length + 2], b"\r\n")
            buf = buf[i + 4 + length + 2:]
            self.assertEqual(hashlib.sha256(data).hexdigest(),
                             hashlib.sha256(frames[got]).hexdigest(), "frame %d differs" % got)
            got += 1
            gates.arrived(got)
        c.close()
        self.assertTrue(saw_close.wait(WAIT),
                        "upstream connection not closed after the client went away")
        self.assert_upstream_ok(up)

    # ------------------------------------------------------------ close-delimited
    def test_close_delimited(self):
        """No Content-Length and no chunking: the body ends when the upstream
        closes; the client must get every byte, and the end must be
        signalled (terminating chunk or close), not a truncation."""
        for version in ("HTTP/1.1", "HTTP/1.0"):
            with self.subTest(version=version):
                body = os.urandom(3 * 1024 * 1024 + 17)

                def handler(conn, body=body, version=version):
                    conn.read_request()
                    conn.send(("%s 200 OK\r\nContent-Type: application/octet-stream\r\n\r\n"
                               % version).encode())
                    for off in range(0, len(body), 100000):
                        conn.send(body[off:off + 100000])
                    # end of body = close

                up, moat, c = self.start(handler)
                c.send_request("GET", "/blob")
                start, headers = c.s.read_head()
                self.assertEqual(parse_status(start), 200, start)
                got = b"".join(c.s.iter_body(headers))
                self.assertEqual(len(got), len(body))
                self.assertEqual(hashlib.sha256(got).digest(), hashlib.sha256(body).digest())
                if hget(headers, "transfer-encoding") is None and \
                        hget(headers, "content-length") is None:
                    # close-delimited to the client too: moat must say so
                    self.assertEqual((hget(headers, "connection") or "").lower(), "close")
                self.assert_upstream_ok(up)


if __name__ == "__main__":
    M.main()
