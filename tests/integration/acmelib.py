"""
acmelib - offline ACME peers for moat's integration tests (run them with
/usr/bin/python3 -u; the shared harness is moatlib.py).

Everything is real and runs on 127.0.0.1 on free-picked ports: pebble (the
ACME CA), pebble-challtestsrv (DNS for pebble, TXT records set over its
management API), bind9 named (RFC 2136 updates signed with TSIG), the DuckDNS
stand-in (duckdns_standin.py, another engineer's) and the directory/ARI
stand-in (ari_standin.py). Each process is stopped by pid at its owner's
cleanup (a TestCase or a TestCase class), also when the test fails.

Quick start:

    import acmelib as A

    class T(M.MoatTestCase):
        def test_http01(self):
            env = A.AcmeEnv(self)                  # challtestsrv + pebble, moat ports drawn
            up = self.upstream()
            m = env.start_moat({"a.example.test": M.site(up, tls={"acme": "http"})})
            A.wait_installed(m, "a.example.test")
            cert = A.served_cert(m.https_port, "a.example.test", env.pebble.root)
            r = env.curl(m, "a.example.test", "/x")  # verified with pebble's root

API
  api_cert(dir) -> moatlib.Cert      localhost/127.0.0.1 cert for pebble's API (and
                                     the stand-ins); .ca_file is what acme.ca_roots names
  Proc(owner, name, cmd, env, log)   a peer process: .start(ready) .stop() .log()
                                     .alive(); stopped by pid (TERM, 10 s, KILL)
  ChallTestSrv(owner)                -dns01 127.0.0.1:.dns_port, management .url;
                                     .set_txt(name, value) .clear_txt(name)
                                     .add_a(name, addrs) .dns_history(name)
  Named(owner, zone, key_name, algorithm)  bind9 named, authoritative for zone
                                     (SOA, NS, apex A and wildcard A 127.0.0.1), updates
                                     allowed with the TSIG key (.secret, tsig-keygen);
                                     .port .addr .nsupdate(lines, secret=None)
                                     .txt(name) -> [str] .a(name) -> [str]
  Pebble(owner, http_port, tls_port, dns_port, defaults=False, env=None,
         validity=None)              pebble; defaults=False sets PEBBLE_VA_NOSLEEP=1
                                     and PEBBLE_WFE_NONCEREJECT=0, defaults=True leaves
                                     both unset; env: more variables (e.g.
                                     PEBBLE_VA_SLEEPTIME). .dir_url .ca_roots .root
                                     (PEM file of /roots/0, fetched at each start)
                                     .log() .orders() .accounts() .issued()
                                     .requests(method, path) .http_validations()
                                     .restart(http_port=, tls_port=)
  HoldRelay(owner, target_port)      TCP relay on .port; .hold() holds new connections
                                     (accepted, nothing forwarded) until .release();
                                     .accepted counts connections, .target_port settable
  DirStandin(owner, pebble)          ari_standin.py: .url (its /dir) .control(**kw)
                                     .set_windows(default=, first=, windows=)
                                     .fail(*[(status, retry_after)]) .state()
  DuckDNS(owner, challtestsrv_url, token, domains)  duckdns_standin.py: .url .log()
  TxtFanout(owner, challtestsrv, copies)  a challtestsrv management front for the
                                     DuckDNS stand-in: /set-txt and /clear-txt for a name
                                     also go to its copies (DuckDNS's DNS answers a
                                     domain's TXT for every name below it)
  AcmeEnv(tc, dns="challtestsrv"|"named", zone=, http_relay=False, **pebble_kw)
                                     one test's ACME world: .moat (a moatlib.Moat, not
                                     started) .pebble .cts or .named, .relay (http_relay:
                                     pebble's HTTP-01 goes through a HoldRelay);
                                     .acme(**kw) the acme: section; .start_moat(sites,
                                     acme={overrides}, moat=None, **top) (a port
                                     collision redraws moat's ports and restarts
                                     pebble on them); .curl(moat, host, path, ...)
  dns_query(port, name, rtype) -> [str]   dig @127.0.0.1 -p port +short
  served_cert(port, sni, cafile=None, alpn=None) -> x509.Certificate (verified
                                     against cafile with host name check when given)
  wait_served_by(port, sni, cafile, timeout, moat=None) -> x509.Certificate
  served_serial(port, sni, cafile=None) -> int
  wait_log(moat, regex, since=0, timeout=WAIT) -> re.Match in moat's stderr
  log_count(moat, regex, since=0) -> int   matches in moat's stderr so far
  wait_installed(moat, host, count=1, since=0, timeout=WAIT) -> stderr text
  failures(moat, host) -> [(reason, seconds)]   the "failed: ...; next attempt" lines
  moat_cli(*args) -> (rc, out, err); status_json(moat) -> dict (`moat status --json`)
  cert_status(moat, site) -> dict    that site's "certificates" entry
  reset_stopped(moat)                after moat.stop(): the same Moat may start again
                                     (moatlib truncates stderr.txt at each start)
  parse_time(v) -> aware datetime    RFC 3339 string or Unix seconds (or ms)
  not_before(c) / not_after(c) / utcnow() -> aware datetimes
  data_problems(data_dir) -> [str]   files under DATA that are torn (JSON, PEM)
  data_files(data_dir) -> [str]      relative paths
  certid(cert) -> str                RFC 9773 certificate identifier
  cert_dir(data, host) -> str        DATA/certs/<host, "*" written as "_wildcard">
  account_dirs(data) -> [str]        DATA/acme/accounts/*
  pem_certs(bytes) / load_pem_certs(path) -> [x509.Certificate]
  san_names(cert), issued_by(cert, issuer_pem_file), key_matches_cert(key_pem, cert),
  file_mode(path)
"""

import base64
import datetime
import json
import os
import re
import select
import signal
import socket
import ssl
import subprocess
import threading
import time
import urllib.error
import urllib.request
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import moatlib as M

from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.x509.oid import ExtensionOID

HERE = os.path.dirname(os.path.abspath(__file__))
WAIT = float(os.environ.get("MOAT_ACME_WAIT", "60"))  # deadlock breaker, never asserted on
PY = "/usr/bin/python3"
EMAIL = "test@example.org"


def _read(path):
    try:
        with open(path, "rb") as f:
            return f.read().decode("utf-8", "replace")
    except FileNotFoundError:
        return ""


def _post_json(url, obj, ctx=None, timeout=10):
    req = urllib.request.Request(url, data=json.dumps(obj).encode(), method="POST",
                                 headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(req, timeout=timeout, context=ctx) as r:
        return r.read()


def _get(url, ctx=None, timeout=10):
    with urllib.request.urlopen(url, timeout=timeout, context=ctx) as r:
        return r.read()


def api_cert(directory):
    """The TLS certificate of pebble's API and of the stand-ins (ECDSA, for
    localhost and 127.0.0.1, signed by a fresh CA): .cert .key .ca_file."""
    return M.make_cert(directory, ["localhost", "127.0.0.1"], days=30)


# ---------------------------------------------------------------- processes

class Proc:
    """A peer process with its output in a log file; stopped by pid."""

    def __init__(self, owner, name, cmd, env=None, log=None, cwd=None):
        self.owner, self.name, self.cmd = owner, name, cmd
        self.env = env
        self.log_file = log
        self.cwd = cwd
        self.proc = None
        M._register(owner, self.stop)

    def start(self, ready, timeout=WAIT):
        """Start; ready() is polled until true. Returns False (process
        stopped) when it exited before being ready, so that the caller may
        retry with other ports; raises AssertionError after timeout."""
        assert self.proc is None or self.proc.poll() is not None
        with open(self.log_file, "ab") as out:
            self.proc = subprocess.Popen(self.cmd, stdin=subprocess.DEVNULL, stdout=out,
                                         stderr=subprocess.STDOUT, env=self.env, cwd=self.cwd)
        end = time.monotonic() + timeout
        while True:
            if self.proc.poll() is not None:
                return False
            try:
                if ready():
                    return True
            except (OSError, ValueError, ssl.SSLError, urllib.error.URLError):
                pass
            if time.monotonic() > end:
                self.stop()
                raise AssertionError("%s not ready after %.0f s; log:\n%s"
                                     % (self.name, timeout, self.log()[-5000:]))
            time.sleep(0.05)

    def alive(self):
        return self.proc is not None and self.proc.poll() is None

    def log(self):
        return _read(self.log_file)

    def stop(self):
        if self.proc is not None:
            M.stop_process(self.proc)


def _bind_failed(text):
    return "address already in use" in text.lower()


# ---------------------------------------------------------------- challtestsrv

class ChallTestSrv:
    """pebble-challtestsrv as pebble's DNS server: every A query is answered
    127.0.0.1 (no AAAA), TXT records as set here. HTTP-01/TLS-ALPN-01
    responders are off: moat answers those itself."""

    def __init__(self, owner):
        self.dir = M.tempdir(owner)
        for _ in range(5):
            self.dns_port, self.mgmt_port = M.free_ports(2)
            self.url = "http://127.0.0.1:%d" % self.mgmt_port
            self.p = Proc(owner, "pebble-challtestsrv", [
                "pebble-challtestsrv", "-defaultIPv6", "", "-defaultIPv4", "127.0.0.1",
                "-dns01", "127.0.0.1:%d" % self.dns_port, "-http01", "", "-https01", "",
                "-tlsalpn01", "", "-management", "127.0.0.1:%d" % self.mgmt_port],
                log=os.path.join(self.dir, "challtestsrv.log"))
            if self.p.start(self._ready):
                return
            if not _bind_failed(self.p.log()):
                break
        raise AssertionError("pebble-challtestsrv did not start:\n" + self.p.log())

    def _ready(self):
        # the management API answers and the DNS server answers an A query
        self.dns_history("ready.invalid")
        return dns_query(self.dns_port, "ready.invalid", "A") == ["127.0.0.1"]

    def _mgmt(self, path, obj):
        return _post_json(self.url + path, obj)

    def set_txt(self, name, value):
        self._mgmt("/set-txt", {"host": _fqdn(name), "value": value})

    def clear_txt(self, name):
        self._mgmt("/clear-txt", {"host": _fqdn(name)})

    def add_a(self, name, addrs):
        self._mgmt("/add-a", {"host": _fqdn(name), "addresses": list(addrs)})

    def dns_history(self, name):
        # the history is keyed by the name without its final dot
        out = self._mgmt("/dns-request-history", {"host": name.rstrip(".")})
        return json.loads(out or b"[]") or []

    def txt(self, name):
        return dns_query(self.dns_port, name, "TXT")

    def log(self):
        return self.p.log()


def _fqdn(name):
    return name if name.endswith(".") else name + "."


def dns_query(port, name, rtype, timeout=5):
    """Answers of `dig @127.0.0.1 -p port name rtype +short` (TXT unquoted)."""
    p = subprocess.run(["dig", "@127.0.0.1", "-p", str(port), "+short", "+tries=1",
                        "+time=%d" % timeout, name, rtype],
                       capture_output=True, text=True, timeout=timeout + 10)
    if p.returncode != 0:
        raise OSError("dig %s %s: rc %d %s" % (name, rtype, p.returncode, p.stdout + p.stderr))
    out = []
    for line in p.stdout.splitlines():
        line = line.strip()
        if not line or line.startswith(";"):
            continue
        if rtype == "TXT":
            line = "".join(re.findall(r'"((?:[^"\\]|\\.)*)"', line))
        out.append(line)
    return out


# ---------------------------------------------------------------- named

class Named:
    """bind9 named on 127.0.0.1:.port, authoritative for zone, no recursion,
    dynamic updates allowed only with the TSIG key key_name (secret made by
    tsig-keygen: .secret, base64). Every name in the zone resolves to
    127.0.0.1 (apex A and a wildcard A), so pebble can use it as its only
    DNS server."""

    def __init__(self, owner, zone="example.test", key_name="moat", algorithm="hmac-sha256"):
        self.dir = M.tempdir(owner)
        os.chmod(self.dir, 0o755)
        self.zone, self.key_name, self.algorithm = zone.rstrip("."), key_name, algorithm
        out = subprocess.run(["tsig-keygen", "-a", algorithm, key_name], check=True,
                             capture_output=True, text=True, timeout=30).stdout
        self.secret = re.search(r'secret "([^"]+)"', out).group(1)
        self.key_clause = out
        zone_file = os.path.join(self.dir, "%s.zone" % self.zone)
        with open(zone_file, "w") as f:
            f.write("$TTL 60\n"
                    "@ IN SOA ns.%(z)s. hostmaster.%(z)s. 1 60 60 600 60\n"
                    "@ IN NS ns.%(z)s.\n"
                    "@ IN A 127.0.0.1\n"
                    "ns IN A 127.0.0.1\n"
                    "* IN A 127.0.0.1\n" % {"z": self.zone})
        for _ in range(5):
            self.port = M.free_port()
            self.addr = "127.0.0.1:%d" % self.port
            conf = os.path.join(self.dir, "named.conf")
            with open(conf, "w") as f:
                f.write("""options {
    directory "%(d)s";
    pid-file "%(d)s/named.pid";
    session-keyfile "%(d)s/session.key";
    managed-keys-directory "%(d)s";
    listen-on port %(port)d { 127.0.0.1; };
    listen-on-v6 { none; };
    recursion no;
    allow-query { any; };
    allow-transfer { none; };
    dnssec-validation no;
    notify no;
};
controls { };
%(key)s
zone "%(zone)s" {
    type primary;
    file "%(zf)s";
    allow-update { key "%(kn)s"; };
};
""" % {"d": self.dir, "port": self.port, "key": self.key_clause, "zone": self.zone,
                    "zf": zone_file, "kn": key_name})
            self.p = Proc(owner, "named", ["/usr/sbin/named", "-g", "-n", "1", "-4", "-c", conf],
                          log=os.path.join(self.dir, "named.log"))
            if self.p.start(lambda: dns_query(self.port, self.zone, "SOA")):
                return
            if not _bind_failed(self.p.log()):
                break
        raise AssertionError("named did not start:\n" + self.p.log()[-5000:])

    def nsupdate(self, lines, secret=None):
        """Run nsupdate with the TSIG key (or another secret); returns
        (rc, output). lines: "update add ..." etc.; server/zone/send added."""
        script = "server 127.0.0.1 %d\nzone %s\n%s\nsend\n" % (self.port, self.zone,
                                                               "\n".join(lines))
        key = "%s:%s:%s" % (self.algorithm, self.key_name, secret or self.secret)
        p = subprocess.run(["nsupdate", "-y", key], input=script, capture_output=True,
                           text=True, timeout=30)
        return p.returncode, p.stdout + p.stderr

    def txt(self, name):
        return dns_query(self.port, name, "TXT")

    def a(self, name):
        return dns_query(self.port, name, "A")

    def log(self):
        return self.p.log()


# ---------------------------------------------------------------- pebble

class Pebble:
    """pebble on 127.0.0.1 (API .dir_url, management .mgmt_url), validating
    HTTP-01 on http_port and TLS-ALPN-01 on tls_port of 127.0.0.1 (names
    resolved through dns_port). .ca_roots verifies its API (acme.ca_roots);
    .root is the root that signs issued certificates (new at each start)."""

    def __init__(self, owner, http_port, tls_port, dns_port, defaults=False, env=None,
                 validity=None):
        self.owner = owner
        self.dir = M.tempdir(owner)
        self.api = api_cert(self.dir)
        self.ca_roots = self.api.ca_file
        self.http_port, self.tls_port, self.dns_port = http_port, tls_port, dns_port
        self.validity = validity
        e = dict(os.environ)
        for k in list(e):
            if k.startswith("PEBBLE_"):
                del e[k]
        if not defaults:
            e["PEBBLE_VA_NOSLEEP"] = "1"
            e["PEBBLE_WFE_NONCEREJECT"] = "0"
        e.update(env or {})
        self.env = e
        self.proc = None
        self.starts = 0
        self.log_file = os.path.join(self.dir, "pebble.log")
        self.start()

    def _config(self):
        c = {"listenAddress": "127.0.0.1:%d" % self.api_port,
             "managementListenAddress": "127.0.0.1:%d" % self.mgmt_port,
             "certificate": self.api.cert, "privateKey": self.api.key,
             "httpPort": self.http_port, "tlsPort": self.tls_port,
             "ocspResponderURL": "", "externalAccountBindingRequired": False}
        if self.validity:
            c["certificateValidityPeriod"] = int(self.validity)
        path = os.path.join(self.dir, "pebble.json")
        with open(path, "w") as f:
            json.dump({"pebble": c}, f, indent=1)
        return path

    def start(self):
        ctx = ssl.create_default_context(cafile=self.ca_roots)
        for _ in range(5):
            self.api_port, self.mgmt_port = M.free_ports(2)
            self.dir_url = "https://127.0.0.1:%d/dir" % self.api_port
            self.mgmt_url = "https://127.0.0.1:%d" % self.mgmt_port
            self.proc = Proc(self.owner, "pebble", ["pebble", "-config", self._config(),
                                                    "-dnsserver", "127.0.0.1:%d" % self.dns_port],
                             env=self.env, log=self.log_file)
            self._mark = len(_read(self.log_file))

            def ready():
                json.loads(_get(self.dir_url, ctx))
                return _get(self.mgmt_url + "/roots/0", ctx).startswith(b"-----BEGIN")
            if self.proc.start(ready):
                break
            if not _bind_failed(self.log()):
                raise AssertionError("pebble did not start:\n" + self.log()[-5000:])
        else:
            raise AssertionError("pebble did not start:\n" + self.log()[-5000:])
        self.starts += 1
        self.root = os.path.join(self.dir, "root-%d.pem" % self.starts)
        with open(self.root, "wb") as f:
            f.write(_get(self.mgmt_url + "/roots/0", ctx))
        self.intermediate = os.path.join(self.dir, "intermediate-%d.pem" % self.starts)
        with open(self.intermediate, "wb") as f:
            f.write(_get(self.mgmt_url + "/intermediates/0", ctx))
        self.directory = json.loads(_get(self.dir_url, ctx))
        return self

    def stop(self):
        if self.proc:
            self.proc.stop()

    def restart(self, http_port=None, tls_port=None):
        """Stop and start again (a new CA: a new root, no accounts or orders)."""
        self.stop()
        if http_port:
            self.http_port = http_port
        if tls_port:
            self.tls_port = tls_port
        return self.start()

    def log(self, all_starts=False):
        """pebble's log (this start's part unless all_starts)."""
        text = _read(self.log_file)
        return text if all_starts else text[self._mark:]

    def orders(self):
        """IDs of the orders pebble created, in order ("Added order")."""
        return re.findall(r'Added order "?([^" ]+)"? to the db', self.log())

    def accounts(self):
        """Accounts pebble holds (its "There are now N accounts" count)."""
        n = re.findall(r"There are now (\d+) accounts in memory", self.log())
        return int(n[-1]) if n else 0

    def issued(self):
        """[(serial hex, order id)] of the certificates pebble issued."""
        return re.findall(r"Issued certificate serial (\S+) for order (\S+)", self.log())

    def requests(self, method, path):
        """How many times pebble logged a request for method path (e.g.
        "POST", "/order-plz"); includes requests refused with badNonce."""
        return len(re.findall(r"^Pebble \S+ \S+ %s %s -> calling handler"
                              % (re.escape(method), re.escape(path)), self.log(), re.M))

    def http_validations(self):
        """URLs pebble fetched for HTTP-01."""
        return re.findall(r"Attempting to validate w/ HTTP: (\S+)", self.log())

    def path_of(self, key):
        """Path part of a directory URL, e.g. path_of("newOrder") -> "/order-plz"."""
        return "/" + self.directory[key].split("/", 3)[3]


# ---------------------------------------------------------------- relay

class HoldRelay:
    """TCP relay 127.0.0.1:.port -> 127.0.0.1:.target_port. While held, new
    connections are accepted and counted (.accepted) but nothing is
    forwarded until release(): a CA validation that arrives then waits."""

    def __init__(self, owner, target_port=None):
        self.target_port = target_port
        self.accepted = 0
        self._go = threading.Event()
        self._go.set()
        self._stop = threading.Event()
        self._socks = set()
        self._lock = threading.Lock()
        self.lsock = socket.socket()
        self.lsock.bind(("127.0.0.1", 0))
        self.lsock.listen(64)
        self.port = self.lsock.getsockname()[1]
        self.thread = threading.Thread(target=self._accept, daemon=True)
        self.thread.start()
        M._register(owner, self.stop)

    def hold(self):
        self._go.clear()

    def release(self):
        self._go.set()

    def _accept(self):
        while not self._stop.is_set():
            try:
                c, _ = self.lsock.accept()
            except OSError:
                return
            with self._lock:
                self.accepted += 1
                self._socks.add(c)
            threading.Thread(target=self._pump, args=(c,), daemon=True).start()

    def _pump(self, c):
        u = None
        try:
            while not self._go.wait(0.1):
                if self._stop.is_set():
                    return
            u = socket.create_connection(("127.0.0.1", self.target_port), timeout=10)
            with self._lock:
                self._socks.add(u)
            pair = {c: u, u: c}
            while not self._stop.is_set():
                r, _, _ = select.select(list(pair), [], [], 0.2)
                for s in r:
                    data = s.recv(65536)
                    if not data:
                        return
                    pair[s].sendall(data)
        except OSError:
            return
        finally:
            for s in (c, u):
                if s is not None:
                    with self._lock:
                        self._socks.discard(s)
                    s.close()

    def stop(self):
        self._stop.set()
        self._go.set()
        try:
            self.lsock.close()
        except OSError:
            pass
        with self._lock:
            socks = list(self._socks)
        for s in socks:
            try:
                s.close()
            except OSError:
                pass


# ---------------------------------------------------------------- stand-ins

def _standin_port(proc, name):
    """Read the "port N" first line a stand-in prints."""
    out = []

    def read():
        out.append(proc.stdout.readline().decode("utf-8", "replace").strip())
    t = threading.Thread(target=read, daemon=True)
    t.start()
    t.join(WAIT)
    line = out[0] if out else ""
    if not line.startswith("port "):
        M.stop_process(proc)
        raise AssertionError("%s did not start (first line %r)" % (name, line))
    return int(line.split()[1])


class _Script:
    """A stand-in script as a subprocess with stdout piped for its port line."""

    def __init__(self, owner, name, argv, log):
        self.name, self.log_file = name, log
        with open(log, "ab") as err:
            self.proc = subprocess.Popen([PY, "-u"] + argv, stdin=subprocess.DEVNULL,
                                         stdout=subprocess.PIPE, stderr=err)
        M._register(owner, self.stop)
        self.port = _standin_port(self.proc, name)

    def stop(self):
        if self.proc is not None:
            M.stop_process(self.proc)
        if self.proc.stdout:
            self.proc.stdout.close()

    def log(self):
        return _read(self.log_file)


class DirStandin:
    """ari_standin.py in front of pebble: moat's acme.directory is .url
    (same ca_roots as pebble's API). See ari_standin.py for the behaviour."""

    def __init__(self, owner, pebble):
        self.dir = M.tempdir(owner)
        self.pebble = pebble
        self.s = _Script(owner, "ari_standin", [
            os.path.join(HERE, "ari_standin.py"), "--pebble-dir", pebble.dir_url,
            "--pebble-ca", pebble.ca_roots, "--cert", pebble.api.cert, "--key", pebble.api.key],
            os.path.join(self.dir, "ari_standin.log"))
        self.port = self.s.port
        self.base = "https://127.0.0.1:%d" % self.port
        self.url = self.base + "/dir"
        self.ctx = ssl.create_default_context(cafile=pebble.ca_roots)

    def control(self, **kw):
        _post_json(self.base + "/control", kw, self.ctx)

    def set_windows(self, **kw):
        """default= / first= (each (start, end) datetimes or None), windows=
        {certid: (start, end)}."""
        out = {}
        for k in ("default", "first"):
            if k in kw:
                out[k] = _window(kw[k])
        if "windows" in kw:
            out["windows"] = {c: _window(w) for c, w in kw["windows"].items()}
        self.control(**out)

    def fail(self, *entries):
        """Answer the next len(entries) directory requests with (status,
        retry_after seconds or None) each."""
        self.control(fail=[list(e) for e in entries])

    def state(self):
        return json.loads(_get(self.base + "/control", self.ctx))

    def log(self):
        return self.s.log()


def _window(w):
    if w is None:
        return None
    return {"start": rfc3339(w[0]), "end": rfc3339(w[1])}


def rfc3339(t):
    return t.astimezone(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


class DuckDNS:
    """duckdns_standin.py (DuckDNS's update API), writing TXT records into
    challtestsrv_url (a ChallTestSrv's .url or a TxtFanout's .url).
    .url is the /update endpoint for acme.dns.url."""

    def __init__(self, owner, challtestsrv_url, token="duck-token-0123456789",
                 domains=("example",)):
        self.dir = M.tempdir(owner)
        self.token = token
        self.s = _Script(owner, "duckdns_standin", [
            os.path.join(HERE, "duckdns_standin.py"), "--port", "0", "--token", token,
            "--domains", ",".join(domains), "--challtestsrv", challtestsrv_url],
            os.path.join(self.dir, "duckdns_standin.log"))
        self.port = self.s.port
        self.base = "http://127.0.0.1:%d" % self.port
        self.url = self.base + "/update"

    def log(self):
        """The stand-in's request log (tokens masked)."""
        return json.loads(_get(self.base + "/_standin/log"))


class TxtFanout:
    """A front for challtestsrv's management API: POST /set-txt and
    /clear-txt for a name in copies ({name: [more names]}) are applied to
    that name and its copies; every other request is passed through.
    Real DuckDNS answers a domain's TXT record for every name below it
    (_acme-challenge.home.example.duckdns.org gets example's record);
    challtestsrv holds one record per name, so the DuckDNS stand-in's write
    is copied to the names the test's CA will ask."""

    def __init__(self, owner, cts, copies):
        self.cts = cts
        self.copies = {_fqdn(k): [_fqdn(v) for v in vs] for k, vs in copies.items()}
        self.writes = []
        fan = self

        class H(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *a):
                pass

            def do_POST(self):
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                try:
                    obj = json.loads(body or b"{}")
                    fan.writes.append((self.path, obj))
                    if self.path in ("/set-txt", "/clear-txt"):
                        for host in [obj.get("host")] + fan.copies.get(obj.get("host"), []):
                            _post_json(cts.url + self.path, dict(obj, host=host))
                    else:
                        _post_json(cts.url + self.path, obj)
                    status = 200
                except (ValueError, OSError):
                    status = 502
                self.send_response(status)
                self.send_header("Content-Length", "0")
                self.end_headers()

        self.srv = ThreadingHTTPServer(("127.0.0.1", 0), H)
        self.srv.daemon_threads = True
        self.url = "http://127.0.0.1:%d" % self.srv.server_address[1]
        self.thread = threading.Thread(target=self.srv.serve_forever, kwargs={"poll_interval": 0.1},
                                       daemon=True)
        self.thread.start()
        M._register(owner, self.stop)

    def stop(self):
        self.srv.shutdown()
        self.srv.server_close()


# ---------------------------------------------------------------- env

class _CurlTarget:
    """What moatlib.curl needs from a moat, with another CA file."""

    def __init__(self, moat, ca):
        self.https_port, self.http_port, self.ca = moat.https_port, moat.http_port, ca
        self.assert_alive = moat.assert_alive


class AcmeEnv:
    """One test's ACME world. dns: "challtestsrv" (default) or "named"
    (pebble resolves through a Named for zone; .cts is then None).
    http_relay: pebble validates HTTP-01 through a HoldRelay (.relay) to
    moat's http port. pebble_kw: defaults=, env=, validity= for Pebble."""

    def __init__(self, tc, dns="challtestsrv", zone="example.test", http_relay=False,
                 **pebble_kw):
        self.tc = tc
        self.moat = M.Moat(tc)
        self.cts = self.named = None
        if dns == "named":
            self.named = Named(tc, zone=zone)
            dns_port = self.named.port
        else:
            self.cts = ChallTestSrv(tc)
            dns_port = self.cts.dns_port
        self.relay = HoldRelay(tc, self.moat.http_port) if http_relay else None
        self.pebble = Pebble(tc, self._pebble_http(), self.moat.https_port, dns_port,
                             **pebble_kw)

    def _pebble_http(self):
        return self.relay.port if self.relay else self.moat.http_port

    def acme(self, directory=None, **kw):
        a = {"email": EMAIL, "directory": directory or self.pebble.dir_url,
             "ca_roots": self.pebble.ca_roots}
        a.update(kw)
        return a

    def config(self, sites, acme=None, moat=None, **top):
        """moat's config: acme is merged over self.acme() (None: defaults)."""
        m = moat or self.moat
        return m.config(sites, acme=self.acme(**(acme or {})), **top)

    def start_moat(self, sites, acme=None, moat=None, **top):
        """Start moat (self.moat, or another Moat) with an acme: section
        (acme: keys merged over the defaults). On a port collision new moat
        ports are drawn and pebble is restarted to validate on them
        (nothing can have been ordered yet: moat binds its listeners
        before it starts ACME)."""
        m = moat or self.moat
        for attempt in range(5):
            cfg = self.config(sites, acme, moat=m, **top)
            try:
                # YAML text: moatlib does not redraw ports by itself (pebble must follow)
                return m.start(M.to_yaml(cfg))
            except AssertionError:
                if attempt == 4 or "already listening" not in m.stderr():
                    raise
            m.proc, m._stopped = None, False
            m.http_port, m.https_port = M.free_ports(2)
            if self.relay:
                self.relay.target_port = m.http_port
            if m is self.moat:
                if "directory" in (acme or {}):
                    raise AssertionError("moat's ports were taken and the directory is "
                                         "not pebble's own; rerun the test:\n" + m.stderr())
                self.pebble.restart(http_port=self._pebble_http(), tls_port=m.https_port)
        raise AssertionError("unreachable")

    def curl(self, moat, host, path, **kw):
        """moatlib.curl verifying moat's certificate with pebble's root."""
        return M.curl(_CurlTarget(moat, self.pebble.root), host, path, **kw)


# ---------------------------------------------------------------- moat side

def served_cert(port, sni, cafile=None, alpn=None, timeout=10):
    """The leaf moat sends for sni on 127.0.0.1:port. With cafile the chain
    is verified against it (and the host name checked)."""
    if cafile:
        ctx = ssl.create_default_context(cafile=cafile)
    else:
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE
    if alpn:
        ctx.set_alpn_protocols(list(alpn))
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as raw:
        with ctx.wrap_socket(raw, server_hostname=sni) as s:
            der = s.getpeercert(binary_form=True)
    return x509.load_der_x509_certificate(der)


def served_serial(port, sni, cafile=None):
    return served_cert(port, sni, cafile).serial_number


def wait_served_by(port, sni, cafile, timeout=WAIT, moat=None):
    """Wait until moat's certificate for sni verifies against cafile; returns it."""
    def ok():
        if moat is not None:
            moat.assert_alive()
        try:
            return served_cert(port, sni, cafile)
        except (ssl.SSLError, OSError):
            return None
    return M.wait_until(ok, timeout, "a certificate for %s chaining to %s" % (sni, cafile))


def assert_served_by_pebble(tc, env, m, name, site=None):
    """The certificate moat serves for name verifies against pebble's root
    with host name checking, names site (default: name) and is signed by
    pebble's intermediate (waiting up to 10 s for the workers to take it
    up); returns it."""
    try:
        c = wait_served_by(m.https_port, name, env.pebble.root, timeout=10, moat=m)
    except AssertionError as e:
        raise AssertionError("moat's certificate for %s does not verify against pebble's "
                             "root: %s; moat's stderr:\n%s" % (name, e, m.stderr()[-5000:]))
    tc.assertIn(site or name, san_names(c))
    tc.assertTrue(issued_by(c, env.pebble.intermediate),
                  "served leaf for %s not signed by pebble's intermediate: %s"
                  % (name, c.issuer.rfc4514_string()))
    return c


def wait_log(moat, regex, since=0, timeout=WAIT, flags=0):
    """First match of regex in moat's stderr after offset since."""
    rx = re.compile(regex, flags)

    def found():
        moat.assert_alive()
        return rx.search(moat.stderr()[since:])
    try:
        return M.wait_until(found, timeout, "/%s/ in moat's stderr" % regex)
    except AssertionError as e:
        raise AssertionError("%s; moat's stderr:\n%s" % (e, moat.stderr()[-8000:]))


def log_count(moat, regex, since=0):
    return len(re.findall(regex, moat.stderr()[since:]))


def installed_rx(host):
    return r"acme: %s: certificate installed" % re.escape(host)


def wait_installed(moat, host, count=1, since=0, timeout=WAIT):
    """Wait for count "acme: HOST: certificate installed" lines."""
    rx = installed_rx(host)

    def enough():
        moat.assert_alive()
        return log_count(moat, rx, since) >= count
    try:
        M.wait_until(enough, timeout, "%d x '%s'" % (count, rx))
    except AssertionError as e:
        raise AssertionError("%s; moat's stderr:\n%s" % (e, moat.stderr()[-8000:]))
    return moat.stderr()[since:]


def failures(moat, host, since=0):
    """[(reason, seconds)] of "acme: HOST: failed: REASON; next attempt in N s"."""
    return [(r, int(n)) for r, n in re.findall(
        r"acme: %s: failed: (.*?); next attempt in (\d+) ?s" % re.escape(host),
        moat.stderr()[since:])]


def moat_cli(*args, timeout=30):
    p = subprocess.run([M.MOAT_BIN] + list(args), stdin=subprocess.DEVNULL,
                       capture_output=True, timeout=timeout)
    return p.returncode, p.stdout.decode("utf-8", "replace"), p.stderr.decode("utf-8", "replace")


def status_json(moat):
    rc, out, err = moat_cli("status", "--json", "-c", moat.conf_file)
    try:
        return json.loads(out)
    except ValueError:
        raise AssertionError("moat status --json: rc %d, no JSON:\n%s\n%s" % (rc, out, err))


def cert_status(moat, site):
    st = status_json(moat)
    for c in st.get("certificates") or []:
        if c.get("site") == site:
            return c
    raise AssertionError("no certificate for %s in moat status: %s"
                         % (site, json.dumps(st.get("certificates"), indent=1)))


def parse_time(v):
    """An aware UTC datetime from an RFC 3339 string or Unix seconds/ms."""
    if isinstance(v, (int, float)):
        if v > 1e11:
            v = v / 1000.0
        return datetime.datetime.fromtimestamp(v, datetime.timezone.utc)
    if not isinstance(v, str):
        raise AssertionError("not a time: %r" % (v,))
    s = v.strip().replace("Z", "+00:00").replace("z", "+00:00")
    if re.fullmatch(r"\d+(\.\d+)?", s):
        return parse_time(float(s))
    t = datetime.datetime.fromisoformat(s)
    if t.tzinfo is None:
        t = t.replace(tzinfo=datetime.timezone.utc)
    return t


def not_after(c):
    if hasattr(c, "not_valid_after_utc"):
        return c.not_valid_after_utc
    return c.not_valid_after.replace(tzinfo=datetime.timezone.utc)


def not_before(c):
    if hasattr(c, "not_valid_before_utc"):
        return c.not_valid_before_utc
    return c.not_valid_before.replace(tzinfo=datetime.timezone.utc)


def utcnow():
    return datetime.datetime.now(datetime.timezone.utc)


def due_for_renewal_window(data, host):
    """Edit a stopped moat's state.json as if the next visit to the CA for
    the certificate's renewal window (every 6 hours) were due now."""
    path = os.path.join(cert_dir(data, host), "state.json")
    with open(path) as f:
        state = json.load(f)
    state["ari_check"] = 0
    with open(path, "w") as f:
        json.dump(state, f)


def cert_dir(data, host):
    name = "_wildcard" + host[1:] if host.startswith("*") else host
    return os.path.join(data, "certs", name)


def pem_certs(data):
    """Every certificate in PEM bytes, in order (cryptography 38 has no
    load_pem_x509_certificates)."""
    return [x509.load_pem_x509_certificate(b) for b in re.findall(
        rb"-----BEGIN CERTIFICATE-----.*?-----END CERTIFICATE-----", data, re.S)]


def load_pem_certs(path):
    with open(path, "rb") as f:
        return pem_certs(f.read())


def _b64u(b):
    return base64.urlsafe_b64encode(b).rstrip(b"=").decode()


def certid(cert):
    """RFC 9773 section 4.1: base64url(AKI keyIdentifier) "." base64url(serial)."""
    aki = cert.extensions.get_extension_for_oid(ExtensionOID.AUTHORITY_KEY_IDENTIFIER)
    n = cert.serial_number
    serial = n.to_bytes((n.bit_length() + 8) // 8, "big")  # DER INTEGER content bytes
    return "%s.%s" % (_b64u(aki.value.key_identifier), _b64u(serial))


_PEM_BLOCK = re.compile(rb"-----BEGIN ([A-Z0-9 ]+)-----\r?\n(.*?)-----END \1-----", re.S)


def _pem_problems(path, data):
    blocks = _PEM_BLOCK.findall(data)
    if not blocks:
        return ["%s: no complete PEM block" % path]
    if data.count(b"-----BEGIN") != len(blocks):
        return ["%s: a PEM block is cut short" % path]
    out = []
    for kind, _ in blocks:
        kind = kind.decode()
        whole = re.search(rb"-----BEGIN " + kind.encode() + rb"-----.*?-----END "
                          + kind.encode() + rb"-----\r?\n?", data, re.S).group(0)
        try:
            if kind == "CERTIFICATE":
                x509.load_pem_x509_certificate(whole)
            elif kind.endswith("PRIVATE KEY"):
                serialization.load_pem_private_key(whole, None)
            elif kind == "X509 CRL":
                x509.load_pem_x509_crl(whole)
            elif kind == "PUBLIC KEY":
                serialization.load_pem_public_key(whole)
        except ValueError as e:
            out.append("%s: %s block does not parse: %s" % (path, kind, e))
    return out


def data_problems(data):
    """Files under DATA that are torn: JSON that does not parse, PEM that
    is cut short or does not load, empty files. moat.lock and temp files
    (NAME.tmp.PID.RAND, which an atomic write leaves behind when killed
    before its rename) are not judged."""
    out = []
    for d, _, files in os.walk(data):
        for n in files:
            p = os.path.join(d, n)
            rel = os.path.relpath(p, data)
            if n == "moat.lock" or ".tmp." in n or not os.path.isfile(p):
                continue
            with open(p, "rb") as f:
                b = f.read()
            if n.endswith(".json"):
                try:
                    json.loads(b)
                except ValueError as e:
                    out.append("%s: not JSON: %s" % (rel, e))
            elif n.endswith((".pem", ".key", ".crt")):
                out.extend(_pem_problems(rel, b))
            elif not b:
                out.append("%s: empty" % rel)
    return out


def data_files(data):
    """Relative paths of the regular files under data."""
    return sorted(os.path.relpath(os.path.join(d, n), data)
                  for d, _, fs in os.walk(data) for n in fs)


def reset_stopped(moat):
    """After moat.stop() (clean, checked) or a refused start: let the same
    Moat (dir, data, ports) be started again, as moatlib's kill() does."""
    moat.proc, moat._stopped = None, False


def file_mode(path):
    return os.stat(path).st_mode & 0o777


def account_dirs(data):
    root = os.path.join(data, "acme", "accounts")
    if not os.path.isdir(root):
        return []
    return sorted(os.path.join(root, d) for d in os.listdir(root)
                  if os.path.isdir(os.path.join(root, d)))


def key_matches_cert(key_pem, cert):
    key = serialization.load_pem_private_key(key_pem, None)
    fmt = (serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
    return key.public_key().public_bytes(*fmt) == cert.public_key().public_bytes(*fmt)


def san_names(cert):
    try:
        ext = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName)
    except x509.ExtensionNotFound:
        return []
    return ext.value.get_values_for_type(x509.DNSName)


def issued_by(cert, issuer_file):
    """True when cert's issuer is the (first) certificate in issuer_file and
    that certificate's key signed it."""
    from cryptography.exceptions import InvalidSignature
    from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa
    issuer = load_pem_certs(issuer_file)[0]
    if cert.issuer != issuer.subject:
        return False
    pub = issuer.public_key()
    try:
        if isinstance(pub, rsa.RSAPublicKey):
            pub.verify(cert.signature, cert.tbs_certificate_bytes, padding.PKCS1v15(),
                       cert.signature_hash_algorithm)
        elif isinstance(pub, ec.EllipticCurvePublicKey):
            pub.verify(cert.signature, cert.tbs_certificate_bytes,
                       ec.ECDSA(cert.signature_hash_algorithm))
        else:
            return False
    except InvalidSignature:
        return False
    return True
