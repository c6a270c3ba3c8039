"""
What the benchmark reads: a proxy's CPU time and memory from /proc, wrk's
summary, the shim's handshake counts, HAProxy's `show info`, and the memory
cost of idle TLS connections.
"""

import json
import os
import socket
import subprocess
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
CLK_TCK = os.sysconf("SC_CLK_TCK")


def _stat_fields(pid):
    """Fields of /proc/PID/stat after the command name (which may hold spaces)."""
    with open("/proc/%d/stat" % pid) as f:
        return f.read().rsplit(")", 1)[1].split()


def tree(pid):
    """pid and all its descendants (e.g. nginx's master and worker)."""
    children = {}
    for name in os.listdir("/proc"):
        if name.isdigit():
            try:
                ppid = int(_stat_fields(int(name))[1])
            except (OSError, IndexError, ValueError):
                continue  # exited while we looked
            children.setdefault(ppid, []).append(int(name))
    out, todo = [], [pid]
    while todo:
        p = todo.pop()
        out.append(p)
        todo.extend(children.get(p, []))
    return out


def cpu_seconds(pids):
    """utime + stime of these processes; a thread-group leader's counts
    include all of its threads."""
    ticks = 0
    for pid in pids:
        f = _stat_fields(pid)
        ticks += int(f[11]) + int(f[12])  # fields 14 and 15 of the whole line
    return ticks / CLK_TCK


def rss_kib(pids):
    """Resident memory of these processes (Rss of smaps_rollup), in KiB."""
    total = 0
    for pid in pids:
        with open("/proc/%d/smaps_rollup" % pid) as f:
            for line in f:
                if line.startswith("Rss:"):
                    total += int(line.split()[1])
    return total


def run_wrk(url, conns, seconds, headers=(), drop_sessions=False, sni=None, during=None):
    """Run wrk -t1 through the noresume shim; returns wrk's summary plus the
    shim's handshake counts. during(), if given, is called halfway through."""
    counts = tempfile.NamedTemporaryFile(prefix="moat-bench-hs-", delete=False)
    counts.close()
    env = dict(os.environ,
               LD_PRELOAD=os.environ["BENCH_SHIM"],
               NORESUME_DROP="1" if drop_sessions else "0",
               NORESUME_SNI=sni or "",
               NORESUME_OUT=counts.name)
    cmd = ["wrk", "-t1", "-c%d" % conns, "-d%ds" % seconds, "--latency",
           "-s", os.path.join(HERE, "wrk_report.lua")]
    for h in headers:
        cmd += ["-H", h]
    cmd.append(url)
    p = subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                         text=True)
    try:
        mid = None
        if during is not None:
            time.sleep(seconds / 2)
            mid = during()
        out, _ = p.communicate(timeout=seconds + 60)
        with open(counts.name) as f:
            hs = dict((k, int(v)) for k, v in (line.split() for line in f))
    finally:
        if p.poll() is None:  # interrupted: SIGKILL, so it writes no counts file
            p.kill()
            p.wait()
        os.unlink(counts.name)
    line = [ln for ln in out.splitlines() if ln.startswith("BENCH ")]
    if p.returncode != 0 or not line:
        raise RuntimeError("wrk failed (%s):\n%s" % (" ".join(cmd), out))
    r = json.loads(line[0][6:])
    r["handshakes"] = hs
    if mid is not None:
        r["server"] = mid
    return r


def haproxy_info(sock_path):
    """HAProxy's TLS counters from `show info` on its stats socket."""
    with socket.socket(socket.AF_UNIX) as s:
        s.settimeout(5)
        s.connect(sock_path)
        s.sendall(b"show info\n")
        data = b""
        while True:
            chunk = s.recv(65536)
            if not chunk:
                break
            data += chunk
    keep = ("SslRate", "SslFrontendKeyRate", "SslFrontendSessionReuse_pct", "CumSslConns")
    out = {}
    for line in data.decode().splitlines():
        k, _, v = line.partition(":")
        if k in keep:
            out[k] = int(v.strip())
    return out


def idle_memory(pids_fn, port, n, sni, cafile, settle=1.0):
    """Memory of n idle TLS keep-alive connections: Rss (KiB) of the proxy's
    processes before and after opening them (one request each)."""
    time.sleep(settle)
    before = rss_kib(pids_fn())
    cmd = ["/usr/bin/python3", os.path.join(HERE, "idleconns.py"), str(port), str(n), sni,
           cafile]
    p = subprocess.Popen(cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        line = p.stdout.readline()
        if not line.startswith("ready"):
            raise RuntimeError("idleconns.py failed (exit %s)" % p.wait())
        time.sleep(settle)
        after = rss_kib(pids_fn())
    finally:
        p.stdin.close()
        try:
            p.wait(timeout=30)
        except subprocess.TimeoutExpired:
            p.kill()
            p.wait()
    return {"rss_before_kib": before, "rss_after_kib": after, "conns": n,
            "kib_per_conn": (after - before) / n}

