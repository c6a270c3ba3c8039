"""
ACME DNS-01 with real DNS servers, for wildcard certificates.

  DuckDNS   moat calls the DuckDNS stand-in's update API (duckdns_standin.py,
            the real endpoint being a config option) which writes the TXT
            record into pebble-challtestsrv, the DNS server pebble asks.
            DuckDNS's own DNS answers a domain's TXT record for every name
            below it; challtestsrv holds one record per name, so the write is
            mirrored to the name pebble asks (acmelib.TxtFanout).
  RFC 2136  moat sends TSIG-signed dynamic updates to a real bind9 named,
            authoritative for example.test, which pebble uses as its only DNS
            server (named answers A 127.0.0.1 for every name in the zone).
            A wrong TSIG secret: named refuses, moat says so, keeps serving
            the placeholder from its internal CA, and status shows the error.

No wall-clock assertion: waits carry a generous deadline (acmelib.WAIT).
"""

import base64
import os
import re
import ssl

import acmelib as A
import moatlib as M

DUCK_SITE = "*.home.example.duckdns.org"
DUCK_HOST = "photos.home.example.duckdns.org"
DUCK_CHALLENGE = "_acme-challenge.home.example.duckdns.org"
DUCK_TOKEN = "0f1e2d3c-4b5a-6978-8796-a5b4c3d2e1f0"

W_SITE = "*.w.example.test"
W_HOST = "x.w.example.test"
W_CHALLENGE = "_acme-challenge.w.example.test"
N_HOST = "n.example.test"


class DnsCase(M.MoatTestCase):
    def assert_wildcard_served(self, env, m, up, site, host):
        c = A.assert_served_by_pebble(self, env, m, host, site)
        r = env.curl(m, host, "/dns01")
        self.assertEqual(r.status, 200, r)
        self.assertEqual(len(up.find("/dns01")), 1)
        d = A.cert_dir(m.data, site)
        self.assertTrue(os.path.basename(d).startswith("_wildcard."), d)
        chain = A.load_pem_certs(os.path.join(d, "cert.pem"))
        self.assertEqual(chain[0].serial_number, c.serial_number)
        self.assertEqual(A.file_mode(os.path.join(d, "key.pem")), 0o600)
        self.assertEqual(A.data_problems(m.data), [])
        st = A.cert_status(m, site)
        self.assertEqual(st.get("source"), "acme", st)
        self.assertEqual(st.get("challenge"), "dns-01", st)
        self.assertIn(site, st.get("names") or [], st)
        self.assertFalse(st.get("last_error"), st)
        return c


class DuckDNS(DnsCase):
    def test_wildcard_via_duckdns(self):
        env = A.AcmeEnv(self)
        fan = A.TxtFanout(self, env.cts, {"_acme-challenge.example.duckdns.org": [DUCK_CHALLENGE]})
        duck = A.DuckDNS(self, fan.url, token=DUCK_TOKEN, domains=("example",))
        up = self.upstream()
        m = env.start_moat({DUCK_SITE: M.site(up, tls={"acme": "dns"})}, acme={"dns": {
            "provider": "duckdns", "token": DUCK_TOKEN, "url": duck.url,
            "resolver": "127.0.0.1:%d" % env.cts.dns_port, "propagation": "1m"}})
        A.wait_installed(m, DUCK_SITE)
        self.assert_wildcard_served(env, m, up, DUCK_SITE, DUCK_HOST)
        # moat asked DuckDNS for domain "example" (derived from the name) with the
        # token, set a TXT value, and pebble asked challtestsrv for it
        sets = [e for e in duck.log() if e["params"].get("txt")]
        self.assertTrue(sets, "no TXT update reached the DuckDNS stand-in: %r" % duck.log())
        for e in duck.log():
            self.assertEqual(e["params"].get("domains"), "example", e)
            self.assertTrue(e["token_ok"], e)
            self.assertEqual(e["answer"].split("\n")[0] if e["answer"] else None, "OK", e)
        self.assertTrue(env.cts.dns_history(DUCK_CHALLENGE),
                        "pebble never asked for %s" % DUCK_CHALLENGE)
        # the record is cleared afterwards
        M.wait_until(lambda: env.cts.txt(DUCK_CHALLENGE) == [], A.WAIT,
                     "moat to clear the TXT record (stand-in log %r)" % duck.log())
        self.assertNotIn(DUCK_TOKEN, m.stderr(), "the DuckDNS token is in moat's log")


class Rfc2136(DnsCase):
    def rfc2136(self, env, secret=None):
        return {"dns": {"provider": "rfc2136", "server": env.named.addr, "key_name": "moat",
                        "key_secret": secret or env.named.secret, "algorithm": "hmac-sha256",
                        "zone": "example.test"}}

    def test_wildcard_via_rfc2136_named(self):
        env = A.AcmeEnv(self, dns="named", zone="example.test")
        up = self.upstream()
        m = env.start_moat({W_SITE: M.site(up, tls={"acme": "dns"}),
                            N_HOST: M.site(up, tls="acme")}, acme=self.rfc2136(env))
        A.wait_installed(m, W_SITE)
        A.wait_installed(m, N_HOST)  # HTTP-01/TLS-ALPN-01: pebble resolved it through named
        self.assert_wildcard_served(env, m, up, W_SITE, W_HOST)
        c = A.wait_served_by(m.https_port, N_HOST, env.pebble.root, timeout=10, moat=m)
        self.assertIn(N_HOST, A.san_names(c))
        log = env.named.log()
        self.assertRegex(log, r"(?i)/key moat: (signer \"moat\" approved|updating zone "
                         r"'example\.test/IN': adding an RR at '%s' TXT)" % re.escape(W_CHALLENGE),
                         "named saw no signed update adding the TXT record:\n" + log[-3000:])
        M.wait_until(lambda: env.named.txt(W_CHALLENGE) == [], A.WAIT,
                     "moat to delete %s from named" % W_CHALLENGE)
        self.assertNotIn(env.named.secret, m.stderr(), "the TSIG secret is in moat's log")

    def test_bad_tsig_secret(self):
        env = A.AcmeEnv(self, dns="named", zone="example.test")
        up = self.upstream()
        wrong = base64.b64encode(os.urandom(32)).decode()
        m = env.start_moat({W_SITE: M.site(up, tls={"acme": "dns"})},
                           acme=self.rfc2136(env, wrong))
        A.wait_log(m, r"acme: %s: failed: .*; next attempt in \d+ ?s" % re.escape(W_SITE))
        reason, wait = A.failures(m, W_SITE)[0]
        self.assertRegex(reason, r"(?i)tsig|badsig|badkey|notauth|signature|refused",
                         "the failure does not say what went wrong: %r" % reason)
        self.assertGreater(wait, 0)
        self.assertNotIn(wrong, m.stderr(), "the TSIG secret is in moat's log")
        # named refused the update: nothing in the zone
        self.assertEqual(env.named.txt(W_CHALLENGE), [])
        self.assertRegex(env.named.log(), r"(?i)tsig|signature",
                         "named did not see a badly signed update:\n" + env.named.log()[-3000:])
        # still serving: the placeholder from moat's internal CA
        c = A.served_cert(m.https_port, W_HOST, m.ca)
        self.assertFalse(A.issued_by(c, env.pebble.intermediate))
        with self.assertRaises(ssl.SSLError):
            A.served_cert(m.https_port, W_HOST, env.pebble.root)
        r = M.curl(m, W_HOST, "/placeholder")
        self.assertEqual(r.status, 200, r)
        self.assertEqual(len(up.find("/placeholder")), 1)
        st = A.cert_status(m, W_SITE)
        self.assertTrue(st.get("last_error"), "status shows no last_error: %r" % st)
        self.assertEqual(env.pebble.issued(), [])
        self.assertEqual(A.log_count(m, A.installed_rx(W_SITE)), 0)
        self.assertEqual(A.data_problems(m.data), [])


if __name__ == "__main__":
    M.main()
