"""Regression tests for the timer that watches a streaming response
(src/forward.c, response_timers).

While a response body streamed, only the upstream's timer ran
(timeouts.response), re-armed whenever moat pumped. When the client stopped
reading, moat paused the upstream itself, and that timer then measured the
client: a client that paused reading for longer than timeouts.response lost
the rest of the download, and moat logged "upstream ...: no response in
time" against an upstream that had done nothing wrong. A client that never
read again was dropped after timeouts.response instead of timeouts.idle.
"""

import os
import socket
import threading
import time

import moatlib as M

HOST = "app.localhost"


def blocking_upstream(owner, body):
    """One-shot upstream that writes a whole response with blocking sends
    (RecordingUpstream gives up on a send blocked for 0.2 s)."""
    ls = socket.socket()
    ls.bind(("127.0.0.1", 0))
    ls.listen(5)
    owner.addCleanup(ls.close)

    def serve():
        try:
            s, _ = ls.accept()
        except OSError:
            return
        with s:
            buf = b""
            while b"\r\n\r\n" not in buf:
                d = s.recv(65536)
                if not d:
                    return
                buf += d
            try:
                s.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n" % len(body) + body)
                s.recv(1)  # until moat closes or reuses
            except OSError:
                pass

    t = threading.Thread(target=serve, daemon=True)
    t.start()
    return ls.getsockname()[1]


def read_response(sock, body_len, timeout):
    """Head and body bytes until body_len body bytes arrived, EOF or timeout."""
    sock.settimeout(timeout)
    data = b""
    end = time.monotonic() + timeout
    try:
        while time.monotonic() < end:
            head, sep, got = data.partition(b"\r\n\r\n")
            if sep and len(got) >= body_len:
                break
            d = sock.recv(1 << 20)
            if not d:
                break
            data += d
    except (socket.timeout, TimeoutError, ConnectionResetError):
        pass
    return data


class SlowReader(M.MoatTestCase):
    def test_pause_longer_than_response_timeout_keeps_the_download(self):
        # more than the kernel buffers on both sides hold, so moat has to wait
        body = os.urandom(16 * 1024 * 1024)
        port = blocking_upstream(self, body)
        moat = self.moat({HOST: M.site(port, redirect=False)},
                         timeouts={"response": "1s", "idle": "60s"})
        s = socket.create_connection(("127.0.0.1", moat.http_port))
        self.addCleanup(s.close)
        s.sendall(b"GET /big HTTP/1.1\r\nHost: app.localhost\r\n\r\n")
        time.sleep(3)  # the client reads nothing for three response timeouts
        head = b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n" % len(body)
        data = read_response(s, len(body), 30)
        self.assertTrue(data.startswith(head), data[:200])
        got = data.partition(b"\r\n\r\n")[2]
        self.assertEqual(len(got), len(body), "download cut after %d bytes" % len(got))
        self.assertEqual(got, body)
        self.assertNotIn("no response in time", moat.stderr())

    def test_client_that_never_reads_is_dropped_after_write_timeout(self):
        body = os.urandom(16 * 1024 * 1024)
        port = blocking_upstream(self, body)
        moat = self.moat({HOST: M.site(port, redirect=False)},
                         timeouts={"response": "60s", "write": "2s"})
        s = socket.create_connection(("127.0.0.1", moat.http_port))
        self.addCleanup(s.close)
        s.sendall(b"GET /stuck HTTP/1.1\r\nHost: app.localhost\r\n\r\n")
        t0 = time.monotonic()
        # the exchange ends (and is logged) when moat drops the connection
        lines = moat.wait_access_log(lambda x: x.get("path") == "/stuck", timeout=20)
        self.assertLess(time.monotonic() - t0, 15)
        self.assertEqual(lines[0]["status"], 200)
        self.assertLess(lines[0]["bytes_out"], len(body))
        self.assertEqual(lines[0].get("deny"), "timeout", lines[0])
        self.assertNotIn("no response in time", moat.stderr())


if __name__ == "__main__":
    M.main()
