"""Dynamic DNS (ddns.duckdns): the real moat against a local DuckDNS stand-in
(duckdns_standin.py, a subprocess). The update at start and every `every`;
KO, HTTP 500, a page that is not DuckDNS's and a hung server are logged
(without the token), retried every min(backoff, every) and recovered from
while moat keeps serving; `moat status --json` shows the state and never the
token; a reload applies new settings (and leaves unchanged ones running);
bad ddns settings are refused with file:line:col."""

import json
import os
import signal
import subprocess
import time

import moatlib as M
from duckdns_standin import StandIn

TOKEN = "f00dcafe-7e57-4d0c-9a11-5ec2e7ddb0b0"
WRONG = "0badf00d-7e57-4d0c-9a11-000000000000"


def ddns(standin, domains=("example",), every="1s", token=TOKEN):
    return {"duckdns": {"domains": list(domains), "token": token, "every": every,
                        "url": standin.url}}


def status(moat):
    """`moat status --json` -> (raw text, parsed object)."""
    p = subprocess.run([M.MOAT_BIN, "status", "--json", "-c", moat.conf_file],
                       stdin=subprocess.DEVNULL, capture_output=True, timeout=30)
    out = p.stdout.decode("utf-8", "replace")
    if p.returncode != 0:
        raise AssertionError("moat status --json: exit %d\n%s%s"
                             % (p.returncode, out, p.stderr.decode("utf-8", "replace")))
    return out + p.stderr.decode("utf-8", "replace"), json.loads(out)


def ddns_status(moat):
    return status(moat)[1].get("ddns") or {}


class DdnsCase(M.MoatTestCase):
    def standin(self, domains=("example", "other")):
        return StandIn(owner=self, token=TOKEN, domains=domains)

    def start(self, standin, **kw):
        self.up = self.upstream()
        m = M.Moat(self)
        m.start(m.config({"app.test": M.site(self.up)}, ddns=ddns(standin, **kw)))
        return m

    def wait_log(self, moat, text, timeout=15, after=0):
        M.wait_until(lambda: text in moat.stderr()[after:], timeout,
                     "%r in moat's stderr:\n%s" % (text, moat.stderr()[-3000:]))

    def wait_updates(self, standin, n, timeout=15):
        return M.wait_until(lambda: (lambda u: u if len(u) >= n else None)(standin.updates()),
                            timeout, "%d request(s) at the DuckDNS stand-in" % n)

    def assert_serving(self, moat):
        r = M.curl(moat, "app.test", "/still-here")
        self.assertEqual(r.status, 200, "moat stopped serving: %r\n%s" % (r, moat.stderr()))

    def assert_no_token(self, moat, *more):
        texts = [("moat's stderr", moat.stderr())] + [("status", t) for t in more]
        try:
            with open(moat.stdout_file, "rb") as f:
                texts.append(("moat's stdout", f.read().decode("utf-8", "replace")))
        except FileNotFoundError:
            pass
        for name, text in texts:
            for secret in (TOKEN, WRONG):
                self.assertNotIn(secret, text, "the token shows in %s:\n%s" % (name, text))


class Updates(DdnsCase):
    def test_update_at_start(self):
        s = self.standin()
        moat = self.start(s, every="5m")
        u = self.wait_updates(s, 1)[0]
        self.assertEqual(u["params"].get("domains"), "example", u)
        self.assertTrue(u["token_ok"], "moat sent another token: %r" % u)
        self.assertEqual(u["params"].get("verbose"), "true", u)
        self.assertEqual(u["params"].get("ip"), "", "ip= should be empty (DuckDNS detects): %r"
                         % u)
        self.wait_log(moat, "ddns: example now points at 127.0.0.1")
        self.assertEqual(s.records()["example"]["ipv4"], "127.0.0.1")
        text, st = status(moat)
        d = st.get("ddns")
        self.assertIsInstance(d, dict, "no ddns in moat status --json: %s" % text)
        self.assertEqual(d.get("domains"), ["example"], d)
        self.assertIs(d.get("ok"), True, d)
        self.assertEqual(d.get("ipv4"), "127.0.0.1", d)
        self.assertIsNone(d.get("last_error"), d)
        now = time.time()
        self.assertLessEqual(abs(d["last_success"] - now), 30, d)
        self.assertLessEqual(abs(d["last_attempt"] - now), 30, d)
        # the next update is an interval (5 min) away
        self.assertGreater(d["next_attempt"] - now, 200, d)
        self.assertLess(d["next_attempt"] - now, 330, d)
        time.sleep(1.5)
        self.assertEqual(len(s.updates()), 1, "a second update long before every: 5m")
        self.assert_no_token(moat, text)

    def test_periodic(self):
        s = self.standin()
        moat = self.start(s, every="1s")
        self.wait_updates(s, 4, timeout=20)
        t = [u["time"] for u in s.updates()]
        gaps = [b - a for a, b in zip(t, t[1:])]
        self.assertTrue(all(g > 0.7 for g in gaps), "updates closer than every: 1s: %r" % gaps)
        # only the first answer was UPDATED: NOCHANGE is not logged again
        self.assertEqual(moat.stderr().count("example now points at"), 1, moat.stderr())
        self.assertNotIn("ddns: DuckDNS", moat.stderr())
        self.assert_no_token(moat)

    def test_two_domains(self):
        s = self.standin()
        moat = self.start(s, domains=("example", "other"), every="5m")
        u = self.wait_updates(s, 1)[0]
        self.assertEqual(u["params"].get("domains"), "example,other", u)
        self.wait_log(moat, "ddns: example,other now points at 127.0.0.1")
        self.assertEqual(s.records()["other"]["ipv4"], "127.0.0.1")


class Failures(DdnsCase):
    def check_failure(self, mode, says, timeout=15):
        """Start against a failing stand-in: an error naming `says`, retries
        every second (every: 1s caps the backoff), serving goes on, status
        shows the error; then the stand-in recovers and so does moat."""
        s = self.standin()
        s.fail(mode)
        moat = self.start(s, every="1s")
        self.wait_log(moat, says, timeout)
        self.assertRegex(moat.stderr(), r"moat: error: ddns: .*" + says.replace("(", r"\("))
        self.assert_serving(moat)
        self.wait_updates(s, 3, timeout=2 * timeout + 10)  # retried
        text, st = status(moat)
        d = st["ddns"]
        self.assertIs(d["ok"], False, d)
        self.assertGreaterEqual(d["failures"], 1, d)
        self.assertIn(says, d["last_error"] or "", d)
        self.assertIsNone(d["last_success"], d)
        before = len(moat.stderr())
        s.fail("none")
        self.wait_log(moat, "ddns: DuckDNS update of example works again after", timeout + 10,
                      after=before)
        self.wait_log(moat, "ddns: example now points at 127.0.0.1", 5, after=before)
        self.assert_serving(moat)
        text2, st = status(moat)
        d = st["ddns"]
        self.assertIs(d["ok"], True, d)
        self.assertEqual(d["failures"], 0, d)
        self.assertIsNotNone(d["last_success"], d)
        self.assertIn(says, d["last_error"] or "", "the last error should stay visible: %r" % d)
        self.assert_no_token(moat, text, text2)
        return moat, s

    def test_ko(self):
        moat, s = self.check_failure("ko", "DuckDNS answered KO for example")
        # retried at every (1 s), not at the 1-minute first backoff step
        t = [u["time"] for u in s.updates()]
        self.assertLess(min(b - a for a, b in zip(t, t[1:])), 5, t)

    def test_http_500(self):
        self.check_failure("500", "DuckDNS answered HTTP 500")

    def test_not_duckdns(self):
        self.check_failure("garbage", "unexpected answer")

    def test_hung_server(self):
        # DUCKDNS_TIMEOUT_MS is 15 s: the hung request fails after that
        moat, s = self.check_failure("hang", "DuckDNS update of example failed", timeout=25)
        self.assertRegex(moat.stderr(), r"(?i)timed? ?out")

    def test_wrong_token(self):
        s = self.standin()
        up = self.upstream()
        moat = M.Moat(self)
        moat.start(moat.config({"app.test": M.site(up)}, ddns=ddns(s, token=WRONG)))
        self.wait_log(moat, "DuckDNS answered KO for example (bad token or domain?)")
        self.assertFalse(self.wait_updates(s, 1)[0]["token_ok"])
        text, st = status(moat)
        self.assert_no_token(moat, text)
        self.assertIn("KO", st["ddns"]["last_error"])

    def test_stop_while_hung(self):
        """A request in flight does not hold up a stop."""
        s = self.standin()
        s.fail("hang")
        moat = self.start(s, every="1s")
        self.wait_updates(s, 1)
        t0 = time.monotonic()
        moat.stop()
        self.assertLess(time.monotonic() - t0, 6, "moat took long to stop during a hung update")


class Reload(DdnsCase):
    def test_reload_changes_domains_then_off(self):
        s = self.standin()
        moat = self.start(s, every="1s")
        self.wait_log(moat, "ddns: example now points at 127.0.0.1")
        cfg = moat.config({"app.test": M.site(self.up)}, ddns=ddns(s, domains=("other",)))
        self.assertTrue(moat.reload(cfg), moat.stderr())
        self.wait_log(moat, "ddns: other now points at 127.0.0.1")
        M.wait_until(lambda: any(u["params"].get("domains") == "other" for u in s.updates()),
                     10, "an update for other")
        # once switched, only the new domain is updated
        time.sleep(1.5)
        n = len(s.updates())
        self.wait_updates(s, n + 2)
        self.assertEqual({u["params"]["domains"] for u in s.updates()[n:]}, {"other"})
        self.assertEqual(ddns_status(moat).get("domains"), ["other"])
        # without ddns the updates stop
        self.assertTrue(moat.reload(moat.config({"app.test": M.site(self.up)})), moat.stderr())
        time.sleep(0.5)
        n = len(s.updates())
        time.sleep(3)
        self.assertEqual(len(s.updates()), n, "updates go on after ddns was removed")
        d = ddns_status(moat)
        self.assertFalse(d.get("on", False), d)
        self.assert_serving(moat)
        self.assert_no_token(moat)

    def test_reload_unchanged_keeps_schedule(self):
        s = self.standin()
        moat = self.start(s, every="5m")
        self.wait_updates(s, 1)
        self.wait_log(moat, "now points at")
        first = ddns_status(moat)
        # another site, same ddns: the updater goes on, no extra update
        cfg = moat.config({"app.test": M.site(self.up), "b.test": M.site(self.up)},
                          ddns=ddns(s, every="5m"))
        self.assertTrue(moat.reload(cfg), moat.stderr())
        time.sleep(2)
        self.assertEqual(len(s.updates()), 1, "an unchanged ddns restarted on reload")
        self.assertEqual(ddns_status(moat)["last_success"], first["last_success"])
        # a changed interval restarts it: an update at once
        cfg = moat.config({"app.test": M.site(self.up)}, ddns=ddns(s, every="1m"))
        self.assertTrue(moat.reload(cfg), moat.stderr())
        self.wait_updates(s, 2)
        self.assertEqual(ddns_status(moat)["every"], 60)

    def test_reload_starts_ddns(self):
        s = self.standin()
        up = self.upstream()
        moat = M.Moat(self)
        moat.start(moat.config({"app.test": M.site(up)}))
        time.sleep(1)
        self.assertEqual(s.updates(), [])
        self.assertTrue(moat.reload(moat.config({"app.test": M.site(up)}, ddns=ddns(s))))
        self.wait_log(moat, "ddns: example now points at 127.0.0.1")

    def test_reload_refuses_bad_ddns(self):
        s = self.standin()
        moat = self.start(s, every="1s")
        self.wait_log(moat, "now points at")
        bad = moat.config({"app.test": M.site(self.up)}, ddns=ddns(s, every="0s"))
        self.assertFalse(moat.reload(bad), "every: 0s accepted on reload")
        n = len(s.updates())
        self.wait_updates(s, n + 2)  # the old updater still runs
        self.assert_no_token(moat)


class BadConfig(M.MoatTestCase):
    def run_moat(self, *args):
        p = subprocess.Popen([M.MOAT_BIN] + list(args), stdin=subprocess.DEVNULL,
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        try:
            out, err = p.communicate(timeout=30)
        except subprocess.TimeoutExpired:
            os.kill(p.pid, signal.SIGKILL)
            out, err = p.communicate()
            raise AssertionError("moat %s still running after 30 s" % " ".join(args))
        return p.returncode, out.decode("utf-8", "replace") + err.decode("utf-8", "replace")

    def test_invalid_ddns_refused_with_position(self):
        d = self.tmp()
        lines = [
            "data: %s" % os.path.join(d, "data"),
            "listen:",
            '  http: "127.0.0.1:%d"' % M.free_port(),
            '  https: "127.0.0.1:%d"' % M.free_port(),
            "ddns:",
            "  duckdns:",
            "    domains: []",                                  # 7
            '    token: "%s"' % TOKEN,
            "    every: 0s",                                    # 9
            "    url: http://example.com/update",               # 10
            "sites:",
            "  app.test:",
            "    to: http://127.0.0.1:9109",
        ]
        p = os.path.join(d, "bad.yaml")
        with open(p, "w") as f:
            f.write("\n".join(lines) + "\n")
        expected = [(7, "[]", "domains"), (9, "0s", "0s"),
                    (10, "http://example.com/update", "http://example.com/update")]
        for cmd in ("check", "run"):
            rc, text = self.run_moat(cmd, "-c", p)
            self.assertEqual(rc, 1, "moat %s accepted a bad ddns: exit %d\n%s" % (cmd, rc, text))
            self.assertNotIn("moat: ready", text)
            self.assertNotIn(TOKEN, text, "moat %s printed the token" % cmd)
            for line, value, named in expected:
                where = "%s:%d:%d:" % (p, line, lines[line - 1].index(value) + 1)
                found = [ln for ln in text.splitlines() if where in ln]
                self.assertTrue(found, "moat %s: no error at %s; output:\n%s" % (cmd, where, text))
                self.assertTrue(any(named in ln for ln in found), "%s does not name %r: %s"
                                % (where, named, found))


if __name__ == "__main__":
    M.main()
