"""
ACME with a real CA (pebble) from an empty data directory to a served
certificate, per challenge: HTTP-01 and TLS-ALPN-01 (forced), and the
automatic choice. Peers are real and offline (acmelib.py): pebble validates
on moat's own listeners, pebble-challtestsrv answers pebble's DNS (every
name is 127.0.0.1), and clients verify with pebble's root (new at each
pebble start), never with moat's internal CA.

Each test starts its own pebble and moat. pebble runs with
PEBBLE_VA_NOSLEEP=1 and PEBBLE_WFE_NONCEREJECT=0 except in
test_pebble_defaults (5% of nonces refused, random sleeps before each
validation) and test_nonce_rejections (half of the nonces refused).

No wall-clock assertion: waits carry a generous deadline (acmelib.WAIT) only
so that a broken moat fails instead of hanging.
"""

import datetime
import json
import os
import re
import socket
import ssl

import acmelib as A
import clientpki as P
import moatlib as M

from cryptography import x509

HOST = "a.example.test"
HOST2 = "b.example.test"


def read(path):
    with open(path, "rb") as f:
        return f.read()


class AcmeCase(M.MoatTestCase):
    def assert_chains_to_pebble(self, env, m, host):
        return A.assert_served_by_pebble(self, env, m, host)

    def assert_curl_ok(self, env, m, up, host, path):
        r = env.curl(m, host, path)
        self.assertEqual(r.status, 200, "curl --cacert <pebble root> https://%s%s: %r"
                         % (host, path, r))
        got = up.wait_requests(1) and up.find(path)
        self.assertEqual(len(got), 1, "upstream requests: %r" % [q.target for q in up.requests])
        return r

    def assert_files(self, m, host, served):
        """DATA/certs/<host>: cert.pem starts with the served leaf, key.pem is
        0600 and holds its key, state.json parses, no order left over; one
        account; nothing under DATA is torn."""
        d = A.cert_dir(m.data, host)
        chain = A.load_pem_certs(os.path.join(d, "cert.pem"))
        self.assertGreaterEqual(len(chain), 2, "cert.pem should hold the leaf and pebble's "
                                "intermediate")
        self.assertEqual(chain[0].serial_number, served.serial_number,
                         "cert.pem is not the certificate moat serves")
        key = os.path.join(d, "key.pem")
        self.assertEqual(A.file_mode(key), 0o600, "key.pem mode %o" % A.file_mode(key))
        self.assertTrue(A.key_matches_cert(read(key), chain[0]), "key.pem does not match cert.pem")
        json.loads(read(os.path.join(d, "state.json")))
        for left in ("order.json", "order.key"):
            self.assertFalse(os.path.exists(os.path.join(d, left)),
                             "%s left after the order completed" % left)
        accts = A.account_dirs(m.data)
        self.assertEqual(len(accts), 1, "account dirs: %r" % accts)
        for n in ("account.key", "account.json"):
            self.assertTrue(os.path.isfile(os.path.join(accts[0], n)), n)
        akey = os.path.join(accts[0], "account.key")
        self.assertEqual(A.file_mode(akey) & 0o077, 0, "account.key mode %o" % A.file_mode(akey))
        self.assertEqual(A.data_problems(m.data), [])

    def assert_status(self, m, site, cert, challenge=None, source="acme"):
        st = A.cert_status(m, site)
        self.assertEqual(st.get("source"), source, st)
        self.assertIn(site, st.get("names") or [], st)
        self.assertIn("Pebble", st.get("issuer") or "", st)
        na = A.parse_time(st.get("not_after"))
        self.assertLessEqual(abs((na - A.not_after(cert)).total_seconds()), 1.0,
                             "status not_after %s, certificate %s" % (na, A.not_after(cert)))
        self.assertFalse(st.get("last_error"), st)
        self.assertTrue(st.get("state"), st)
        if challenge:
            self.assertEqual(st.get("challenge"), challenge, st)
        return st

    def restart(self, env, m, sites, **kw):
        m.stop()
        A.reset_stopped(m)
        return env.start_moat(sites, **kw)


class Challenges(AcmeCase):
    def test_http01_from_empty_data_dir(self):
        env = A.AcmeEnv(self)
        up = self.upstream()
        m = env.start_moat({HOST: M.site(up, tls={"acme": "http"}),
                            "int.localhost": M.site(up)})
        A.wait_installed(m, HOST)
        # Once the workers have it ("new ACME certificates are being served",
        # logged after "certificate installed"), the very next connection gets it.
        at = m.stderr().find("acme: %s: certificate installed" % HOST)
        A.wait_log(m, r"new ACME certificates are being served", since=at, timeout=10)
        try:
            A.served_cert(m.https_port, HOST, env.pebble.root)
        except ssl.SSLError as e:
            self.fail("moat says the new certificate is being served, yet a new connection "
                      "right after did not get a certificate chaining to pebble's root (%s)" % e)
        text = m.stderr()
        self.assertRegex(text, r"acme: %s: ordering" % re.escape(HOST))
        placed = re.search(r"acme: %s: order placed (\S+)" % re.escape(HOST), text)
        self.assertTrue(placed, text)
        self.assertIn(placed.group(1).rstrip(".,;"), ["%s/my-order/%s" % (
            env.pebble.dir_url.rsplit("/", 1)[0], o) for o in env.pebble.orders()])
        cert = self.assert_chains_to_pebble(env, m, HOST)
        self.assert_curl_ok(env, m, up, HOST, "/after-http01")
        # validated over HTTP-01, on moat's http listener
        urls = [u for u in env.pebble.http_validations() if "//%s:" % HOST in u]
        self.assertTrue(urls, "pebble made no HTTP-01 request for %s:\n%s"
                        % (HOST, env.pebble.log()[-3000:]))
        self.assertTrue(all(":%d/.well-known/acme-challenge/" % m.http_port in u for u in urls),
                        urls)
        self.assertEqual(len(env.pebble.orders()), 1)
        self.assert_files(m, HOST, cert)
        st = self.assert_status(m, HOST, cert, challenge="http-01")
        # default renewal: when a third of the lifetime remains
        life = A.not_after(cert) - A.not_before(cert)
        want = A.not_after(cert) - life / 3
        got = A.parse_time(st.get("next_renewal"))
        self.assertLessEqual(abs((got - want).total_seconds()), life.total_seconds() * 0.05,
                             "next_renewal %s, a third of the lifetime before expiry: %s"
                             % (got, want))
        # a site on the internal CA is listed as such
        self.assertEqual(A.cert_status(m, "int.localhost").get("source"), "internal")

    def test_tls_alpn01_from_empty_data_dir(self):
        env = A.AcmeEnv(self)
        up = self.upstream()
        m = env.start_moat({HOST: M.site(up, tls={"acme": "tls-alpn"})})
        A.wait_installed(m, HOST)
        cert = self.assert_chains_to_pebble(env, m, HOST)
        self.assert_curl_ok(env, m, up, HOST, "/after-alpn")
        self.assertEqual(env.pebble.http_validations(), [],
                         "tls-alpn forced, yet pebble validated over HTTP")
        self.assertEqual(len(env.pebble.orders()), 1)
        self.assert_files(m, HOST, cert)
        self.assert_status(m, HOST, cert, challenge="tls-alpn-01")
        # the acme-tls/1 answer is not what normal clients get
        c = A.served_cert(m.https_port, HOST, env.pebble.root, alpn=["h2", "http/1.1"])
        self.assertEqual(c.serial_number, cert.serial_number)

    def test_pebble_defaults(self):
        """pebble as shipped: 5% of nonces refused (badNonce must be retried)
        and random sleeps before validating (the client must poll)."""
        env = A.AcmeEnv(self, defaults=True)
        self.assertNotIn("PEBBLE_VA_NOSLEEP", env.pebble.env)
        self.assertNotIn("PEBBLE_WFE_NONCEREJECT", env.pebble.env)
        up = self.upstream()
        m = env.start_moat({HOST: M.site(up, tls={"acme": "http"}),
                            HOST2: M.site(up, tls={"acme": "tls-alpn"})})
        A.wait_installed(m, HOST)
        A.wait_installed(m, HOST2)
        for h in (HOST, HOST2):
            cert = self.assert_chains_to_pebble(env, m, h)
            self.assert_files(m, h, cert)
        self.assert_curl_ok(env, m, up, HOST2, "/defaults")
        self.assertEqual(len(env.pebble.issued()), 2)

    def test_nonce_rejections(self):
        """30% of the nonces refused: every badNonce is retried with a fresh
        nonce, and the certificate still arrives without a failed attempt."""
        env = A.AcmeEnv(self, env={"PEBBLE_WFE_NONCEREJECT": "30"})
        up = self.upstream()
        m = env.start_moat({HOST: M.site(up, tls={"acme": "http"})})
        A.wait_installed(m, HOST)
        self.assert_chains_to_pebble(env, m, HOST)
        self.assertEqual(A.failures(m, HOST), [], "badNonce should be retried at once, not "
                         "counted as a failed attempt")
        self.assertEqual(len(env.pebble.orders()), 1)


class Lifecycle(AcmeCase):
    def test_account_reused_across_restart(self):
        env = A.AcmeEnv(self)
        up = self.upstream()
        m = env.start_moat({HOST: M.site(up, tls={"acme": "http"})},
                           acme={"renew_before": "30d"})
        A.wait_installed(m, HOST)
        accts = A.account_dirs(m.data)
        self.assertEqual(len(accts), 1, accts)
        before = {n: read(os.path.join(accts[0], n)) for n in ("account.key", "account.json")}
        cert_a = read(os.path.join(A.cert_dir(m.data, HOST), "cert.pem"))
        self.assertEqual(env.pebble.accounts(), 1)
        # renew_before 30d: next renewal 30 days before expiry
        leaf = A.pem_certs(cert_a)[0]
        st = A.cert_status(m, HOST)
        got = A.parse_time(st.get("next_renewal"))
        want = A.not_after(leaf) - datetime.timedelta(days=30)
        self.assertLessEqual(abs((got - want).total_seconds()), 86400,
                             "renew_before 30d: next_renewal %s, expected about %s" % (got, want))

        m = self.restart(env, m, {HOST: M.site(up, tls={"acme": "http"}),
                                  HOST2: M.site(up, tls={"acme": "http"})},
                         acme={"renew_before": "30d"})
        A.wait_installed(m, HOST2)  # the restarted moat writes a new stderr file
        self.assert_chains_to_pebble(env, m, HOST2)
        self.assert_chains_to_pebble(env, m, HOST)
        self.assertEqual(env.pebble.accounts(), 1, "pebble holds a second account:\n%s"
                         % env.pebble.log()[-3000:])
        self.assertEqual(A.account_dirs(m.data), accts)
        after = {n: read(os.path.join(accts[0], n)) for n in ("account.key", "account.json")}
        self.assertEqual(before, after, "account files changed across the restart")
        # the first certificate was loaded, not ordered again
        self.assertEqual(read(os.path.join(A.cert_dir(m.data, HOST), "cert.pem")), cert_a)
        self.assertEqual(len(env.pebble.orders()), 2, env.pebble.orders())
        self.assertEqual(A.log_count(m, r"acme: %s: ordering" % re.escape(HOST)), 0, m.stderr())
        self.assertEqual(A.log_count(m, r"acme: new account"), 0, m.stderr())

    def test_changed_email_updates_the_account(self):
        """A new acme.email is sent to the existing account (RFC 8555
        7.3.2: a POST to the account URL), not taken as a new account."""
        env = A.AcmeEnv(self)
        up = self.upstream()
        sites = {HOST: M.site(up, tls={"acme": "http"})}
        m = env.start_moat(sites, acme={"email": "old@example.org"})
        A.wait_installed(m, HOST)
        accts = A.account_dirs(m.data)
        kid = json.loads(read(os.path.join(accts[0], "account.json")))["url"]
        # pebble logs its route, the account URL without the id
        kid_path = "/" + kid.split("/", 3)[3].rsplit("/", 1)[0] + "/"
        self.assertEqual(env.pebble.requests("POST", kid_path), 0)
        m = self.restart(env, m, sites, acme={"email": "new@example.org"})
        A.wait_log(m, r"acme: account %s now has contact new@example\.org" % re.escape(kid))
        self.assertGreaterEqual(env.pebble.requests("POST", kid_path), 1)
        saved = json.loads(read(os.path.join(accts[0], "account.json")))
        self.assertEqual(saved["email"], "new@example.org")
        self.assertEqual(saved["url"], kid)
        self.assertEqual(env.pebble.accounts(), 1)
        self.assertEqual(A.account_dirs(m.data), accts)

    def test_other_directory_orders_again(self):
        """A certificate from another directory than the configured one
        (staging, then production) is replaced at once, with the account
        of the new directory."""
        env = A.AcmeEnv(self)
        front = A.DirStandin(self, env.pebble)
        up = self.upstream()
        sites = {HOST: M.site(up, tls={"acme": "http"})}
        m = env.start_moat(sites)
        A.wait_installed(m, HOST)
        first = self.assert_chains_to_pebble(env, m, HOST)
        m.stop()
        # its renewal-window visit due too, so that a moat asking the new
        # directory about the old certificate would do it now
        A.due_for_renewal_window(m.data, HOST)
        A.reset_stopped(m)
        m = env.start_moat(sites, acme={"directory": front.url})
        A.wait_installed(m, HOST)
        self.assertEqual(len(A.account_dirs(m.data)), 2, A.account_dirs(m.data))
        second = A.wait_served_by(m.https_port, HOST, env.pebble.root, timeout=10, moat=m)
        M.wait_until(lambda: A.served_serial(m.https_port, HOST, env.pebble.root)
                     != first.serial_number, 10, "the new directory's certificate served")
        self.assertEqual(len(env.pebble.orders()), 2, env.pebble.orders())
        self.assertIsNotNone(second)
        # the new directory (which offers renewalInfo) was never asked about
        # the old CA's certificate: that one is not the new CA's to know
        # (and a `replaces` naming it would be refused by a real CA)
        old_id = A.certid(first)
        self.assertEqual([e for e in front.state()["ari"] if e["certid"] == old_id], [],
                         front.state()["ari"])

    def test_forced_renewal_keeps_open_connection(self):
        """renew_before longer than pebble's lifetime (5 years): every
        certificate is due as soon as it is installed. A keep-alive
        connection opened right after start keeps being served while
        certificates are swapped under it; a new connection gets a renewed
        certificate. The challenge is chosen by moat (tls: acme)."""
        env = A.AcmeEnv(self, env={"PEBBLE_AUTHZREUSE": "0"})
        up = self.upstream()
        m = env.start_moat({HOST: M.site(up, tls="acme")}, acme={"renew_before": "9000d"})
        # opened before the second certificate can exist (two full orders away);
        # it may see the placeholder or the first certificate
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        ctx.check_hostname, ctx.verify_mode = False, ssl.CERT_NONE
        sock = ctx.wrap_socket(socket.create_connection(("127.0.0.1", m.https_port), timeout=10),
                               server_hostname=HOST)
        kept = x509.load_der_x509_certificate(sock.getpeercert(binary_form=True))
        client = M.H1Client(sock)
        self.addCleanup(client.close)
        n = 0

        def renewed():
            nonlocal n
            n += 1
            client.request("GET", "/keep/%d" % n, HOST)
            r = client.read_response()
            self.assertEqual(r.status, 200, "request %d on the kept connection: %r" % (n, r))
            m.assert_alive()
            return (A.log_count(m, A.installed_rx(HOST)) >= 2
                    and len(env.pebble.issued()) >= 2)
        try:
            M.wait_until(renewed, A.WAIT, "a second certificate installed", interval=0.2)
        except AssertionError as e:
            raise AssertionError("%s; stderr:\n%s" % (e, m.stderr()[-5000:]))
        issued = [int(s, 16) for s, _ in env.pebble.issued()]
        new = self.assert_chains_to_pebble(env, m, HOST)
        self.assertIn(new.serial_number, issued[1:],
                      "a new connection does not get a renewed certificate (served %x, "
                      "issued %s)" % (new.serial_number, ["%x" % i for i in issued]))
        self.assertNotEqual(new.serial_number, kept.serial_number)
        # the kept connection still works, on the certificate it started with
        for i in range(3):
            client.request("GET", "/keep/after-%d" % i, HOST)
            self.assertEqual(client.read_response().status, 200)
        self.assertEqual(x509.load_der_x509_certificate(sock.getpeercert(True)).serial_number,
                         kept.serial_number)
        self.assertEqual(len(up.find("/keep/")), n + 3)
        self.assertEqual(A.data_problems(m.data), [])
        self.assertIn(A.cert_status(m, HOST).get("challenge"), ("tls-alpn-01", "http-01"))


class ClientCerts(AcmeCase):
    def test_http01_on_site_with_required_client_certs(self):
        """HTTP-01 works for sites that require client certificates, but the
        challenge path is no way around the requirement: any other path under
        /.well-known/acme-challenge/ gets what any path gets (308 to https,
        or 403 where plain http is served), and nothing reaches the app."""
        env = A.AcmeEnv(self)
        pki = P.ClientPki(self.tmp())
        ca = pki.ca("moat acme test client CA", stem="ca")
        up = self.upstream()
        redir, plain = "c.example.test", "d.example.test"
        m = env.start_moat({
            redir: M.site(up, tls={"acme": "http"}, clients="required", client_ca=ca.cert),
            plain: M.site(up, tls={"acme": "http"}, clients="required", client_ca=ca.cert,
                          redirect=False),
        })
        A.wait_installed(m, redir)
        A.wait_installed(m, plain)
        for h in (redir, plain):
            self.assert_chains_to_pebble(env, m, h)
            self.assertTrue([u for u in env.pebble.http_validations() if "//%s:" % h in u],
                            "no HTTP-01 validation of %s" % h)
        # (a dot segment may also be refused outright: 400)
        probes = [("/.well-known/acme-challenge/not-a-token", ()),
                  ("/.well-known/acme-challenge/", ()),
                  ("/.well-known/acme-challenge/abc?x=1", ()),
                  ("/.well-known/acme-challenge/x/../../private", (400,))]
        for p, also in probes:
            r = env.curl(m, redir, p, scheme="http")
            self.assertIn(r.status, (308,) + also, "http %s on %s: %r" % (p, redir, r))
            if r.status == 308:
                self.assertTrue((r.headers.get("location") or "").startswith("https://"), r)
            r = env.curl(m, plain, p, scheme="http")
            self.assertIn(r.status, (403,) + also, "http %s on %s (plain http, clients "
                          "required): %r" % (p, plain, r))
            for h in (redir, plain):
                r = env.curl(m, h, p)
                self.assertIn(r.status, (403,) + also, "https %s on %s without a client cert: %r"
                              % (p, h, r))
        self.assertEqual([q.target for q in up.requests], [],
                         "requests reached the app without a client certificate")


if __name__ == "__main__":
    M.main()
