"""Regression test for a tunnel after the client's half-close (src/forward.c).

When the client of an upgraded connection half-closed, moat armed the
client's idle timer (timeouts.idle) so that a half-closed tunnel cannot live
forever, but nothing re-armed it while the upstream kept sending: a stream
that outlived timeouts.idle after the client's EOF (an attach-style protocol
where stdin ends and output goes on) was cut in the middle, however busy it
was. The timer now counts from the upstream's last bytes.
"""

import socket
import time

import moatlib as M
from peers import UpgradeUpstream

HOST = "tun.localhost"
TICKS = 12
GAP = 0.4  # seconds between ticks; TICKS * GAP is well over timeouts.idle


class TickingUpstream(UpgradeUpstream):
    """Answers an Upgrade with 101, reads until the client's EOF, then sends
    a tick every GAP seconds and closes."""

    def __init__(self, owner):
        self.sent = 0
        super().__init__(owner)

    def tunnel(self, conn, rest):
        while conn.recv(65536):
            pass
        for i in range(TICKS):
            time.sleep(GAP)
            conn.sendall(b"tick %d\n" % i)
            self.sent += 1


class TunnelAfterHalfClose(M.MoatTestCase):
    def test_output_after_client_eof_outlives_idle_while_it_flows(self):
        up = TickingUpstream(self)
        moat = self.moat({HOST: M.site("http://127.0.0.1:%d" % up.port, redirect=False)},
                         timeouts={"idle": "2s"})
        s = socket.create_connection(("127.0.0.1", moat.http_port), timeout=20)
        self.addCleanup(s.close)
        s.sendall(b"GET /attach HTTP/1.1\r\nHost: %s\r\nConnection: Upgrade\r\n"
                  b"Upgrade: testproto\r\n\r\n" % HOST.encode())
        data = b""
        while b"\r\n\r\n" not in data:
            chunk = s.recv(4096)
            self.assertTrue(chunk, "moat closed before the 101: %r" % data)
            data += chunk
        self.assertEqual(M.parse_status(data), 101, data)
        s.shutdown(socket.SHUT_WR)
        tail = data.split(b"\r\n\r\n", 1)[1]
        while True:
            try:
                chunk = s.recv(65536)
            except ConnectionResetError:
                break
            if not chunk:
                break
            tail += chunk
        want = b"".join(b"tick %d\n" % i for i in range(TICKS))
        self.assertEqual(tail, want, "tunnel cut after %d of %d ticks" % (tail.count(b"tick"), TICKS))


if __name__ == "__main__":
    M.main()
