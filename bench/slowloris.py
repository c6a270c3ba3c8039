"""
moat under a slowloris attack: do normal clients still get served, and does
moat's memory stay bounded? The driver behind `make bench-slowloris`
(BENCH_SLOWLORIS=1 bench/proxy.sh); see bench/README.md.

For each scenario: start moat afresh (plain-HTTP and HTTPS listeners on
127.0.0.1, the bench origin behind it), run the normal client alone
(bench/slowclient.py), start the attacker (bench/slowattack.py), let it reach
its connections, run the normal client again during the attack, stop the
attacker, and let moat drop what is left. Every second: moat's Rss and CPU,
and its own view from the admin socket (open connections, denials).

Environment: SLOW_SCENARIOS (http-spread,http-one,tls-spread,http-spread-w2;
also tls-head-spread), SLOW_CONNS (10000), SLOW_SOURCES (40), SLOW_RATE (2000
connections opened per second at most), SLOW_TRICKLE (5 s), SLOW_NORMAL_RATE
(20 requests per second of each kind), SLOW_SECONDS (60), SLOW_BASE_SECONDS
(30), SLOW_AFTER_SECONDS (15), MOAT_BIN (build/moat), BENCH_OUT (bench/results),
BENCH_KEEP=1 keeps the temp dir.
"""

import datetime
import json
import os
import resource
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time

import measure
import peers
import proxy
import report
import slowreport

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(HERE)
PY = "/usr/bin/python3"

# name -> (attack mode, listener it hits, spread over many sources, moat workers)
SCENARIOS = {
    "http-spread": ("http", "http", True, 1),
    "http-one": ("http", "http", False, 1),
    "tls-spread": ("tls", "https", True, 1),
    "tls-head-spread": ("tls-head", "https", True, 1),
    "http-spread-w2": ("http", "http", True, 2),
}
DEFAULT_SCENARIOS = "http-spread,http-one,tls-spread,http-spread-w2"


def settings():
    env = os.environ.get
    s = {
        "scenarios": [x for x in env("SLOW_SCENARIOS", DEFAULT_SCENARIOS).split(",") if x],
        "conns": int(env("SLOW_CONNS", "10000")),
        "sources": int(env("SLOW_SOURCES", "40")),
        "rate": float(env("SLOW_RATE", "2000")),
        "trickle": float(env("SLOW_TRICKLE", "5")),
        "normal_rate": float(env("SLOW_NORMAL_RATE", "20")),
        "seconds": int(env("SLOW_SECONDS", "60")),
        "base_seconds": int(env("SLOW_BASE_SECONDS", "30")),
        "after_seconds": int(env("SLOW_AFTER_SECONDS", "15")),
        "moat_bin": env("MOAT_BIN") or os.path.join(REPO, "build", "moat"),
        "out": env("BENCH_OUT") or os.path.join(HERE, "results"),
    }
    bad = [x for x in s["scenarios"] if x not in SCENARIOS]
    if bad or not 1 <= s["sources"] <= 250 or s["conns"] < 1:
        sys.exit("slowloris.py: bad SLOW_SCENARIOS/SLOW_SOURCES/SLOW_CONNS: %s" % bad)
    return s


def moat_conf(d, http_port, https_port, origin, cert, key, workers):
    return """data: %(d)s/moat-data
listen: { http: "127.0.0.1:%(http)d", https: "127.0.0.1:%(https)d" }
workers: %(workers)d
access_log: %(d)s/access.log
timeouts: { header: 10s, idle: 60s, write: 30s, body: 10s }
limits: { connections_per_client: 256 }
sites:
  %(sni)s:
    to: http://127.0.0.1:%(origin)d
    tls: { cert: %(cert)s, key: %(key)s }
    redirect: false
    hsts: false
""" % {"d": d, "http": http_port, "https": https_port, "workers": workers, "sni": peers.SNI,
       "origin": origin, "cert": cert, "key": key}


def admin_status(data_dir):
    """moat's `status` answer from its admin socket, or None."""
    try:
        with socket.socket(socket.AF_UNIX) as s:
            s.settimeout(2)
            s.connect(os.path.join(data_dir, "admin.sock"))
            s.sendall(b'{"cmd":"status"}\n')
            buf = b""
            while True:
                chunk = s.recv(65536)
                if not chunk:
                    break
                buf += chunk
        return json.loads(buf)
    except (OSError, ValueError):
        return None


def vm_rss_kib(pid):
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


class Sampler(threading.Thread):
    """Every second: moat's VmRSS, CPU seconds and admin status, tagged
    with the phase the driver is in."""

    def __init__(self, moat, data_dir):
        super().__init__(daemon=True)
        self.moat, self.data_dir = moat, data_dir
        self.phase, self.samples, self.stopping = "start", [], threading.Event()
        self.t0 = time.monotonic()

    def run(self):
        while not self.stopping.wait(1.0):
            try:
                pid = self.moat.proc.pid
                rss, cpu = vm_rss_kib(pid), measure.cpu_seconds([pid])
            except (OSError, IndexError, ValueError):
                break  # moat is gone; the driver notices
            st = admin_status(self.data_dir) or {}
            conns = st.get("connections", {})
            self.samples.append({"t": round(time.monotonic() - self.t0, 2), "phase": self.phase,
                                 "rss_kib": rss, "cpu_s": cpu, "conns": conns.get("total"),
                                 "workers": conns.get("workers"), "denials": st.get("denials")})


class Child:
    """A helper process (attacker or normal client) in its own session,
    stopped by its pid."""

    def __init__(self, cmd, log, stdin=False):
        self.log = log
        self.lines = []
        self.proc = subprocess.Popen(cmd, stdin=subprocess.PIPE if stdin else subprocess.DEVNULL,
                                     stdout=subprocess.PIPE, stderr=open(log, "w"), text=True,
                                     start_new_session=True)
        self.t0 = time.monotonic()
        self.reader = threading.Thread(target=self.read, daemon=True)
        self.reader.start()

    def read(self):
        for line in self.proc.stdout:
            self.lines.append((time.monotonic(), line))

    def cpu_seconds(self):
        try:
            return measure.cpu_seconds([self.proc.pid])
        except (OSError, IndexError, ValueError):
            return None

    def finish(self, timeout):
        """Close its stdin (the attacker's signal to stop) and wait."""
        if self.proc.stdin is not None:
            self.proc.stdin.close()
        try:
            self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.stop()
            raise RuntimeError("%s did not finish in %d s" % (self.proc.args[1], timeout))
        self.reader.join(5)
        if self.proc.returncode != 0:
            with open(self.log, errors="replace") as f:
                raise RuntimeError("%s failed (exit %d):\n%s" % (
                    self.proc.args[1], self.proc.returncode, f.read()[-3000:]))

    def stop(self):
        peers.stop_process(self.proc)


def normal_run(s, moat, d, tag, children):
    c = Child([PY, os.path.join(HERE, "slowclient.py"), str(moat.port), peers.SNI, moat.cafile,
               str(s["normal_rate"]), str(s["seconds"] if tag == "attack" else
                                          s["base_seconds"])],
              os.path.join(d, "client-%s.stderr" % tag))
    children.append(c)
    c.finish(max(s["seconds"], s["base_seconds"]) + 60)
    children.remove(c)
    return json.loads(c.lines[-1][1])


def attack_lines(att, since, until):
    out = []
    for t, line in att.lines:
        if since <= t <= until:
            try:
                out.append(json.loads(line))
            except ValueError:
                pass
    return out


def access_counts(path, marks):
    """Access log lines by phase (from the driver's wall-clock marks): deny
    reasons, statuses of the normal client (127.0.0.1), lines in all, and
    the refusals moat left out of the log (each worker logs at most 100 a
    second; the next line it writes carries "unlogged")."""
    out = {}
    if not os.path.exists(path):
        return out
    with open(path, errors="replace") as f:
        for line in f:
            try:
                r = json.loads(line)
                t = datetime.datetime.strptime(r["time"], "%Y-%m-%dT%H:%M:%S.%fZ").replace(
                    tzinfo=datetime.timezone.utc).timestamp()
            except (ValueError, KeyError):
                continue
            phase = "start"
            for name, at in marks:
                if t >= at:
                    phase = name
            p = out.setdefault(phase, {"lines": 0, "deny": {}, "normal_status": {},
                                       "unlogged": 0})
            p["lines"] += 1
            p["unlogged"] += r.get("unlogged", 0)
            if r.get("deny"):
                p["deny"][r["deny"]] = p["deny"].get(r["deny"], 0) + 1
            if r.get("client") == "127.0.0.1":
                k = str(r.get("status"))
                p["normal_status"][k] = p["normal_status"].get(k, 0) + 1
    return out


def scenario(s, name, work, origin, cert, key, moat_bin, started, children):
    mode, listener, spread, workers = SCENARIOS[name]
    d = os.path.join(work, name)
    os.makedirs(d)
    http_port, https_port = peers.free_port(), peers.free_port()
    conf = moat_conf(d, http_port, https_port, origin.port, cert, key, workers)
    moat = peers.Server("moat", d, https_port, conf, "moat.yaml", [moat_bin, "run", "-c", "{conf}"])
    moat.cafile = cert
    started.append(moat)
    moat.wait_ready()
    sampler = Sampler(moat, os.path.join(d, "moat-data"))
    sampler.start()
    marks = []

    def phase(p):
        sampler.phase = p
        marks.append((p, time.time()))
        print("  %s: %s" % (name, p), flush=True)

    try:
        time.sleep(2)
        phase("base")
        base = normal_run(s, moat, d, "base", children)
        moat.check_alive()
        phase("ramp")
        sources = ["127.0.0.%d" % (2 + i) for i in range(s["sources"] if spread else 1)]
        port = http_port if listener == "http" else https_port
        att = Child([PY, os.path.join(HERE, "slowattack.py"), mode, "127.0.0.1", str(port),
                     str(s["conns"]), ",".join(sources), str(s["rate"]), str(s["trickle"]),
                     peers.SNI], os.path.join(d, "attack.stderr"), stdin=True)
        children.append(att)
        ramp_end = time.monotonic() + s["conns"] / s["rate"] + 10
        while time.monotonic() < ramp_end:
            time.sleep(0.5)
            moat.check_alive()
            last = attack_lines(att, 0, time.monotonic())[-1:]
            if att.proc.poll() is not None:
                att.finish(1)
            if last and last[0]["open"] >= 0.95 * s["conns"]:
                break
        phase("attack")
        t_attack = time.monotonic()
        att_cpu0, moat_cpu0 = att.cpu_seconds(), measure.cpu_seconds([moat.proc.pid])
        during = normal_run(s, moat, d, "attack", children)
        moat_cpu = measure.cpu_seconds([moat.proc.pid]) - moat_cpu0
        att_cpu = att.cpu_seconds() - att_cpu0
        t_end = time.monotonic()
        moat.check_alive()
        phase("after")
        att.finish(30)
        children.remove(att)
        time.sleep(s["after_seconds"])
        moat.check_alive()
        phase("end")
        time.sleep(1.2)
    finally:
        sampler.stopping.set()
        sampler.join(5)
        moat.stop()
        started.remove(moat)
    return {"name": name, "mode": mode, "listener": listener, "workers": workers,
            "sources": sources, "config": conf, "base": base, "attack": during,
            "attacker": attack_lines(att, t_attack, t_end),
            "attacker_all": [json.loads(x) for _, x in att.lines if x.startswith("{")],
            "attacker_cpu_s": att_cpu, "moat_cpu_s": moat_cpu,
            "attack_s": t_end - t_attack, "samples": sampler.samples,
            "access": access_counts(os.path.join(d, "access.log"), marks),
            "moat_exit": moat.proc.returncode, "moat_log": moat.log_tail()[-2000:]}


def main():
    s = settings()
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))  # inherited by moat
    signal.signal(signal.SIGTERM, lambda *_: sys.exit("slowloris.py: terminated"))
    work = tempfile.mkdtemp(prefix="moat-slow-")
    started, children, results = [], [], []
    t0 = time.time()
    try:
        moat = os.path.join(work, "moat")
        shutil.copy2(s["moat_bin"], moat)
        vers = report.versions(s["moat_bin"], moat)
        cert, key = proxy.make_cert(work)
        origin = peers.start_origin(work)
        started.append(origin)
        origin.wait_ready()
        for name in s["scenarios"]:
            print("scenario %s" % name, flush=True)
            r = scenario(s, name, work, origin, cert, key, moat, started, children)
            results.append(r)
            print(slowreport.one_line(r), flush=True)
        meta = {"machine": report.machine(), "versions": vers,
                "elapsed_s": round(time.time() - t0), "nofile_hard": hard}
        paths = slowreport.write(s, meta, results, origin.conf)
        print("\n".join(["wrote:"] + paths))
    finally:
        for c in reversed(children):
            c.stop()
        for p in reversed(started):
            p.stop()
        peers.remove_work(work)


if __name__ == "__main__":
    main()
