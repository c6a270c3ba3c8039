"""
duckdns_standin - a local stand-in for DuckDNS's update API
(https://www.duckdns.org/spec.jsp), over plain HTTP on 127.0.0.1, stdlib only.

Run it:
    /usr/bin/python3 duckdns_standin.py --port 0 --token T --domains a,b \
        [--challtestsrv http://127.0.0.1:8055] [--set-a]
The first line on stdout is "port N". SIGTERM stops it (exit 0).

The update API, as DuckDNS answers it:
    GET /update?domains=a,b&token=T[&ip=][&ipv6=][&txt=V][&clear=true][&verbose=true]
  - a wrong token or an unknown domain (with or without ".duckdns.org"): "KO"
  - txt given: sets the TXT record of every domain (clear=true clears it);
    verbose answer "OK\\n<txt>\\nUPDATED|NOCHANGE". With --challtestsrv the
    record is written into pebble-challtestsrv (POST /set-txt {"host":
    "_acme-challenge.<domain>.duckdns.org.", "value": V}; POST /clear-txt
    {"host": ...}) so that a pebble resolving through challtestsrv sees it.
  - otherwise an address update: ip (IPv4 or IPv6) and ipv6 as given; with
    neither, the client's address; clear=true clears both. Verbose answer
    "OK\\n<ipv4>\\n<ipv6>\\nUPDATED|NOCHANGE", else "OK". With --set-a (and
    --challtestsrv) A/AAAA records go to challtestsrv too (/add-a, /add-aaaa).

Control endpoints for tests:
    GET  /_standin/log            JSON list of requests: {"path", "params"
                                  (token shown as "***"), "token_ok", "client",
                                  "time", "status", "answer"}
    GET  /_standin/records        JSON {domain: {"ipv4", "ipv6", "txt"}}
    POST /_standin/fail?mode=M    ko (answer KO), 500 (HTTP 500), hang (read the
                                  request, never answer), garbage (a page that is
                                  not DuckDNS's), none (back to normal)

As a module: StandIn(owner, token, domains, challtestsrv=None) starts the
script as a subprocess (stopped by pid at the owner's cleanup), with .port,
.url (the /update URL), .log(), .records(), .fail(mode), .stop().
"""

import argparse
import ipaddress
import json
import os
import signal
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

SUFFIX = ".duckdns.org"
HANG_MAX = 600  # seconds a hung request is held at most


class State:
    def __init__(self, token, domains, challtestsrv, set_a):
        self.token = token
        self.domains = {d: {"ipv4": "", "ipv6": "", "txt": ""} for d in domains}
        self.challtestsrv = challtestsrv.rstrip("/") if challtestsrv else None
        self.set_a = set_a
        self.mode = "none"
        self.log = []
        self.lock = threading.Lock()
        self.changed = threading.Condition(self.lock)


def _challtestsrv(state, path, obj):
    if not state.challtestsrv:
        return
    req = urllib.request.Request(state.challtestsrv + path, data=json.dumps(obj).encode(),
                                 headers={"Content-Type": "application/json"}, method="POST")
    with urllib.request.urlopen(req, timeout=10) as r:
        r.read()


def _valid_ip(s, family=None):
    try:
        a = ipaddress.ip_address(s)
    except ValueError:
        return False
    return family is None or a.version == family


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "duckdns-standin"

    def log_message(self, fmt, *args):  # quiet; the log endpoint tells all
        pass

    @property
    def st(self):
        return self.server.state

    def _send(self, status, body, ctype="text/plain; charset=UTF-8"):
        data = body.encode() if isinstance(body, str) else body
        self.send_response(status)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def do_POST(self):
        u = urllib.parse.urlsplit(self.path)
        n = int(self.headers.get("Content-Length") or 0)
        if n:
            self.rfile.read(n)
        if u.path == "/_standin/fail":
            mode = urllib.parse.parse_qs(u.query).get("mode", ["none"])[0]
            if mode not in ("none", "ko", "500", "hang", "garbage"):
                return self._send(400, "unknown mode %r\n" % mode)
            with self.st.lock:
                self.st.mode = mode
                self.st.changed.notify_all()
            return self._send(200, "mode %s\n" % mode)
        self._send(404, "not found\n")

    def do_GET(self):
        u = urllib.parse.urlsplit(self.path)
        if u.path == "/_standin/log":
            with self.st.lock:
                body = json.dumps(self.st.log)
            return self._send(200, body, "application/json")
        if u.path == "/_standin/records":
            with self.st.lock:
                body = json.dumps(self.st.domains)
            return self._send(200, body, "application/json")
        if u.path == "/update":
            return self._update(u)
        self._send(404, "not found\n")

    def _update(self, u):
        q = urllib.parse.parse_qs(u.query, keep_blank_values=True)
        p = {k: v[0] for k, v in q.items()}
        token_ok = p.get("token") == self.st.token
        shown = dict(p)
        if "token" in shown:
            shown["token"] = "***"
        entry = {"path": u.path, "params": shown, "token_ok": token_ok,
                 "client": self.client_address[0], "time": time.time(),
                 "status": None, "answer": None}
        with self.st.lock:
            self.st.log.append(entry)
            mode = self.st.mode
        if mode == "hang":
            with self.st.lock:
                self.st.changed.wait_for(lambda: self.st.mode != "hang", HANG_MAX)
            entry["status"] = 0
            self.close_connection = True
            return
        if mode == "ko":
            entry["status"], entry["answer"] = 200, "KO"
            return self._send(200, "KO")
        if mode == "500":
            entry["status"] = 500
            return self._send(500, "Internal Server Error\n")
        if mode == "garbage":
            entry["status"] = 200
            entry["answer"] = "<html>"
            return self._send(200, "<html><body>Please log in</body></html>\n", "text/html")
        status, answer = self._answer(p, token_ok)
        entry["status"], entry["answer"] = status, answer
        self._send(status, answer)

    def _answer(self, p, token_ok):
        verbose = p.get("verbose", "").lower() == "true"
        names = [d.strip().lower() for d in p.get("domains", "").split(",")]
        names = [d[:-len(SUFFIX)] if d.endswith(SUFFIX) else d for d in names]
        with self.st.lock:
            known = all(d in self.st.domains for d in names) and names != [""]
        if not token_ok or not known:
            return 200, "KO"
        clear = p.get("clear", "").lower() == "true"
        if "txt" in p:
            return self._txt(names, "" if clear else p["txt"], verbose)
        ip, ipv6 = p.get("ip", ""), p.get("ipv6", "")
        if (ip and not _valid_ip(ip)) or (ipv6 and not _valid_ip(ipv6, 6)):
            return 200, "KO"
        v4 = v6 = ""
        if not clear:
            if ip:
                v4, v6 = (ip, "") if _valid_ip(ip, 4) else ("", ip)
            elif not ipv6 and _valid_ip(self.client_address[0], 4):
                v4 = self.client_address[0]  # detected: IPv4 only, as DuckDNS
            if ipv6:
                v6 = ipv6
        changed = False
        with self.st.lock:
            for d in names:
                rec = self.st.domains[d]
                if (rec["ipv4"], rec["ipv6"]) != (v4, v6):
                    changed = True
                rec["ipv4"], rec["ipv6"] = v4, v6
        if self.st.set_a:
            for d in names:
                if v4:
                    _challtestsrv(self.st, "/add-a", {"host": d + SUFFIX + ".",
                                                      "addresses": [v4]})
                if v6:
                    _challtestsrv(self.st, "/add-aaaa", {"host": d + SUFFIX + ".",
                                                         "addresses": [v6]})
        if not verbose:
            return 200, "OK"
        return 200, "OK\n%s\n%s\n%s" % (v4, v6, "UPDATED" if changed else "NOCHANGE")

    def _txt(self, names, value, verbose):
        changed = False
        with self.st.lock:
            for d in names:
                if self.st.domains[d]["txt"] != value:
                    changed = True
                self.st.domains[d]["txt"] = value
        for d in names:
            host = "_acme-challenge." + d + SUFFIX + "."
            if value:
                _challtestsrv(self.st, "/set-txt", {"host": host, "value": value})
            else:
                _challtestsrv(self.st, "/clear-txt", {"host": host})
        if not verbose:
            return 200, "OK"
        return 200, "OK\n%s\n%s" % (value, "UPDATED" if changed else "NOCHANGE")


def serve(argv=None):
    ap = argparse.ArgumentParser(description="local stand-in for DuckDNS's update API")
    ap.add_argument("--port", type=int, default=0)
    ap.add_argument("--token", required=True)
    ap.add_argument("--domains", required=True, help="comma separated subnames")
    ap.add_argument("--challtestsrv", help="pebble-challtestsrv management URL")
    ap.add_argument("--set-a", action="store_true", help="also write A/AAAA records")
    a = ap.parse_args(argv)
    srv = ThreadingHTTPServer(("127.0.0.1", a.port), Handler)
    srv.daemon_threads = True
    srv.state = State(a.token, [d.strip().lower() for d in a.domains.split(",") if d.strip()],
                      a.challtestsrv, a.set_a)

    def on_term(signum, frame):
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, on_term)
    print("port %d" % srv.server_address[1], flush=True)
    try:
        srv.serve_forever(poll_interval=0.1)
    except KeyboardInterrupt:
        pass
    finally:
        srv.server_close()
    return 0


class StandIn:
    """The stand-in as a subprocess; stopped by pid at owner's cleanup."""

    def __init__(self, owner=None, token="standin-token", domains=("example",),
                 challtestsrv=None, set_a=False, stderr_path=None):
        cmd = ["/usr/bin/python3", "-u", os.path.abspath(__file__), "--port", "0",
               "--token", token, "--domains", ",".join(domains)]
        if challtestsrv:
            cmd += ["--challtestsrv", challtestsrv]
        if set_a:
            cmd.append("--set-a")
        err = open(stderr_path, "wb") if stderr_path else subprocess.DEVNULL
        try:
            self.proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                         stderr=err)
        finally:
            if stderr_path:
                err.close()
        if owner is not None:
            if isinstance(owner, type):
                owner.addClassCleanup(self.stop)
            else:
                owner.addCleanup(self.stop)
        line = self.proc.stdout.readline().decode().strip()
        if not line.startswith("port "):
            self.stop()
            raise AssertionError("duckdns stand-in did not start: %r" % line)
        self.port = int(line.split()[1])
        self.base = "http://127.0.0.1:%d" % self.port
        self.url = self.base + "/update"
        self.token = token

    def _get(self, path):
        with urllib.request.urlopen(self.base + path, timeout=10) as r:
            return json.loads(r.read().decode())

    def log(self):
        return self._get("/_standin/log")

    def updates(self):
        return [e for e in self.log() if e["path"] == "/update"]

    def records(self):
        return self._get("/_standin/records")

    def fail(self, mode):
        req = urllib.request.Request(self.base + "/_standin/fail?mode=" + mode, data=b"",
                                     method="POST")
        with urllib.request.urlopen(req, timeout=10) as r:
            r.read()

    def stop(self):
        import moatlib
        moatlib.stop_process(self.proc)


if __name__ == "__main__":
    sys.exit(serve())
