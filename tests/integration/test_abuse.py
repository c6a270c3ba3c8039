"""
Abuse control (issue 5) against real peers: rate limits, bans from failed
logins, connection caps, the real client address (X-Forwarded-For, Forwarded,
PROXY protocol v1/v2), the admin CLI (moat ban, moat status), the access log's
"deny" reasons and the configuration errors of the feature.

Clients are played from 127.0.0.2, 127.0.0.3, ... (curl --interface, Python
sockets bound to the address): 127.0.0.1 is in the default never_ban, and
127.0.0.5 plays the trusted proxy where one is configured. Every site is
served by a RecordingUpstream that answers 401 to POST /api/auth/login and
/deny/*, so what moat let through, and with which client address, is
asserted on what the upstream received.

"Closed right after accept" is observed as: a TCP connection from the
address, on which the client sends nothing, reaches EOF or a reset without a
single byte from moat (no TLS handshake: moat did not even wait for a
ClientHello) well before timeouts.header (10 s by default) could have
closed it.

No wall-clock assertion: waits have generous deadlines only so that a broken
moat fails instead of hanging; the one sleep that matters is waiting out a
Retry-After that moat itself announced.
"""

import json
import os
import re
import socket
import ssl
import subprocess
import time

import moatlib as M

HOST = "app.localhost"
LOGIN = "/api/auth/login"
PROXY_ADDR = "127.0.0.5"       # the trusted proxy, where one is configured
CLI_TIMEOUT = 30
REFUSE_WAIT = 5.0              # < timeouts.header (10 s default): a live conn is still open


def login_upstream(owner):
    """An origin with a login: POST /api/auth/login answers 200 to the body
    "pw=good", 403 to "pw=locked" and 401 to anything else; anything under
    /deny/ answers 401; everything else 200 "ok"."""
    def reply(req):
        if req.method == "POST" and req.target == LOGIN:
            if req.body == b"pw=good":
                return M.Reply(200, [("Content-Type", "text/plain")], b"welcome\n")
            if req.body == b"pw=locked":
                return M.Reply(403, [("Content-Type", "text/plain")], b"locked\n")
            return M.Reply(401, [("Content-Type", "text/plain")], b"wrong password\n")
        if req.target.startswith("/deny/"):
            return M.Reply(401, [("Content-Type", "text/plain")], b"who are you\n")
        return M.Reply(200, [("Content-Type", "text/plain")], b"ok\n")
    return M.RecordingUpstream(reply=reply, owner=owner)


LOGIN_BAN = {"match": "POST %s" % LOGIN, "status": [401, 403], "after": "3 in 1m", "for": "1h"}


def cli(*args, timeout=CLI_TIMEOUT):
    """Run the moat CLI; (rc, stdout, stderr). Killed by pid after timeout."""
    p = subprocess.Popen([M.MOAT_BIN] + list(args), stdin=subprocess.DEVNULL,
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        out, err = p.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        p.kill()
        out, err = p.communicate()
        raise AssertionError("moat %s still running after %d s (killed)" % (" ".join(args), timeout))
    return p.returncode, out.decode("utf-8", "replace"), err.decode("utf-8", "replace")


def cli_json(*args):
    rc, out, err = cli(*args, "--json")
    try:
        return rc, json.loads(out), err
    except ValueError:
        raise AssertionError("moat %s --json printed no JSON (rc %d):\n%s\n%s"
                             % (" ".join(args), rc, out, err))


def curl_burst(m, path, n, source, method=None, data=None, headers=(), host=HOST):
    """n requests, one after the other, from one curl process (keep-alive: curl
    reuses its connection when moat keeps it). Returns [(status, new_connection,
    retry_after or None)] in order; status 0 when a transfer failed."""
    url = "https://%s:%d%s" % (host, m.https_port, path)
    cmd = ["curl", "-sS", "--http1.1", "--max-time", "30", "--cacert", m.ca,
           "--resolve", "%s:%d:127.0.0.1" % (host, m.https_port), "--interface", source,
           "-w", "%{http_code} %{num_connects} [%header{retry-after}]\\n"]
    if method:
        cmd += ["-X", method]
    if data is not None:
        cmd += ["--data-binary", data]
    for h in headers:
        cmd += ["-H", h]
    for _ in range(n):
        cmd += ["-o", "/dev/null", url]
    p = subprocess.run(cmd, capture_output=True, timeout=60)
    out = []
    for line in p.stdout.decode().splitlines():
        mm = re.fullmatch(r"(\d{3}) (\d+) \[(.*)\]", line.strip())
        if mm:
            out.append((int(mm.group(1)), int(mm.group(2)) > 0, mm.group(3) or None))
    if len(out) != n:
        m.assert_alive()
        raise AssertionError("curl burst: %d results for %d requests: %r %r"
                             % (len(out), n, p.stdout, p.stderr))
    return out


def statuses(results):
    return [r[0] for r in results]


def connect_from(m, source, port=None, timeout=10):
    return socket.create_connection(("127.0.0.1", port or m.https_port), timeout=timeout,
                                    source_address=(source, 0))


def tls_from(m, source, port=None, prefix=b"", timeout=10.0):
    """A TLS connection from source whose handshake completed; raises
    ssl.SSLError or OSError otherwise. (Python's wrap_socket skips the
    handshake, without an error, when the peer has already closed the TCP
    connection: getpeername fails and the socket counts as unconnected.)"""
    s = M.tls_connect(m, HOST, port=port, source=source, prefix=prefix, timeout=timeout)
    try:
        if s.version() is None:
            s.do_handshake()
        if s.version() is None:
            raise ssl.SSLError("no TLS handshake")
    except BaseException:
        s.close()
        raise
    return s


def h1(m, source, port=None, prefix=b""):
    """A TLS keep-alive client from source."""
    return M.H1Client(tls_from(m, source, port=port, prefix=prefix))


def get(client, path="/", headers=()):
    client.request("GET", path, HOST, headers=headers)
    return client.read_response()


def closed_soon(sock, timeout=10.0):
    """True when the peer closes sock (EOF, reset, TLS close) within timeout."""
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        sock.settimeout(max(0.05, end - time.monotonic()))
        try:
            if M._recv(sock) == b"":
                return True
        except (socket.timeout, TimeoutError):
            return False
        except (OSError, ssl.SSLError):
            return True
    return False


class AbuseCase(M.MoatTestCase):
    def start(self, up=None, site=None, **top):
        self.up = up or login_upstream(self)
        opts = dict(site or {})
        self.m = self.moat({HOST: M.site(self.up, **opts)}, **top)
        return self.m

    def ok(self, source, path="/", **kw):
        r = M.curl(self.m, HOST, path, source=source, **kw)
        self.assertEqual(r.status, 200, "%s from %s: %r" % (path, source, r))
        return r

    def assert_refused_at_accept(self, source, port=None, what=""):
        """A new connection from source is closed before moat sends a byte, though
        the client sent nothing (no TLS handshake was waited for)."""
        s = connect_from(self.m, source, port)
        try:
            data, closed = M.raw_exchange(s, b"", REFUSE_WAIT)
        finally:
            s.close()
        self.assertTrue(closed, "%s: connection from %s still open after %.0f s"
                        % (what, source, REFUSE_WAIT))
        self.assertEqual(data, b"", "%s: moat sent bytes to %s: %r" % (what, source, data[:100]))
        # and a real client cannot get through the handshake either
        with self.assertRaises((ssl.SSLError, OSError), msg="%s: TLS from %s succeeded"
                               % (what, source)):
            tls_from(self.m, source, port=port, timeout=REFUSE_WAIT).close()

    def refused_lines(self, reason, client):
        return [x for x in self.m.access_log_lines()
                if x.get("deny") == reason and x.get("client") == client]

    def assert_connection_refusal_logged(self, reason, client):
        lines = self.m.wait_access_log(lambda x: x.get("deny") == reason
                                       and x.get("client") == client)
        for x in lines:
            self.assertEqual((x["method"], x["path"], x["status"]), (None, None, 0), x)

    def fail_logins(self, source, n, headers=()):
        res = curl_burst(self.m, LOGIN, n, source, data="user=a&pw=b", headers=headers)
        self.assertEqual(statuses(res), [401] * n, "login failures from %s" % source)
        return res

    def ban_file(self):
        try:
            with open(os.path.join(self.m.data, "bans.json")) as f:
                return json.load(f)
        except FileNotFoundError:
            return {"bans": []}

    def banned_in_file(self, addr):
        return any(b.get("address") == addr for b in self.ban_file().get("bans", []))

    def ban_list(self):
        rc, ans, err = cli_json("ban", "list", "-c", self.m.conf_file)
        self.assertEqual(rc, 0, err)
        return {b["address"]: b for b in ans["bans"]}


# ------------------------------------------------------------------ rate limits

class RateLimits(AbuseCase):
    def test_over_the_limit_is_429_with_retry_after_then_200_after_waiting(self):
        # a token every 5 s, 3 at once: Retry-After is 1..5 s
        self.start(site={"limit": "12/m burst 3"})
        res = curl_burst(self.m, "/r", 6, "127.0.0.2")
        st = statuses(res)
        self.assertEqual(st[:3], [200, 200, 200], res)
        self.assertIn(429, st, "6 quick requests against 3 burst: %r" % res)
        self.assertLessEqual(st.count(200), 4, "more passed than the burst and a refill: %r" % res)
        for status, _, ra in res:
            if status == 429:
                self.assertIsNotNone(ra, "429 without Retry-After: %r" % res)
                self.assertRegex(ra, r"^\d+$")
                self.assertTrue(1 <= int(ra) <= 5, "Retry-After %s for 12/m: %r" % (ra, res))
        # the refused requests never reached the upstream
        self.assertEqual(len(self.up.find("/r")), st.count(200))
        # still over the limit right away...
        again = curl_burst(self.m, "/r", 1, "127.0.0.2")
        if again[0][0] == 429:
            wait = int(again[0][2])
        else:  # a token came back meanwhile (slow machine): use it up, then wait
            again = curl_burst(self.m, "/r", 2, "127.0.0.2")
            self.assertEqual(again[-1][0], 429, again)
            wait = int(again[-1][2])
        # ... and served once the announced Retry-After has passed
        time.sleep(wait + 0.2)
        self.assertEqual(statuses(curl_burst(self.m, "/r", 1, "127.0.0.2")), [200])
        lines = [x for x in self.m.access_log_lines() if x.get("deny") == "rate"]
        self.assertTrue(lines, "no access log line with deny: rate")
        for x in lines:
            self.assertEqual((x["status"], x["client"], x["path"]), (429, "127.0.0.2", "/r"), x)

    def test_two_clients_have_separate_budgets(self):
        self.start(site={"limit": "1/m burst 3"})
        a = statuses(curl_burst(self.m, "/a", 5, "127.0.0.2"))
        self.assertEqual(a, [200, 200, 200, 429, 429])
        # 127.0.0.2 is out of tokens; 127.0.0.3 has its own 3
        b = statuses(curl_burst(self.m, "/b", 5, "127.0.0.3"))
        self.assertEqual(b, [200, 200, 200, 429, 429])
        self.assertEqual(statuses(curl_burst(self.m, "/a", 1, "127.0.0.2")), [429])

    def test_429_keeps_the_connection_unless_the_request_had_a_body(self):
        self.start(site={"limit": "1/m burst 1"})
        res = curl_burst(self.m, "/k", 4, "127.0.0.2")
        self.assertEqual(statuses(res), [200, 429, 429, 429])
        self.assertEqual([r[1] for r in res], [True, False, False, False],
                         "moat closed the connection after a 429 to a request without a body: %r" % res)
        # a refused request with a body: moat does not read the body, so it closes
        res = curl_burst(self.m, "/k", 3, "127.0.0.3", method="POST", data="x" * 100)
        self.assertEqual(statuses(res), [200, 429, 429])
        # (the first 429 still used the connection the 200 kept)
        self.assertEqual([r[1] for r in res], [True, False, True],
                         "the connection was kept after a 429 to a request with a body: %r" % res)

    def test_one_budget_across_workers(self):
        workers, conns, burst = 4, 24, 10
        self.start(site={"limit": "1/m burst %d" % burst}, workers=workers)
        clients = [h1(self.m, "127.0.0.2") for _ in range(conns)]
        for c in clients:
            self.addCleanup(c.close)
        # the connections are spread over the workers (else this proves nothing)
        def spread():
            rc, st, err = cli_json("status", "-c", self.m.conf_file)
            self.assertEqual(rc, 0, err)
            w = st["connections"]["workers"]
            return w if sum(w) == conns else None
        per_worker = M.wait_until(spread, 10, "%d connections in moat status" % conns)
        self.assertEqual(len(per_worker), workers)
        self.assertGreaterEqual(sum(1 for n in per_worker if n > 0), 2,
                                "all connections on one worker: %r" % per_worker)
        t0 = time.monotonic()
        got = [get(c, "/w%d" % i).status for i, c in enumerate(clients)]
        refill = int((time.monotonic() - t0) / 60) + 1
        self.assertEqual(sorted(set(got)), [200, 429], got)
        n200 = got.count(200)
        self.assertGreaterEqual(n200, burst, "fewer than the burst passed: %r" % got)
        self.assertLessEqual(n200, burst + refill,
                             "%d requests passed a %d burst: budgets per worker? per worker "
                             "connections %r, statuses %r" % (n200, burst, per_worker, got))
        self.assertEqual(len(self.up.find("/w")), n200)

    def test_path_limits(self):
        self.start(site={"path_limits": [{"match": "POST /api/upload/**", "limit": "2/m burst 2"}]})
        up = curl_burst(self.m, "/api/upload/a/b", 3, "127.0.0.2", data="x")
        self.assertEqual(statuses(up), [200, 200, 429])
        self.assertTrue(1 <= int(up[2][2]) <= 30, up)
        # other methods and paths of the same client are not limited by the rule
        self.assertEqual(statuses(curl_burst(self.m, "/api/upload/a/b", 5, "127.0.0.2")), [200] * 5)
        self.assertEqual(statuses(curl_burst(self.m, "/api/other", 5, "127.0.0.2", data="x")),
                         [200] * 5)
        # another client has its own budget on the rule
        self.assertEqual(statuses(curl_burst(self.m, "/api/upload/c", 3, "127.0.0.3", data="x")),
                         [200, 200, 429])
        self.assertEqual(len([r for r in self.up.find("/api/upload/") if r.method == "POST"]), 4)

    def test_retry_after_follows_the_rate_unit(self):
        # (rate, Retry-After range once the single token is spent)
        rows = [("2/s burst 1", 1, 1), ("1/m burst 1", 55, 60), ("1/h burst 1", 3590, 3600),
                ("1/d burst 1", 86390, 86400)]
        up = login_upstream(self)
        sites = {"r%d.localhost" % i: M.site(up, limit=rate) for i, (rate, _, _) in enumerate(rows)}
        self.m = self.moat(sites)
        for i, (rate, lo, hi) in enumerate(rows):
            with self.subTest(rate):
                res = curl_burst(self.m, "/", 2, "127.0.0.2", host="r%d.localhost" % i)
                if rate.startswith("2/s") and res[1][0] == 200:
                    continue  # half a second passed between the two: nothing to see
                self.assertEqual(statuses(res), [200, 429], res)
                self.assertTrue(lo <= int(res[1][2]) <= hi, "%s: Retry-After %s" % (rate, res[1][2]))

    def test_reload_keeps_budgets_of_unchanged_rules(self):
        self.start(site={"limit": "1/m burst 2"})
        self.assertEqual(statuses(curl_burst(self.m, "/a", 3, "127.0.0.2")), [200, 200, 429])
        self.assertTrue(self.m.reload(self.m.config({HOST: M.site(self.up, limit="1/m burst 2")})))
        self.assertEqual(statuses(curl_burst(self.m, "/a", 1, "127.0.0.2")), [429],
                         "a reload with the same rule gave the client a fresh budget")
        # a changed rule is a new rule
        self.assertTrue(self.m.reload(self.m.config({HOST: M.site(self.up, limit="1/m burst 3")})))
        self.assertEqual(statuses(curl_burst(self.m, "/a", 4, "127.0.0.2")), [200, 200, 200, 429])

    def test_ipv6_clients_share_a_budget_per_64(self):
        # IPv6 clients reach this loopback-only test through a trusted proxy
        self.start(site={"limit": "1/m burst 2"}, trusted_proxies=[PROXY_ADDR])
        res = []
        for i, c in enumerate(["2001:db8::1", "2001:db8::2", "[2001:db8::ffff]:443"]):
            res += curl_burst(self.m, "/v6-%d" % i, 1, PROXY_ADDR, headers=["X-Forwarded-For: " + c])
        self.assertEqual(statuses(res), [200, 200, 429], "one /64, one budget")
        other = curl_burst(self.m, "/v6-other", 2, PROXY_ADDR,
                           headers=["X-Forwarded-For: 2001:db8:0:1::1"])
        self.assertEqual(statuses(other), [200, 200], "another /64 has its own budget")
        r = self.up.find("/v6-0")[0]
        self.assertEqual(r.headers.get_all("x-forwarded-for"), ["2001:db8::1"])
        self.assertTrue(r.headers.get("forwarded").startswith('for="[2001:db8::1]";'), r)

    def test_site_limit_and_path_limit_both_apply(self):
        self.start(site={"limit": "1/m burst 4",
                         "path_limits": [{"match": "* /slow/**", "limit": "1/m burst 1"}]})
        st = statuses(curl_burst(self.m, "/slow/x", 2, "127.0.0.2"))
        self.assertEqual(st, [200, 429])
        # the site budget: 4, of which /slow/x took one (and maybe the refused one)
        rest = statuses(curl_burst(self.m, "/fast", 4, "127.0.0.2"))
        self.assertIn(rest.count(200), (2, 3), rest)
        self.assertEqual(rest[-1], 429, rest)


# ------------------------------------------------------------------ bans

class Bans(AbuseCase):
    def test_failed_logins_ban_the_client_at_the_door(self):
        self.start(site={"ban": [LOGIN_BAN]})
        live = h1(self.m, "127.0.0.2")           # opened before the ban
        self.addCleanup(live.close)
        other = h1(self.m, "127.0.0.3")
        self.addCleanup(other.close)
        self.assertEqual(get(live).status, 200)
        self.assertEqual(get(other).status, 200)
        self.fail_logins("127.0.0.2", 2)
        # two failures: not yet banned; the live connection still works
        self.assertEqual(get(live, "/before").status, 200)
        self.ok("127.0.0.2", "/before-new")
        # the third failure: the client still gets its answer, then is banned
        before = len(self.up.requests)
        res = curl_burst(self.m, LOGIN, 2, "127.0.0.2", data="user=a&pw=c")
        self.assertEqual(res[0][0], 401, res)
        self.assertEqual(res[1][0], 0, "a request after the ban was answered: %r" % res)
        self.assertEqual(len(self.up.requests), before + 1)
        # the live keep-alive connection opened earlier is closed
        self.assertTrue(closed_soon(live.sock), "the banned client's open connection is still open")
        # new connections are closed right after accept, before TLS
        self.assert_refused_at_accept("127.0.0.2", what="banned client")
        self.assertEqual(M.curl(self.m, HOST, "/after", source="127.0.0.2").status, 0)
        self.assertEqual(self.up.find("/after"), [], "a banned client's request reached the upstream")
        # everyone else is served, on old and new connections
        self.assertEqual(get(other, "/other").status, 200)
        self.ok("127.0.0.3", "/other-new")
        self.ok("127.0.0.4", "/other-new")
        self.assert_connection_refusal_logged("ban", "127.0.0.2")
        self.assertIn("banned 127.0.0.2", self.m.stderr())
        M.wait_until(lambda: self.banned_in_file("127.0.0.2"), 10, "127.0.0.2 in bans.json")
        ban = self.ban_list()["127.0.0.2"]
        self.assertIn(HOST, ban["reason"])
        self.assertTrue(3500 <= ban["remaining"] <= 3600, ban)

    def test_only_matching_failures_count(self):
        self.start(site={"ban": [dict(LOGIN_BAN, status=[401])]})
        # 401 to requests the rule does not match: other paths, other methods
        self.assertEqual(statuses(curl_burst(self.m, "/deny/x", 4, "127.0.0.2", data="x")), [401] * 4)
        self.assertEqual(statuses(curl_burst(self.m, "/deny/x", 4, "127.0.0.2")), [401] * 4)
        self.assertEqual(statuses(curl_burst(self.m, "/deny/x", 4, "127.0.0.2", method="PUT",
                                             data="x")), [401] * 4)
        # the rule's request answered with a status not in the rule: 200, and 403
        # (status: [401] here)
        self.assertEqual(statuses(curl_burst(self.m, LOGIN, 4, "127.0.0.2", data="pw=good")),
                         [200] * 4)
        self.assertEqual(statuses(curl_burst(self.m, LOGIN, 4, "127.0.0.2", data="pw=locked")),
                         [403] * 4)
        self.ok("127.0.0.2", "/still-in")
        self.assertEqual(self.ban_list(), {})
        # two real failures are still below after: 3
        self.fail_logins("127.0.0.2", 2)
        self.ok("127.0.0.2", "/still-in")
        self.fail_logins("127.0.0.2", 1)
        self.assert_refused_at_accept("127.0.0.2", what="third failure")

    def test_rule_defaults_window_and_several_matches(self):
        up = login_upstream(self)
        self.m = self.moat({
            # no status: 401 and 403 count; no for: an hour
            "a.localhost": M.site(up, ban={"match": "POST %s" % LOGIN, "after": "3 in 1m"}),
            # a 1 s window: failures further apart never add up
            "b.localhost": M.site(up, ban=[{"match": "POST %s" % LOGIN, "after": "2 in 1s"}]),
            # several requests feed one counter
            "c.localhost": M.site(up, ban=[{"match": ["POST %s" % LOGIN, "* /deny/**"],
                                            "after": "3 in 1m"}]),
        })
        a = curl_burst(self.m, LOGIN, 3, "127.0.0.2", data="pw=locked", host="a.localhost")
        self.assertEqual(statuses(a), [403] * 3)
        ban = M.wait_until(lambda: self.ban_list().get("127.0.0.2"), 10, "the ban on 127.0.0.2")
        self.assertTrue(3500 <= ban["remaining"] <= 3600, ban)
        self.assertIn("a.localhost", ban["reason"])
        for _ in range(2):
            self.assertEqual(statuses(curl_burst(self.m, LOGIN, 1, "127.0.0.3", data="pw=x",
                                                 host="b.localhost")), [401])
            time.sleep(1.5)
        self.assertNotIn("127.0.0.3", self.ban_list(), "failures 1.5 s apart in a 1 s window")
        self.assertEqual(statuses(curl_burst(self.m, LOGIN, 2, "127.0.0.3", data="pw=x",
                                             host="b.localhost")), [401, 401])
        self.assertIn("127.0.0.3", self.ban_list())
        self.assertEqual(statuses(curl_burst(self.m, LOGIN, 2, "127.0.0.4", data="pw=x",
                                             host="c.localhost")), [401, 401])
        self.assertNotIn("127.0.0.4", self.ban_list())
        self.assertEqual(statuses(curl_burst(self.m, "/deny/x", 1, "127.0.0.4",
                                             host="c.localhost")), [401])
        self.assertIn("127.0.0.4", self.ban_list())

    def test_ban_holds_after_kill_9_and_restart(self):
        self.start(site={"ban": [LOGIN_BAN]})
        self.fail_logins("127.0.0.2", 3)
        M.wait_until(lambda: self.banned_in_file("127.0.0.2"), 10, "127.0.0.2 in bans.json")
        self.m.kill()
        self.assertTrue(M.connect_refused(self.m.https_port), "moat still listening after kill -9")
        left = [n for n in os.listdir(self.m.data) if n.startswith("bans.json") and n != "bans.json"]
        self.assertEqual(left, [], "temp files of the ban file's writes are left behind")
        self.assertEqual(os.stat(os.path.join(self.m.data, "bans.json")).st_mode & 0o777, 0o600)
        self.m.start(self.m.config({HOST: M.site(self.up, ban=[LOGIN_BAN])}))
        self.assert_refused_at_accept("127.0.0.2", what="ban after kill -9 and restart")
        self.ok("127.0.0.3")
        self.assertIn("127.0.0.2", self.ban_list())
        self.assert_connection_refusal_logged("ban", "127.0.0.2")

    def test_ban_remove_lifts_it_on_the_live_daemon(self):
        self.start(site={"ban": [LOGIN_BAN]})
        self.fail_logins("127.0.0.2", 3)
        self.assert_refused_at_accept("127.0.0.2")
        rc, out, err = cli("ban", "remove", "127.0.0.2", "-c", self.m.conf_file)
        self.assertEqual(rc, 0, out + err)
        self.assertIn("127.0.0.2", out)
        self.ok("127.0.0.2", "/back")
        self.assertEqual(self.up.find("/back")[0].headers.get("x-forwarded-for"), "127.0.0.2")
        self.assertNotIn("127.0.0.2", self.ban_list())
        M.wait_until(lambda: not self.banned_in_file("127.0.0.2"), 10, "127.0.0.2 gone from bans.json")
        # removing it again: it is not banned
        rc, out, err = cli("ban", "remove", "127.0.0.2", "-c", self.m.conf_file)
        self.assertEqual(rc, 1, out + err)

    def test_ban_add_closes_the_live_connection(self):
        self.start()
        live = h1(self.m, "127.0.0.4")
        self.addCleanup(live.close)
        other = h1(self.m, "127.0.0.3")
        self.addCleanup(other.close)
        self.assertEqual(get(live).status, 200)
        rc, out, err = cli("ban", "add", "127.0.0.4", "--for", "10m", "--reason", "scanner",
                           "-c", self.m.conf_file)
        self.assertEqual(rc, 0, out + err)
        # when the CLI says banned, the ban is on disk
        self.assertTrue(self.banned_in_file("127.0.0.4"), self.ban_file())
        self.assertTrue(closed_soon(live.sock), "the banned address's open connection stays open")
        self.assert_refused_at_accept("127.0.0.4", what="moat ban add")
        self.assertEqual(get(other).status, 200)
        ban = self.ban_list()["127.0.0.4"]
        self.assertEqual(ban["reason"], "scanner")
        self.assertTrue(500 <= ban["remaining"] <= 600, ban)

    def test_ban_add_without_a_daemon_applies_at_start(self):
        self.up = login_upstream(self)
        self.m = M.Moat(self)
        os.makedirs(self.m.data, mode=0o700)
        rc, out, err = cli("ban", "add", "127.0.0.4", "--data", self.m.data)
        self.assertEqual(rc, 0, out + err)
        self.assertIn("no moat is running", out)
        self.assertTrue(self.banned_in_file("127.0.0.4"))
        rc, st, err = cli_json("status", "--data", self.m.data)
        self.assertEqual(rc, 3, "moat status without a daemon: %r %s" % (st, err))
        self.assertEqual([b["address"] for b in st["bans"]["list"]], ["127.0.0.4"])
        self.m.start(self.m.config({HOST: M.site(self.up)}))
        self.assert_refused_at_accept("127.0.0.4", what="ban added before start")
        self.ok("127.0.0.3")
        self.assert_connection_refusal_logged("ban", "127.0.0.4")

    def test_never_ban(self):
        # a list replaces the default; 127.0.0.6 is in its prefix
        self.start(site={"ban": [LOGIN_BAN]}, never_ban=["127.0.0.1", "127.0.0.4/30"])
        for _ in range(3):
            self.fail_logins("127.0.0.6", 3)
            self.fail_logins("127.0.0.1", 3)
        self.ok("127.0.0.6", "/still")
        self.ok("127.0.0.1", "/still")
        self.assertEqual(self.ban_list(), {})
        rc, out, err = cli("ban", "add", "127.0.0.6", "-c", self.m.conf_file)
        self.assertEqual(rc, 1, "moat ban add of a never_ban address: %s%s" % (out, err))
        self.ok("127.0.0.6", "/still")
        # the same failures from an address not in the list ban it
        self.fail_logins("127.0.0.2", 3)
        self.assert_refused_at_accept("127.0.0.2")

    def test_default_never_ban_protects_localhost(self):
        self.start(site={"ban": [LOGIN_BAN]})
        self.fail_logins("127.0.0.1", 3)
        self.fail_logins("127.0.0.1", 3)
        self.ok("127.0.0.1", "/still")
        self.assertEqual(self.ban_list(), {})
        rc, out, err = cli("ban", "add", "127.0.0.1", "-c", self.m.conf_file)
        self.assertEqual(rc, 1, out + err)

    def test_ban_expires_on_time(self):
        self.start(site={"ban": [dict(LOGIN_BAN, **{"for": "2s"})]})
        self.fail_logins("127.0.0.2", 3)
        self.assert_refused_at_accept("127.0.0.2")

        def served():
            return M.curl(self.m, HOST, "/later", source="127.0.0.2", timeout=5).status == 200
        M.wait_until(served, 20, "the 2 s ban to end", interval=0.5)
        # gone from the daemon's list; the file keeps it until the next
        # change rewrites it (an ended ban is skipped when it is read)
        self.assertNotIn("127.0.0.2", self.ban_list())

    def test_pipelined_requests_after_the_banning_answer_are_dropped(self):
        self.start(site={"ban": [LOGIN_BAN]})
        s = tls_from(self.m, "127.0.0.2")
        self.addCleanup(s.close)
        fail = b"POST %s HTTP/1.1\r\nHost: %s\r\nContent-Length: 4\r\n\r\npw=x" % (LOGIN.encode(), HOST.encode())
        data, closed = M.raw_exchange(s, fail * 3 + b"GET /pipelined HTTP/1.1\r\nHost: %s\r\n\r\n"
                                      % HOST.encode(), 10)
        self.assertEqual(data.count(b"HTTP/1.1 401"), 3, data)
        self.assertTrue(closed, "the banning answer did not end the connection")
        self.assertEqual(self.up.find("/pipelined"), [], "a banned client's pipelined request went through")

    def test_ban_closes_a_connection_in_the_middle_of_a_request(self):
        up = self.upstream(reply=lambda req: M.Reply(action="hang") if req.target == "/hang"
                           else M.Reply(200, body=b"ok\n"))
        self.start(up=up)
        c = h1(self.m, "127.0.0.4")
        self.addCleanup(c.close)
        c.request("GET", "/hang", HOST)
        up.wait_requests(1)
        rc, out, err = cli("ban", "add", "127.0.0.4", "-c", self.m.conf_file)
        self.assertEqual(rc, 0, out + err)
        # closed now, not when timeouts.response (30 s) would end the exchange
        self.assertTrue(closed_soon(c.sock, 10), "a banned client's busy connection stays open")

    def test_ban_applies_to_the_http_listener_too(self):
        self.start(site={"redirect": False, "ban": [LOGIN_BAN]})
        self.fail_logins("127.0.0.2", 3)
        self.assert_refused_at_accept("127.0.0.2")
        s = connect_from(self.m, "127.0.0.2", self.m.http_port)
        self.addCleanup(s.close)
        data, closed = M.raw_exchange(s, b"", REFUSE_WAIT)
        self.assertTrue(closed and data == b"", "plain http from a banned client: %r" % data)
        r = M.curl(self.m, HOST, "/plain", scheme="http", source="127.0.0.3")
        self.assertEqual(r.status, 200, r)

    def test_ipv6_ban_covers_the_64(self):
        self.start(site={"ban": [LOGIN_BAN]}, trusted_proxies=[PROXY_ADDR])
        self.fail_logins(PROXY_ADDR, 3, headers=["X-Forwarded-For: 2001:db8::1"])
        self.assertEqual(sorted(self.ban_list()), ["2001:db8::/64"])
        for client, want in (("2001:db8::abcd", 403), ("2001:db8:0:1::1", 200)):
            c = h1(self.m, PROXY_ADDR)
            self.addCleanup(c.close)
            self.assertEqual(get(c, "/v6", headers=[("X-Forwarded-For", client)]).status, want, client)
        rc, out, err = cli("ban", "remove", "2001:db8::77", "-c", self.m.conf_file)
        self.assertEqual(rc, 0, out + err)
        self.assertEqual(self.ban_list(), {})

    def test_ban_cli_refuses_bad_input(self):
        self.start()
        for args in (["add", "not-an-address"], ["add", "127.0.0.2", "--for", "0s"],
                     ["add", "127.0.0.2", "--for", "forever"], ["remove"], ["add"]):
            rc, out, err = cli("ban", *args, "-c", self.m.conf_file)
            self.assertEqual(rc, 2, "moat ban %s: rc %d\n%s%s" % (" ".join(args), rc, out, err))
        self.assertEqual(self.ban_list(), {})
        self.ok("127.0.0.2")

    def test_hand_written_ban_file_is_loaded(self):
        self.m = M.Moat(self)
        os.makedirs(self.m.data, mode=0o700)
        now = int(time.time())
        with open(os.path.join(self.m.data, "bans.json"), "w") as f:
            json.dump({"version": 1, "bans": [
                {"address": "127.0.0.2", "since": now - 60, "until": now + 600, "reason": "by hand"},
                {"address": "127.0.0.3", "since": now - 600, "until": now - 60, "reason": "over"},
                {"address": "2001:db8::/64", "since": now, "until": now + 600, "reason": "v6"},
            ]}, f)
        self.up = login_upstream(self)
        self.m.start(self.m.config({HOST: M.site(self.up)}))
        self.assert_refused_at_accept("127.0.0.2", what="a ban from the file")
        self.ok("127.0.0.3", "/expired-ban")
        bans = self.ban_list()
        self.assertEqual(sorted(bans), ["127.0.0.2", "2001:db8::/64"])
        self.assertEqual(bans["127.0.0.2"]["reason"], "by hand")

    def test_unreadable_ban_file_stops_the_start(self):
        self.m = M.Moat(self)
        os.makedirs(self.m.data, mode=0o700)
        with open(os.path.join(self.m.data, "bans.json"), "w") as f:
            f.write('{"version":1,"bans":[{"address":"127.0.0.2","since":1,')
        with self.assertRaises(AssertionError) as cm:
            self.m.start(self.m.config({HOST: M.site(login_upstream(self))}))
        self.assertIn("bans.json", str(cm.exception))

    def test_ban_table_is_bounded(self):
        self.start(limits={"bans": 2})
        for a in ("127.0.0.2", "127.0.0.3", "127.0.0.4"):
            rc, out, err = cli("ban", "add", a, "-c", self.m.conf_file)
            self.assertEqual(rc, 0, out + err)
        self.assertEqual(sorted(self.ban_list()), ["127.0.0.3", "127.0.0.4"])
        self.assertIn("ban table full", self.m.stderr())
        self.ok("127.0.0.2", "/evicted")
        self.assert_refused_at_accept("127.0.0.3")


# ------------------------------------------------------------------ the client's address

class ClientAddress(AbuseCase):
    def test_spoofed_forwarding_headers_from_untrusted_peer_are_ignored_and_replaced(self):
        # 127.0.0.2 is not a trusted proxy (there are none)
        self.start(site={"limit": "1/m burst 3", "ban": [LOGIN_BAN]})
        spoofs = ["127.0.0.1", "127.0.0.10", "127.0.0.11", "127.0.0.12"]
        got = []
        for i, fake in enumerate(spoofs):
            r = M.curl(self.m, HOST, "/s%d" % i, source="127.0.0.2",
                       headers=[("X-Forwarded-For", fake), ("Forwarded", "for=%s" % fake),
                                ("X-Real-IP", fake)])
            got.append(r.status)
        # each spoofed value did not get a budget of its own: 127.0.0.2's 3 are spent
        self.assertEqual(got, [200, 200, 200, 429])
        for req in self.up.find("/s"):
            self.assertEqual(req.headers.get_all("x-forwarded-for"), ["127.0.0.2"], req)
            fwd = req.headers.get_all("forwarded")
            self.assertEqual(len(fwd), 1, req)
            self.assertTrue(fwd[0].startswith("for=127.0.0.2;"), req)
            self.assertNotIn("127.0.0.1", req.head.decode("latin-1"), req)
        for x in self.m.access_log_lines():
            if x.get("path", "").startswith("/s"):
                self.assertEqual(x["client"], "127.0.0.2", x)
        # login failures claiming to be 127.0.0.1 (never_ban) ban the real peer
        self.fail_logins("127.0.0.3", 3, headers=["X-Forwarded-For: 127.0.0.1"])
        self.assertEqual(sorted(self.ban_list()), ["127.0.0.3"])
        self.assert_refused_at_accept("127.0.0.3")
        self.ok("127.0.0.1", "/local")

    def test_trusted_proxy_xff_names_the_client_for_limits(self):
        self.start(site={"limit": "1/m burst 3"}, trusted_proxies=[PROXY_ADDR])
        xff = lambda c: ["X-Forwarded-For: %s" % c]
        a = curl_burst(self.m, "/p20", 4, PROXY_ADDR, headers=xff("127.0.0.20"))
        self.assertEqual(statuses(a), [200, 200, 200, 429])
        # the proxy's other clients have their own budgets
        b = curl_burst(self.m, "/p21", 3, PROXY_ADDR, headers=xff("127.0.0.21"))
        self.assertEqual(statuses(b), [200, 200, 200])
        # right-most untrusted hop: the proxy's own entry and a client's spoof are skipped
        c = curl_burst(self.m, "/p22", 1, PROXY_ADDR, headers=xff("10.9.9.9, 127.0.0.22, " + PROXY_ADDR))
        self.assertEqual(statuses(c), [200])
        # the same limit follows 127.0.0.20 whichever way it comes
        self.assertEqual(statuses(curl_burst(self.m, "/p20", 1, PROXY_ADDR,
                                             headers=xff("10.1.1.1, 127.0.0.20"))), [429])
        seen = {r.target: r.headers.get_all("x-forwarded-for") for r in self.up.requests}
        self.assertEqual(seen["/p20"], ["127.0.0.20"])
        self.assertEqual(seen["/p21"], ["127.0.0.21"])
        self.assertEqual(seen["/p22"], ["127.0.0.22"])
        clients = {(x["path"], x["client"]) for x in self.m.access_log_lines()}
        self.assertIn(("/p20", "127.0.0.20"), clients)
        self.assertIn(("/p22", "127.0.0.22"), clients)
        self.assertNotIn(PROXY_ADDR, {c for _, c in clients})

    def test_trusted_proxy_xff_forms(self):
        self.start(trusted_proxies=[PROXY_ADDR, "10.0.0.0/8"])
        rows = [  # (X-Forwarded-For header lines, the client moat must take)
            (["127.0.0.50"], "127.0.0.50"),
            (["127.0.0.50:4711"], "127.0.0.50"),
            (["127.0.0.50", "127.0.0.51"], "127.0.0.51"),      # all lines are one list
            (["127.0.0.52, 10.1.2.3"], "127.0.0.52"),          # trusted hops are skipped
            (["127.0.0.53, 10.1.2.3, " + PROXY_ADDR], "127.0.0.53"),
            (["10.1.2.3, 10.4.5.6"], "10.1.2.3"),              # all trusted: the left-most
            (["[2001:db8::5]:443"], "2001:db8::5"),
        ]
        c = h1(self.m, PROXY_ADDR)
        self.addCleanup(c.close)
        for i, (lines, want) in enumerate(rows):
            with self.subTest(lines=lines):
                r = get(c, "/form%d" % i, headers=[("X-Forwarded-For", v) for v in lines])
                self.assertEqual(r.status, 200)
                self.assertEqual(self.up.find("/form%d" % i)[0].headers.get_all("x-forwarded-for"),
                                 [want])

    def test_trusted_proxy_xff_ban_applies_to_the_client(self):
        self.start(site={"ban": [LOGIN_BAN]}, trusted_proxies=[PROXY_ADDR])
        idle = h1(self.m, PROXY_ADDR)          # a proxy connection that carried the client
        self.addCleanup(idle.close)
        self.assertEqual(get(idle, "/earlier", headers=[("X-Forwarded-For", "127.0.0.24")]).status, 200)
        self.fail_logins(PROXY_ADDR, 3, headers=["X-Forwarded-For: 127.0.0.24"])
        self.assertEqual(sorted(self.ban_list()), ["127.0.0.24"])
        # the banned client behind the proxy: 403, nothing reaches the upstream; the
        # proxy's connection stays for the other clients it carries
        # (docs/internals/guard.md)
        c = h1(self.m, PROXY_ADDR)
        self.addCleanup(c.close)
        r = get(c, "/banned", headers=[("X-Forwarded-For", "127.0.0.24")])
        self.assertEqual(r.status, 403, r)
        self.assertEqual(self.up.find("/banned"), [])
        lines = self.m.wait_access_log(lambda x: x.get("path") == "/banned")
        self.assertEqual((lines[0]["client"], lines[0]["status"], lines[0].get("deny")),
                         ("127.0.0.24", 403, "ban"), lines)
        self.assertEqual(get(c, "/fine", headers=[("X-Forwarded-For", "127.0.0.21")]).status, 200)
        self.assertEqual(self.up.find("/fine")[0].headers.get("x-forwarded-for"), "127.0.0.21")
        # the idle connection that carried 127.0.0.24 before the ban was not swept
        self.assertEqual(get(idle, "/fine2").status, 200)
        # a banned client's request with a body: 403 and close (the body is not read)
        c.request("POST", "/banned-post", HOST, headers=[("X-Forwarded-For", "127.0.0.24")], body=b"x" * 10)
        self.assertEqual(c.read_response().status, 403)
        self.assertTrue(closed_soon(c.sock), "kept after a 403 whose body was not read")
        # and the banned client connecting directly is refused at the door
        self.assert_refused_at_accept("127.0.0.24")

    def test_ban_closes_a_proxy_connection_busy_for_the_banned_client(self):
        up = self.upstream(reply=lambda req: M.Reply(action="hang") if req.target == "/hang"
                           else M.Reply(200, body=b"ok\n"))
        self.start(up=up, trusted_proxies=[PROXY_ADDR])
        busy = h1(self.m, PROXY_ADDR)
        self.addCleanup(busy.close)
        busy.request("GET", "/hang", HOST, headers=[("X-Forwarded-For", "127.0.0.25")])
        up.wait_requests(1)
        other = h1(self.m, PROXY_ADDR)
        self.addCleanup(other.close)
        self.assertEqual(get(other, "/x", headers=[("X-Forwarded-For", "127.0.0.26")]).status, 200)
        rc, out, err = cli("ban", "add", "127.0.0.25", "-c", self.m.conf_file)
        self.assertEqual(rc, 0, out + err)
        self.assertTrue(closed_soon(busy.sock), "the proxy connection busy for the banned client stays")
        self.assertEqual(get(other, "/y", headers=[("X-Forwarded-For", "127.0.0.26")]).status, 200)

    def test_trusted_proxy_is_never_banned(self):
        self.start(site={"ban": [LOGIN_BAN]}, trusted_proxies=[PROXY_ADDR])
        self.fail_logins(PROXY_ADDR, 3)        # no header: the proxy is the client
        self.fail_logins(PROXY_ADDR, 3)
        self.ok(PROXY_ADDR, "/still")
        self.assertEqual(self.ban_list(), {})
        rc, out, err = cli("ban", "add", PROXY_ADDR, "-c", self.m.conf_file)
        self.assertEqual(rc, 1, out + err)

    def test_forwarded_header_when_configured(self):
        self.start(site={"limit": "1/m burst 2"}, trusted_proxies=[PROXY_ADDR],
                   client_ip_header="forwarded")
        st = curl_burst(self.m, "/f25", 3, PROXY_ADDR,
                        headers=['Forwarded: for=127.0.0.25;proto=https', "X-Forwarded-For: 127.0.0.26"])
        self.assertEqual(statuses(st), [200, 200, 429])
        self.assertEqual(self.up.find("/f25")[0].headers.get_all("x-forwarded-for"), ["127.0.0.25"])
        # X-Forwarded-For is not what this moat believes: the proxy is the client then
        self.assertEqual(statuses(curl_burst(self.m, "/f26", 1, PROXY_ADDR,
                                             headers=["X-Forwarded-For: 127.0.0.26"])), [200])
        self.assertEqual(self.up.find("/f26")[0].headers.get_all("x-forwarded-for"), [PROXY_ADDR])


# ------------------------------------------------------------------ PROXY protocol

class ProxyProtocol(AbuseCase):
    def setUp(self):
        self.pp_port = M.free_port()

    def start_pp(self, **site):
        self.up = login_upstream(self)
        self.m = M.Moat(self)
        cfg = self.m.config({HOST: M.site(self.up, **site)}, trusted_proxies=[PROXY_ADDR])
        cfg["listen"] = {"http": "127.0.0.1:%d" % self.m.http_port,
                         "https": ["127.0.0.1:%d" % self.m.https_port,
                                   {"address": "127.0.0.1:%d" % self.pp_port,
                                    "proxy_protocol": True}]}
        self.m.start(cfg)

    def via(self, header, source=PROXY_ADDR):
        return h1(self.m, source, port=self.pp_port, prefix=header)

    def v2(self, client, sport=40000):
        return M.proxy_v2(client, "127.0.0.1", sport, self.pp_port)

    def test_v2_from_trusted_peer_sets_the_address(self):
        self.start_pp(limit="1/m burst 2")
        c = self.via(self.v2("127.0.0.30"))
        self.addCleanup(c.close)
        self.assertEqual(get(c, "/v2").status, 200)
        self.assertEqual(get(c, "/v2").status, 200)
        r = get(c, "/v2")
        self.assertEqual(r.status, 429, "the limit applies to the named client")
        self.assertEqual([q.headers.get("x-forwarded-for") for q in self.up.find("/v2")],
                         ["127.0.0.30", "127.0.0.30"])
        lines = self.m.wait_access_log(lambda x: x.get("path") == "/v2", count=3)
        self.assertEqual({x["client"] for x in lines}, {"127.0.0.30"})
        # another client through the same relay has its own budget
        c2 = self.via(self.v2("127.0.0.31"))
        self.addCleanup(c2.close)
        self.assertEqual(get(c2, "/v2b").status, 200)
        self.assertEqual(self.up.find("/v2b")[0].headers.get("x-forwarded-for"), "127.0.0.31")

    def test_v2_ban_applies_to_the_named_client(self):
        self.start_pp(ban=[LOGIN_BAN])
        for i in range(3):
            c = self.via(self.v2("127.0.0.30", 40000 + i))
            c.request("POST", LOGIN, HOST, body=b"pw=x")
            self.assertEqual(c.read_response().status, 401)
            c.close()
        self.assertEqual(sorted(self.ban_list()), ["127.0.0.30"])
        # the next connection naming 127.0.0.30 is closed before TLS
        s = connect_from(self.m, PROXY_ADDR, self.pp_port)
        self.addCleanup(s.close)
        data, closed = M.raw_exchange(s, self.v2("127.0.0.30"), REFUSE_WAIT)
        self.assertTrue(closed and data == b"", "banned client via PROXY v2: %r %r" % (closed, data))
        self.assert_connection_refusal_logged("ban", "127.0.0.30")
        # the relay and its other clients are fine
        c = self.via(self.v2("127.0.0.31"))
        self.addCleanup(c.close)
        self.assertEqual(get(c, "/ok").status, 200)
        self.ok(PROXY_ADDR, "/direct")

    def test_v1_from_trusted_peer(self):
        self.start_pp()
        c = self.via(M.proxy_v1("127.0.0.32", "127.0.0.1", 41000, self.pp_port))
        self.addCleanup(c.close)
        self.assertEqual(get(c, "/v1").status, 200)
        self.assertEqual(self.up.find("/v1")[0].headers.get("x-forwarded-for"), "127.0.0.32")
        self.assertEqual(self.m.wait_access_log(lambda x: x.get("path") == "/v1")[0]["client"],
                         "127.0.0.32")

    def test_v2_header_in_pieces_and_with_the_client_hello(self):
        self.start_pp()
        # the header arriving in two pieces
        s = connect_from(self.m, PROXY_ADDR, self.pp_port)
        self.addCleanup(s.close)
        hdr = self.v2("127.0.0.35")
        s.sendall(hdr[:7])
        time.sleep(0.3)
        s.sendall(hdr[7:])
        c = M.H1Client(M.tls_context(self.m.ca).wrap_socket(s, server_hostname=HOST))
        self.assertEqual(get(c, "/pieces").status, 200)
        # the header and the ClientHello in one write, as a load balancer sends them
        s = connect_from(self.m, PROXY_ADDR, self.pp_port)
        self.addCleanup(s.close)
        resp = tls_request_with_prefix(s, M.tls_context(self.m.ca), self.v2("127.0.0.36"),
                                       b"GET /together HTTP/1.1\r\nHost: %s\r\n\r\n" % HOST.encode())
        self.assertEqual(M.parse_status(resp), 200, resp[:200])
        got = {r.target: r.headers.get("x-forwarded-for") for r in self.up.requests}
        self.assertEqual(got, {"/pieces": "127.0.0.35", "/together": "127.0.0.36"})

    def test_v2_local_and_v1_unknown_keep_the_relay_as_client(self):
        self.start_pp()
        for i, hdr in enumerate([M.proxy_v2("127.0.0.37", "127.0.0.1", 1, 2, local=True),
                                 b"PROXY UNKNOWN\r\n"]):
            c = self.via(hdr)
            self.addCleanup(c.close)
            self.assertEqual(get(c, "/keep%d" % i).status, 200)
            self.assertEqual(self.up.find("/keep%d" % i)[0].headers.get("x-forwarded-for"), PROXY_ADDR)

    def test_named_clients_have_their_own_connection_cap(self):
        self.up = login_upstream(self)
        self.m = M.Moat(self)
        cfg = self.m.config({HOST: M.site(self.up)}, trusted_proxies=[PROXY_ADDR],
                            limits={"connections_per_client": 2})
        cfg["listen"] = {"http": "127.0.0.1:%d" % self.m.http_port,
                         "https": {"address": "127.0.0.1:%d" % self.pp_port, "proxy_protocol": True}}
        self.m.start(cfg)
        held = []
        for i in range(2):
            held.append(self.via(self.v2("127.0.0.40", 40000 + i)))
            self.addCleanup(held[-1].close)
        s = connect_from(self.m, PROXY_ADDR, self.pp_port)
        self.addCleanup(s.close)
        data, closed = M.raw_exchange(s, self.v2("127.0.0.40", 40009), REFUSE_WAIT)
        self.assertTrue(closed and data == b"", "a 3rd connection for 127.0.0.40")
        self.assert_connection_refusal_logged("conn-cap", "127.0.0.40")
        for i in range(3):   # the relay carries more than 2 connections for others
            c = self.via(self.v2("127.0.0.%d" % (41 + i)))
            self.addCleanup(c.close)
            self.assertEqual(get(c, "/other").status, 200)

    def test_header_forms(self):
        self.start_pp()
        p = self.pp_port
        rows = [  # (name, header, the client moat takes, or None: connection refused)
            ("v2 with TLVs", M.proxy_v2("127.0.0.61", "127.0.0.1", 1, p,
                                        tlvs=b"\x04\x00\x03abc" * 20), "127.0.0.61"),
            ("v2 IPv6", M.proxy_v2("2001:db8::10", "::1", 1, p), "2001:db8::10"),
            ("v2 AF_UNIX keeps the relay", M.PROXY_V2_SIG + b"\x21\x31" + (216).to_bytes(2, "big")
             + bytes(216), PROXY_ADDR),
            ("v1 TCP6", M.proxy_v1("2001:db8::9", "::1", 1, p), "2001:db8::9"),
            ("v1 port 65535", b"PROXY TCP4 127.0.0.63 127.0.0.1 65535 443\r\n", "127.0.0.63"),
            ("v2 over 1024 bytes", M.proxy_v2("127.0.0.62", "127.0.0.1", 1, p,
                                              tlvs=b"\x04" + (1100).to_bytes(2, "big") + bytes(1100)), None),
            ("v2 length short of the addresses", M.PROXY_V2_SIG + b"\x21\x11\x00\x08" + bytes(8), None),
            ("v1 port 65536", b"PROXY TCP4 127.0.0.64 127.0.0.1 65536 443\r\n", None),
            ("v1 leading zero", b"PROXY TCP4 127.0.0.065 127.0.0.1 1 443\r\n", None),
            ("v1 TCP4 with an IPv6 address", b"PROXY TCP4 2001:db8::1 127.0.0.1 1 443\r\n", None),
            ("v1 lowercase", b"proxy TCP4 127.0.0.67 127.0.0.1 1 443\r\n", None),
            ("v1 LF only", b"PROXY TCP4 127.0.0.68 127.0.0.1 1 443\n", None),
        ]
        for i, (name, hdr, want) in enumerate(rows):
            with self.subTest(name):
                path = "/form%d" % i
                try:
                    c = self.via(hdr)
                except (ssl.SSLError, OSError) as e:
                    self.assertIsNone(want, "%s: refused (%r)" % (name, e))
                    continue
                self.addCleanup(c.close)
                self.assertIsNotNone(want, "%s: accepted" % name)
                self.assertEqual(get(c, path).status, 200)
                self.assertEqual(self.up.find(path)[0].headers.get("x-forwarded-for"), want)

    def test_plain_http_listener_with_proxy_protocol(self):
        self.up = login_upstream(self)
        self.m = M.Moat(self)
        cfg = self.m.config({HOST: M.site(self.up, redirect=False)}, trusted_proxies=[PROXY_ADDR])
        cfg["listen"] = {"http": {"address": "127.0.0.1:%d" % self.pp_port, "proxy_protocol": True},
                         "https": "127.0.0.1:%d" % self.m.https_port}
        self.m.start(cfg)
        s = connect_from(self.m, PROXY_ADDR, self.pp_port)
        self.addCleanup(s.close)
        data, closed = M.raw_exchange(s, M.proxy_v1("127.0.0.66", "127.0.0.1", 1, self.pp_port) +
                                      b"GET /pp-http HTTP/1.1\r\nHost: %s\r\nConnection: close\r\n\r\n"
                                      % HOST.encode(), 10)
        self.assertEqual(M.parse_status(data), 200, data[:200])
        self.assertEqual(self.up.find("/pp-http")[0].headers.get("x-forwarded-for"), "127.0.0.66")
        s = connect_from(self.m, "127.0.0.2", self.pp_port)
        self.addCleanup(s.close)
        data, closed = M.raw_exchange(s, M.proxy_v1("127.0.0.66", "127.0.0.1", 1, self.pp_port) +
                                      b"GET /pp-untrusted HTTP/1.1\r\nHost: %s\r\n\r\n" % HOST.encode(),
                                      REFUSE_WAIT)
        self.assertTrue(closed and data == b"", data[:200])
        self.assertEqual(self.up.find("/pp-untrusted"), [])

    def test_incomplete_header_meets_the_header_deadline(self):
        self.up = login_upstream(self)
        self.m = M.Moat(self)
        cfg = self.m.config({HOST: M.site(self.up)}, trusted_proxies=[PROXY_ADDR],
                            timeouts={"header": "1s"})
        cfg["listen"] = {"http": "127.0.0.1:%d" % self.m.http_port,
                         "https": {"address": "127.0.0.1:%d" % self.pp_port, "proxy_protocol": True}}
        self.m.start(cfg)
        s = connect_from(self.m, PROXY_ADDR, self.pp_port)
        self.addCleanup(s.close)
        data, closed = M.raw_exchange(s, b"PROXY TCP4 127.0.0.7", 15)
        self.assertTrue(closed and data == b"", "an incomplete PROXY header held the connection")
        line = self.m.wait_access_log(lambda x: x.get("deny") == "timeout")[0]
        self.assertEqual((line["client"], line["status"]), (PROXY_ADDR, 0), line)

    def test_untrusted_peer_is_refused(self):
        self.start_pp()
        for header in (self.v2("127.0.0.33"),
                       M.proxy_v1("127.0.0.33", "127.0.0.1", 41000, self.pp_port)):
            s = connect_from(self.m, "127.0.0.2", self.pp_port)
            self.addCleanup(s.close)
            data, closed = M.raw_exchange(s, header, REFUSE_WAIT)
            self.assertTrue(closed, "PROXY header from an untrusted peer: connection kept")
            self.assertEqual(data, b"")
        with self.assertRaises((ssl.SSLError, OSError)):
            self.via(self.v2("127.0.0.33"), source="127.0.0.2").close()
        self.assertEqual(self.up.requests, [])
        # the untrusted peer may still use the ordinary listener
        self.ok("127.0.0.2", "/plain")

    def test_trusted_peer_without_a_valid_header_is_refused(self):
        self.start_pp()
        with self.assertRaises((ssl.SSLError, OSError), msg="TLS without a PROXY header"):
            tls_from(self.m, PROXY_ADDR, port=self.pp_port).close()
        bad = [b"PROXY TCP4 127.0.0.34 127.0.0.1 1 2 3\r\n",      # extra field
               b"PROXY TCP4 127.0.0.999 127.0.0.1 1 2\r\n",
               M.PROXY_V2_SIG + b"\x31\x11\x00\x0c" + bytes(12),   # version 3
               b"GET / HTTP/1.1\r\nHost: app.localhost\r\n\r\n"]
        for header in bad:
            s = connect_from(self.m, PROXY_ADDR, self.pp_port)
            self.addCleanup(s.close)
            data, closed = M.raw_exchange(s, header, REFUSE_WAIT)
            self.assertTrue(closed, "bad PROXY header %r: connection kept" % header)
            self.assertEqual(data, b"", header)
        self.assertEqual(self.up.requests, [])


def tls_request_with_prefix(sock, ctx, prefix, request, timeout=10.0):
    """TLS over sock with the PROXY header and the ClientHello in one send; then
    request; returns the response bytes until the first response is complete."""
    inc, out = ssl.MemoryBIO(), ssl.MemoryBIO()
    tls = ctx.wrap_bio(inc, out, server_hostname=HOST)
    sock.settimeout(timeout)
    pending = prefix
    while True:
        try:
            tls.do_handshake()
            break
        except ssl.SSLWantReadError:
            sock.sendall(pending + out.read())
            pending = b""
            d = sock.recv(65536)
            if not d:
                raise ConnectionError("closed during the handshake")
            inc.write(d)
    tls.write(request)
    sock.sendall(out.read())
    buf = b""
    while True:
        try:
            buf += tls.read(65536)
            try:
                M.parse_response(buf)
                return buf
            except (ValueError, IndexError):
                continue
        except ssl.SSLWantReadError:
            d = sock.recv(65536)
            if not d:
                return buf
            inc.write(d)


# ------------------------------------------------------------------ connection caps

class ConnectionCaps(AbuseCase):
    def open_tls(self, source, n):
        out = []
        for _ in range(n):
            c = h1(self.m, source)
            self.addCleanup(c.close)
            out.append(c)
        return out

    def test_per_client_cap(self):
        self.start(limits={"connections_per_client": 5})
        held = self.open_tls("127.0.0.2", 5)
        self.assert_refused_at_accept("127.0.0.2", what="6th connection of 127.0.0.2")
        # the 5 are fine, and another client is served
        self.assertEqual(get(held[0]).status, 200)
        self.ok("127.0.0.3")
        self.assert_connection_refusal_logged("conn-cap", "127.0.0.2")
        # one closes: a new one gets in
        held[1].close()

        def new_one_works():
            return M.curl(self.m, HOST, "/again", source="127.0.0.2", timeout=5).status == 200
        M.wait_until(new_one_works, 10, "a new connection after one of 5 closed")

    def test_total_cap(self):
        self.start(limits={"connections": 4})
        held = [self.open_tls(a, 1)[0] for a in ("127.0.0.2", "127.0.0.3", "127.0.0.4", "127.0.0.6")]
        self.assert_refused_at_accept("127.0.0.7", what="5th connection in total")
        self.assert_connection_refusal_logged("conn-cap", "127.0.0.7")
        for c in held:
            self.assertEqual(get(c).status, 200)
        held[0].close()

        def new_one_works():
            return M.curl(self.m, HOST, "/again", source="127.0.0.7", timeout=5).status == 200
        M.wait_until(new_one_works, 10, "a new connection after one of 4 closed")

    def test_trusted_proxy_counts_only_against_the_total(self):
        self.start(limits={"connections_per_client": 2, "connections": 6},
                   trusted_proxies=[PROXY_ADDR])
        held = self.open_tls(PROXY_ADDR, 5)
        self.assertEqual(get(held[4]).status, 200)
        self.open_tls("127.0.0.2", 1)
        self.assert_refused_at_accept(PROXY_ADDR, what="7th connection in total")
        self.assert_connection_refusal_logged("conn-cap", PROXY_ADDR)
        self.assertEqual(self.refused_lines("conn-cap", "127.0.0.2"), [])


# ------------------------------------------------------------------ status and the log

class StatusAndLog(AbuseCase):
    def test_status_json(self):
        self.start(site={"limit": "1/m burst 2"}, limits={"connections_per_client": 3})
        rc, out, err = cli("ban", "add", "127.0.0.4", "--reason", "status test", "-c", self.m.conf_file)
        self.assertEqual(rc, 0, out + err)
        self.assert_refused_at_accept("127.0.0.4")
        res = statuses(curl_burst(self.m, "/x", 5, "127.0.0.2"))
        self.assertEqual(res, [200, 200, 429, 429, 429])
        held = [h1(self.m, "127.0.0.3") for _ in range(3)]
        for c in held:
            self.addCleanup(c.close)
        self.assert_refused_at_accept("127.0.0.3", what="4th connection")

        def settled():
            rc, st, err = cli_json("status", "-c", self.m.conf_file)
            self.assertEqual(rc, 0, err)
            return st if st["connections"]["total"] == 3 else None
        st = M.wait_until(settled, 10, "3 open connections in moat status")
        self.assertTrue(st["running"])
        self.assertEqual(st["pid"], self.m.pid)
        self.assertEqual(st["bans"]["count"], 1, st)
        self.assertEqual([(b["address"], b["reason"]) for b in st["bans"]["list"]],
                         [("127.0.0.4", "status test")])
        self.assertEqual([(x["address"], x["refused"]) for x in st["limited"]], [("127.0.0.2", 3)], st)
        self.assertEqual(sum(st["connections"]["workers"]), 3, st)
        self.assertEqual([(x["address"], x["open"]) for x in st["connections"]["top"]],
                         [("127.0.0.3", 3)], st)
        # the 2 refusals of 127.0.0.4 (raw socket, TLS) and of the 4th 127.0.0.3 (same)
        self.assertEqual(st["denials"], {"rate": 3, "ban": 2, "conn-cap": 2, "timeout": 0}, st)
        # the human form says the same
        rc, out, err = cli("status", "-c", self.m.conf_file)
        self.assertEqual(rc, 0, err)
        for word in ("127.0.0.4", "status test", "127.0.0.2", "127.0.0.3", "3 open", "rate 3"):
            self.assertIn(word, out)
        # only the daemon's user may talk to it
        self.assertEqual(os.stat(os.path.join(self.m.data, "admin.sock")).st_mode & 0o777, 0o600)

    def test_status_without_daemon_exits_3(self):
        self.start()
        self.m.stop()
        rc, out, err = cli("status", "-c", self.m.conf_file)
        self.assertEqual(rc, 3, out + err)
        self.assertIn("no moat is running", out)

    def test_deny_reasons_in_the_access_log(self):
        self.start(site={"path_limits": [{"match": "GET /r", "limit": "1/m burst 1"}],
                         "ban": [LOGIN_BAN]},
                   limits={"connections_per_client": 1}, timeouts={"header": "1s"})
        # timeout: a connection that never starts its TLS handshake
        s = connect_from(self.m, "127.0.0.6")
        self.addCleanup(s.close)
        data, closed = M.raw_exchange(s, b"", 15)
        self.assertTrue(closed and data == b"", "no TLS handshake in timeouts.header: kept open")
        # timeout: a request head that never completes
        c = h1(self.m, "127.0.0.7")
        self.addCleanup(c.close)
        resp, closed = M.raw_exchange(c.sock, b"GET /slow HTTP/1.1\r\nHost: app.localhost\r\n", 15)
        self.assertEqual(M.parse_status(resp), 408)
        # rate
        self.assertEqual(statuses(curl_burst(self.m, "/r", 2, "127.0.0.2")), [200, 429])
        # conn-cap
        held = h1(self.m, "127.0.0.3")
        self.addCleanup(held.close)
        self.assert_refused_at_accept("127.0.0.3")
        # ban
        self.fail_logins("127.0.0.4", 3)
        self.assert_refused_at_accept("127.0.0.4")
        by = {}
        for x in self.m.access_log_lines():
            if x.get("deny"):
                by.setdefault(x["deny"], []).append(x)
        self.assertEqual(sorted(by), ["ban", "conn-cap", "rate", "timeout"], by)
        self.assertEqual({(x["client"], x["status"], x["method"]) for x in by["timeout"]},
                         {("127.0.0.6", 0, None), ("127.0.0.7", 408, None)}, by["timeout"])
        self.assertEqual({(x["client"], x["status"], x["path"]) for x in by["rate"]},
                         {("127.0.0.2", 429, "/r")})
        self.assertEqual({(x["client"], x["status"], x["method"]) for x in by["conn-cap"]},
                         {("127.0.0.3", 0, None)})
        self.assertEqual({(x["client"], x["status"], x["method"]) for x in by["ban"]},
                         {("127.0.0.4", 0, None)})


# ------------------------------------------------------------------ configuration errors

class ConfigErrors(M.MoatTestCase):
    # (what, top-level lines, site lines, a word the error must say, the line the
    #  error is on (a unique substring), the text the column points at). Every
    #  config is otherwise valid; "PP" stands for a proxy_protocol listener.
    ROWS = [
        ("bad rate", [], ['    limit: "5 per second"'], "5 per second",
         "limit:", '"5 per second"'),
        ("rate of zero", [], ["    limit: 0/s"], "0/s", "limit:", "0/s"),
        ("bad burst", [], ["    limit: 5/s burst"], "5/s burst", "limit:", "5/s burst"),
        ("bad path limit rate", [],
         ['    path_limits: [ { match: "POST /up/**", limit: "2/fortnight" } ]'],
         "2/fortnight", "path_limits:", '"2/fortnight"'),
        ("bad after", [], ["    ban:", "      - match: POST /api/auth/login",
                           '        after: "5 in forever"'], "5 in forever",
         "after:", '"5 in forever"'),
        ("after without a window", [], ["    ban:", "      - match: POST /api/auth/login",
                                        "        after: 5"], "after", "after:", "5"),
        ("bad ban duration", [], ["    ban:", "      - match: POST /api/auth/login",
                                  "        for: 1 fortnight"], "1 fortnight", "for:", "1 fortnight"),
        ("bad ban status", [], ["    ban:", "      - match: POST /api/auth/login",
                                "        status: [ 401, 999 ]"], "999", "status:", "999"),
        ("proxy_protocol without trusted_proxies", ["PP"], [], "trusted_proxies",
         "proxy_protocol", "true"),
        ("client_ip_header without trusted_proxies", ["client_ip_header: forwarded"], [],
         "client_ip_header", "client_ip_header", "client_ip_header"),
        ("unknown client_ip_header", ["trusted_proxies: [ 127.0.0.5 ]",
                                      "client_ip_header: x-real-ip"], [],
         "x-real-ip", "client_ip_header", "x-real-ip"),
        ("bad trusted_proxies entry", ["trusted_proxies: [ 10.0.0.300 ]"], [], "10.0.0.300",
         "trusted_proxies", "10.0.0.300"),
        ("bad connections_per_client", ["limits: { connections_per_client: 0 }"], [],
         "connections_per_client", "connections_per_client", "0"),
    ]

    def test_rows(self):
        d = self.tmp()
        for i, (what, top, site_lines, token, line_key, marker) in enumerate(self.ROWS):
            with self.subTest(what):
                lines = ["data: %s" % os.path.join(d, "data"), "listen:", "  http: off"]
                if top == ["PP"]:
                    lines += ["  https:", '    - { address: "127.0.0.1:%d", proxy_protocol: true }'
                              % M.free_port()]
                else:
                    lines += ['  https: "127.0.0.1:%d"' % M.free_port()] + top
                lines += ["sites:", "  %s:" % HOST, "    to: http://127.0.0.1:9"] + site_lines
                ln = [k for k, t in enumerate(lines) if line_key in t]
                self.assertEqual(len(ln), 1, "row %s: %r is not on one line" % (what, line_key))
                ln = ln[0]
                col = lines[ln].rindex(marker) + 1
                p = os.path.join(d, "bad-%d.yaml" % i)
                with open(p, "w") as f:
                    f.write("\n".join(lines) + "\n")
                rc, out, err = cli("check", "-c", p)
                self.assertEqual(rc, 1, "%s: moat check exit %d\n%s%s" % (what, rc, out, err))
                prefix = "%s:%d:%d:" % (p, ln + 1, col)
                found = [t for t in err.splitlines() if prefix in t]
                self.assertTrue(found, "%s: no error at %s; stderr:\n%s" % (what, prefix, err))
                self.assertIn(token, found[0], "%s: %s" % (what, found))

    def test_good_config_passes(self):
        d = self.tmp()
        p = os.path.join(d, "good.yaml")
        with open(p, "w") as f:
            f.write(M.to_yaml({
                "data": os.path.join(d, "data"),
                "trusted_proxies": ["127.0.0.5", "10.0.0.0/8"],
                "client_ip_header": "x-forwarded-for",
                "never_ban": ["127.0.0.1", "::1", "192.168.0.0/16"],
                "listen": {"http": "off", "https": ["127.0.0.1:%d" % M.free_port(),
                                                   {"address": "127.0.0.1:%d" % M.free_port(),
                                                    "proxy_protocol": True}]},
                "limits": {"connections_per_client": 256, "connections": 1000, "bans": 100,
                           "min_body_rate": "1KiB"},
                "timeouts": {"header": "10s", "idle": "60s", "body": "10s", "write": "30s"},
                "sites": {HOST: {"to": "http://127.0.0.1:9", "limit": "5/s burst 5",
                                 "path_limits": [{"match": "POST /api/upload/**",
                                                  "limit": "2/m burst 2"}],
                                 "ban": [{"match": ["POST /api/auth/login", "POST /login"],
                                          "status": [401, 403], "after": "5 in 10m",
                                          "for": "1h"}]}},
            }))
        rc, out, err = cli("check", "-c", p)
        self.assertEqual(rc, 0, out + err)


if __name__ == "__main__":
    M.main()
