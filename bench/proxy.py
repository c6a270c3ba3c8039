"""
moat against nginx, HAProxy and Caddy: the driver behind bench/proxy.sh.

Starts one origin (nginx), then for each round starts the proxies afresh on
free 127.0.0.1 ports, and measures each metric on each proxy in turn, the
order rotated by one every round. Everything it starts is stopped by pid at
the end, also on an error or Ctrl-C. See bench/README.md.

Environment: BENCH_ROUNDS (3), BENCH_SECONDS (8), BENCH_WARMUP (2),
BENCH_ONLY (a,b,c,d), BENCH_PROXIES (moat,nginx,haproxy,caddy; moat-guard is moat
with abuse control configured), BENCH_CONNS (2000),
BENCH_SHIM (the built noresume.so, required), MOAT_BIN (build/moat),
BENCH_OUT (bench/results), BENCH_KEEP=1 keeps the temp dir.
"""

import os
import resource
import shutil
import signal
import subprocess
import sys
import tempfile
import time

import measure
import peers
import report

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(HERE)
ALL_PROXIES = ("moat", "moat-guard", "nginx", "haproxy", "caddy")
DEFAULT_PROXIES = ("moat", "nginx", "haproxy", "caddy")  # moat-guard on request
ALL_METRICS = ("a", "b", "c", "d")


def settings():
    env = os.environ.get
    s = {
        "rounds": int(env("BENCH_ROUNDS", "3")),
        "seconds": int(env("BENCH_SECONDS", "8")),
        "warmup": int(env("BENCH_WARMUP", "2")),
        "conns": int(env("BENCH_CONNS", "2000")),
        "metrics": [m for m in env("BENCH_ONLY", ",".join(ALL_METRICS)).split(",") if m],
        "proxies": [p for p in env("BENCH_PROXIES", ",".join(DEFAULT_PROXIES)).split(",") if p],
        "moat_bin": env("MOAT_BIN") or os.path.join(REPO, "build", "moat"),
        "out": env("BENCH_OUT") or os.path.join(HERE, "results"),
    }
    bad = [m for m in s["metrics"] if m not in ALL_METRICS]
    bad += [p for p in s["proxies"] if p not in ALL_PROXIES]
    if bad or s["rounds"] < 1 or s["seconds"] < 1:
        sys.exit("proxy.py: bad BENCH_ONLY/BENCH_PROXIES/BENCH_ROUNDS/BENCH_SECONDS: %s" % bad)
    return s


def make_cert(d):
    cert, key = os.path.join(d, "cert.pem"), os.path.join(d, "key.pem")
    subprocess.run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt",
                    "ec_paramgen_curve:P-256", "-nodes", "-days", "7", "-subj",
                    "/CN=" + peers.SNI, "-addext", "subjectAltName=DNS:" + peers.SNI,
                    "-keyout", key, "-out", cert], check=True, capture_output=True)
    return cert, key


class Runner:
    """Runs the metrics against one started proxy."""

    def __init__(self, s):
        self.s = s

    def wrk(self, p, path, conns, headers=(), drop=False, during=None, port=None,
            seconds=None):
        url = "https://127.0.0.1:%d%s" % (port or p.port, path)
        hdrs = ("Host: " + peers.SNI,) + tuple(headers)
        return measure.run_wrk(url, conns, seconds or self.s["seconds"], hdrs, drop,
                               peers.SNI, during)

    def measured(self, p, path, conns, headers=(), drop=False, during=None):
        """Warm-up run, then the measured run with the proxy's CPU read around it."""
        self.wrk(p, path, conns, headers, drop, seconds=self.s["warmup"])
        pids = p.pids()
        before = measure.cpu_seconds(pids)
        r = self.wrk(p, path, conns, headers, drop, during)
        r["cpu_s"] = measure.cpu_seconds(pids) - before
        p.check_alive()
        r["secs"] = r["duration_us"] / 1e6
        r["errors"] = sum(r[k] for k in ("connect", "read", "write", "status", "timeout"))
        n = max(r["requests"], 1)
        r["rps"] = r["requests"] / r["secs"]
        r["cpu_100k"] = r["cpu_s"] / n * 1e5
        return r

    def a(self, p):
        r = self.measured(p, "/small", 50)
        r["p99_ms"] = r["p99_us"] / 1000
        return {"a": r}

    def b(self, p):
        during = None
        if p.name == "haproxy":
            def during():
                return measure.haproxy_info(p.extra["stats_socket"])
        close = ("Connection: close",)
        out = {"b_full": self.measured(p, "/small", 50, close, True, during),
               "b_resumed": self.measured(p, "/small", 50, close, False, during)}
        if p.name == "nginx":
            for key, drop in (("b_full", True), ("b_resumed", False)):
                out[key]["server"] = self.nginx_probe(p, drop)
        return out

    def nginx_probe(self, p, drop):
        """A 1 s run against nginx's logging server: nginx's own count of
        reused ("r") and full (".") handshakes."""
        log = p.extra["probe_log"]
        open(log, "w").close()
        self.wrk(p, "/small", 50, ("Connection: close",), drop, port=p.extra["probe_port"],
                 seconds=1)
        with open(log) as f:
            marks = f.read().split()
        return {"nginx_reused": marks.count("r"), "nginx_full": marks.count(".")}

    def c(self, p):
        r = self.measured(p, "/1m", 4)
        r["mibps"] = r["requests"] / r["secs"]  # each response body is 1 MiB
        r["cpu_gib"] = r["cpu_s"] / max(r["requests"] / 1024, 1e-9)
        return {"c": r}

    def d(self, p):
        self.wrk(p, "/small", 50, seconds=self.s["warmup"])
        r = measure.idle_memory(p.pids, p.port, self.s["conns"], peers.SNI, p.cafile)
        p.check_alive()
        return {"d": r}


def describe(metric, r):
    if metric == "a":
        return "%8.0f req/s  p99 %6.2f ms  CPU %5.2f s/100k  err %d" % (
            r["rps"], r["p99_ms"], r["cpu_100k"], r["errors"])
    if metric.startswith("b_"):
        hs = r["handshakes"]
        return "%8.0f req/s  CPU %5.2f s/100k  handshakes full %d resumed %d  err %d%s" % (
            r["rps"], r["cpu_100k"], hs["full"], hs["resumed"], r["errors"],
            "  server %s" % r["server"] if "server" in r else "")
    if metric == "c":
        return "%8.1f MiB/s  CPU %5.2f s/GiB  err %d" % (r["mibps"], r["cpu_gib"], r["errors"])
    return "%6.2f KiB/conn  (Rss %d -> %d KiB)" % (
        r["kib_per_conn"], r["rss_before_kib"], r["rss_after_kib"])


def start_all(order, d, origin_port, cert, key, moat_bin, started):
    procs = {}
    for name in order:
        procs[name] = peers.start_proxy(name, "%s-%s" % (d, name), origin_port, cert, key,
                                        moat_bin)
        started.append(procs[name])
    for p in procs.values():
        p.wait_ready()
    return procs


def stop_all(procs, started, configs):
    for name, p in procs.items():
        configs[name] = p.conf
        p.stop()
        started.remove(p)


def main():
    s = settings()
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))  # inherited by the proxies
    signal.signal(signal.SIGTERM, lambda *_: sys.exit("proxy.py: terminated"))
    work = tempfile.mkdtemp(prefix="moat-bench-")
    started, runs, configs = [], [], {}
    runner = Runner(s)
    t0 = time.time()
    try:
        # The run uses its own copy of moat: a rebuild meanwhile must not
        # change the binary between rounds.
        moat = os.path.join(work, "moat")
        shutil.copy2(s["moat_bin"], moat)
        vers = report.versions(s["moat_bin"], moat)
        cert, key = make_cert(work)
        origin = peers.start_origin(work)
        started.append(origin)
        origin.wait_ready()
        for rnd in range(s["rounds"]):
            k = rnd % len(s["proxies"])
            order = s["proxies"][k:] + s["proxies"][:k]
            print("round %d/%d: %s" % (rnd + 1, s["rounds"], ", ".join(order)), flush=True)
            procs = {}
            for i, metric in enumerate(s["metrics"]):
                # (d) wants proxies whose heaps have not yet served the other runs.
                if i == 0 or metric == "d":
                    stop_all(procs, started, configs)
                    procs = start_all(order, os.path.join(work, "r%d%s" % (rnd, metric)),
                                      origin.port, cert, key, moat, started)
                for name in order:
                    for mid, r in getattr(runner, metric)(procs[name]).items():
                        runs.append(dict(r, round=rnd + 1, proxy=name, metric=mid))
                        print("  %-9s %-10s %s" % (mid, name, describe(mid, r)), flush=True)
            stop_all(procs, started, configs)
        paths = report.write(s, vers, runs, configs, origin.conf, time.time() - t0)
        print("\n".join(["wrote:"] + paths))
    finally:
        for p in reversed(started):
            p.stop()
        peers.remove_work(work)


if __name__ == "__main__":
    main()
