"""
Upgraded connections (any HTTP/1.1 Upgrade) are byte tunnels: a client's
half-close is passed on to the upstream after every queued byte, and what
the upstream still sends afterwards reaches the client. (An upstream's close
ends the tunnel once its bytes are delivered.)
"""
import socket
import subprocess
import threading

import moatlib as M
from peers import UpgradeUpstream

HOST = "tun.localhost"


class HalfCloseUpstream(UpgradeUpstream):
    """Answers an Upgrade with 101, echoes what it gets until EOF, then sends
    a farewell (after the client's half-close) and closes."""

    def __init__(self, owner):
        self.received = b""
        self.saw_eof = threading.Event()
        super().__init__(owner)

    def tunnel(self, conn, rest):
        self.received = rest
        while True:
            chunk = conn.recv(65536)
            if not chunk:
                break
            self.received += chunk
        self.saw_eof.set()
        conn.sendall(b"farewell after your EOF: %d bytes" % len(self.received))


class Tunnel(M.MoatTestCase):
    def upgrade(self, moat):
        """A plain-http connection upgraded to a tunnel: (socket, bytes read,
        the 101 head first)."""
        s = socket.create_connection(("127.0.0.1", moat.http_port), timeout=20)
        self.addCleanup(s.close)
        s.sendall(b"GET /t HTTP/1.1\r\nHost: %s\r\nConnection: Upgrade\r\n"
                  b"Upgrade: testproto\r\n\r\n" % HOST.encode())
        head = b""
        while b"\r\n\r\n" not in head:
            chunk = s.recv(4096)
            self.assertTrue(chunk, "moat closed before the 101: %r" % head)
            head += chunk
        self.assertEqual(M.parse_status(head), 101, head)
        return s, head

    def test_client_half_close_reaches_upstream_and_answer_comes_back(self):
        up = HalfCloseUpstream(self)
        moat = self.moat({HOST: M.site("http://127.0.0.1:%d" % up.port, redirect=False)})
        payload = bytes(range(256)) * 4096  # 1 MiB, more than any one buffer
        s, head = self.upgrade(moat)
        s.sendall(payload)
        s.shutdown(socket.SHUT_WR)
        self.assertTrue(up.saw_eof.wait(20), "the upstream never saw the client's half-close")
        self.assertEqual(up.received, payload)
        tail = head.split(b"\r\n\r\n", 1)[1]
        while True:
            chunk = s.recv(65536)
            if not chunk:
                break
            tail += chunk
        self.assertEqual(tail, b"farewell after your EOF: %d bytes" % len(payload))

    def test_tunnel_socket_has_keepalive_probes(self):
        """A tunnel has no timeout of its own, so moat asks the kernel to probe
        the client (TCP keepalive); plain requests do without (fewer system
        calls per connection), as ss shows on moat's side of each socket."""
        up = HalfCloseUpstream(self)
        moat = self.moat({HOST: M.site("http://127.0.0.1:%d" % up.port, redirect=False)})
        plain = socket.create_connection(("127.0.0.1", moat.http_port), timeout=20)
        self.addCleanup(plain.close)
        s, _ = self.upgrade(moat)

        def timer_of(client):
            port = client.getsockname()[1]
            out = subprocess.run(["ss", "-tno", "state", "established",
                                  "( sport = :%d and dport = :%d )" % (moat.http_port, port)],
                                 capture_output=True, text=True, check=True).stdout
            lines = [x for x in out.splitlines()[1:] if x.strip()]
            self.assertEqual(len(lines), 1, out)
            return lines[0]

        self.assertIn("timer:(keepalive", timer_of(s))
        self.assertNotIn("keepalive", timer_of(plain))


if __name__ == "__main__":
    M.main()
