"""
moat's TLS front end driven by the real `openssl s_client`
(runtime-contract.md "HTTPS"; TESTING.md "TLS/mTLS").

Certificates by SNI (internal CA and a file pair), unknown SNI and the default
site, protocol versions and TLS 1.2 cipher suites (Mozilla intermediate),
renegotiation, ALPN, an HTTP request over s_client and session resumption.

Refusals are checked with `-msg`, which prints every record s_client sends
(">>>") and receives ("<<<"): a refusal counts only when the alert came from
moat ("<<< ... Alert ..., fatal protocol_version"), never when s_client itself
declined to offer something ("no protocols available", "no ciphers available").
"""

import os
import re
import subprocess
import tempfile

import moatlib as M
import sclient as S

from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

INTERMEDIATE_ECDSA_12 = ("ECDHE-ECDSA-AES128-GCM-SHA256", "ECDHE-ECDSA-AES256-GCM-SHA384",
                         "ECDHE-ECDSA-CHACHA20-POLY1305")
SUITES_13 = ("TLS_AES_128_GCM_SHA256", "TLS_AES_256_GCM_SHA384", "TLS_CHACHA20_POLY1305_SHA256")


class TlsBase(M.MoatTestCase):
    moat_ = None

    def s_client(self, args, stdin=None, moat=None, timeout=S.TIMEOUT):
        return S.run(self, moat or self.moat_, args, stdin=stdin, timeout=timeout)

    def assert_verified(self, r, name):
        self.assertEqual(r.rc, 0, r)
        self.assertIn("Verify return code: 0 (ok)", r.out, r)
        self.assertIsNotNone(r.session_line(), r)

    def assert_leaf_for(self, r, name):
        certs = r.certs()
        self.assertTrue(certs, "no certificate in -showcerts output: %r" % r)
        leaf = certs[0]
        cns = [a.value for a in leaf.subject.get_attributes_for_oid(NameOID.COMMON_NAME)]
        self.assertEqual(cns, [name], r)
        san = leaf.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
        self.assertEqual(san.get_values_for_type(x509.DNSName), [name], r)
        key = leaf.public_key()
        self.assertIsInstance(key, ec.EllipticCurvePublicKey, r)
        self.assertEqual(key.curve.name, "secp256r1", r)
        return leaf

    def assert_server_alert(self, r, alert):
        """Handshake failed because moat sent a fatal `alert` (not a client-side refusal)."""
        self.assertNotEqual(r.rc, 0, r)
        self.assertTrue(any("ClientHello" in line for line in r.sent()),
                        "s_client did not even send a ClientHello: %r" % r)
        self.assertIn("fatal " + alert, r.alerts_received(), r)
        self.assertEqual(r.handshake_received("ServerHello"), [], r)
        for client_side in ("no protocols available", "no ciphers available",
                            "no cipher match"):
            self.assertNotIn(client_side, r.err, r)

    def check_healthy(self, moat=None, host="a.test"):
        moat = moat or self.moat_
        moat.assert_alive()
        resp = M.curl(moat, host, "/health")
        self.assertEqual(resp.status, 200, resp)


def fingerprint(cert):
    return cert.fingerprint(hashes.SHA256()).hex()


class Tls(TlsBase):
    """a.test and b.test from the internal CA, c.test from a generated file pair;
    no default site."""

    @classmethod
    def setUpClass(cls):
        cls.tmpd = M.tempdir(cls)
        cls.c_cert = M.make_cert(cls.tmpd, ["c.test"])  # ECDSA P-256 CA + leaf
        cls.up = M.RecordingUpstream(owner=cls)
        cls.moat_ = m = M.Moat(cls)
        m.start(m.config({
            "a.test": M.site(cls.up, tls="internal"),
            "b.test": M.site(cls.up, tls="internal"),
            "c.test": M.site(cls.up, tls={"cert": cls.c_cert.cert, "key": cls.c_cert.key}),
        }))

    def ca_for(self, name):
        return self.c_cert.ca_file if name == "c.test" else self.moat_.ca

    def verify_args(self, name):
        return ["-servername", name, "-CAfile", self.ca_for(name), "-verify_return_error",
                "-verify_hostname", name]

    def session_file(self):
        return os.path.join(tempfile.mkdtemp(prefix="sess-", dir=self.tmpd), "session.pem")

    # ------------------------------------------------------------ certificates by SNI

    def test_each_sni_verifies_and_gets_its_own_p256_leaf(self):
        for name in ("a.test", "b.test", "c.test"):
            with self.subTest(sni=name):
                r = self.s_client(self.verify_args(name) + ["-showcerts"])
                self.assert_verified(r, name)
                self.assert_leaf_for(r, name)

    def test_file_site_serves_exactly_the_generated_certificate(self):
        r = self.s_client(self.verify_args("c.test") + ["-showcerts"])
        self.assert_verified(r, "c.test")
        leaf = r.certs()[0]
        self.assertEqual(fingerprint(leaf), self.c_cert.sha256, r)
        # The same answer from the openssl CLI's own parser.
        x = subprocess.run([S.OPENSSL, "x509", "-noout", "-fingerprint", "-sha256",
                            "-ext", "subjectAltName"],
                           input=S.PEM_RE.findall(r.out)[0].encode(), capture_output=True,
                           timeout=S.TIMEOUT)
        self.assertEqual(x.returncode, 0, x)
        text = x.stdout.decode()
        fp = re.search(r"Fingerprint=([0-9A-F:]+)", text).group(1).replace(":", "").lower()
        self.assertEqual(fp, self.c_cert.sha256, text)
        self.assertIn("DNS:c.test", text)

    def test_internal_sites_have_distinct_certificates_from_the_internal_ca(self):
        fps = {}
        for name in ("a.test", "b.test"):
            r = self.s_client(self.verify_args(name) + ["-showcerts"])
            self.assert_verified(r, name)
            leaf = self.assert_leaf_for(r, name)
            with open(self.moat_.ca, "rb") as f:
                ca = x509.load_pem_x509_certificate(f.read())
            self.assertEqual(leaf.issuer, ca.subject, r)
            fps[name] = fingerprint(leaf)
        self.assertNotEqual(fps["a.test"], fps["b.test"])

    def test_wrong_ca_fails_verification(self):
        # a.test's certificate does not chain to c.test's CA: -verify_return_error aborts.
        r = self.s_client(["-servername", "a.test", "-CAfile", self.c_cert.ca_file,
                           "-verify_return_error", "-verify_hostname", "a.test"])
        self.assertNotEqual(r.rc, 0, r)
        self.assertNotIn("Verify return code: 0 (ok)", r.out, r)

    # ------------------------------------------------------------ unknown SNI

    def test_unknown_sni_without_default_gets_unrecognized_name(self):
        r = self.s_client(["-servername", "unknown.test", "-CAfile", self.moat_.ca, "-msg"])
        self.assert_server_alert(r, "unrecognized_name")
        self.assertRegex(r.err, r"(alert unrecognized name|tlsv1 unrecognized name)", r)
        self.assertEqual(r.handshake_received("Certificate"), [], r)
        self.check_healthy()

    def test_no_sni_without_default_is_refused(self):
        r = self.s_client(["-noservername", "-msg"])
        self.assertNotEqual(r.rc, 0, r)
        self.assertTrue(any(a.startswith("fatal ") for a in r.alerts_received()), r)
        self.assertEqual(r.handshake_received("Certificate"), [], r)

    # ------------------------------------------------------------ protocol versions

    def test_tls12_and_tls13_succeed(self):
        for flag, version, allowed in (("-tls1_2", "TLSv1.2", INTERMEDIATE_ECDSA_12),
                                       ("-tls1_3", "TLSv1.3", SUITES_13)):
            for name in ("a.test", "c.test"):
                with self.subTest(version=version, sni=name):
                    r = self.s_client(self.verify_args(name) + [flag])
                    self.assert_verified(r, name)
                    kind, ver, cipher = r.session_line()
                    self.assertEqual((kind, ver), ("New", version), r)
                    self.assertIn(cipher, allowed, r)

    def test_tls11_and_tls10_refused_by_server(self):
        for flag, label in (("-tls1_1", "TLS 1.1"), ("-tls1", "TLS 1.0")):
            with self.subTest(version=flag):
                # SECLEVEL=0 so that s_client itself is willing to offer the old version.
                r = self.s_client(["-servername", "a.test", flag,
                                   "-cipher", "DEFAULT@SECLEVEL=0", "-msg"])
                self.assertTrue(any(line.startswith(">>> %s, Handshake" % label)
                                    and line.endswith("ClientHello") for line in r.sent()),
                                "s_client did not offer %s: %r" % (label, r))
                self.assert_server_alert(r, "protocol_version")
                self.assertIn("alert protocol version", r.err, r)
                self.assertIsNone(r.session_line(), r)  # "New, (NONE), Cipher is (NONE)"
        self.check_healthy()

    # ------------------------------------------------------------ TLS 1.2 ciphers

    def test_tls12_default_cipher_is_mozilla_intermediate(self):
        for name in ("a.test", "b.test", "c.test"):
            with self.subTest(sni=name):
                r = self.s_client(self.verify_args(name) + ["-tls1_2"])
                self.assert_verified(r, name)
                self.assertIn(r.session_line()[2], INTERMEDIATE_ECDSA_12, r)

    def test_each_intermediate_ecdsa_cipher_is_accepted(self):
        for cipher in INTERMEDIATE_ECDSA_12:
            for name in ("a.test", "c.test"):
                with self.subTest(cipher=cipher, sni=name):
                    r = self.s_client(self.verify_args(name) + ["-tls1_2", "-cipher", cipher])
                    self.assert_verified(r, name)
                    self.assertEqual(r.session_line(), ("New", "TLSv1.2", cipher), r)

    def test_non_intermediate_tls12_ciphers_refused_by_server(self):
        # CBC suites (with and without forward secrecy) are not in the intermediate list.
        for cipher in ("ECDHE-ECDSA-AES128-SHA", "AES128-SHA256"):
            with self.subTest(cipher=cipher):
                r = self.s_client(["-servername", "a.test", "-tls1_2", "-cipher",
                                   cipher + ":@SECLEVEL=0", "-msg"])
                self.assert_server_alert(r, "handshake_failure")
                self.assertIn("alert handshake failure", r.err, r)
        self.check_healthy()

    # ------------------------------------------------------------ renegotiation

    def test_client_renegotiation_refused_and_moat_stays_healthy(self):
        r = S.renegotiate(self, self.moat_, ["-servername", "a.test", "-CAfile", self.moat_.ca])
        S.assert_renegotiation_refused(self, r)
        self.check_healthy()

    # ------------------------------------------------------------ ALPN

    def test_alpn_http11_is_selected(self):
        for name in ("a.test", "c.test"):
            with self.subTest(sni=name):
                r = self.s_client(self.verify_args(name) + ["-alpn", "http/1.1"])
                self.assert_verified(r, name)
                self.assertIn("ALPN protocol: http/1.1", r.out, r)

    def test_alpn_h2_and_http11_selects_http11(self):
        r = self.s_client(self.verify_args("a.test") + ["-alpn", "h2,http/1.1"])
        self.assert_verified(r, "a.test")
        self.assertIn("ALPN protocol: http/1.1", r.out, r)

    def test_alpn_h2_only_is_not_negotiated_and_http11_still_works(self):
        req = b"GET /alpn-h2 HTTP/1.1\r\nHost: a.test\r\nConnection: close\r\n\r\n"
        r = self.s_client(self.verify_args("a.test") + ["-alpn", "h2", "-ign_eof"], stdin=req)
        self.assertEqual(r.rc, 0, r)
        self.assertIn("No ALPN negotiated", r.out, r)
        self.assertNotIn("ALPN protocol: h2", r.out, r)
        self.assertRegex(r.out, r"HTTP/1\.1 200 OK\r?\n", r)
        self.assertIn("hello from upstream", r.out, r)
        self.assertEqual(len(self.up.find("/alpn-h2")), 1)

    # ------------------------------------------------------------ HTTP over s_client

    def test_http_request_over_s_client(self):
        req = b"GET /sclient/get?x=1 HTTP/1.1\r\nHost: a.test\r\nConnection: close\r\n\r\n"
        r = self.s_client(self.verify_args("a.test") + ["-quiet"], stdin=req)
        self.assertEqual(r.rc, 0, r)
        resp = M.parse_response(r.out.encode("latin-1", "replace"))
        self.assertEqual(resp.status, 200, r)
        self.assertEqual(resp.body, b"hello from upstream\n", r)
        self.assertEqual(resp.headers.get("strict-transport-security"), "max-age=31536000", r)
        got = self.up.find("/sclient/get")
        self.assertEqual(len(got), 1, got)
        self.assertEqual(got[0].target, "/sclient/get?x=1")
        self.assertEqual(got[0].headers.get("host"), "a.test")
        self.assertEqual(got[0].headers.get("x-forwarded-proto"), "https")

    def test_host_of_another_site_is_misdirected(self):
        req = b"GET /sclient/misdirected HTTP/1.1\r\nHost: b.test\r\nConnection: close\r\n\r\n"
        r = self.s_client(self.verify_args("a.test") + ["-quiet"], stdin=req)
        resp = M.parse_response(r.out.encode("latin-1", "replace"))
        self.assertEqual(resp.status, 421, r)
        self.assertEqual(self.up.find("/sclient/misdirected"), [])

    # ------------------------------------------------------------ session resumption

    def test_session_resumption_tls12(self):
        sess = self.session_file()
        r1 = self.s_client(self.verify_args("a.test") + ["-tls1_2", "-sess_out", sess])
        self.assert_verified(r1, "a.test")
        self.assertEqual(r1.session_line()[:2], ("New", "TLSv1.2"), r1)
        self.assertGreater(os.path.getsize(sess), 0)
        req = b"GET /resume12 HTTP/1.1\r\nHost: a.test\r\nConnection: close\r\n\r\n"
        r2 = self.s_client(self.verify_args("a.test") + ["-tls1_2", "-sess_in", sess,
                                                         "-ign_eof"], stdin=req)
        self.assertEqual(r2.rc, 0, r2)
        self.assertEqual(r2.session_line()[:2], ("Reused", "TLSv1.2"), r2)
        self.assertRegex(r2.out, r"HTTP/1\.1 200 OK\r?\n", r2)

    def test_session_resumption_tls13(self):
        sess = self.session_file()
        # TLS 1.3 tickets arrive after the handshake: read a whole response first.
        req = b"GET /resume13a HTTP/1.1\r\nHost: a.test\r\nConnection: close\r\n\r\n"
        r1 = self.s_client(self.verify_args("a.test") + ["-tls1_3", "-sess_out", sess,
                                                         "-ign_eof"], stdin=req)
        self.assertEqual(r1.rc, 0, r1)
        self.assertEqual(r1.session_line()[:2], ("New", "TLSv1.3"), r1)
        self.assertRegex(r1.out, r"HTTP/1\.1 200 OK\r?\n", r1)
        self.assertTrue(os.path.exists(sess) and os.path.getsize(sess) > 0,
                        "s_client saved no session: %r" % r1)
        req = req.replace(b"resume13a", b"resume13b")
        r2 = self.s_client(self.verify_args("a.test") + ["-tls1_3", "-sess_in", sess,
                                                         "-ign_eof"], stdin=req)
        self.assertEqual(r2.rc, 0, r2)
        self.assertEqual(r2.session_line()[:2], ("Reused", "TLSv1.3"), r2)
        self.assertRegex(r2.out, r"HTTP/1\.1 200 OK\r?\n", r2)

    def test_session_of_one_site_is_not_resumed_under_another_sni(self):
        # TESTING.md: "session resumption under another SNI -> full checks": a session
        # made for a.test offered with SNI b.test must give a full handshake with
        # b.test's own certificate.
        for flag, version in (("-tls1_2", "TLSv1.2"), ("-tls1_3", "TLSv1.3")):
            with self.subTest(version=version):
                sess = self.session_file()
                req = b"GET /cross-a HTTP/1.1\r\nHost: a.test\r\nConnection: close\r\n\r\n"
                r1 = self.s_client(self.verify_args("a.test") + [flag, "-sess_out", sess,
                                                                 "-ign_eof"], stdin=req)
                self.assertEqual(r1.rc, 0, r1)
                self.assertTrue(os.path.exists(sess), r1)
                r2 = self.s_client(self.verify_args("b.test") + [flag, "-sess_in", sess,
                                                                 "-showcerts"])
                self.assertEqual(r2.session_line()[:2], ("New", version),
                                 "a.test's session was resumed under SNI b.test: %r" % r2)
                self.assert_verified(r2, "b.test")
                self.assert_leaf_for(r2, "b.test")


class TlsDefaultSite(TlsBase):
    """A moat whose file-based site c.test is the default site."""

    @classmethod
    def setUpClass(cls):
        cls.tmpd = M.tempdir(cls)
        cls.c_cert = M.make_cert(cls.tmpd, ["c.test"])
        cls.up = M.RecordingUpstream(owner=cls)
        cls.moat_ = m = M.Moat(cls)
        m.start(m.config({
            "a.test": M.site(cls.up, tls="internal"),
            "c.test": M.site(cls.up, tls={"cert": cls.c_cert.cert, "key": cls.c_cert.key},
                             default=True),
        }))

    def default_args(self):
        return ["-CAfile", self.c_cert.ca_file, "-verify_return_error",
                "-verify_hostname", "c.test", "-showcerts"]

    def test_unknown_sni_gets_default_certificate(self):
        r = self.s_client(["-servername", "unknown.test"] + self.default_args())
        self.assert_verified(r, "c.test")
        leaf = self.assert_leaf_for(r, "c.test")
        self.assertEqual(fingerprint(leaf), self.c_cert.sha256, r)

    def test_no_sni_gets_default_certificate(self):
        r = self.s_client(["-noservername"] + self.default_args())
        self.assert_verified(r, "c.test")
        leaf = self.assert_leaf_for(r, "c.test")
        self.assertEqual(fingerprint(leaf), self.c_cert.sha256, r)

    def test_known_sni_still_gets_its_own_certificate(self):
        r = self.s_client(["-servername", "a.test", "-CAfile", self.moat_.ca,
                           "-verify_return_error", "-verify_hostname", "a.test", "-showcerts"])
        self.assert_verified(r, "a.test")
        self.assert_leaf_for(r, "a.test")

    def test_no_sni_request_for_default_site_is_served(self):
        req = b"GET /nosni HTTP/1.1\r\nHost: c.test\r\nConnection: close\r\n\r\n"
        r = self.s_client(["-noservername", "-CAfile", self.c_cert.ca_file, "-quiet"],
                          stdin=req)
        self.assertEqual(r.rc, 0, r)
        resp = M.parse_response(r.out.encode("latin-1", "replace"))
        self.assertEqual(resp.status, 200, r)
        self.assertEqual(len(self.up.find("/nosni")), 1)


if __name__ == "__main__":
    M.main()
