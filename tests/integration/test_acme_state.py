"""
ACME state on disk and against a CA that misbehaves.

  Crash      kill -9 while an order is in progress (right after it was
             placed, and while pebble is validating): every file under DATA
             still parses, the restarted moat resumes the same order
             ("resuming order URL"), and pebble created exactly one order
             (its "Added order" log line; pebble logs one per order it makes).
             pebble's HTTP-01 requests go through a HoldRelay that holds them
             until the restarted moat is up, so the kill always lands
             mid-order and the validation never hits a dead port.
  Two moats  started at once on one data directory: one runs, the other
             exits non-zero saying the data dir is in use; one order in all.
  CA errors  the directory (the ari_standin.py front) answers 503 with
             Retry-After: 2, or 429 with Retry-After: 5000, or nothing listens:
             moat logs the failure with a next attempt that honours
             Retry-After (never sooner; moat's own backoff starts at a
             minute), keeps serving the placeholder from its internal CA,
             status shows the error, and it succeeds once the CA answers.
  ARI        ari_standin.py adds renewalInfo (RFC 9773) to pebble's
             directory: a window in the past renews a fresh certificate; a
             window far ahead leaves it alone and next_renewal falls inside.

No wall-clock assertion: waits carry a generous deadline (acmelib.WAIT). The
one timing check is a lower bound the protocol sets: moat does not come back
before the Retry-After the CA gave.
"""

import datetime
import os
import re
import ssl
import threading

import acmelib as A
import moatlib as M

HOST = "a.example.test"
DAY = datetime.timedelta(days=1)


def placeholder(tc, m, env, host):
    """moat serves host with its internal CA's placeholder, not pebble's."""
    c = A.served_cert(m.https_port, host, m.ca)
    tc.assertFalse(A.issued_by(c, env.pebble.intermediate))
    with tc.assertRaises(ssl.SSLError):
        A.served_cert(m.https_port, host, env.pebble.root)
    return c


class Crash(M.MoatTestCase):
    def kill_mid_order(self, during_validation):
        env = A.AcmeEnv(self, http_relay=True, env={"PEBBLE_AUTHZREUSE": "0"})
        env.relay.hold()
        up = self.upstream()
        sites = {HOST: M.site(up, tls={"acme": "http"})}
        m = env.start_moat(sites)
        placed = A.wait_log(m, r"acme: %s: order placed (\S+)" % re.escape(HOST)).group(1)
        if during_validation:
            # moat answered the challenge: pebble is connecting to moat's http port
            M.wait_until(lambda: env.relay.accepted > 0, A.WAIT, "pebble's HTTP-01 request")
        m.kill()
        d = A.cert_dir(m.data, HOST)
        self.assertEqual(A.data_problems(m.data), [], "torn files after kill -9")
        self.assertTrue(os.path.exists(os.path.join(d, "order.json")),
                        "no order.json after 'order placed': %r" % A.data_files(m.data))
        self.assertFalse(os.path.exists(os.path.join(d, "cert.pem")))
        self.assertEqual(len(env.pebble.orders()), 1)

        first_run = m.stderr()
        env.start_moat(sites)  # moatlib starts a new stderr file: offsets restart at 0
        since = 0
        resumed = A.wait_log(m, r"acme: %s: resuming order (\S+)" % re.escape(HOST), since)
        self.assertEqual(resumed.group(1), placed, "resumed another order")
        placeholder(self, m, env, HOST)
        # pebble's held HTTP-01 requests (if moat answered the challenge before
        # it died) go through once the new moat answers that token itself
        for url in set(env.pebble.http_validations()):
            token = url.rsplit("/", 1)[1]

            def armed():
                r = env.curl(m, HOST, "/.well-known/acme-challenge/" + token, scheme="http")
                return r.status == 200 and r.body.startswith(token.encode() + b".")
            try:
                M.wait_until(armed, A.WAIT, "moat to answer the resumed order's token")
            except AssertionError:
                raise AssertionError("the restarted moat does not answer the HTTP-01 token "
                                     "of the order it resumed (%s); stderr:\n%s"
                                     % (url, m.stderr()))
        env.relay.release()
        A.wait_installed(m, HOST, since=since)
        c = A.wait_served_by(m.https_port, HOST, env.pebble.root, timeout=10, moat=m)
        self.assertIn(HOST, A.san_names(c))
        self.assertEqual(len(env.pebble.orders()), 1, "pebble made %d orders: %r"
                         % (len(env.pebble.orders()), env.pebble.orders()))
        self.assertEqual(env.pebble.requests("POST", env.pebble.path_of("newOrder")), 1)
        self.assertEqual(A.log_count(m, r"acme: %s: order placed" % re.escape(HOST), since), 0,
                         "first run:\n%s\nsecond run:\n%s" % (first_run, m.stderr()))
        self.assertEqual(A.failures(m, HOST), [])
        self.assertEqual(env.pebble.accounts(), 1)
        for left in ("order.json", "order.key"):
            self.assertFalse(os.path.exists(os.path.join(d, left)), left)
        self.assertEqual(A.data_problems(m.data), [])
        r = env.curl(m, HOST, "/resumed")
        self.assertEqual(r.status, 200, r)

    def test_kill9_right_after_order_placed(self):
        self.kill_mid_order(during_validation=False)

    def test_kill9_while_ca_validates(self):
        self.kill_mid_order(during_validation=True)

    def test_order_of_another_directory_is_dropped(self):
        """An order left by kill -9 belongs to the directory it was placed
        with; started with another directory, moat drops it and orders
        from the new one instead of resuming it there."""
        env = A.AcmeEnv(self, http_relay=True)
        env.relay.hold()
        front = A.DirStandin(self, env.pebble)
        up = self.upstream()
        sites = {HOST: M.site(up, tls={"acme": "http"})}
        m = env.start_moat(sites)
        placed = A.wait_log(m, r"acme: %s: order placed (\S+)" % re.escape(HOST)).group(1)
        m.kill()
        self.assertTrue(os.path.exists(os.path.join(A.cert_dir(m.data, HOST), "order.json")))
        env.relay.release()
        env.start_moat(sites, acme={"directory": front.url})
        A.wait_log(m, r"acme: %s: dropping the order %s of another directory"
                   % (re.escape(HOST), re.escape(placed)))
        A.wait_installed(m, HOST)
        self.assertEqual(A.log_count(m, r"resuming order"), 0, m.stderr())
        self.assertEqual(len(env.pebble.orders()), 2, env.pebble.orders())
        A.assert_served_by_pebble(self, env, m, HOST)

    def test_two_processes_one_data_dir(self):
        env = A.AcmeEnv(self, http_relay=True)
        env.relay.hold()  # until we know which moat pebble must reach
        up = self.upstream()
        sites = {HOST: M.site(up, tls={"acme": "http"})}
        m1 = env.moat
        m2 = M.Moat(self)
        m2.data, m2.ca = m1.data, m1.ca
        outcome = {}
        go = threading.Barrier(2)

        def run(m):
            go.wait()
            try:
                env.start_moat(sites, moat=m)
                outcome[m] = "ready"
            except AssertionError as e:
                outcome[m] = e
        ts = [threading.Thread(target=run, args=(m,)) for m in (m1, m2)]
        for t in ts:
            t.start()
        for t in ts:
            t.join(A.WAIT * 2)
        ready = [m for m in (m1, m2) if outcome.get(m) == "ready"]
        self.assertEqual(len(ready), 1, "outcomes: %r\nstderr 1:\n%s\nstderr 2:\n%s"
                         % (outcome, m1.stderr(), m2.stderr()))
        win = ready[0]
        lose = m2 if win is m1 else m1
        self.assertIsNotNone(lose.proc.returncode)
        self.assertNotEqual(lose.proc.returncode, 0)
        self.assertRegex(lose.stderr(), r"(?i)(data dir\S* .*in use|another moat .*running"
                         r".*data)", "the second moat should say the data dir is in use:\n"
                         + lose.stderr())
        for mark in M.SANITIZER_MARKS:
            self.assertNotIn(mark, lose.stderr())
        env.relay.target_port = win.http_port  # HTTP-01 is forced: pebble's tlsPort is unused
        env.relay.release()
        A.wait_installed(win, HOST)
        A.wait_served_by(win.https_port, HOST, env.pebble.root, timeout=10, moat=win)
        self.assertEqual(len(env.pebble.orders()), 1, env.pebble.orders())
        self.assertEqual(env.pebble.accounts(), 1)
        self.assertEqual(A.data_problems(win.data), [])


class Recovery(M.MoatTestCase):
    """A crash inside an install (certstore.c writes key.pem.next and
    cert.pem.next, then renames them) is finished before the first TLS
    contexts are built: the restarted moat serves the ACME certificate from
    its first handshake, not the internal CA's placeholder, and orders
    nothing new."""

    def test_install_cut_short_is_served_at_start(self):
        env = A.AcmeEnv(self)
        up = self.upstream()
        sites = {HOST: M.site(up, tls={"acme": "http"})}
        m = env.start_moat(sites)
        A.wait_installed(m, HOST)
        first = A.wait_served_by(m.https_port, HOST, env.pebble.root, timeout=10, moat=m)
        m.stop()
        d = A.cert_dir(m.data, HOST)
        for name in ("cert.pem", "key.pem"):
            os.rename(os.path.join(d, name), os.path.join(d, name + ".next"))
        m.proc, m._stopped = None, False
        env.start_moat(sites)
        # the very first handshake: no waiting for a later swap
        c = A.served_cert(m.https_port, HOST, env.pebble.root)
        self.assertEqual(c.serial_number, first.serial_number)
        self.assertEqual(sorted(f for f in os.listdir(d) if f.endswith(".next")), [])
        st = A.cert_status(m, HOST)
        self.assertFalse(st.get("placeholder"), st)
        self.assertEqual(st.get("source"), "acme", st)
        self.assertEqual(len(env.pebble.orders()), 1, env.pebble.orders())
        self.assertEqual(A.data_problems(m.data), [])


class Expiry(M.MoatTestCase):
    """Fewer than 7 days left and the CA unreachable: the log warns and
    moat status flags the certificate, which keeps being served. moat runs
    under libfaketime at three days before the certificate's end."""

    def test_warning_when_fewer_than_7_days_remain(self):
        lib = "/usr/lib/x86_64-linux-gnu/faketime/libfaketimeMT.so.1"
        if not os.path.exists(lib):
            self.skipTest("libfaketime is not installed (scripts/deps.sh test)")
        env = A.AcmeEnv(self)
        up = self.upstream()
        sites = {HOST: M.site(up, tls={"acme": "http"})}
        m = env.start_moat(sites)
        A.wait_installed(m, HOST)
        leaf = A.wait_served_by(m.https_port, HOST, env.pebble.root, timeout=10, moat=m)
        m.stop()
        A.reset_stopped(m)
        when = A.not_after(leaf) - 3 * DAY
        # preloaded directly (not the faketime wrapper) so that moat itself
        # gets moatlib's signals; "@" starts the clock there and lets it run
        m.env = dict(os.environ, TZ="UTC", LD_PRELOAD=lib,
                     FAKETIME="@" + when.strftime("%Y-%m-%d %H:%M:%S"),
                     ASAN_OPTIONS=os.environ.get("ASAN_OPTIONS", "") + ":verify_asan_link_order=0")
        # nothing listens at the directory: no renewal can happen
        env.start_moat(sites, acme={"directory": "https://127.0.0.1:%d/dir" % M.free_port()})
        A.wait_log(m, r"acme: %s: the certificate expires in [23] days" % re.escape(HOST))
        st = A.cert_status(m, HOST)
        self.assertTrue(st.get("expiring_soon"), st)
        self.assertIn(st.get("days_left"), (2, 3), st)
        rc, out, err = A.moat_cli("status", "-c", m.conf_file)
        self.assertEqual(rc, 0, err)
        self.assertRegex(out, r"WARNING: expires in [23] days")
        # still served (the clock of this test is not faked: check the serial)
        self.assertEqual(A.served_serial(m.https_port, HOST), leaf.serial_number)


class CaErrors(M.MoatTestCase):
    def first_failure(self, answer):
        """moat started against the directory front answering (status,
        retry_after) once; returns (env, front, moat, reason, wait) of the
        first "failed: REASON; next attempt in WAIT s" line."""
        env = A.AcmeEnv(self)
        front = A.DirStandin(self, env.pebble)
        front.fail(answer)
        up = self.upstream()
        m = env.start_moat({HOST: M.site(up, tls={"acme": "http"})},
                           acme={"directory": front.url})
        A.wait_log(m, r"acme: %s: failed: .*; next attempt in \d+ ?s" % re.escape(HOST))
        reason, wait = A.failures(m, HOST)[0]
        return env, front, m, reason, wait

    def test_503_with_retry_after_then_success(self):
        """The directory answers 503 with Retry-After: 2 once. moat logs the
        failure with a next attempt no sooner than the Retry-After (and no
        later than its first backoff step, a minute), serves the placeholder
        meanwhile, comes back when it said it would, and gets the
        certificate."""
        env, front, m, reason, wait = self.first_failure((503, 2))
        self.assertRegex(reason, r"503|[Uu]navailable|serverInternal", reason)
        self.assertTrue(2 <= wait <= 60, "Retry-After: 2 answered with 'next attempt in %d s'"
                        % wait)
        placeholder(self, m, env, HOST)
        r = M.curl(m, HOST, "/while-failing")
        self.assertEqual(r.status, 200, r)
        st = A.cert_status(m, HOST)
        self.assertTrue(st.get("last_error"), "status shows no last_error: %r" % st)

        A.wait_installed(m, HOST, timeout=wait + A.WAIT)
        self.assertEqual(len(A.failures(m, HOST)), 1, A.failures(m, HOST))
        asked = front.state()["dir"]
        self.assertEqual([e["status"] for e in asked[:2]], [503, 200], asked)
        gap = asked[1]["t"] - asked[0]["t"]
        self.assertGreaterEqual(gap, 1.9, "moat came back %.2f s after a Retry-After: 2" % gap)
        self.assertLessEqual(gap, wait + 10, "moat said 'next attempt in %d s' and came back "
                             "after %.0f s" % (wait, gap))
        c = A.wait_served_by(m.https_port, HOST, env.pebble.root, timeout=10, moat=m)
        self.assertIn(HOST, A.san_names(c))
        self.assertFalse(A.cert_status(m, HOST).get("last_error"))
        self.assertEqual(len(env.pebble.orders()), 1)

    def test_unreachable_ca_between_renewals_is_no_failure(self):
        """With a valid certificate that is not due, the periodic visit to
        the CA (for its renewal window) finding the CA down is a warning:
        no failure, no backoff, no last_error, the certificate still
        "valid" in status."""
        env = A.AcmeEnv(self)
        front = A.DirStandin(self, env.pebble)
        up = self.upstream()
        sites = {HOST: M.site(up, tls={"acme": "http"})}
        m = env.start_moat(sites, acme={"directory": front.url})
        A.wait_installed(m, HOST)
        m.stop()
        # as if the 6 hours to the next visit had passed
        A.due_for_renewal_window(m.data, HOST)
        front.fail((503, None), (503, None), (503, None))
        A.reset_stopped(m)
        env.start_moat(sites, acme={"directory": front.url})
        A.wait_log(m, r"acme: %s: cannot ask the CA for the renewal window" % re.escape(HOST))
        self.assertEqual(A.failures(m, HOST), [], m.stderr())
        st = A.cert_status(m, HOST)
        self.assertEqual(st.get("state"), "valid", st)
        self.assertFalse(st.get("last_error"), st)
        self.assertEqual(st.get("failures"), 0, st)
        A.served_cert(m.https_port, HOST, env.pebble.root)

    def test_retry_after_longer_than_backoff(self):
        """429 with a Retry-After far beyond any backoff: the next attempt is
        not before it."""
        env, front, m, reason, wait = self.first_failure((429, 5000))
        self.assertRegex(reason, r"429|[Rr]ate", reason)
        self.assertTrue(5000 <= wait <= 5100, "Retry-After: 5000 answered with 'next attempt "
                        "in %d s'" % wait)
        placeholder(self, m, env, HOST)
        self.assertTrue(A.cert_status(m, HOST).get("last_error"))

    def test_ca_unreachable_keeps_placeholder(self):
        """A directory on a closed port: moat fails with a reason and a next
        attempt, the site keeps being served, nothing is written as a
        certificate."""
        env = A.AcmeEnv(self)
        dead = "https://127.0.0.1:%d/dir" % M.free_port()
        up = self.upstream()
        m = env.start_moat({HOST: M.site(up, tls={"acme": "http"})}, acme={"directory": dead})
        A.wait_log(m, r"acme: %s: failed: .*; next attempt in \d+ ?s" % re.escape(HOST))
        self.assertGreater(A.failures(m, HOST)[0][1], 0)
        placeholder(self, m, env, HOST)
        r = M.curl(m, HOST, "/unreachable")
        self.assertEqual(r.status, 200, r)
        self.assertTrue(A.cert_status(m, HOST).get("last_error"))
        self.assertFalse(os.path.exists(os.path.join(A.cert_dir(m.data, HOST), "cert.pem")))
        self.assertEqual(A.data_problems(m.data), [])


class Ari(M.MoatTestCase):
    def start(self, **windows):
        env = A.AcmeEnv(self)
        front = A.DirStandin(self, env.pebble)
        front.control(retry_after=1)
        front.set_windows(**windows)
        up = self.upstream()
        sites = {HOST: M.site(up, tls={"acme": "http"})}
        m = env.start_moat(sites, acme={"directory": front.url})
        A.wait_installed(m, HOST)
        first = A.load_pem_certs(os.path.join(A.cert_dir(m.data, HOST), "cert.pem"))[0]
        return env, front, m, sites, first

    def asked(self, front, cid):
        return [e for e in front.state()["ari"] if e["certid"] == cid]

    def wait_or_restart(self, env, m, sites, front, pred, what):
        """pred() within a while; else after a restart (moat may look at
        renewal information at start only)."""
        try:
            return M.wait_until(pred, 10, what)
        except AssertionError:
            pass
        m.stop()
        A.reset_stopped(m)
        env.start_moat(sites, acme={"directory": front.url})
        return M.wait_until(pred, A.WAIT, what + " (after a restart)")

    def test_window_in_past_renews_now(self):
        now = A.utcnow()
        env, front, m, sites, first = self.start(
            first=(now - 2 * DAY, now - DAY), default=(now + 100 * DAY, now + 101 * DAY))
        life = A.not_after(first) - A.not_before(first)
        self.assertGreater(A.not_after(first) - now, life * 2 / 3 - datetime.timedelta(hours=1),
                           "the first certificate is not fresh")
        cid = A.certid(first)
        self.wait_or_restart(env, m, sites, front,
                             lambda: len(env.pebble.issued()) >= 2
                             and A.load_pem_certs(os.path.join(A.cert_dir(m.data, HOST),
                                                               "cert.pem"))[0].serial_number
                             != first.serial_number,
                             "a renewal after an ARI window in the past")
        self.assertTrue(self.asked(front, cid), "moat never asked renewalInfo for %s; asked: %r"
                        % (cid, front.state()["ari"]))
        served = M.wait_until(lambda: (lambda c: c if c.serial_number != first.serial_number
                                       else None)(A.served_cert(m.https_port, HOST,
                                                                env.pebble.root)),
                              A.WAIT, "the renewed certificate served")
        self.assertIn(served.serial_number, [int(s, 16) for s, _ in env.pebble.issued()][1:])
        self.assertEqual(A.data_problems(m.data), [])

    def test_window_in_future_no_renewal(self):
        now = A.utcnow()
        start, end = now + 100 * DAY, now + 101 * DAY
        env, front, m, sites, first = self.start(default=(start, end))
        cid = A.certid(first)
        self.wait_or_restart(env, m, sites, front, lambda: self.asked(front, cid),
                             "moat to ask renewalInfo for %s" % cid)

        def inside():
            v = A.cert_status(m, HOST).get("next_renewal")
            t = A.parse_time(v) if v else None
            return t if t and start - datetime.timedelta(seconds=1) <= t <= end else None
        try:
            M.wait_until(inside, 10, "next_renewal inside the ARI window")
        except AssertionError:
            raise AssertionError("next_renewal %r not inside the ARI window %s .. %s"
                                 % (A.cert_status(m, HOST).get("next_renewal"), start, end))
        self.assertEqual(len(env.pebble.issued()), 1, "renewed although the window is ahead")
        cur = A.load_pem_certs(os.path.join(A.cert_dir(m.data, HOST), "cert.pem"))[0]
        self.assertEqual(cur.serial_number, first.serial_number)
        self.assertEqual(A.served_cert(m.https_port, HOST, env.pebble.root).serial_number,
                         first.serial_number)


if __name__ == "__main__":
    M.main()
