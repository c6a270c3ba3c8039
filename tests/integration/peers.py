"""Extra peers for moat's integration tests (the shared harness is moatlib.py).

Everything here runs for real on 127.0.0.1: a scripted HTTP/1.1 upstream whose
handler decides byte by byte what to send and when, a streaming HTTP reader for
the client side, a stock nginx in its own prefix, a python3-websockets server
in a thread, and a VmRSS sampler.  No wall-clock assertions: waits carry a
generous deadline only so that a broken daemon fails the test instead of
hanging it.
"""

import asyncio
import hashlib
import os
import random
import shutil
import socket
import ssl
import subprocess
import tempfile
import threading
import time

import moatlib
from moatlib import free_port

WAIT = 30.0  # deadlock breaker for every blocking wait, never asserted on


def port_in_use(port, host="127.0.0.1"):
    """True when something accepts or holds port on host (bind test)."""
    with socket.socket() as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind((host, port))
        except OSError:
            return True
    return False


# --------------------------------------------------------------- byte stream

class Stream:
    """Buffered reader/writer over a (TLS or plain) socket."""

    def __init__(self, sock):
        self.sock = sock
        self.buf = bytearray()
        self.eof = False

    def _fill(self, n=262144):
        if self.eof:
            return False
        try:
            data = self.sock.recv(n)
        except ssl.SSLZeroReturnError:
            data = b""
        except ssl.SSLEOFError:
            data = b""
        if not data:
            self.eof = True
            return False
        self.buf += data
        return True

    def read_until(self, delim, limit=1 << 20):
        while True:
            i = self.buf.find(delim)
            if i >= 0:
                out = bytes(self.buf[:i + len(delim)])
                del self.buf[:i + len(delim)]
                return out
            if len(self.buf) > limit:
                raise ValueError("line too long")
            if not self._fill():
                raise EOFError("EOF before %r (have %r)" % (delim, bytes(self.buf[:200])))

    def read_exact(self, n):
        while len(self.buf) < n:
            if not self._fill(max(65536, min(n - len(self.buf), 1 << 20))):
                raise EOFError("EOF after %d of %d bytes" % (len(self.buf), n))
        out = bytes(self.buf[:n])
        del self.buf[:n]
        return out

    def read_some(self, n=262144):
        """Up to n bytes; b'' at EOF."""
        if not self.buf:
            self._fill(n)
        out = bytes(self.buf[:n])
        del self.buf[:n]
        return out

    def read_head(self):
        """(start line, [(name, value)]) of an HTTP/1 message head."""
        raw = self.read_until(b"\r\n\r\n", limit=1 << 16)
        lines = raw[:-4].decode("latin-1").split("\r\n")
        headers = []
        for ln in lines[1:]:
            k, _, v = ln.partition(":")
            headers.append((k.strip(), v.strip()))
        return lines[0], headers

    def iter_body(self, headers, response=True, status=200, method="GET"):
        """Yield body pieces as they arrive (Content-Length, chunked or
        close-delimited).  Raises EOFError on a truncated body."""
        if response and (method == "HEAD" or status in (204, 304) or 100 <= status < 200):
            return
        te = hget(headers, "transfer-encoding")
        cl = hget(headers, "content-length")
        if te is not None:
            assert te.lower() == "chunked", te
            while True:
                line = self.read_until(b"\r\n", limit=4096)
                size = int(line.split(b";")[0].strip(), 16)
                if size == 0:
                    while self.read_until(b"\r\n", limit=65536) != b"\r\n":
                        pass
                    return
                left = size
                while left:
                    if not self.buf and not self._fill():
                        raise EOFError("EOF inside a chunk")
                    piece = bytes(self.buf[:left])
                    del self.buf[:len(piece)]
                    left -= len(piece)
                    yield piece
                if self.read_exact(2) != b"\r\n":
                    raise ValueError("chunk not followed by CRLF")
        elif cl is not None:
            left = int(cl)
            while left:
                if not self.buf and not self._fill(min(left, 1 << 20)):
                    raise EOFError("EOF with %d body bytes missing" % left)
                piece = bytes(self.buf[:left])
                del self.buf[:len(piece)]
                left -= len(piece)
                yield piece
        elif response:
            while True:
                piece = self.read_some()
                if not piece:
                    return
                yield piece
        # a request without either has no body

    def send(self, data):
        self.sock.sendall(data)


class UpgradeUpstream:
    """Accepts one connection, answers its Upgrade request with 101, then
    hands the socket and any bytes that came after the head to tunnel()
    (subclasses), on its own thread. stop() runs at the owner's cleanup."""

    def __init__(self, owner):
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(4)
        self.port = self.sock.getsockname()[1]
        self.error = None
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()
        owner.addCleanup(self.stop)

    def tunnel(self, conn, rest):
        raise NotImplementedError  # subclasses say what the tunnel does

    def _serve(self):
        try:
            conn, _ = self.sock.accept()
        except OSError:
            return
        with conn:
            conn.settimeout(20)
            try:
                head = b""
                while b"\r\n\r\n" not in head:
                    chunk = conn.recv(4096)
                    if not chunk:
                        return
                    head += chunk
                conn.sendall(b"HTTP/1.1 101 Switching Protocols\r\n"
                             b"Connection: Upgrade\r\nUpgrade: testproto\r\n\r\n")
                self.tunnel(conn, head.split(b"\r\n\r\n", 1)[1])
            except OSError as e:
                self.error = e

    def stop(self):
        self.sock.close()
        self.thread.join(10)


def hget(headers, name):
    """Last value of header name (case-insensitive) or None."""
    name = name.lower()
    val = None
    for k, v in headers:
        if k.lower() == name:
            val = v
    return val


def hall(headers, name):
    name = name.lower()
    return [v for k, v in headers if k.lower() == name]


def parse_status(start):
    parts = start.split(" ", 2)
    return int(parts[1])


# --------------------------------------------------------------- client side

def client_ctx(cafile):
    ctx = ssl.create_default_context(cafile=cafile)
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    return ctx


def tls_client(port, host, cafile, timeout=WAIT, alpn=("http/1.1",)):
    """A TLS socket to 127.0.0.1:port with SNI host, verified against cafile."""
    ctx = client_ctx(cafile)
    if alpn:
        ctx.set_alpn_protocols(list(alpn))
    raw = socket.create_connection(("127.0.0.1", port), timeout=timeout)
    try:
        return ctx.wrap_socket(raw, server_hostname=host)
    except BaseException:
        raw.close()
        raise


class Client:
    """One HTTP/1.1 connection through moat, for keep-alive and streaming."""

    def __init__(self, port, host, cafile, timeout=WAIT):
        self.host = host
        self.port = port
        self.sock = tls_client(port, host, cafile, timeout)
        self.s = Stream(self.sock)

    def send_request(self, method="GET", target="/", headers=(), body=b"", host=None):
        h = "%s %s HTTP/1.1\r\nHost: %s\r\n" % (method, target, host or "%s:%d" % (self.host, self.port))
        for k, v in headers:
            h += "%s: %s\r\n" % (k, v)
        if body and not any(k.lower() in ("content-length", "transfer-encoding") for k, _ in headers):
            h += "Content-Length: %d\r\n" % len(body)
        self.s.send(h.encode("latin-1") + b"\r\n" + body)

    def read_response(self, method="GET"):
        """(status, headers, body bytes)."""
        start, headers = self.s.read_head()
        status = parse_status(start)
        body = b"".join(self.s.iter_body(headers, True, status, method))
        return status, headers, body

    def request(self, method="GET", target="/", headers=(), body=b"", host=None):
        self.send_request(method, target, headers, body, host)
        return self.read_response(method)

    def close(self):
        try:
            self.sock.close()
        except OSError:
            pass


# --------------------------------------------------------------- upstreams

class Request:
    def __init__(self, method, target, version, headers, conn):
        self.method, self.target, self.version, self.headers = method, target, version, headers
        self.conn = conn

    def header(self, name):
        return hget(self.headers, name)

    def body_pieces(self):
        return self.conn.stream.iter_body(self.headers, response=False)

    def body(self):
        return b"".join(self.body_pieces())


class UpConn:
    def __init__(self, sock, peer):
        self.sock = sock
        self.peer = peer
        self.stream = Stream(sock)

    def read_request(self):
        """The next request head on this connection, or None at EOF."""
        try:
            start, headers = self.stream.read_head()
        except EOFError:
            return None
        method, target, version = start.split(" ", 2)
        return Request(method, target, version, headers, self)

    def send(self, data):
        self.sock.sendall(data)

    def respond(self, status=200, body=b"", headers=(("Content-Type", "text/plain"),), reason="OK"):
        h = "HTTP/1.1 %d %s\r\n" % (status, reason)
        for k, v in headers:
            h += "%s: %s\r\n" % (k, v)
        h += "Content-Length: %d\r\n\r\n" % len(body)
        self.send(h.encode("latin-1") + body)

    def send_chunk(self, data):
        if data:
            self.send(b"%x\r\n" % len(data) + data + b"\r\n")

    def end_chunks(self):
        self.send(b"0\r\n\r\n")

    def close(self):
        try:
            self.sock.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
        self.sock.close()


class ScriptedUpstream:
    """A plain-HTTP upstream on a free 127.0.0.1 port.  handler(conn) runs in
    its own thread per accepted connection and owns it (UpConn).  Requests
    seen by the default loop are kept in .requests; handler exceptions are
    kept in .errors so the test can assert there were none."""

    def __init__(self, handler):
        self.handler = handler
        self.lsock = socket.socket()
        self.lsock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.lsock.bind(("127.0.0.1", 0))
        self.lsock.listen(128)
        self.port = self.lsock.getsockname()[1]
        self.url = "http://127.0.0.1:%d" % self.port
        self.conns = []
        self.threads = []
        self.errors = []
        self.requests = []
        self.lock = threading.Lock()
        self.closed = False
        self.accepted = 0
        self.t = threading.Thread(target=self._accept, daemon=True)
        self.t.start()

    def _accept(self):
        while True:
            try:
                s, peer = self.lsock.accept()
            except OSError:
                return
            if self.closed:
                s.close()
                return
            s.settimeout(120)
            c = UpConn(s, peer)
            with self.lock:
                self.conns.append(c)
                self.accepted += 1
            t = threading.Thread(target=self._run, args=(c,), daemon=True)
            with self.lock:
                self.threads.append(t)
            t.start()

    def _run(self, c):
        try:
            self.handler(c)
        except Exception as e:  # noqa: BLE001 - reported to the test
            if not self.closed:
                self.errors.append(repr(e))
        finally:
            c.close()

    def stop(self):
        self.closed = True
        try:
            self.lsock.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
        self.lsock.close()
        with self.lock:
            conns = list(self.conns)
            threads = list(self.threads)
        for c in conns:
            c.close()
        self.t.join(5)
        for t in threads:
            t.join(5)


def serve_loop(route):
    """Handler factory: keep-alive loop calling route(conn, req) per request;
    route must consume the body and send a full response, and may return
    False to close the connection."""
    def handler(conn):
        while True:
            req = conn.read_request()
            if req is None:
                return
            if route(conn, req) is False:
                return
    return handler


# --------------------------------------------------------------- data

BLOCK = 1 << 20
_BASE = random.Random(20240611).randbytes(BLOCK)


def pattern_blocks(total, block=BLOCK):
    """total bytes of a deterministic, non-periodic pattern: 1 MiB pseudo-
    random blocks, each stamped with its index so that reordered, repeated
    or dropped blocks change the hash."""
    i = 0
    sent = 0
    while sent < total:
        n = min(block, total - sent)
        b = i.to_bytes(8, "big") + _BASE[8:block]
        yield b[:n]
        sent += n
        i += 1


def pattern_sha256(total):
    h = hashlib.sha256()
    for b in pattern_blocks(total):
        h.update(b)
    return h.hexdigest()


# --------------------------------------------------------------- memory

class RSSSampler:
    """Samples VmRSS (KiB) of pid every interval seconds in a thread."""

    def __init__(self, pid, interval=0.5):
        self.pid = pid
        self.interval = interval
        self.samples = []
        self.stop_ev = threading.Event()
        self.t = threading.Thread(target=self._run, daemon=True)
        self.t.start()

    def _sample(self):
        try:
            with open("/proc/%d/status" % self.pid) as f:
                for ln in f:
                    if ln.startswith("VmRSS:"):
                        self.samples.append(int(ln.split()[1]))
                        return
        except OSError:
            pass

    def _run(self):
        while not self.stop_ev.is_set():
            self._sample()
            self.stop_ev.wait(self.interval)

    def stop(self):
        self.stop_ev.set()
        self.t.join(5)
        self._sample()

    @property
    def max_kib(self):
        return max(self.samples) if self.samples else 0


# --------------------------------------------------------------- nginx

class Nginx:
    """Stock nginx in its own prefix under a temp dir, foreground, single
    process, stopped by pid.  server_body is the text inside server { }."""

    BIN = "/usr/sbin/nginx"

    def __init__(self, server_body, root=None):
        self.dir = tempfile.mkdtemp(prefix="moat-nginx-")
        self.port = free_port()
        self.root = root or os.path.join(self.dir, "html")
        os.makedirs(self.root, exist_ok=True)
        for d in ("logs", "tmp"):
            os.makedirs(os.path.join(self.dir, d), exist_ok=True)
        self.conf = os.path.join(self.dir, "nginx.conf")
        self.pidfile = os.path.join(self.dir, "logs", "nginx.pid")
        self.errlog = os.path.join(self.dir, "logs", "error.log")
        t = os.path.join(self.dir, "tmp")
        with open(self.conf, "w") as f:
            f.write("""daemon off;
master_process off;
worker_processes 1;
pid %(pid)s;
error_log %(err)s info;
events { worker_connections 256; }
http {
    access_log %(dir)s/logs/access.log;
    client_body_temp_path %(t)s/body;
    proxy_temp_path %(t)s/proxy;
    fastcgi_temp_path %(t)s/fcgi;
    uwsgi_temp_path %(t)s/uwsgi;
    scgi_temp_path %(t)s/scgi;
    default_type application/octet-stream;
    keepalive_requests 1000;
    server {
        listen 127.0.0.1:%(port)d;
        server_name _;
        root %(root)s;
%(body)s
    }
}
""" % {"pid": self.pidfile, "err": self.errlog, "dir": self.dir, "t": t,
                "port": self.port, "root": self.root, "body": server_body})
        self.proc = None

    def start(self):
        self.proc = subprocess.Popen([self.BIN, "-p", self.dir + "/", "-c", self.conf],
                                     stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                     stderr=subprocess.STDOUT)
        deadline = time.monotonic() + WAIT
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError("nginx exited %s: %s %s" % (
                    self.proc.returncode, self.proc.stdout.read().decode(errors="replace"),
                    self.read_errlog()))
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=1).close()
                return self
            except OSError:
                time.sleep(0.05)
        raise RuntimeError("nginx did not listen: " + self.read_errlog())

    def read_errlog(self):
        try:
            with open(self.errlog, errors="replace") as f:
                return f.read()
        except OSError:
            return ""

    def stop(self):
        if self.proc is not None:
            moatlib.stop_process(self.proc)
        shutil.rmtree(self.dir, ignore_errors=True)


# --------------------------------------------------------------- websockets

class WSUpstream:
    """python3-websockets server on a free port, in a thread with its own
    asyncio loop.  On connect it records the request headers and sends a
    server-initiated greeting; then it echoes every message.  The text
    message "close-me" makes the server close with code 4001."""

    GREETING = "hello from upstream"

    def __init__(self):
        import websockets  # Debian python3-websockets (10.4)
        self.websockets = websockets
        self.port = free_port()
        self.url = "http://127.0.0.1:%d" % self.port
        self.headers = []       # one websockets Headers per connection
        self.paths = []
        self.closes = []        # (code, reason) seen by the server per connection
        self.errors = []
        self.loop = asyncio.new_event_loop()
        self.ready = threading.Event()
        self.stop_fut = None
        self.t = threading.Thread(target=self._run, daemon=True)
        self.t.start()
        if not self.ready.wait(WAIT):
            raise RuntimeError("websocket upstream did not start")
        if self.errors:
            raise RuntimeError("websocket upstream: %s" % self.errors)

    async def _handler(self, ws, path=None):
        ws_exc = self.websockets.exceptions
        self.headers.append(ws.request_headers)
        self.paths.append(path if path is not None else getattr(ws, "path", None))
        try:
            await ws.send(self.GREETING)
            async for msg in ws:
                if msg == "close-me":
                    await ws.close(4001, "upstream says bye")
                    break
                await ws.send(msg)
        except ws_exc.ConnectionClosed:
            pass
        except Exception as e:  # noqa: BLE001
            self.errors.append(repr(e))
        await ws.wait_closed()
        self.closes.append((ws.close_code, ws.close_reason))

    async def _main(self):
        self.stop_fut = self.loop.create_future()
        try:
            async with self.websockets.serve(self._handler, "127.0.0.1", self.port,
                                             max_size=8 << 20):
                self.ready.set()
                await self.stop_fut
        except Exception as e:  # noqa: BLE001
            self.errors.append(repr(e))
            self.ready.set()

    def _run(self):
        asyncio.set_event_loop(self.loop)
        self.loop.run_until_complete(self._main())
        self.loop.close()

    def stop(self):
        if self.t.is_alive() and self.stop_fut is not None:
            self.loop.call_soon_threadsafe(
                lambda: self.stop_fut.done() or self.stop_fut.set_result(None))
        self.t.join(10)


def wait_for(pred, timeout=WAIT, interval=0.05, what="condition"):
    """Poll pred() until true; raise AssertionError naming what otherwise."""
    deadline = time.monotonic() + timeout
    while True:
        v = pred()
        if v:
            return v
        if time.monotonic() >= deadline:
            raise AssertionError("timed out waiting for " + what)
        time.sleep(interval)
