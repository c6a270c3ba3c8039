"""
Stopping moat (runtime-contract.md "Process": SIGTERM stops accepting, lets
in-flight requests finish up to timeouts.drain, exits 0).

- a second SIGTERM during a drain closes what is left at once;
- with only idle connections there is nothing to wait for;
- a client that never finishes its request head is closed by the head timer,
  not kept until the drain deadline.

timeouts.drain is 10m everywhere, far beyond every wait here, so only the
behaviour under test can make moat exit in time. The waits are deadlock
breakers, never measurements.
"""

import os
import signal
import socket
import subprocess
import time

import moatlib as M
from peers import Client, Stream, hget

WAIT = 30.0
A = "a.test"
DRAIN = {"drain": "10m"}


def read_to_eof(sock, timeout=WAIT):
    """(bytes received, closed): read until the peer closes or timeout."""
    return M.raw_exchange(sock, b"", timeout=timeout)


class Stop(M.MoatTestCase):
    def start(self, up, **timeouts):
        moat = M.Moat(self)
        t = dict(DRAIN)
        t.update(timeouts)
        moat.start(moat.config({A: M.site(up)}, timeouts=t))
        return moat

    def wait_exit(self, moat, what):
        try:
            rc = moat.proc.wait(WAIT)
        except subprocess.TimeoutExpired:
            self.fail("moat still running %.0f s after %s (drain is 10m):\n%s"
                      % (WAIT, what, moat.stderr()[-5000:]))
        self.assertEqual(rc, 0, "exit code after %s:\n%s" % (what, moat.stderr()[-5000:]))
        moat.stop()  # exited already: checks the exit code and sanitizer reports

    def assert_listeners_closed(self, moat):
        M.wait_until(lambda: M.connect_refused(moat.https_port), WAIT,
                     "the https listener to close after SIGTERM")
        for _ in range(5):
            self.assertTrue(M.connect_refused(moat.https_port),
                            "a new https connection was accepted while stopping")
        self.assertTrue(M.connect_refused(moat.http_port),
                        "a new http connection was accepted while stopping")

    def test_second_sigterm_closes_held_connection_at_once(self):
        up = self.upstream(M.Reply(action="hang"))
        moat = self.start(up)
        c = Client(moat.https_port, A, moat.ca)
        self.addCleanup(c.close)
        c.send_request("GET", "/held")
        up.wait_requests(1, WAIT)
        self.assertEqual(up.requests[0].target, "/held")

        os.kill(moat.pid, signal.SIGTERM)
        self.assert_listeners_closed(moat)
        self.assertIsNone(moat.proc.poll(), "moat exited with a request in flight and a 10m "
                          "drain:\n" + moat.stderr()[-5000:])

        os.kill(moat.pid, signal.SIGTERM)
        self.wait_exit(moat, "the second SIGTERM")
        data, closed = read_to_eof(c.sock, timeout=WAIT)
        self.assertTrue(closed, "the held client connection is still open after moat exited")
        if data:
            # whatever moat said before closing must at least be HTTP
            self.assertIsNotNone(M.parse_status(data), data[:300])

    def test_sigterm_with_only_idle_connections_exits_promptly(self):
        up = self.upstream()
        moat = self.start(up)
        # a keep-alive connection after a finished exchange
        c = Client(moat.https_port, A, moat.ca)
        self.addCleanup(c.close)
        status, headers, _ = c.request("GET", "/one")
        self.assertEqual(status, 200)
        self.assertNotEqual((hget(headers, "connection") or "").lower(), "close")
        # plain http, keep-alive after a 308
        p = socket.create_connection(("127.0.0.1", moat.http_port), timeout=WAIT)
        self.addCleanup(p.close)
        ps = Stream(p)
        ps.send(b"GET /two HTTP/1.1\r\nHost: %s\r\n\r\n" % A.encode())
        start, headers = ps.read_head()
        self.assertIn(" 308 ", start)
        b"".join(ps.iter_body(headers))
        # a TLS connection that never sent a request
        fresh = Client(moat.https_port, A, moat.ca)
        self.addCleanup(fresh.close)
        # a TCP connection that never started its handshake
        raw = socket.create_connection(("127.0.0.1", moat.https_port), timeout=WAIT)
        self.addCleanup(raw.close)
        # moat has accepted all four once the last TLS handshake is through;
        # give the raw one a moment to be accepted too (not asserted)
        time.sleep(0.5)

        os.kill(moat.pid, signal.SIGTERM)
        self.wait_exit(moat, "SIGTERM with only idle connections")
        for name, sock in (("https keep-alive", c.sock), ("http keep-alive", p),
                           ("fresh TLS", fresh.sock), ("no handshake", raw)):
            data, closed = read_to_eof(sock, timeout=WAIT)
            self.assertTrue(closed, "%s connection still open after moat exited" % name)
            self.assertEqual(data, b"", "%s: unexpected bytes %r" % (name, data[:200]))

    def test_half_sent_head_does_not_hold_stop_beyond_header_timeout(self):
        up = self.upstream()
        moat = self.start(up, header="2s")
        c = Client(moat.https_port, A, moat.ca)
        self.addCleanup(c.close)
        c.s.send(b"GET /slow HTTP/1.1\r\nHost: a.test\r\nX-Slow: 1")  # and nothing more
        # let moat read those bytes, so that the connection is inside a head
        # when the signal comes (a pause, not a measurement)
        time.sleep(0.5)

        os.kill(moat.pid, signal.SIGTERM)
        self.assert_listeners_closed(moat)
        self.wait_exit(moat, "SIGTERM with a half-sent request head (header timeout 2s)")
        data, closed = read_to_eof(c.sock, timeout=WAIT)
        self.assertTrue(closed, "the slow client's connection is still open after moat exited")
        if data:
            self.assertEqual(M.parse_status(data), 408, data[:300])
        self.assertEqual(up.requests, [], "a half-sent head reached the upstream")


if __name__ == "__main__":
    M.main()
