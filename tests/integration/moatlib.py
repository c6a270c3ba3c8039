"""
moatlib - harness for moat's integration tests (run them with /usr/bin/python3 -u).

Everything talks to the real `moat` binary ($MOAT_BIN, default <repo>/build/moat)
over 127.0.0.1 sockets. Every process, thread and temp dir a test creates is
released by a unittest cleanup, also when the test fails.

Quick start:

    import moatlib as M

    class T(M.MoatTestCase):                 # unittest.TestCase + helpers below
        def test_get(self):
            up = self.upstream()             # RecordingUpstream, stopped at cleanup
            moat = self.moat({"app.localhost": M.site(up)})   # started, ready
            r = M.curl(moat, "app.localhost", "/x")
            self.assertEqual(r.status, 200)
            self.assertEqual(up.requests[0].target, "/x")

    if __name__ == "__main__":
        M.main()                             # unittest.main, exits non-zero on failure

Shared moat for a whole class: in setUpClass use
    cls.moat_ = M.Moat(cls); cls.moat_.start(cls.moat_.config(sites))
and M.RecordingUpstream(owner=cls) / M.tempdir(cls): cleanups run at class end.

API
  free_port() -> int                 a port that was free on 127.0.0.1 (also: a closed port)
  free_ports(n) -> [int]             n different such ports
  connect_refused(port) -> bool      a TCP connect to 127.0.0.1:port is refused
  tempdir(owner) -> str              fresh dir, removed by owner's cleanup (MOAT_KEEP=1 keeps)
  to_yaml(obj) -> str                tiny YAML emitter (dict/list/str/int/bool/None)
  site(*upstreams, **opts) -> dict   site entry: {"to": url or [urls], **opts}
  wait_until(pred, timeout=10, what="") -> value of pred, or AssertionError

  Moat(owner)                        owner: a TestCase (per test) or a TestCase class
    .https_port .http_port .dir .data .ca .access_log .conf_file .stderr_file
    .config(sites, **top) -> dict    base config (data, listen, workers: 2, access_log,
                                     sites) updated with top-level keys in **top
    .start(config)                   dict or YAML text; waits for "moat: ready" (30 s,
                                     MOAT_START_TIMEOUT); fails with captured stderr
    .reload(config) -> bool          SIGHUP; True on "reloaded", False on "reload refused"
    .stop()                          SIGTERM, 15 s, then SIGKILL; fails on kill, exit != 0
                                     or sanitizer reports. Also run as cleanup.
    .kill()                          SIGKILL on purpose (a crash); the exit is not checked,
                                     and .start(config) may run again on the same dir/ports
    .stderr() -> str   .assert_clean()  (no sanitizer report so far)
    .assert_alive()                  fails with stderr if moat has exited (curl and
                                     tls_connect call it when they cannot connect)
    .access_log_lines() -> [dict]    parsed JSON lines
    .wait_access_log(pred, timeout) -> [dict] lines matching pred, once there is >= 1

  curl(moat, host, path, method=None, headers=(), data=None, data_file=None,
       scheme="https", port=None, http="1.1", extra=(), timeout=30, source=None) -> Response
    source: local address to connect from (curl --interface), e.g. "127.0.0.2"
    Response: .status (0 when curl failed), .headers (Headers), .body (bytes),
              .rc, .err; unpacks as (status, headers, body)
  Headers(list of (name, value)): .get(name) first value or None, .get_all(name)

  tls_context(ca, min_version=None, max_version=None, alpn=None, check_hostname=True)
  tls_connect(moat, sni, port=None, ctx=None, timeout=10, source=None, prefix=b"") -> ssl socket
    (sni=None: no SNI, hostname not checked; source: local address to connect from;
    prefix: raw bytes sent before the handshake, e.g. a PROXY header)
  proxy_v1(src, dst, sport, dport) / proxy_v2(src, dst, sport, dport, local=False, tlvs=b"")
    -> bytes of a PROXY protocol header (haproxy's proxy-protocol.txt), IPv4 or IPv6;
    PROXY_V2_SIG: the 12-byte v2 signature, for hand-made malformed headers
  raw_exchange(sock, data, timeout=10) -> (bytes, closed)  read until EOF/reset or timeout
  parse_status(resp_bytes) -> int or None
  parse_response(resp_bytes) -> Response (first response in the bytes; body per framing)
  H1Client(sock): .send(bytes), .read_response(head=False, timeout=10) -> Response
    (skips 1xx unless keep_1xx=True); .request(method, path, host, headers=(), body=None)

  RecordingUpstream(reply=Reply(), owner=None, send_100=True)
    .port .url ("http://127.0.0.1:P") .requests [Request] .connections (accepted)
    .bytes_received .reply (settable: Reply or callable(Request) -> Reply) .stop()
    .wait_requests(n, timeout=10) -> requests .find(path_prefix) -> [Request]
  Request: .conn_id .head (raw bytes) .method .target .version .headers (Headers)
           .body (decoded bytes) .chunked (bool) .trailers (Headers) .error (str or None)
  Reply(status=200, headers=(), body=b"", chunked=False, chunk_size=4096,
        action=None, raw=None)
    action: None | "hang" (never answer) | "reset" (RST after reading the request)
            | "close" (close without answering); raw: exact bytes to send.
    Content-Length is added unless chunked or given.

  make_cert(dir, names, ca=None) -> Cert: .cert .key (paths) .ca_file .der .sha256
    leaf for names signed by a fresh test CA (ECDSA P-256); ca_file verifies it.
  SANITIZER_MARKS: strings that mark a sanitizer report in stderr.
"""

import datetime
import hashlib
import ipaddress
import json
import os
import re
import shutil
import signal
import socket
import ssl
import subprocess
import sys
import tempfile
import threading
import time
import unittest
import warnings

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(os.path.dirname(HERE))
MOAT_BIN = os.environ.get("MOAT_BIN") or os.path.join(REPO, "build", "moat")
START_TIMEOUT = float(os.environ.get("MOAT_START_TIMEOUT", "30"))
STOP_TIMEOUT = 15.0
SANITIZER_MARKS = ("ERROR: AddressSanitizer", "ERROR: LeakSanitizer", "runtime error:",
                   "WARNING: ThreadSanitizer", "ERROR: ThreadSanitizer")


def main():
    unittest.main(verbosity=2)


def _register(owner, fn, *args):
    """Cleanup on a TestCase instance (end of test) or class (end of class)."""
    if owner is None:
        return
    if isinstance(owner, type):
        owner.addClassCleanup(fn, *args)
    else:
        owner.addCleanup(fn, *args)


def stop_process(proc):
    """A helper process stopped by its pid: TERM, then KILL after 10 s; its
    stdout pipe (if any) closed."""
    if proc.poll() is None:
        os.kill(proc.pid, signal.SIGTERM)
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            os.kill(proc.pid, signal.SIGKILL)
            proc.wait(10)
    if proc.stdout:
        proc.stdout.close()


def free_port():
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def free_ports(n):
    """n different ports that were free on 127.0.0.1: all are held while
    they are drawn, so two calls in a row cannot hand out one port twice."""
    socks = []
    try:
        for _ in range(n):
            s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            socks.append(s)
            s.bind(("127.0.0.1", 0))
        return [s.getsockname()[1] for s in socks]
    finally:
        for s in socks:
            s.close()


def connect_refused(port):
    """True when a TCP connect to 127.0.0.1:port is refused."""
    try:
        s = socket.create_connection(("127.0.0.1", port), timeout=5)
    except ConnectionRefusedError:
        return True
    except OSError:
        return False
    s.close()
    return False


def tempdir(owner):
    d = tempfile.mkdtemp(prefix="moat-it-")
    if not os.environ.get("MOAT_KEEP"):
        _register(owner, shutil.rmtree, d, True)
    return d


def wait_until(pred, timeout=10.0, what="condition", interval=0.05):
    end = time.monotonic() + timeout
    while True:
        v = pred()
        if v:
            return v
        if time.monotonic() > end:
            raise AssertionError("timed out after %.0f s waiting for %s" % (timeout, what))
        time.sleep(interval)


# ---------------------------------------------------------------- YAML

_PLAIN = re.compile(r"[A-Za-z0-9_./$-][A-Za-z0-9_./:$+=-]*")
_AMBIGUOUS = re.compile(r"(?i)(y|n|yes|no|true|false|on|off|null|~|[-+]?[0-9._]+(e[-+]?[0-9]+)?)")


def _scalar(v):
    if v is True:
        return "true"
    if v is False:
        return "false"
    if v is None:
        return "null"
    if isinstance(v, (int, float)):
        return str(v)
    s = str(v)
    if _PLAIN.fullmatch(s) and not _AMBIGUOUS.fullmatch(s) and not s.endswith(":"):
        return s
    return json.dumps(s)  # a JSON string is a YAML double-quoted scalar


def to_yaml(obj, indent=0):
    pad = " " * indent
    out = []
    if isinstance(obj, dict):
        for k, v in obj.items():
            if isinstance(v, dict) and v:
                out.append("%s%s:\n%s" % (pad, _scalar(k), to_yaml(v, indent + 2)))
            elif isinstance(v, list) and v and any(isinstance(x, (dict, list)) for x in v):
                out.append("%s%s:\n%s" % (pad, _scalar(k), to_yaml(v, indent + 2)))
            elif isinstance(v, list):
                out.append("%s%s: [%s]\n" % (pad, _scalar(k), ", ".join(_scalar(x) for x in v)))
            elif isinstance(v, dict):
                out.append("%s%s: {}\n" % (pad, _scalar(k)))
            else:
                out.append("%s%s: %s\n" % (pad, _scalar(k), _scalar(v)))
    elif isinstance(obj, list):
        for x in obj:
            if isinstance(x, (dict, list)):
                out.append("%s-\n%s" % (pad, to_yaml(x, indent + 2)))
            else:
                out.append("%s- %s\n" % (pad, _scalar(x)))
    else:
        out.append("%s%s\n" % (pad, _scalar(obj)))
    return "".join(out)


def site(*upstreams, **opts):
    """{"to": url} for one upstream, {"to": [urls]} for several; opts added as is.
    An upstream is a RecordingUpstream, a URL string or a port number."""
    urls = []
    for u in upstreams:
        if isinstance(u, int):
            urls.append("http://127.0.0.1:%d" % u)
        elif isinstance(u, str):
            urls.append(u)
        else:
            urls.append(u.url)
    d = {}
    if urls:
        d["to"] = urls[0] if len(urls) == 1 else urls
    d.setdefault("tls", "internal")
    d.update(opts)
    return d


# ---------------------------------------------------------------- moat process

class Moat:
    def __init__(self, owner):
        self.owner = owner
        self.dir = tempdir(owner)
        self.data = os.path.join(self.dir, "data")
        self.ca = os.path.join(self.data, "internal-ca.pem")
        self.access_log = os.path.join(self.dir, "access.log")
        self.conf_file = os.path.join(self.dir, "moat.yaml")
        self.stderr_file = os.path.join(self.dir, "stderr.txt")
        self.stdout_file = os.path.join(self.dir, "stdout.txt")
        self.https_port, self.http_port = free_ports(2)
        self.proc = None
        self._stopped = False
        # the environment of the next start (None: the test's own)
        self.env = None

    def config(self, sites, **top):
        cfg = {
            "data": self.data,
            "listen": self._listen(),
            "workers": 2,
            "access_log": self.access_log,
        }
        cfg.update(top)
        cfg["sites"] = sites
        return cfg

    def _write(self, config):
        text = config if isinstance(config, str) else to_yaml(config)
        tmp = self.conf_file + ".tmp"
        with open(tmp, "w") as f:
            f.write(text)
        os.replace(tmp, self.conf_file)

    def stderr(self):
        try:
            with open(self.stderr_file, "rb") as f:
                return f.read().decode("utf-8", "replace")
        except FileNotFoundError:
            return ""

    def start(self, config):
        """Start moat; see the module doc. Parallel test runs pick ports
        independently, so two of them can draw the same one: when moat
        refuses to start because its port is taken and the config uses this
        Moat's default listen addresses, new ports are drawn and it retries."""
        for attempt in range(5):
            try:
                return self._start(config)
            except AssertionError:
                if (attempt == 4 or "already listening" not in self.stderr()
                        or not isinstance(config, dict)
                        or config.get("listen") != self._listen()):
                    raise
                self.proc = None
                self._stopped = False
                self.https_port, self.http_port = free_ports(2)
                config = dict(config, listen=self._listen())

    def _listen(self):
        return {"http": "127.0.0.1:%d" % self.http_port,
                "https": "127.0.0.1:%d" % self.https_port}

    def _start(self, config):
        assert self.proc is None, "Moat.start called twice"
        if not os.path.exists(MOAT_BIN):
            raise AssertionError("MOAT_BIN %s does not exist" % MOAT_BIN)
        self._write(config)
        err = open(self.stderr_file, "wb")
        out = open(self.stdout_file, "wb")
        try:
            self.proc = subprocess.Popen([MOAT_BIN, "run", "-c", self.conf_file],
                                         stdin=subprocess.DEVNULL, stdout=out, stderr=err,
                                         cwd=self.dir, env=self.env)
        finally:
            err.close()
            out.close()
        _register(self.owner, self._cleanup)
        end = time.monotonic() + START_TIMEOUT
        while "moat: ready" not in self.stderr():
            if self.proc.poll() is not None:
                self._stopped = True
                raise AssertionError("moat exited with %s before ready; stderr:\n%s\nconfig:\n%s"
                                     % (self.proc.returncode, self.stderr(), self._conf_text()))
            if time.monotonic() > end:
                raise AssertionError("moat not ready after %.0f s; stderr:\n%s"
                                     % (START_TIMEOUT, self.stderr()))
            time.sleep(0.05)
        return self

    def _conf_text(self):
        with open(self.conf_file) as f:
            return f.read()

    def reload(self, config, timeout=30.0):
        before = len(self.stderr())
        self._write(config)
        self.proc.send_signal(signal.SIGHUP)

        def outcome():
            new = self.stderr()[before:]
            if "reload refused" in new:
                return "refused"
            if "reloaded" in new:
                return "reloaded"
            return None
        return wait_until(outcome, timeout, "reload outcome in moat's stderr") == "reloaded"

    def assert_alive(self):
        """AssertionError with moat's stderr if the process has exited."""
        if self.proc is not None and self.proc.poll() is not None:
            raise AssertionError("moat is no longer running (exit code %s); stderr:\n%s"
                                 % (self.proc.returncode, self.stderr()[-20000:]))

    def assert_clean(self):
        text = self.stderr()
        for m in SANITIZER_MARKS:
            if m in text:
                raise AssertionError("sanitizer report in moat's stderr:\n" + text)

    def stop(self):
        """SIGTERM, wait, SIGKILL; AssertionError on an unclean exit."""
        if self.proc is None or self._stopped:
            return
        self._stopped = True
        killed = False
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(STOP_TIMEOUT)
            except subprocess.TimeoutExpired:
                killed = True
                self.proc.kill()
                self.proc.wait(10)
        rc = self.proc.returncode
        text = self.stderr()
        problems = []
        if killed:
            problems.append("did not exit within %.0f s of SIGTERM (killed)" % STOP_TIMEOUT)
        elif rc != 0:
            problems.append("exit code %s" % rc)
        if any(m in text for m in SANITIZER_MARKS):
            problems.append("sanitizer report")
        if problems:
            raise AssertionError("moat stopped uncleanly: %s; stderr:\n%s"
                                 % (", ".join(problems), text[-20000:]))

    def kill(self):
        """SIGKILL, as a crash would; the exit status is not checked. The same
        Moat (dir, data, ports) can then be started again."""
        if self.proc is None:
            return
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait(10)
        self.proc = None
        self._stopped = False

    def _cleanup(self):
        self.stop()

    @property
    def pid(self):
        return self.proc.pid if self.proc else None

    def access_log_lines(self):
        try:
            with open(self.access_log, "rb") as f:
                data = f.read().decode("utf-8", "replace")
        except FileNotFoundError:
            return []
        return [json.loads(line) for line in data.splitlines() if line.strip()]

    def wait_access_log(self, pred, timeout=10.0, count=1):
        def got():
            lines = [x for x in self.access_log_lines() if pred(x)]
            return lines if len(lines) >= count else None
        return wait_until(got, timeout, "access log lines")


class MoatTestCase(unittest.TestCase):
    """TestCase with per-test helpers; everything is released at the test's end."""

    def tmp(self):
        return tempdir(self)

    def upstream(self, reply=None, **kw):
        return RecordingUpstream(reply=reply, owner=self, **kw)

    def moat(self, sites, **top):
        m = Moat(self)
        m.start(m.config(sites, **top))
        return m


# ---------------------------------------------------------------- HTTP bits

class Headers(list):
    """List of (name, value) str pairs in wire order; lookups ignore case."""

    def get(self, name, default=None):
        n = name.lower()
        for k, v in self:
            if k.lower() == n:
                return v
        return default

    def get_all(self, name):
        n = name.lower()
        return [v for k, v in self if k.lower() == n]

    def names(self):
        return [k.lower() for k, _ in self]


class Response:
    def __init__(self, status, headers, body, rc=0, err="", raw=b""):
        self.status, self.headers, self.body, self.rc, self.err = status, headers, body, rc, err
        self.raw = raw

    def __iter__(self):
        return iter((self.status, self.headers, self.body))

    def __repr__(self):
        return "Response(%r, %r, %r%s)" % (self.status, list(self.headers), self.body[:200],
                                           ", rc=%d, err=%r" % (self.rc, self.err) if self.rc else "")


def _parse_header_lines(lines):
    h = Headers()
    for line in lines:
        if isinstance(line, bytes):
            line = line.decode("latin-1")
        if ":" in line:
            k, v = line.split(":", 1)
            h.append((k, v.strip(" \t")))
    return h


def curl(moat, host, path, method=None, headers=(), data=None, data_file=None,
         scheme="https", port=None, http="1.1", extra=(), timeout=30, source=None):
    """Run curl against moat with --resolve host:port:127.0.0.1. Headers of the
    final response (after any 1xx) are returned."""
    if port is None:
        port = moat.https_port if scheme == "https" else moat.http_port
    d = tempfile.mkdtemp(prefix="moat-curl-")
    try:
        hfile, bfile = os.path.join(d, "h"), os.path.join(d, "b")
        cmd = ["curl", "-sS", "--max-time", str(timeout), "-D", hfile, "-o", bfile,
               "-w", "%{http_code}", "--resolve", "%s:%d:127.0.0.1" % (host, port),
               "--path-as-is"]
        if scheme == "https":
            cmd += ["--cacert", moat.ca]
        cmd += {"1.1": ["--http1.1"], "2": ["--http2"], "1.0": ["--http1.0"]}[http]
        if method:
            cmd += ["-X", method]
        if source:
            cmd += ["--interface", source]
        for h in headers:
            cmd += ["-H", h if isinstance(h, str) else "%s: %s" % h]
        if data is not None:
            dfile = os.path.join(d, "data")
            with open(dfile, "wb") as f:
                f.write(data if isinstance(data, bytes) else data.encode())
            data_file = dfile
        if data_file is not None:
            cmd += ["--data-binary", "@" + data_file]
        cmd += list(extra)
        cmd.append("%s://%s:%d%s" % (scheme, host, port, path))
        p = subprocess.run(cmd, capture_output=True, timeout=timeout + 15)
        status = int(p.stdout.decode() or "0") if p.stdout.decode().isdigit() else 0
        hdr = Headers()
        if os.path.exists(hfile):
            with open(hfile, "rb") as f:
                blocks = [b for b in f.read().split(b"\r\n\r\n") if b.startswith(b"HTTP/")]
            if blocks:
                hdr = _parse_header_lines(blocks[-1].split(b"\r\n")[1:])
        body = b""
        if os.path.exists(bfile):
            with open(bfile, "rb") as f:
                body = f.read()
        if p.returncode != 0 and hasattr(moat, "assert_alive"):
            moat.assert_alive()
        return Response(status, hdr, body, p.returncode, p.stderr.decode("utf-8", "replace"))
    finally:
        shutil.rmtree(d, True)


def tls_context(ca, min_version=None, max_version=None, alpn=None, check_hostname=True):
    ctx = ssl.create_default_context(cafile=ca)
    if min_version is not None:
        ctx.minimum_version = min_version
    if max_version is not None:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DeprecationWarning)
            ctx.maximum_version = max_version
            if max_version < ssl.TLSVersion.TLSv1_2:
                # let the client offer old versions so that a refusal is the server's
                ctx.minimum_version = ssl.TLSVersion.TLSv1
                ctx.set_ciphers("DEFAULT:@SECLEVEL=0")
    if alpn:
        ctx.set_alpn_protocols(list(alpn))
    ctx.check_hostname = check_hostname
    return ctx


def tls_connect(moat, sni, port=None, ctx=None, timeout=10.0, source=None, prefix=b""):
    """TLS connection to moat's https listener; raises ssl.SSLError if refused."""
    if ctx is None:
        ctx = tls_context(moat.ca, check_hostname=sni is not None)
    if sni is None:
        ctx.check_hostname = False
    try:
        raw = socket.create_connection(("127.0.0.1", port or moat.https_port), timeout=timeout,
                                       source_address=(source, 0) if source else None)
    except ConnectionRefusedError:
        if hasattr(moat, "assert_alive"):
            moat.assert_alive()
        raise
    try:
        if prefix:
            raw.sendall(prefix)
        return ctx.wrap_socket(raw, server_hostname=sni)
    except BaseException:
        raw.close()
        raise


def proxy_v1(src, dst, sport, dport):
    """PROXY protocol v1 line for a TCP connection src:sport -> dst:dport."""
    fam = "TCP6" if ":" in src else "TCP4"
    return ("PROXY %s %s %s %d %d\r\n" % (fam, src, dst, sport, dport)).encode("ascii")


PROXY_V2_SIG = b"\r\n\r\n\x00\r\nQUIT\n"


def proxy_v2(src, dst, sport, dport, local=False, tlvs=b""):
    """PROXY protocol v2 header (binary) for TCP src:sport -> dst:dport;
    local=True: the LOCAL command (addresses still included)."""
    a, b = ipaddress.ip_address(src), ipaddress.ip_address(dst)
    fam = 0x11 if a.version == 4 else 0x21       # TCP over IPv4 / IPv6
    addrs = a.packed + b.packed + sport.to_bytes(2, "big") + dport.to_bytes(2, "big") + tlvs
    cmd = 0x20 if local else 0x21                 # version 2, LOCAL / PROXY
    return PROXY_V2_SIG + bytes([cmd, fam]) + len(addrs).to_bytes(2, "big") + addrs


def _recv(sock, n=65536):
    """bytes, or b"" when the peer closed (EOF, reset, TLS close)."""
    try:
        return sock.recv(n)
    except (ConnectionResetError, BrokenPipeError, ssl.SSLZeroReturnError, ssl.SSLEOFError):
        return b""
    except ssl.SSLError as e:
        if "EOF" in str(e) or "reset" in str(e).lower():
            return b""
        raise


def raw_exchange(sock, data, timeout=10.0):
    """Send data, then read until the peer closes or timeout passes.
    Returns (received bytes, closed)."""
    try:
        if data:
            sock.sendall(data)
    except (BrokenPipeError, ConnectionResetError, ssl.SSLError):
        pass  # the peer may refuse before reading everything; read what it said
    buf = b""
    end = time.monotonic() + timeout
    while True:
        left = end - time.monotonic()
        if left <= 0:
            return buf, False
        sock.settimeout(left)
        try:
            chunk = _recv(sock)
        except (socket.timeout, TimeoutError):
            return buf, False
        if not chunk:
            return buf, True
        buf += chunk


def parse_status(resp):
    m = re.match(rb"HTTP/1\.[01] (\d{3})", resp)
    return int(m.group(1)) if m else None


def _dechunk(data):
    """(body, rest) or None if incomplete. Raises ValueError on bad framing."""
    body, pos = b"", 0
    while True:
        eol = data.find(b"\r\n", pos)
        if eol < 0:
            return None
        size = int(data[pos:eol].split(b";")[0].strip(), 16)
        pos = eol + 2
        if size == 0:
            end = data.find(b"\r\n", pos)
            while end >= 0 and end != pos:  # skip trailers
                pos = end + 2
                end = data.find(b"\r\n", pos)
            if end < 0:
                return None
            return body, data[end + 2:]
        if len(data) < pos + size + 2:
            return None
        body += data[pos:pos + size]
        if data[pos + size:pos + size + 2] != b"\r\n":
            raise ValueError("chunk not followed by CRLF")
        pos += size + 2


def _try_parse(buf, head=False, eof=False, keep_1xx=False):
    """(Response, rest) when a full response is in buf, else None."""
    while True:
        i = buf.find(b"\r\n\r\n")
        if i < 0:
            return None
        lines = buf[:i].split(b"\r\n")
        status = parse_status(lines[0])
        if status is None:
            raise ValueError("bad status line %r" % lines[0][:100])
        hdr = _parse_header_lines(lines[1:])
        rest = buf[i + 4:]
        if 100 <= status < 200 and status != 101 and not keep_1xx:
            buf = rest
            continue
        if head or status in (204, 304) or 100 <= status < 200:
            return Response(status, hdr, b"", raw=buf[:i + 4]), rest
        te = hdr.get("transfer-encoding")
        if te is not None and te.lower().endswith("chunked"):
            r = _dechunk(rest)
            if r is None:
                return None
            return Response(status, hdr, r[0], raw=buf[:len(buf) - len(r[1])]), r[1]
        cl = hdr.get("content-length")
        if cl is not None:
            n = int(cl)
            if len(rest) < n:
                return None
            return Response(status, hdr, rest[:n], raw=buf[:i + 4 + n]), rest[n:]
        if not eof:
            return None
        return Response(status, hdr, rest, raw=buf), b""


def parse_response(resp, head=False):
    r = _try_parse(resp, head=head, eof=True)
    if r is None:
        raise ValueError("incomplete response: %r" % resp[:300])
    return r[0]


class H1Client:
    """Sequential HTTP/1.1 requests on one (TLS or plain) socket."""

    def __init__(self, sock):
        self.sock = sock
        self.buf = b""
        self.closed = False

    def send(self, data):
        self.sock.sendall(data)

    def request(self, method, path, host, headers=(), body=None):
        h = ["%s %s HTTP/1.1" % (method, path), "Host: %s" % host]
        h += [x if isinstance(x, str) else "%s: %s" % x for x in headers]
        if body is not None:
            h.append("Content-Length: %d" % len(body))
        self.send(("\r\n".join(h) + "\r\n\r\n").encode("latin-1") + (body or b""))

    def read_response(self, head=False, timeout=10.0, keep_1xx=False):
        end = time.monotonic() + timeout
        while True:
            r = _try_parse(self.buf, head=head, eof=self.closed, keep_1xx=keep_1xx)
            if r is not None:
                self.buf = r[1]
                return r[0]
            if self.closed:
                raise AssertionError("connection closed before a full response: %r"
                                     % self.buf[:300])
            left = end - time.monotonic()
            if left <= 0:
                raise AssertionError("no full response within %.0f s: %r" % (timeout, self.buf[:300]))
            self.sock.settimeout(left)
            try:
                chunk = _recv(self.sock)
            except (socket.timeout, TimeoutError):
                continue
            if not chunk:
                self.closed = True
            self.buf += chunk

    def close(self):
        try:
            self.sock.close()
        except OSError:
            pass


# ---------------------------------------------------------------- recording upstream

class Reply:
    def __init__(self, status=200, headers=(), body=b"", chunked=False, chunk_size=4096,
                 action=None, raw=None, reason=None):
        self.status, self.headers, self.body = status, list(headers), body
        self.chunked, self.chunk_size, self.action, self.raw = chunked, chunk_size, action, raw
        self.reason = reason or {200: "OK", 201: "Created", 204: "No Content",
                                 404: "Not Found", 500: "Internal Server Error"}.get(status, "X")
        if isinstance(self.body, str):
            self.body = self.body.encode()

    def encode(self, head_request=False):
        if self.raw is not None:
            return self.raw
        lines = ["HTTP/1.1 %d %s" % (self.status, self.reason)]
        names = [k.lower() for k, _ in self.headers]
        lines += ["%s: %s" % kv for kv in self.headers]
        body = self.body
        no_body = head_request or self.status in (204, 304) or self.status < 200
        if self.chunked:
            if "transfer-encoding" not in names:
                lines.append("Transfer-Encoding: chunked")
            if no_body:
                payload = b""
            else:
                parts = [b"%x\r\n%s\r\n" % (len(body[i:i + self.chunk_size]),
                                            body[i:i + self.chunk_size])
                         for i in range(0, len(body), self.chunk_size)]
                payload = b"".join(parts) + b"0\r\n\r\n"
        else:
            if "content-length" not in names and self.status not in (204, 304) and self.status >= 200:
                lines.append("Content-Length: %d" % len(body))
            payload = b"" if no_body else body
        return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + payload

    def closes(self):
        return any(k.lower() == "connection" and "close" in v.lower() for k, v in self.headers)


class Request:
    def __init__(self, conn_id, head):
        self.conn_id, self.head = conn_id, head
        lines = head.split(b"\r\n")
        parts = lines[0].decode("latin-1").split(" ")
        self.method, self.target, self.version = (parts + ["", "", ""])[:3]
        self.headers = _parse_header_lines(lines[1:])
        self.body = b""
        self.chunked = False
        self.trailers = Headers()
        self.error = None
        self.complete = False

    @property
    def path(self):
        return self.target

    def __repr__(self):
        return "Request(conn=%d, %s %s, %r, body=%d bytes%s)" % (
            self.conn_id, self.method, self.target, list(self.headers), len(self.body),
            ", error=" + self.error if self.error else "")


class _Closed(Exception):
    pass


class RecordingUpstream:
    """Threaded HTTP/1.1 origin on 127.0.0.1 that records what it receives."""

    MAX_HEAD = 1 << 20

    def __init__(self, reply=None, owner=None, send_100=True):
        self.reply = reply if reply is not None else Reply(200, [("Content-Type", "text/plain")],
                                                           b"hello from upstream\n")
        self.send_100 = send_100
        self.requests = []
        self.connections = 0
        self.bytes_received = 0
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._socks = set()
        self._threads = []
        self.ls = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.ls.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.ls.bind(("127.0.0.1", 0))
        self.ls.listen(128)
        self.ls.settimeout(0.1)
        self.port = self.ls.getsockname()[1]
        self.url = "http://127.0.0.1:%d" % self.port
        t = threading.Thread(target=self._accept_loop, name="upstream-accept-%d" % self.port,
                             daemon=True)
        t.start()
        self._threads.append(t)
        _register(owner, self.stop)

    # -- public
    def wait_requests(self, n, timeout=10.0):
        wait_until(lambda: len(self.requests) >= n, timeout, "%d upstream request(s)" % n)
        return list(self.requests)

    def find(self, prefix):
        with self._lock:
            return [r for r in self.requests if r.target.startswith(prefix)]

    def counts(self):
        """(connections, requests, bytes) snapshot, to compare before/after."""
        with self._lock:
            return self.connections, len(self.requests), self.bytes_received

    def stop(self):
        self._stop.set()
        try:
            self.ls.close()
        except OSError:
            pass
        with self._lock:
            socks = list(self._socks)
        for s in socks:
            try:
                s.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
        for t in list(self._threads):
            t.join(10)
        alive = [t.name for t in self._threads if t.is_alive()]
        if alive:
            raise AssertionError("upstream threads did not stop: %s" % alive)

    # -- internals
    def _accept_loop(self):
        while not self._stop.is_set():
            try:
                s, _ = self.ls.accept()
            except (socket.timeout, TimeoutError):
                continue
            except OSError:
                return
            with self._lock:
                self.connections += 1
                cid = self.connections
                self._socks.add(s)
            t = threading.Thread(target=self._serve, args=(s, cid),
                                 name="upstream-%d-conn-%d" % (self.port, cid), daemon=True)
            with self._lock:
                self._threads.append(t)
            t.start()

    def _read_more(self, s, st):
        while True:
            if self._stop.is_set():
                raise _Closed()
            try:
                chunk = s.recv(65536)
            except (socket.timeout, TimeoutError):
                continue
            except OSError:
                raise _Closed()
            if not chunk:
                raise _Closed()
            with self._lock:
                self.bytes_received += len(chunk)
            st[0] += chunk
            return

    def _need(self, s, st, n):
        while len(st[0]) < n:
            self._read_more(s, st)

    def _line(self, s, st):
        while b"\r\n" not in st[0]:
            if len(st[0]) > self.MAX_HEAD:
                raise ValueError("line too long")
            self._read_more(s, st)
        line, st[0] = st[0].split(b"\r\n", 1)
        return line

    def _serve(self, s, cid):
        s.settimeout(0.2)
        st = [b""]  # receive buffer
        try:
            while not self._stop.is_set():
                while b"\r\n\r\n" not in st[0]:
                    if len(st[0]) > self.MAX_HEAD:
                        return
                    self._read_more(s, st)
                head, st[0] = st[0].split(b"\r\n\r\n", 1)
                req = Request(cid, head)
                with self._lock:
                    self.requests.append(req)
                try:
                    self._read_body(s, st, req)
                except ValueError as e:
                    req.error = str(e)
                    return
                req.complete = True
                rep = self.reply(req) if callable(self.reply) else self.reply
                if rep.action == "hang":
                    self._stop.wait()
                    return
                if rep.action == "reset":
                    s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00")
                    return
                if rep.action == "close":
                    return
                s.sendall(rep.encode(head_request=req.method == "HEAD"))
                conn = (req.headers.get("connection") or "").lower()
                if rep.closes() or "close" in conn or req.version == "HTTP/1.0":
                    return
        except (_Closed, OSError):
            return
        finally:
            with self._lock:
                self._socks.discard(s)
            try:
                s.close()
            except OSError:
                pass

    def _read_body(self, s, st, req):
        te = req.headers.get_all("transfer-encoding")
        cl = req.headers.get_all("content-length")
        expect = (req.headers.get("expect") or "").lower()
        if expect == "100-continue" and self.send_100 and (te or (cl and cl[0] != "0")):
            s.sendall(b"HTTP/1.1 100 Continue\r\n\r\n")
        if te:
            if te[-1].lower().split(",")[-1].strip() != "chunked":
                raise ValueError("unsupported transfer-encoding %r" % te)
            req.chunked = True
            while True:
                line = self._line(s, st)
                size_txt = line.split(b";")[0].strip()
                if not re.fullmatch(rb"[0-9a-fA-F]{1,16}", size_txt):
                    raise ValueError("bad chunk size %r" % line)
                size = int(size_txt, 16)
                if size == 0:
                    while True:
                        t = self._line(s, st)
                        if not t:
                            return
                        req.trailers.extend(_parse_header_lines([t]))
                self._need(s, st, size + 2)
                req.body += st[0][:size]
                if st[0][size:size + 2] != b"\r\n":
                    raise ValueError("chunk data not followed by CRLF")
                st[0] = st[0][size + 2:]
        elif cl:
            if len(set(cl)) != 1 or not cl[0].isdigit():
                raise ValueError("bad content-length %r" % cl)
            n = int(cl[0])
            self._need(s, st, n)
            req.body, st[0] = st[0][:n], st[0][n:]


# ---------------------------------------------------------------- certificates

class Cert:
    pass


def make_cert(directory, names, ca=None, days=30):
    """ECDSA P-256 leaf for names (DNS names or IPs), signed by a fresh CA
    (or the given Cert's CA). Files: <first name>.{crt,key}, <...>-ca.crt."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

    now = datetime.datetime.now(datetime.timezone.utc) - datetime.timedelta(minutes=5)
    stem = os.path.join(directory, names[0].replace("*", "_wild"))
    if ca is None:
        ca_key = ec.generate_private_key(ec.SECP256R1())
        ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "moat test CA %s" % names[0])])
        ca_cert = (x509.CertificateBuilder().subject_name(ca_name).issuer_name(ca_name)
                   .public_key(ca_key.public_key()).serial_number(x509.random_serial_number())
                   .not_valid_before(now).not_valid_after(now + datetime.timedelta(days=days))
                   .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
                   .add_extension(x509.KeyUsage(False, False, False, False, False, True, True,
                                                False, False), critical=True)
                   .sign(ca_key, hashes.SHA256()))
        ca_file = stem + "-ca.crt"
        with open(ca_file, "wb") as f:
            f.write(ca_cert.public_bytes(serialization.Encoding.PEM))
    else:
        ca_key, ca_cert, ca_file = ca._ca_key, ca._ca_cert, ca.ca_file
    key = ec.generate_private_key(ec.SECP256R1())
    sans = []
    for n in names:
        try:
            sans.append(x509.IPAddress(ipaddress.ip_address(n)))
        except ValueError:
            sans.append(x509.DNSName(n))
    cert = (x509.CertificateBuilder()
            .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, names[0])]))
            .issuer_name(ca_cert.subject).public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now).not_valid_after(now + datetime.timedelta(days=days))
            .add_extension(x509.SubjectAlternativeName(sans), critical=False)
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
            .sign(ca_key, hashes.SHA256()))
    c = Cert()
    c.cert, c.key, c.ca_file = stem + ".crt", stem + ".key", ca_file
    with open(c.cert, "wb") as f:
        f.write(cert.public_bytes(serialization.Encoding.PEM))
    fd = os.open(c.key, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as f:
        f.write(key.private_bytes(serialization.Encoding.PEM,
                                  serialization.PrivateFormat.PKCS8,
                                  serialization.NoEncryption()))
    c.der = cert.public_bytes(serialization.Encoding.DER)
    c.sha256 = hashlib.sha256(c.der).hexdigest()
    c._ca_key, c._ca_cert = ca_key, ca_cert
    return c
