"""
The slowloris report: bench/results/slowloris-latest.md and .json, and
copies named by date and moat's short git sha (bench/slowloris.py).
"""

import datetime
import json
import math
import os
import statistics

TARGET = 99.9  # % of normal requests that must succeed during the attack (issue #5)


def pct(vals, p):
    """Nearest-rank percentile p (0-100) of vals, or None."""
    if not vals:
        return None
    v = sorted(vals)
    return v[max(0, math.ceil(p / 100 * len(v)) - 1)]


def med(vals):
    vals = [v for v in vals if v is not None]
    if not vals:
        return None, None, None
    return statistics.median(vals), min(vals), max(vals)


def fmt_mmm(vals, fmt="{:,.0f}"):
    m, lo, hi = med(vals)
    if m is None:
        return "—"
    return "%s (%s–%s)" % (fmt.format(m), fmt.format(lo), fmt.format(hi))


def normal_summary(run):
    """Success rate and latency of one normal-client run, per kind and in all."""
    out = {}
    for kind in ("new", "keepalive", "all"):
        parts = [run["new"], run["keepalive"]] if kind == "all" else [run[kind]]
        ok = sum(p["ok"] for p in parts)
        fail = sum(p["fail"] for p in parts)
        lat = [x for p in parts for x in p["lat_ms"]]
        errors = {}
        for p in parts:
            for k, v in p["errors"].items():
                errors[k] = errors.get(k, 0) + v
        out[kind] = {"ok": ok, "fail": fail,
                     "success_pct": 100.0 * ok / (ok + fail) if ok + fail else None,
                     "p50_ms": pct(lat, 50), "p99_ms": pct(lat, 99), "max_ms": max(lat or [0]),
                     "errors": errors}
    return out


def summarize(r):
    att = r["attacker"]
    phase = lambda *ps: [x for x in r["samples"] if x["phase"] in ps]  # noqa: E731
    before = phase("base")[-1:] or phase("start")[-1:]
    during = phase("ramp", "attack")
    attack = phase("attack")
    end = phase("end")[-1:] or phase("after")[-1:]
    churn = None
    if len(att) >= 2:
        churn = (att[-1]["closed"] - att[0]["closed"]) / max(att[-1]["t"] - att[0]["t"], 1e-9)
    last = r["samples"][-1] if r["samples"] else {}
    return {
        "attacker_open": med([x["open"] for x in att]),
        "attacker_connecting": med([x["connecting"] + x["handshaking"] for x in att]),
        "moat_conns": med([x["conns"] for x in attack]),
        "reconnects_per_s": churn,
        "answered": (att[-1]["answered"] - att[0]["answered"]) if len(att) >= 2 else None,
        "connect_errors": att[-1]["connect_errors"] if att else None,
        "normal_base": normal_summary(r["base"]),
        "normal_attack": normal_summary(r["attack"]),
        "rss_before_kib": before[0]["rss_kib"] if before else None,
        "rss_max_kib": max([x["rss_kib"] for x in during] or [0]),
        "rss_attack_first_kib": attack[0]["rss_kib"] if attack else None,
        "rss_attack_last_kib": attack[-1]["rss_kib"] if attack else None,
        "rss_after_kib": end[0]["rss_kib"] if end else None,
        "conns_after": end[0]["conns"] if end else None,
        "moat_cpu_pct": 100.0 * r["moat_cpu_s"] / r["attack_s"],
        "attacker_cpu_pct": 100.0 * r["attacker_cpu_s"] / r["attack_s"],
        "denials_admin": last.get("denials"),
    }


def _f(v, fmt="{:.1f}"):
    return "—" if v is None else fmt.format(v)


def _deny(access, phases):
    """Denials in the access log lines of these phases, and the refusals
    moat left out of it."""
    tot, unlogged = {}, 0
    for p in phases:
        for k, v in access.get(p, {}).get("deny", {}).items():
            tot[k] = tot.get(k, 0) + v
        unlogged += access.get(p, {}).get("unlogged", 0)
    text = ", ".join("%s %d" % kv for kv in sorted(tot.items())) or "none"
    return text + (" (+%d refusals not logged)" % unlogged if unlogged else "")


def admin_denials(samples, phase):
    """moat's own denial counts (admin socket) during a phase: the last
    sample of the phase minus the last one before it."""
    prev, last = None, None
    for x in samples:
        if x["phase"] == phase:
            last = x["denials"]
        elif last is None:
            prev = x["denials"]
    if not last:
        return {}
    return dict((k, v - (prev or {}).get(k, 0)) for k, v in last.items())


def _counts(d):
    return ", ".join("%s %d" % kv for kv in sorted(d.items()) if kv[1]) or "none"


def one_line(r):
    m = summarize(r)
    b, a = m["normal_base"]["all"], m["normal_attack"]["all"]
    return ("  open %s  normal ok %s%% -> %s%%  p99 %s -> %s ms  Rss %d / %d / %s MiB" % (
        _f(m["attacker_open"][0], "{:.0f}"), _f(b["success_pct"], "{:.2f}"),
        _f(a["success_pct"], "{:.2f}"), _f(b["p99_ms"]), _f(a["p99_ms"]),
        (m["rss_before_kib"] or 0) / 1024, m["rss_max_kib"] / 1024,
        _f((m["rss_after_kib"] or 0) / 1024)))


def _mib(kib):
    return _f(None if kib is None else kib / 1024)


def scenario_md(s, r, m):
    lines = ["### %s" % r["name"], "",
             "Attack: %s on moat's %s listener from %s (%d connection(s) each at most "
             "%d/s), moat `workers: %d`." % (
                 {"http": "partial request heads, one more header line every %g s",
                  "tls": "half a ClientHello, one more byte every %g s",
                  "tls-head": "a full TLS handshake, then a partial request head, one more "
                              "header line every %g s"}[r["mode"]] % s["trickle"],
                 r["listener"], "%s … %s" % (r["sources"][0], r["sources"][-1])
                 if len(r["sources"]) > 1 else r["sources"][0],
                 math.ceil(s["conns"] / len(r["sources"])), int(s["rate"]), r["workers"]), "",
             "| normal client | requests | ok | failed | success | p50 ms | p99 ms | max ms | "
             "errors |", "|---|---|---|---|---|---|---|---|---|"]
    for tag, key in (("without attack", "normal_base"), ("during attack", "normal_attack")):
        for kind in ("new", "keepalive", "all"):
            n = m[key][kind]
            lines.append("| %s, %s | %d | %d | %d | %s %% | %s | %s | %s | %s |" % (
                tag, {"new": "new TLS conn each", "keepalive": "keep-alive", "all": "**all**"}[
                    kind], n["ok"] + n["fail"], n["ok"], n["fail"],
                _f(n["success_pct"], "{:.2f}"), _f(n["p50_ms"], "{:.2f}"),
                _f(n["p99_ms"], "{:.2f}"), _f(n["max_ms"], "{:.0f}"),
                ", ".join("%s %d" % kv for kv in n["errors"].items()) or "—"))
    acc = r["access"]
    lines += ["",
              "- slowloris connections open (attacker's view, each second of the attack "
              "phase): median %s; still connecting%s: %s; connections closed by moat and "
              "reopened: %s/s (%s of them answered first, e.g. 408); connect errors: %s" % (
                  fmt_mmm([x["open"] for x in r["attacker"]]),
                  " or handshaking" if r["mode"] == "tls-head" else "",
                  fmt_mmm([x["connecting"] + x["handshaking"] for x in r["attacker"]]),
                  _f(m["reconnects_per_s"], "{:.0f}"), _f(m["answered"], "{:,}"),
                  _f(m["connect_errors"], "{:,}")),
              "- moat's own count of open connections (admin socket, each second of the "
              "attack phase): median %s; %s after the attacker left" % (
                  fmt_mmm([x["conns"] for x in r["samples"] if x["phase"] == "attack"]),
                  _f(m["conns_after"], "{}")),
              "- moat Rss (VmRSS): before %s MiB, max during %s MiB (first / last second of "
              "the attack phase: %s / %s MiB), %d s after %s MiB" % (
                  _mib(m["rss_before_kib"]), _mib(m["rss_max_kib"]),
                  _mib(m["rss_attack_first_kib"]), _mib(m["rss_attack_last_kib"]),
                  s["after_seconds"], _mib(m["rss_after_kib"])),
              "- moat Rss every 10 s of the attack phase, MiB: %s" % ", ".join(
                  _mib(x["rss_kib"]) for x in [
                      y for y in r["samples"] if y["phase"] == "attack"][::10]),
              "- moat's open connections each second after the attacker closed its sockets "
              "and exited: %s" % ", ".join(
                  str(x["conns"]) for x in r["samples"] if x["phase"] in ("after", "end")),
              "- CPU during the attack phase: moat %.0f %% of a core, attacker %.0f %%" % (
                  m["moat_cpu_pct"], m["attacker_cpu_pct"]),
              "- denials counted by moat (admin socket): ramp: %s; attack: %s; after: %s; "
              "in all: %s" % (
                  _counts(admin_denials(r["samples"], "ramp")),
                  _counts(admin_denials(r["samples"], "attack")),
                  _counts(admin_denials(r["samples"], "after")),
                  _counts(m["denials_admin"] or {})),
              "- denials in the access log: without attack: %s; ramp: %s; attack: %s; "
              "after: %s" % (_deny(acc, ["base"]), _deny(acc, ["ramp"]),
                             _deny(acc, ["attack"]), _deny(acc, ["after", "end"])),
              "- the normal client's lines in the access log, by status: %s" % "; ".join(
                  "%s: %s" % (p, ", ".join("%s × %d" % kv for kv in sorted(
                      acc[p]["normal_status"].items())))
                  for p in ("base", "attack") if p in acc),
              ""]
    return lines


def write(s, meta, results, origin_conf):
    now = datetime.datetime.now(datetime.timezone.utc)
    meta["date"] = now.strftime("%Y-%m-%d %H:%M UTC")
    sums = [summarize(r) for r in results]
    md = ["# moat under slowloris", "",
          "%s; %d s in all. %s slowloris connections kept open by bench/slowattack.py "
          "(reopened when moat closes them, at most %g opened per second) while "
          "bench/slowclient.py makes %g requests/s of each kind (a new TLS connection per "
          "request, and keep-alive) to moat's HTTPS listener from 127.0.0.1: %d s without "
          "the attack, then %d s during it. Latency counts from each request's scheduled "
          "time. Target (issue #5): ≥ %.1f %% of normal requests succeed during the attack, "
          "and moat's memory stays bounded. How to read this: bench/README.md." % (
              meta["date"], meta["elapsed_s"], "{:,}".format(s["conns"]), s["rate"],
              s["normal_rate"], s["base_seconds"], s["seconds"], TARGET), "",
          "| scenario | slowloris open, median (min–max) | moat's open conns | normal ok without "
          "→ during | p50 ms without → during | p99 ms without → during | Rss MiB before / "
          "max / after | denials during the attack (moat's count) | target |", "|---" * 9 + "|"]
    for r, m in zip(results, sums):
        b, a = m["normal_base"]["all"], m["normal_attack"]["all"]
        ok = a["success_pct"] is not None and a["success_pct"] >= TARGET
        row = "| %s | %s | %s | %s %% → %s %% | %s → %s | %s → %s | %s / %s / %s | %s | %s |"
        md.append(row % (
            r["name"], fmt_mmm([x["open"] for x in r["attacker"]]),
            fmt_mmm([x["conns"] for x in r["samples"] if x["phase"] == "attack"]),
            _f(b["success_pct"], "{:.2f}"), _f(a["success_pct"], "{:.2f}"),
            _f(b["p50_ms"], "{:.1f}"), _f(a["p50_ms"], "{:.1f}"),
            _f(b["p99_ms"], "{:.1f}"), _f(a["p99_ms"], "{:.1f}"),
            _mib(m["rss_before_kib"]), _mib(m["rss_max_kib"]), _mib(m["rss_after_kib"]),
            _counts(admin_denials(r["samples"], "attack")), "**PASS**" if ok else "**MISS**"))
    md += ["", "## Scenarios", ""]
    for r, m in zip(results, sums):
        md += scenario_md(s, r, m)
    md += ["## Machine", ""] + ["- %s: %s" % kv for kv in meta["machine"].items()]
    md += ["- open-file hard limit (moat raises its own to it): %d" % meta["nofile_hard"]]
    md += ["", "## Versions", ""] + ["- %s: %s" % kv for kv in meta["versions"].items()]
    md += ["", "## Configurations", ""]
    if results:
        md += ["moat (the last scenario's; `workers` as in each scenario):", "", "```",
               results[-1]["config"].rstrip(), "```", ""]
    md += ["origin (nginx):", "", "```", origin_conf.rstrip(), "```", ""]

    os.makedirs(s["out"], exist_ok=True)
    stem = "slowloris-%s-%s" % (now.strftime("%Y-%m-%d-%H%M"), meta["versions"]["moat_sha"])
    raw = {"settings": {k: v for k, v in s.items() if k != "out"}, "meta": meta,
           "summary": dict((r["name"], m) for r, m in zip(results, sums)),
           "scenarios": [dict(r, moat_log=r["moat_log"]) for r in results]}
    paths = []
    for name in ("slowloris-latest", stem):
        p = os.path.join(s["out"], name + ".md")
        with open(p, "w") as f:
            f.write("\n".join(md) + "\n")
        j = os.path.join(s["out"], name + ".json")
        with open(j, "w") as f:
            json.dump(raw, f, indent=1, sort_keys=True)
            f.write("\n")
        paths += [p, j]
    return paths
