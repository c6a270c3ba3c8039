"""
The benchmark report: bench/results/latest.md and latest.json, and copies
named by date and moat's short git sha. Medians with min-max over the rounds;
each figure also as a ratio to the better of nginx and HAProxy.
"""

import datetime
import hashlib
import json
import os
import platform
import statistics
import subprocess

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(HERE)
PEERS = ("nginx", "haproxy")
LOW, HIGH = "low", "high"

CONN_FIGS = [("rps", "conn+req/s", "{:,.0f}", HIGH),
             ("cpu_100k", "CPU s / 100k conn+req", "{:.3f}", LOW)]

# metric id -> (title, how it was driven, [(key, label, format, better)])
SECTIONS = [
    ("a", "(a) HTTPS keep-alive, 100-byte responses",
     "wrk -t1 -c50 -d{S}s --latency https://127.0.0.1:PORT/small",
     [("rps", "req/s", "{:,.0f}", HIGH), ("p99_ms", "p99 ms", "{:.2f}", LOW),
      ("cpu_100k", "CPU s / 100k req", "{:.3f}", LOW)]),
    ("b_full", "(b) a new TLS connection per request, full handshakes",
     "wrk -t1 -c50 -d{S}s -H 'Connection: close' .../small, with the noresume shim "
     "dropping the TLS session before every connect",
     CONN_FIGS),
    ("b_resumed", "(b, resumed) a new TLS connection per request, TLS 1.3 resumption",
     "as (b), but wrk keeps its session, so reconnects resume with the server's ticket",
     CONN_FIGS),
    ("c", "(c) 1 MiB downloads",
     "wrk -t1 -c4 -d{S}s https://127.0.0.1:PORT/1m",
     [("mibps", "MiB/s", "{:,.1f}", HIGH), ("cpu_gib", "CPU s / GiB", "{:.3f}", LOW)]),
    ("d", "(d) memory per idle TLS keep-alive connection",
     "{N} TLS connections, one request each, then idle; Rss after minus Rss before, / {N}",
     [("kib_per_conn", "KiB / idle conn", "{:.2f}", LOW)]),
]

# (label, metric, key, kind, limit): kind "ratio" compares moat's ratio to the
# better peer, "abs" compares moat's median itself.
BAR = [
    ("(a) CPU per request", "a", "cpu_100k", "ratio", 1.0),
    ("(a) p99 latency", "a", "p99_ms", "ratio", 1.0),
    ("(b) CPU per full handshake", "b_full", "cpu_100k", "ratio", 1.0),
    ("(c) CPU per GiB", "c", "cpu_gib", "ratio", 1.0),
    ("(d) memory per idle TLS connection", "d", "kib_per_conn", "abs", 10.0),
]


def _run(cmd):
    try:
        p = subprocess.run(cmd, capture_output=True, text=True, timeout=30)
    except OSError as e:
        return "(%s)" % e
    return ((p.stdout or "") + (p.stderr or "")).strip().splitlines()[0] if (
        p.stdout or p.stderr) else "?"


def machine():
    model = "?"
    with open("/proc/cpuinfo") as f:
        for line in f:
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    with open("/proc/meminfo") as f:
        mem = int(f.readline().split()[1])
    with open("/proc/loadavg") as f:
        load = " ".join(f.read().split()[:3])
    return {"nproc": os.cpu_count(), "cpu": model, "kernel": platform.release(),
            "memory": "%.1f GiB" % (mem / 1024 / 1024), "loadavg_at_end": load}


def versions(moat_bin, copy):
    """Versions of everything; moat's from the copy the run uses (copy) of
    moat_bin, and the git tree as it is now: call at the start of the run."""
    with open(copy, "rb") as f:
        digest = hashlib.sha256(f.read()).hexdigest()[:16]
    return {
        "moat": "%s (git %s; %s, sha256 %s)" % (
            _run([copy, "version"]), _run(["git", "-C", REPO, "describe", "--always",
                                            "--dirty", "--tags"]), moat_bin, digest),
        "moat_sha": _run(["git", "-C", REPO, "rev-parse", "--short", "HEAD"]),
        "nginx": _run(["nginx", "-v"]),
        "haproxy": _run(["haproxy", "-v"]),
        "caddy": _run(["caddy", "version"]),
        "openssl": _run(["openssl", "version"]),
        "wrk": _run(["wrk", "-v"]).split(" Copyright")[0],
        "python": _run(["/usr/bin/python3", "--version"]),
    }


def _values(runs, metric, key, proxy):
    return [r[key] for r in runs if r["metric"] == metric and r["proxy"] == proxy]


def ratios(runs, metric, key, better, proxy):
    """Per round: proxy's figure / the better of nginx's and HAProxy's figure
    in the same round. Returns the list over the rounds that have both."""
    out = []
    for rnd in sorted({r["round"] for r in runs}):
        mine = [r[key] for r in runs if (r["round"], r["metric"], r["proxy"]) ==
                (rnd, metric, proxy)]
        peer = [r[key] for r in runs if r["round"] == rnd and r["metric"] == metric and
                r["proxy"] in PEERS]
        if mine and peer:
            best = max(peer) if better == HIGH else min(peer)
            out.append(mine[0] / best if best else float("inf"))
    return out


def _cell(vals, fmt):
    if not vals:
        return "—"
    m = fmt.format(statistics.median(vals))
    if len(vals) == 1:
        return m
    return "%s (%s–%s)" % (m, fmt.format(min(vals)), fmt.format(max(vals)))


def _server_view(runs, metric, proxy):
    rs = [r.get("server") for r in runs if r["metric"] == metric and r["proxy"] == proxy]
    rs = [x for x in rs if x]
    if not rs:
        return "—"
    if "nginx_full" in rs[0]:
        return "log: %d full, %d reused" % (sum(x["nginx_full"] for x in rs),
                                            sum(x["nginx_reused"] for x in rs))
    return "reuse %s%%, key rate %s of %s/s" % (
        _cell([x["SslFrontendSessionReuse_pct"] for x in rs], "{:.0f}"),
        _cell([x["SslFrontendKeyRate"] for x in rs], "{:.0f}"),
        _cell([x["SslRate"] for x in rs], "{:.0f}"))


def section(s, runs, proxies, sec):
    metric, title, how, figs = sec
    if not any(r["metric"] == metric for r in runs):
        return []
    how = how.replace("{S}", str(s["seconds"])).replace("{N}", str(s["conns"]))
    head = ["proxy"]
    for _, label, _, better in figs:
        head += [label, "÷ best peer"]
    extra = metric.startswith("b_")
    if metric == "d":
        head += ["Rss before → after, MiB"]
    else:
        head += ["errors"]
    if extra:
        head += ["client handshakes full / resumed", "server's view"]
    lines = ["### %s" % title, "", how + ".", "", "| " + " | ".join(head) + " |",
             "|" + "---|" * len(head)]
    for p in proxies:
        row = [p]
        for key, _, fmt, better in figs:
            row += [_cell(_values(runs, metric, key, p), fmt),
                    _cell(ratios(runs, metric, key, better, p), "{:.2f}")]
        if metric == "d":
            mib = [[v / 1024 for v in _values(runs, metric, k, p)]
                   for k in ("rss_before_kib", "rss_after_kib")]
            row.append("%s → %s" % (_cell(mib[0], "{:.1f}"), _cell(mib[1], "{:.1f}")))
        else:
            row.append(str(sum(_values(runs, metric, "errors", p))))
        if extra:
            hs = _values(runs, metric, "handshakes", p)
            row.append("%d / %d" % (sum(h["full"] for h in hs), sum(h["resumed"] for h in hs)))
            row.append(_server_view(runs, metric, p))
        lines.append("| " + " | ".join(row) + " |")
    return lines + [""]


def paired(runs, metric, key, num, den):
    """Per round: num's figure / den's figure in the same round."""
    out = []
    for rnd in sorted({r["round"] for r in runs}):
        a, b = ([r[key] for r in runs if (r["round"], r["metric"], r["proxy"]) ==
                 (rnd, metric, who)] for who in (num, den))
        if a and b and b[0]:
            out.append(a[0] / b[0])
    return out


def guard_cost(runs):
    """moat-guard (moat with abuse control configured) against plain moat,
    paired by round, for every figure both have."""
    if not any(r["proxy"] == "moat-guard" for r in runs):
        return []
    lines = ["## What abuse control costs: moat-guard ÷ moat", "",
             "moat-guard is moat's configuration plus a site `limit`, a `path_limits` rule, a "
             "`ban` rule, `trusted_proxies` and `never_ban`, none of which ever triggers here "
             "and none of which holds 127.0.0.1 (bench/peers.py, `GUARD_*`): every request "
             "pays the token-bucket take and the path-rule match on top of the ban lookup "
             "and connection count plain moat does too, every answer the ban-rule check "
             "with its exemption lookups. The client address is the TCP peer (127.0.0.1 is "
             "not a trusted proxy, so no X-Forwarded-For walk). The ratio is taken in each "
             "round between the two runs of that round, then the median (min–max) over the "
             "rounds; a cost lost in the noise shows as ratios on both sides of 1.00.", "",
             "| metric | figure | moat | moat-guard | moat-guard ÷ moat |",
             "|---|---|---|---|---|"]
    for metric, title, _, figs in SECTIONS:
        for key, label, fmt, _ in figs:
            vals = paired(runs, metric, key, "moat-guard", "moat")
            if not vals:
                continue
            lines.append("| %s | %s | %s | %s | %s |" % (
                title.split(" ", 1)[0], label, _cell(_values(runs, metric, key, "moat"), fmt),
                _cell(_values(runs, metric, key, "moat-guard"), fmt), _cell(vals, "{:.3f}")))
    errs = sum(_values(runs, "a", "errors", "moat-guard"))
    return lines + ["", "moat-guard's errors in (a): %d." % errs, ""]


def bar(runs):
    lines = ["| check | moat | bar | |", "|---|---|---|---|"]
    for label, metric, key, kind, limit in BAR:
        if kind == "ratio":
            vals = ratios(runs, metric, key, LOW, "moat")
            limit_text = "≤ %.1f × the better of nginx and HAProxy" % limit
        else:
            vals = _values(runs, metric, key, "moat")
            limit_text = "≤ %.0f KiB" % limit
        if not vals:
            continue
        verdict = "PASS" if statistics.median(vals) <= limit else "MISS"
        unit = " KiB" if kind == "abs" else ""
        lines.append("| %s | %s%s | %s | **%s** |" % (label, _cell(vals, "{:.2f}"), unit,
                                                   limit_text, verdict))
    return lines


def tls13_line(runs):
    hs = [r["handshakes"] for r in runs if "handshakes" in r]
    total = sum(h["full"] + h["resumed"] for h in hs)
    tls13 = sum(h["tls13"] for h in hs)
    return ("Handshakes made by wrk in all runs: %d, of which TLS 1.3: %d%s. (moat has no "
            "setting to refuse TLS 1.2; the client offers only TLS 1.3.)" % (
                total, tls13, "" if tls13 == total else " — NOT ALL TLS 1.3"))


def write(s, vers, runs, configs, origin_conf, elapsed):
    now = datetime.datetime.now(datetime.timezone.utc)
    proxies = [p for p in ("moat", "moat-guard", "nginx", "haproxy", "caddy")
               if p in s["proxies"]]
    meta = {"date": now.strftime("%Y-%m-%d %H:%M UTC"), "machine": machine(),
            "versions": vers, "elapsed_s": round(elapsed)}
    md = ["# moat vs nginx, HAProxy and Caddy", "",
          "%s; %d round(s) of %d s per measured run (after %d s of warm-up), "
          "the order of the proxies rotated every round; %d s in all." % (
              meta["date"], s["rounds"], s["seconds"], s["warmup"], meta["elapsed_s"]), "",
          "Figures are the median over the rounds, with (min–max). \"÷ best peer\": in each "
          "round, the proxy's figure divided by the better of nginx's and HAProxy's figure in "
          "that round (lower is better for CPU, latency and memory; higher for throughput); "
          "the median of those ratios. How to read this: bench/README.md.", "",
          "## Bar", ""] + bar(runs) + ["", "## Results", "", tls13_line(runs), ""]
    for sec in SECTIONS:
        md += section(s, runs, proxies, sec)
    md += guard_cost(runs)
    md += ["## Machine", ""] + ["- %s: %s" % kv for kv in meta["machine"].items()]
    md += ["", "## Versions", ""] + ["- %s: %s" % kv for kv in meta["versions"].items()]
    md += ["", "## Configurations", "",
           "Each round starts every proxy afresh with a new port; these are the last "
           "round's files. All use the same ECDSA P-256 certificate for bench.localhost.", ""]
    for name in proxies:
        if name in configs:
            md += ["### %s" % name, "", "```", configs[name].rstrip(), "```", ""]
    md += ["### origin (nginx, shared by all)", "", "```", origin_conf.rstrip(), "```", ""]

    os.makedirs(s["out"], exist_ok=True)
    stem = "%s-%s" % (now.strftime("%Y-%m-%d-%H%M"), vers["moat_sha"])
    raw = {"settings": {k: v for k, v in s.items() if k != "out"}, "meta": meta,
           "configs": dict(configs, origin=origin_conf), "runs": runs}
    paths = []
    for name in ("latest", stem):
        md_path = os.path.join(s["out"], name + ".md")
        with open(md_path, "w") as f:
            f.write("\n".join(md) + "\n")
        js_path = os.path.join(s["out"], name + ".json")
        with open(js_path, "w") as f:
            json.dump(raw, f, indent=1, sort_keys=True)
            f.write("\n")
        paths += [md_path, js_path]
    return paths
