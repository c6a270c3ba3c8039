"""
The normal client of bench/slowloris.py: steady HTTPS requests, counted and
timed, while (or before) the attacker runs.

    /usr/bin/python3 bench/slowclient.py PORT SNI CAFILE RATE SECONDS

Two kinds of requests at RATE per second each, for SECONDS:
- "new": a new TCP and TLS connection per request (full handshake,
  certificate verified), `GET /small` with `Connection: close`;
- "keepalive": `GET /small` on one kept-alive TLS connection, opened again
  (in the next request's time) when it fails.

Requests are scheduled at fixed times (open loop: a "new" request starts at
its time even while earlier ones are still waiting), and latency is counted
from the scheduled time, so a stall shows in every request that queued
behind it. A request succeeds when it gets a 200 with the 100-byte body
within TIMEOUT seconds. Prints one JSON object at the end:
{"new": {"ok", "fail", "errors": {reason: count}, "lat_ms": [...]}, "keepalive": ...}
"""

import json
import socket
import ssl
import sys
import threading
import time

HOST = "127.0.0.1"
TIMEOUT = 10.0
BODY_LEN = 100


class Result:
    def __init__(self):
        self.lock = threading.Lock()
        self.ok, self.fail, self.errors, self.lat_ms = 0, 0, {}, []

    def add(self, sched, err):
        ms = (time.monotonic() - sched) * 1000
        with self.lock:
            if err is None:
                self.ok += 1
                self.lat_ms.append(round(ms, 3))
            else:
                self.fail += 1
                self.errors[err] = self.errors.get(err, 0) + 1

    def json(self):
        return {"ok": self.ok, "fail": self.fail, "errors": self.errors, "lat_ms": self.lat_ms}


def read_response(s, buf):
    """Reads one response from s (buf: bytes already read). Returns
    (status, rest of buf); raises on a short or malformed response."""
    while b"\r\n\r\n" not in buf:
        chunk = s.recv(4096)
        if not chunk:
            raise ConnectionError("eof")
        buf += chunk
    head, buf = buf.split(b"\r\n\r\n", 1)
    lines = head.split(b"\r\n")
    status = int(lines[0].split(b" ", 2)[1])
    length = 0
    for line in lines[1:]:
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"content-length":
            length = int(value)
    while len(buf) < length:
        chunk = s.recv(4096)
        if not chunk:
            raise ConnectionError("eof in body")
        buf += chunk
    if status == 200 and length != BODY_LEN:
        raise ValueError("body of %d bytes" % length)
    return status, buf[length:]


def reason(e):
    if isinstance(e, socket.timeout):
        return "timeout"
    if isinstance(e, ssl.SSLError):
        return "tls: %s" % (e.reason or e.__class__.__name__)
    return e.__class__.__name__


class Client:
    def __init__(self, port, sni, cafile):
        self.port, self.sni = port, sni
        self.ctx = ssl.create_default_context(cafile=cafile)
        self.req = b"GET /small HTTP/1.1\r\nHost: %s\r\n" % sni.encode()

    def connect(self, deadline):
        s = socket.create_connection((HOST, self.port), timeout=max(deadline, 0.001))
        return self.ctx.wrap_socket(s, server_hostname=self.sni)

    def new_conn(self, sched, res):
        err = None
        try:
            s = self.connect(sched + TIMEOUT - time.monotonic())
            try:
                s.sendall(self.req + b"Connection: close\r\n\r\n")
                status, _ = read_response(s, b"")
                if status != 200:
                    err = "status %d" % status
            finally:
                s.close()
        except (OSError, ValueError) as e:
            err = reason(e)
        res.add(sched, err)

    def keepalive(self, scheds, res):
        s, buf = None, b""
        for sched in scheds:
            delay = sched - time.monotonic()
            if delay > 0:
                time.sleep(delay)
            err = None
            try:
                if s is None:
                    s, buf = self.connect(sched + TIMEOUT - time.monotonic()), b""
                s.settimeout(max(sched + TIMEOUT - time.monotonic(), 0.001))
                s.sendall(self.req + b"\r\n")
                status, buf = read_response(s, buf)
                if status != 200:
                    err = "status %d" % status
            except (OSError, ValueError) as e:
                err = reason(e)
                if s is not None:
                    s.close()
                s = None
            res.add(sched, err)
        if s is not None:
            s.close()


def main():
    port, sni, cafile = int(sys.argv[1]), sys.argv[2], sys.argv[3]
    rate, seconds = float(sys.argv[4]), float(sys.argv[5])
    c = Client(port, sni, cafile)
    new, ka = Result(), Result()
    t0 = time.monotonic() + 0.1
    scheds = [t0 + i / rate for i in range(int(rate * seconds))]
    ka_thread = threading.Thread(target=c.keepalive, args=(scheds, ka))
    ka_thread.start()
    workers = []
    for sched in scheds:
        delay = sched - time.monotonic()
        if delay > 0:
            time.sleep(delay)
        t = threading.Thread(target=c.new_conn, args=(sched, new))
        t.start()
        workers.append(t)
    for t in workers + [ka_thread]:
        t.join()
    print(json.dumps({"new": new.json(), "keepalive": ka.json(), "rate": rate,
                      "seconds": seconds}))


if __name__ == "__main__":
    main()
