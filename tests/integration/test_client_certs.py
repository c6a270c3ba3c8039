"""
Client certificates per site (clients: off | optional | required, client_ca,
crl, public), driven by real clients: curl, `openssl s_client` and python
ssl sockets, against a test PKI built with python cryptography (clientpki.py).

Classes:
  Policy      one shared moat: a required site with a public list, an optional
              site, a site without a client policy and a plain-http required
              site. Nothing here changes the CRL.
  Revocation  one moat per test: CRLs rewritten while moat runs (live
              connections closed, resumed sessions judged again, broken CRLs
              ignored, a CRL going stale).
  Refusals    bad client_ca / crl files at startup, on reload and in
              `moat check`.

Every request in the shared moat uses its own path (or a snapshot of the
upstream's requests) so that tests do not see each other's traffic.
"""

import datetime
import hashlib
import json
import os
import re
import socket
import ssl
import subprocess
import tempfile
import time

import clientpki as P
import moatlib as M
import sclient as S

from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.x509.oid import NameOID

PUBLIC = ["GET /share/**", "GET /api/shared-links/me", "GET,HEAD /api/assets/*/thumbnail"]
BROWSER_ACCEPT = "text/html,application/xhtml+xml,application/xml;q=0.9,image/avif,*/*;q=0.8"
SPOOF = [("X-Client-Cert-Subject", "CN=admin"),
         ("X-Client-Cert-Fingerprint", "0" * 64),
         ("X-Client-Cert", "-----BEGIN CERTIFICATE-----forged"),
         ("x-client-cert-serial", "01"),
         ("X-CLIENT-CERTIFICATE", "forged"),
         # CGI-style servers (PHP, WSGI) read '_' as '-': these spellings too
         ("X_Client_Cert_Subject", "CN=admin"),
         ("x-client_cert-fingerprint", "1" * 64)]


# ---------------------------------------------------------------- helpers

def make_pki(owner):
    """The PKI every class uses: one CA, good and bad client certificates."""
    d = M.tempdir(owner)
    pki = P.ClientPki(d)
    k = type("Pki", (), {})()
    k.pki, k.dir = pki, d
    k.ca = pki.ca("moat test client CA", stem="ca")
    k.foreign_ca = pki.ca("foreign client CA", stem="foreign-ca")
    # Same subject as the real CA, other key: the issuer name alone must not be trusted.
    k.impostor_ca = pki.ca("moat test client CA", stem="impostor-ca")
    k.phone = pki.leaf("phone", k.ca)
    k.laptop = pki.leaf("laptop", k.ca)
    k.tablet = pki.leaf("tablet", k.ca)
    k.tablet12 = pki.leaf("tablet12", k.ca)
    k.both = pki.leaf("both", k.ca, eku=("server", "client"))
    k.family = pki.leaf("family", k.ca, subject=x509.Name([
        x509.NameAttribute(NameOID.COUNTRY_NAME, "DE"),
        x509.NameAttribute(NameOID.ORGANIZATION_NAME, "Smith, Jones & Co"),
        x509.NameAttribute(NameOID.COMMON_NAME, "family tv")]))
    k.stolen = pki.leaf("stolen", k.ca)  # listed in the CRL from the start
    # A second CA for sites that trust a bundle of two; its CRL lists a serial
    # that one of the first CA's certificates also carries ("twin").
    k.ca2 = pki.ca("second client CA", stem="ca2")
    k.kid = pki.leaf("kid", k.ca2)
    k.lost = pki.leaf("lost", k.ca2)
    k.twin = pki.leaf("twin", k.ca)
    k.twin2 = pki.leaf("twin2", k.ca2, serial=k.twin.serial)
    # A valid client (phone) signs a certificate for "admin" with its own key and
    # sends it with its own certificate as the chain: phone is no CA.
    forged = pki.leaf("admin", k.phone)
    P.ClientPki.write_atomic(forged.cert, read_file(forged.cert) + read_file(k.phone.cert))
    k.bad = {
        "expired": pki.leaf("old", k.ca, not_before=-60, not_after=-1),
        "not-yet-valid": pki.leaf("future", k.ca, not_before=1, not_after=60),
        "foreign": pki.leaf("stranger", k.foreign_ca),
        "impostor": pki.leaf("impostor", k.impostor_ca),
        "self-signed": pki.self_signed("selfie"),
        "no-eku": pki.leaf("noeku", k.ca, eku=None),
        "server-only": pki.leaf("serveronly", k.ca, eku=("server",)),
        "revoked": k.stolen,
        "signed-by-leaf": forged,
    }
    k.reason = {"expired": "expired", "not-yet-valid": "not-yet-valid", "foreign": "untrusted",
                "impostor": "untrusted", "self-signed": "untrusted", "no-eku": "wrong-usage",
                "server-only": "wrong-usage", "revoked": "revoked",
                "signed-by-leaf": "untrusted"}
    return k


def client_ctx(moat, leaf=None, max_version=None, min_version=None, check_hostname=True):
    ctx = M.tls_context(moat.ca, min_version=min_version, max_version=max_version,
                        check_hostname=check_hostname)
    if leaf is not None:
        ctx.load_cert_chain(leaf.cert, leaf.key)
    return ctx


def connect(moat, sni, leaf=None, **kw):
    return M.H1Client(M.tls_connect(moat, sni, ctx=client_ctx(moat, leaf, **kw)))


def one_request(moat, sni, method, path, host=None, headers=(), leaf=None, body=None,
                scheme="https", **kw):
    """One request on a fresh connection (Connection: close)."""
    if scheme == "https":
        c = connect(moat, sni, leaf, **kw)
    else:
        c = M.H1Client(socket.create_connection(("127.0.0.1", moat.http_port), timeout=10))
    try:
        c.request(method, path, host or sni, list(headers) + ["Connection: close"], body=body)
        return c.read_response(head=method == "HEAD")
    finally:
        c.close()


def cert_args(leaf):
    return ["--cert", leaf.cert, "--key", leaf.key]


def cc_headers(req):
    """Every X-Client-Cert* header the upstream received (also spelled with
    underscores), names lower-cased."""
    return [(k.lower(), v) for k, v in req.headers
            if k.lower().replace("_", "-").startswith("x-client-cert")]


def is_closed(sock, wait):
    """True when the peer closed sock (EOF, reset, TLS close) within `wait` s.
    Application data arriving meanwhile is an error: the test expects silence."""
    end = time.monotonic() + wait
    while True:
        left = end - time.monotonic()
        if left <= 0:
            return False
        sock.settimeout(left)
        try:
            data = sock.recv(65536)
        except (socket.timeout, TimeoutError):
            return False
        except (ConnectionResetError, BrokenPipeError, ssl.SSLZeroReturnError, ssl.SSLEOFError):
            return True
        except ssl.SSLError as e:
            return True if ("EOF" in str(e) or "reset" in str(e).lower()) else _raise(e)
        except OSError:
            return True
        if not data:
            return True
        raise AssertionError("unexpected data on an idle connection: %r" % data[:300])


def logged_name(reason, leaf):
    """The access log's cert for a rejected certificate: its name when the
    site's CA issued it for clients (it only expired, say), else null."""
    return leaf.cn if reason in ("expired", "not-yet-valid", "revoked", "crl-stale") else None


def read_file(path):
    with open(path, "rb") as f:
        return f.read()


def _raise(e):
    raise e


class Base(M.MoatTestCase):
    moat_ = None
    k = None

    # -------------------------------------------------------- clients

    def curl(self, host, path, leaf=None, extra=(), moat=None, **kw):
        return M.curl(moat or self.moat_, host, path,
                      extra=(cert_args(leaf) if leaf else []) + list(extra), **kw)

    def req(self, sni, method, path, moat=None, **kw):
        return one_request(moat or self.moat_, sni, method, path, **kw)

    def s_client(self, args, stdin=None, moat=None, timeout=S.TIMEOUT):
        return S.run(self, moat or self.moat_, args, stdin=stdin, timeout=timeout)

    def sclient_http(self, sni, path, leaf=None, version="-tls1_3", sess_out=None,
                     sess_in=None, host=None, extra=(), moat=None):
        moat = moat or self.moat_
        args = ["-servername", sni, "-CAfile", moat.ca, "-verify_return_error",
                "-verify_hostname", sni, version, "-ign_eof"]
        if leaf is not None:
            args += ["-cert", leaf.cert, "-key", leaf.key]
        if sess_out:
            args += ["-sess_out", sess_out]
        if sess_in:
            args += ["-sess_in", sess_in]
        args += list(extra)
        req = ("GET %s HTTP/1.1\r\nHost: %s\r\nConnection: close\r\n\r\n"
               % (path, host or sni)).encode()
        return self.s_client(args, stdin=req, moat=moat)

    def session_file(self):
        return os.path.join(tempfile.mkdtemp(prefix="sess-", dir=self.k.dir), "session.pem")

    # -------------------------------------------------------- checks

    def log_for(self, path, count=1, moat=None, timeout=10):
        """Access log lines whose path (the normalised target, query included) is
        exactly `path` (once there are `count`)."""
        moat = moat or self.moat_
        return moat.wait_access_log(lambda x: x.get("path") == path, timeout, count)

    def assert_log(self, path, access, cert, moat=None, status=None):
        lines = self.log_for(path, moat=moat)
        self.assertEqual(len(lines), 1, "access log lines for %s: %r" % (path, lines))
        line = lines[0]
        self.assertEqual(line.get("access"), access, "access log line %r" % line)
        self.assertIn("cert", line, "no cert field in access log line %r" % line)
        if cert is not Ellipsis:
            self.assertEqual(line.get("cert"), cert, "access log line %r" % line)
        if status is not None:
            self.assertEqual(line.get("status"), status, "access log line %r" % line)
        return line

    def assert_denied(self, r, reason, host, html=False, head=False):
        """A 403 from moat's client-certificate policy (head: answer to HEAD, no body)."""
        self.assertEqual(r.status, 403, r)
        ctype = r.headers.get("content-type") or ""
        vary = [t.strip().lower() for t in (r.headers.get("vary") or "").split(",")]
        self.assertIn("accept", vary, "Vary: %r in %r" % (r.headers.get("vary"), r))
        self.assertEqual(r.headers.get("cache-control"), "no-store", r)
        if head:
            self.assertEqual(r.body, b"", r)
            self.assertTrue(ctype.startswith("application/json"), "Content-Type %r: %r"
                            % (ctype, r))
            return None
        if html:
            self.assertTrue(ctype.startswith("text/html"), "Content-Type %r: %r" % (ctype, r))
            self.assertIn(b"<html", r.body.lower(), r)
            return None
        self.assertTrue(ctype.startswith("application/json"), "Content-Type %r: %r" % (ctype, r))
        try:
            doc = json.loads(r.body)
        except ValueError as e:
            raise AssertionError("403 body is not JSON (%s): %r" % (e, r.body))
        want_error = ("client_certificate_required" if reason == "no-cert"
                      else "client_certificate_rejected")
        self.assertEqual(doc.get("error"), want_error, doc)
        self.assertEqual(doc.get("reason"), reason, doc)
        self.assertEqual(doc.get("host"), host, doc)
        self.assertIsInstance(doc.get("message"), str, doc)
        self.assertTrue(doc["message"], doc)
        return doc

    def assert_identity(self, req, leaf):
        self.assertEqual(cc_headers(req),
                         [("x-client-cert-subject", leaf.cert_obj.subject.rfc4514_string()),
                          ("x-client-cert-fingerprint", leaf.sha256)],
                         "identity headers the upstream got for %s: %r" % (leaf.cn, req))
        self.assertEqual(leaf.sha256, leaf.cert_obj.fingerprint(hashes.SHA256()).hex())

    def assert_anonymous(self, req):
        self.assertEqual(cc_headers(req), [], "upstream got X-Client-Cert* headers: %r" % req)

    def one(self, up, path):
        reqs = [r for r in up.requests if r.target == path]
        self.assertEqual(len(reqs), 1, "upstream requests for %s: %r" % (path, up.requests))
        return reqs[0]

    def none_for(self, up, prefix):
        self.assertEqual(up.find(prefix), [], "upstream got requests for %s" % prefix)


# ================================================================ Policy

class Policy(Base):
    """photos.localhost: required (+ public list); opt.localhost: optional;
    open.localhost: no client policy; plain.localhost: required, plain http
    served (redirect: false). CRL lists `stolen` only."""

    @classmethod
    def setUpClass(cls):
        cls.k = k = make_pki(cls)
        cls.crl = k.pki.write_crl(os.path.join(k.dir, "crl.pem"), k.ca, revoked=[k.stolen])
        cls.up_photos = M.RecordingUpstream(owner=cls)
        cls.up_opt = M.RecordingUpstream(owner=cls)
        cls.up_open = M.RecordingUpstream(owner=cls)
        cls.up_plain = M.RecordingUpstream(owner=cls)
        cls.up_multi = M.RecordingUpstream(owner=cls)
        # Two CAs in one client_ca file, one CRL per CA in one crl file.
        cls.ca_bundle = P.ClientPki.write_atomic(os.path.join(k.dir, "bundle-ca.pem"),
                                                 read_file(k.ca.cert) + read_file(k.ca2.cert))
        cls.crl_bundle = P.ClientPki.write_atomic(
            os.path.join(k.dir, "bundle-crl.pem"),
            k.pki.crl_pem(k.ca, [k.stolen]) + k.pki.crl_pem(k.ca2, [k.lost, k.twin2]))
        cls.moat_ = m = M.Moat(cls)
        m.start(m.config({
            "photos.localhost": M.site(cls.up_photos, clients="required",
                                       client_ca=k.ca.cert, crl=cls.crl, public=PUBLIC),
            "opt.localhost": M.site(cls.up_opt, clients="optional", client_ca=k.ca.cert,
                                    crl=cls.crl),
            "open.localhost": M.site(cls.up_open),
            "plain.localhost": M.site(cls.up_plain, clients="required", client_ca=k.ca.cert,
                                      crl=cls.crl, redirect=False, public=["GET /share/**"]),
            "multi.localhost": M.site(cls.up_multi, clients="required", client_ca=cls.ca_bundle,
                                      crl=cls.crl_bundle),
        }))

    # -------------------------------------------------------- 1. no certificate

    def test_01_required_without_cert_is_403_json(self):
        r = self.curl("photos.localhost", "/t01/json")
        self.assert_denied(r, "no-cert", "photos.localhost")
        self.assert_log("/t01/json", "deny:no-cert", None, status=403)
        # A POST with a body: refused as well, and the body never goes upstream.
        r = self.curl("photos.localhost", "/t01/post", data=b"secret=1",
                      headers=["Content-Type: application/x-www-form-urlencoded"])
        self.assert_denied(r, "no-cert", "photos.localhost")
        self.assert_log("/t01/post", "deny:no-cert", None, status=403)
        # Accept naming both html and json: JSON.
        r = self.curl("photos.localhost", "/t01/both",
                      headers=["Accept: text/html, application/json"])
        self.assert_denied(r, "no-cert", "photos.localhost")
        self.none_for(self.up_photos, "/t01")

    def test_01_required_without_cert_is_403_html_for_browsers(self):
        r = self.curl("photos.localhost", "/t01/html", headers=["Accept: " + BROWSER_ACCEPT])
        self.assert_denied(r, "no-cert", "photos.localhost", html=True)
        self.assert_log("/t01/html", "deny:no-cert", None, status=403)
        self.none_for(self.up_photos, "/t01")

    def test_01_denied_request_body_is_never_parsed_as_requests(self):
        # The body of a refused POST holds two requests for public paths; neither
        # may reach the upstream (as they would if moat read the body as requests).
        inner = (b"GET /share/t01-smuggled HTTP/1.1\r\nHost: photos.localhost\r\n\r\n"
                 b"GET /share/t01-smuggled2 HTTP/1.1\r\nHost: photos.localhost\r\n\r\n")
        c = connect(self.moat_, "photos.localhost")
        self.addCleanup(c.close)
        buf, closed = M.raw_exchange(c.sock, b"POST /t01/desync HTTP/1.1\r\nHost: photos.localhost"
                                     b"\r\nContent-Length: %d\r\n\r\n" % len(inner) + inner,
                                     timeout=3)
        self.assertEqual(M.parse_status(buf), 403, buf[:400])
        self.assertEqual(len(re.findall(rb"HTTP/1\.1 \d{3} ", buf)), 1,
                         "more than one response to one request: %r" % buf)
        self.none_for(self.up_photos, "/share/t01-smuggled")
        self.none_for(self.up_photos, "/t01/")

    def test_01_denied_post_with_expect_100_continue(self):
        c = connect(self.moat_, "photos.localhost")
        self.addCleanup(c.close)
        c.send(b"POST /t01/expect HTTP/1.1\r\nHost: photos.localhost\r\nContent-Length: 5\r\n"
               b"Expect: 100-continue\r\n\r\n")
        r = c.read_response()
        self.assert_denied(r, "no-cert", "photos.localhost")
        self.none_for(self.up_photos, "/t01/expect")

    def test_01_pipelined_public_and_private_requests(self):
        c = connect(self.moat_, "photos.localhost")
        self.addCleanup(c.close)
        c.send(b"GET /share/t01-p1 HTTP/1.1\r\nHost: photos.localhost\r\n\r\n"
               b"GET /t01/p2 HTTP/1.1\r\nHost: photos.localhost\r\n\r\n"
               b"GET /share/t01-p3 HTTP/1.1\r\nHost: photos.localhost\r\nConnection: close\r\n\r\n")
        got = [c.read_response().status for _ in range(3)]
        self.assertEqual(got, [200, 403, 200])
        self.assertEqual([q.target for q in self.up_photos.requests if "t01-p" in q.target
                          or "/t01/p" in q.target], ["/share/t01-p1", "/share/t01-p3"])

    # -------------------------------------------------------- 2. valid certificate

    def test_02_valid_cert_passes_with_identity_headers(self):
        r = self.curl("photos.localhost", "/t02/a?x=1", leaf=self.k.phone)
        self.assertEqual(r.status, 200, r)
        self.assertEqual(r.body, b"hello from upstream\n", r)
        got = self.one(self.up_photos, "/t02/a?x=1")
        self.assertEqual(got.headers.get("x-client-cert-subject"), "CN=phone", got)
        self.assertEqual(got.headers.get("x-client-cert-fingerprint"),
                         hashlib.sha256(self.k.phone.der).hexdigest(), got)
        self.assertRegex(got.headers.get("x-client-cert-fingerprint"), r"^[0-9a-f]{64}$")
        self.assert_identity(got, self.k.phone)
        self.assert_log("/t02/a?x=1", "allow:cert", "phone", status=200)

    def test_02_valid_cert_post_passes_with_body(self):
        r = self.curl("photos.localhost", "/t02/post", leaf=self.k.laptop, data=b"abc=1")
        self.assertEqual(r.status, 200, r)
        got = self.one(self.up_photos, "/t02/post")
        self.assertEqual(got.body, b"abc=1")
        self.assert_identity(got, self.k.laptop)
        self.assert_log("/t02/post", "allow:cert", "laptop", status=200)

    def test_02_subject_is_rfc4514_with_escaping(self):
        r = self.curl("photos.localhost", "/t02/dn", leaf=self.k.family)
        self.assertEqual(r.status, 200, r)
        got = self.one(self.up_photos, "/t02/dn")
        want = self.k.family.cert_obj.subject.rfc4514_string()
        self.assertEqual(want, "CN=family tv,O=Smith\\, Jones & Co,C=DE")
        self.assertEqual(got.headers.get("x-client-cert-subject"), want, got)
        self.assert_identity(got, self.k.family)
        self.assert_log("/t02/dn", "allow:cert", "family tv")

    def test_02_subject_with_control_characters_cannot_inject_headers(self):
        # The CA issued it, so it is valid; its CN must still not break the
        # header block upstream, nor the JSON access log.
        leaf = self.k.pki.leaf("evil\r\nX-Injected: 1", self.k.ca, stem="evil")
        r = self.req("photos.localhost", "GET", "/t02/evil", leaf=leaf)
        self.assertEqual(r.status, 200, r)
        got = self.one(self.up_photos, "/t02/evil")
        self.assertIsNone(got.headers.get("x-injected"), got)
        self.assertNotIn(b"\nX-Injected", got.head, got)
        subj = got.headers.get_all("x-client-cert-subject")
        self.assertEqual(len(subj), 1, got)
        self.assertTrue(subj[0].startswith("CN=evil") and subj[0].isprintable(), got)
        self.assertEqual(got.headers.get("x-client-cert-fingerprint"), leaf.sha256, got)
        line = self.log_for("/t02/evil")[0]  # the log still parses as JSON
        self.assertEqual(line.get("access"), "allow:cert", line)
        self.assertNotIn("\n", line.get("cert") or "", line)

    def test_02_cert_with_server_and_client_usage_passes(self):
        r = self.curl("photos.localhost", "/t02/both", leaf=self.k.both)
        self.assertEqual(r.status, 200, r)
        self.assert_identity(self.one(self.up_photos, "/t02/both"), self.k.both)
        self.assert_log("/t02/both", "allow:cert", "both")

    def test_02_valid_cert_on_public_path_is_named(self):
        r = self.curl("photos.localhost", "/share/t02-pub", leaf=self.k.phone)
        self.assertEqual(r.status, 200, r)
        self.assert_identity(self.one(self.up_photos, "/share/t02-pub"), self.k.phone)
        line = self.log_for("/share/t02-pub")[0]
        self.assertIn(line.get("access"), ("allow:cert", "allow:public"), line)
        self.assertEqual(line.get("cert"), "phone", line)

    # -------------------------------------------------------- 3. spoofed identity headers

    def test_03_spoofed_identity_headers_never_reach_upstream(self):
        k = self.k
        cases = [
            # (name, host, path, leaf, upstream, expected identity leaf or None)
            ("required+cert", "photos.localhost", "/t03/req-cert", k.phone, self.up_photos,
             k.phone),
            ("required public, no cert", "photos.localhost", "/share/t03-pub", None,
             self.up_photos, None),
            ("required public, bad cert", "photos.localhost", "/share/t03-pub-bad",
             k.bad["foreign"], self.up_photos, None),
            ("optional, no cert", "opt.localhost", "/t03/opt-none", None, self.up_opt, None),
            ("optional, bad cert", "opt.localhost", "/t03/opt-bad", k.bad["expired"],
             self.up_opt, None),
            ("optional+cert", "opt.localhost", "/t03/opt-cert", k.laptop, self.up_opt,
             k.laptop),
            ("clients off", "open.localhost", "/t03/open", None, self.up_open, None),
            ("clients off, cert offered", "open.localhost", "/t03/open-cert", k.phone,
             self.up_open, None),
        ]
        for name, host, path, leaf, up, ident in cases:
            with self.subTest(case=name):
                r = self.curl(host, path, leaf=leaf, headers=SPOOF)
                self.assertEqual(r.status, 200, r)
                got = self.one(up, path)
                if ident is None:
                    self.assert_anonymous(got)
                else:
                    self.assert_identity(got, ident)
                    self.assertEqual(len(got.headers.get_all("x-client-cert-subject")), 1, got)

    def test_03_spoofed_headers_stripped_on_plain_http(self):
        r = self.curl("plain.localhost", "/share/t03-plain", scheme="http", headers=SPOOF)
        self.assertEqual(r.status, 200, r)
        self.assert_anonymous(self.one(self.up_plain, "/share/t03-plain"))

    def test_03_spoofed_headers_with_odd_spelling_on_raw_connection(self):
        # Whitespace before the colon is a 400; any letter case is stripped.
        r = self.req("open.localhost", "GET", "/t03/raw-case",
                     headers=["x-CLIENT-cert-SUBJECT: CN=admin", "X-Client-Cert-Anything: 1"])
        self.assertEqual(r.status, 200, r)
        self.assert_anonymous(self.one(self.up_open, "/t03/raw-case"))

    def test_03_spoofed_identity_trailers_never_reach_upstream(self):
        for host, up, leaf in (("open.localhost", self.up_open, None),
                               ("photos.localhost", self.up_photos, self.k.phone),
                               ("opt.localhost", self.up_opt, self.k.phone)):
            with self.subTest(host=host):
                path = "/t03/trailer-" + host.split(".")[0]
                c = connect(self.moat_, host, leaf)
                self.addCleanup(c.close)
                c.send(("POST %s HTTP/1.1\r\nHost: %s\r\nTransfer-Encoding: chunked\r\n"
                        "Trailer: X-Client-Cert-Subject\r\nConnection: close\r\n\r\n"
                        "3\r\nabc\r\n0\r\nX-Client-Cert-Subject: CN=admin\r\n"
                        "X-Client-Cert-Fingerprint: %s\r\n\r\n" % (path, host, "0" * 64)).encode())
                r = c.read_response()
                self.assertEqual(r.status, 200, r)
                got = self.one(up, path)
                self.assertEqual(got.body, b"abc", got)
                bad = [(k_, v) for k_, v in got.trailers if k_.lower().startswith("x-client-cert")]
                self.assertEqual(bad, [], "spoofed trailers reached the upstream: %r" % got)
                if leaf is None:
                    self.assert_anonymous(got)
                else:
                    self.assert_identity(got, leaf)

    # -------------------------------------------------------- 4. public table

    PUBLIC_TABLE = [
        # (method, raw target, status, target the upstream must see or None)
        ("GET", "/share/pt-abc", 200, "/share/pt-abc"),
        ("POST", "/share/pt-abc", 403, None),
        ("HEAD", "/share/pt-head", 403, None),
        ("GET", "/share", 403, None),
        ("GET", "/share/", 200, "/share/"),
        ("GET", "/share/pt-a/b/c", 200, "/share/pt-a/b/c"),
        ("GET", "/sharex/pt", 403, None),
        ("GET", "/SHARE/pt-upper", 403, None),
        ("HEAD", "/api/assets/1/thumbnail", 200, "/api/assets/1/thumbnail"),
        ("GET", "/api/assets/1/thumbnail", 200, "/api/assets/1/thumbnail"),
        ("POST", "/api/assets/1/thumbnail", 403, None),
        ("GET", "/api/assets/1/2/thumbnail", 403, None),
        ("GET", "/api/assets//thumbnail", 403, None),
        ("GET", "/api/assets/1/thumbnail/x", 403, None),
        ("GET", "/api/assets/1/thumbnail/", 403, None),
        ("GET", "/api/shared-links/me?key=x", 200, "/api/shared-links/me?key=x"),
        ("GET", "/api/shared-links/me/x", 403, None),
        ("POST", "/api/shared-links/me", 403, None),
        ("GET", "/api/albums", 403, None),
        ("GET", "/share/../api/albums", 403, None),
        ("GET", "/share/pt-q/../../api/albums?x=/share/", 403, None),
        ("GET", "/%73hare/pt-esc", 200, "/share/pt-esc"),
        ("GET", "/share/./pt-dot", 200, "/share/pt-dot"),
        ("GET", "//share//pt-dbl", 200, "/share/pt-dbl"),
        ("GET", "/share/pt-query?next=/../api/albums", 200, "/share/pt-query?next=/../api/albums"),
        ("GET", "/share%2fpt-x", 400, None),
        ("GET", "/share%2Fpt-x", 400, None),
        ("GET", "/share/%2e%2e/api", 400, None),
        ("GET", "/share/%2E%2E/api/albums", 400, None),
        ("GET", "/share\\pt-bs", 400, None),
        ("GET", "/share/pt-nul%00", 400, None),
    ]

    def test_04_public_table_without_cert(self):
        before = len(self.up_photos.requests)
        log_before = len(self.moat_.access_log_lines())
        want_up = []
        for method, target, status, up_target in self.PUBLIC_TABLE:
            with self.subTest(method=method, target=target):
                r = self.req("photos.localhost", method, target,
                             body=b"" if method == "POST" else None)
                self.assertEqual(r.status, status, "%s %s -> %r" % (method, target, r))
                if status == 403:
                    self.assert_denied(r, "no-cert", "photos.localhost", head=method == "HEAD")
            if up_target is not None:
                want_up.append((method, up_target))
        got = [(q.method, q.target) for q in self.up_photos.requests[before:]]
        self.assertEqual(got, want_up, "upstream saw exactly the public requests")
        for q in self.up_photos.requests[before:]:
            self.assert_anonymous(q)
        # Log: the allowed ones say allow:public, the denied ones deny:no-cert.
        M.wait_until(lambda: len(self.moat_.access_log_lines()) - log_before
                     >= len(self.PUBLIC_TABLE), 10, "access log lines for the table")
        lines = self.moat_.access_log_lines()[log_before:]
        for method, target, status, up_target in self.PUBLIC_TABLE:
            if status == 400:
                continue
            with self.subTest(method=method, target=target, log=True):
                if status == 200:
                    ms = [x for x in lines if x.get("path") == up_target
                          and x.get("method") == method]
                    self.assertEqual(len(ms), 1, "log lines for %s %s: %r"
                                     % (method, up_target, lines))
                    self.assertEqual((ms[0].get("access"), ms[0].get("cert"), ms[0]["status"]),
                                     ("allow:public", None, 200), ms[0])
        denied = [x for x in lines if x.get("status") == 403]
        self.assertEqual(len(denied), len([t for t in self.PUBLIC_TABLE if t[2] == 403]),
                         denied)
        self.assertEqual({(x.get("access"), x.get("cert")) for x in denied},
                         {("deny:no-cert", None)}, denied)

    def test_04_public_table_with_valid_cert_all_pass(self):
        before = len(self.up_photos.requests)
        for method, target, status, up_target in self.PUBLIC_TABLE:
            if status == 400:
                continue
            with self.subTest(method=method, target=target):
                r = self.req("photos.localhost", method, target, leaf=self.k.tablet,
                             body=b"" if method == "POST" else None)
                self.assertEqual(r.status, 200, "%s %s with a valid cert -> %r"
                                 % (method, target, r))
        got = self.up_photos.requests[before:]
        self.assertEqual(len(got), len([x for x in self.PUBLIC_TABLE if x[2] != 400]), got)
        for q in got:
            self.assert_identity(q, self.k.tablet)

    def test_04_bad_paths_are_400_even_with_cert(self):
        before = len(self.up_photos.requests)
        for target in ("/share%2fpt-x", "/share/%2e%2e/api", "/share\\pt-bs", "/share/pt%00"):
            with self.subTest(target=target):
                r = self.req("photos.localhost", "GET", target, leaf=self.k.phone)
                self.assertEqual(r.status, 400, r)
        self.assertEqual(self.up_photos.requests[before:], [])

    def test_04_ambiguous_dot_segments_never_pass_as_public(self):
        # Escaped or decorated dot-segments under a public prefix: refused (400)
        # or judged on the normalised path (403); never forwarded.
        for target in ("/share/.%2e/api/albums", "/share/%2E./api/albums",
                       "/share/%2e%2E/api/albums", "/share/..;/api/albums",
                       "/share;/../api/albums", "/share/%2e/../../api/albums",
                       "/share/..%2f/api/albums", "/share/..%5c/api/albums",
                       "/share/%5c../api/albums"):
            with self.subTest(target=target):
                before = len(self.up_photos.requests)
                r = self.req("photos.localhost", "GET", target)
                self.assertIn(r.status, (400, 403), "%s -> %r" % (target, r))
                self.assertEqual(self.up_photos.requests[before:], [])

    # -------------------------------------------------------- 5. bad certificates

    def test_05_each_bad_cert_kind_is_denied_with_its_reason(self):
        for kind, leaf in self.k.bad.items():
            reason = self.k.reason[kind]
            path = "/t05/" + kind
            with self.subTest(kind=kind):
                r = self.curl("photos.localhost", path, leaf=leaf)
                self.assert_denied(r, reason, "photos.localhost")
                line = self.assert_log(path, "deny:" + reason, Ellipsis, status=403)
                self.assertIn(line.get("cert"), (leaf.cn, None), line)
                # Browser flavour of the same refusal.
                r = self.curl("photos.localhost", path + "-html", leaf=leaf,
                              headers=["Accept: " + BROWSER_ACCEPT])
                self.assert_denied(r, reason, "photos.localhost", html=True)
        self.none_for(self.up_photos, "/t05/")

    def test_05_bad_certs_still_reach_public_paths(self):
        for kind, leaf in self.k.bad.items():
            path = "/share/t05-" + kind
            with self.subTest(kind=kind):
                r = self.curl("photos.localhost", path, leaf=leaf)
                self.assertEqual(r.status, 200, r)
                self.assert_anonymous(self.one(self.up_photos, path))
                # the log names a certificate only if the site's CA issued it
                # for clients: anyone can put any name into a self-made one
                self.assert_log(path, "allow:public", logged_name(self.k.reason[kind], leaf))

    def test_05_bad_certs_over_python_ssl_and_tls12(self):
        # The handshake completes with any certificate; the verdict is an HTTP 403.
        for kind in ("foreign", "expired", "no-eku"):
            leaf = self.k.bad[kind]
            for ver in (ssl.TLSVersion.TLSv1_2, ssl.TLSVersion.TLSv1_3):
                with self.subTest(kind=kind, version=ver.name):
                    path = "/t05py/%s-%s" % (kind, ver.name)
                    r = self.req("photos.localhost", "GET", path, leaf=leaf, max_version=ver,
                                 min_version=ver)
                    self.assert_denied(r, self.k.reason[kind], "photos.localhost")
        self.none_for(self.up_photos, "/t05py/")

    def test_04_h2c_upgrade_on_a_public_path_is_not_forwarded(self):
        # After a 101 to h2c every later request would be HTTP/2 inside the
        # tunnel, out of the gate's sight: the upgrade is dropped, the
        # request goes up as a plain one. WebSocket upgrades still pass.
        for i, value in enumerate(("h2c", "H2C", "websocket, h2c", " h2c ", '"h2c"', "h2c;q=1",
                                   "foo h2c", "websocket/13 h2c", "h2c/1")):
            path = "/share/t04h2c-%d" % i
            r = self.req("photos.localhost", "GET", path, headers=[
                "Connection: Upgrade, HTTP2-Settings", "Upgrade: " + value,
                "HTTP2-Settings: AAMAAABkAARAAAAAAAIAAAAA"])
            self.assertEqual(r.status, 200, r)
            got = self.one(self.up_photos, path)
            self.assertIsNone(got.headers.get("upgrade"), "Upgrade %r was forwarded" % value)
            self.assertNotIn("upgrade", (got.headers.get("connection") or "").lower())
        path = "/share/t04ws"
        r = self.req("photos.localhost", "GET", path, headers=[
            "Connection: Upgrade", "Upgrade: websocket", "Sec-WebSocket-Version: 13",
            "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ=="])
        self.assertEqual(self.one(self.up_photos, path).headers.get("upgrade"), "websocket")

    def test_05_cert_expiring_on_an_open_connection_stops_counting(self):
        # A connection made with a valid certificate is closed once it
        # expires (a tunnel has no next request to deny). A connection made
        # after that is judged per request: public passes, private is 403.
        leaf = self.k.pki.leaf("shortlived", self.k.ca, not_after_seconds=5)
        used = connect(self.moat_, "photos.localhost", leaf)
        self.addCleanup(used.close)
        used.request("GET", "/t05x/short-1", "photos.localhost")
        r = used.read_response()
        now = datetime.datetime.now(datetime.timezone.utc)
        if now > leaf.not_after - datetime.timedelta(seconds=0.5):
            self.skipTest("the machine was too slow to use the certificate before it expired")
        self.assertEqual(r.status, 200, r)
        self.assert_identity(self.one(self.up_photos, "/t05x/short-1"), leaf)
        left = (leaf.not_after - datetime.datetime.now(datetime.timezone.utc)).total_seconds()
        self.assertTrue(is_closed(used.sock, left + 10),
                        "the connection stayed open after its certificate expired")
        print("\n  closed %.2f s after the certificate expired" % (
            (datetime.datetime.now(datetime.timezone.utc) - leaf.not_after).total_seconds()))
        late = connect(self.moat_, "photos.localhost", leaf)
        self.addCleanup(late.close)
        late.request("GET", "/share/t05x-late", "photos.localhost")
        self.assertEqual(late.read_response().status, 200)
        self.assertFalse(is_closed(late.sock, 1.5), "a connection that never had a valid "
                         "certificate was closed")
        late.request("GET", "/t05x/short-2", "photos.localhost")
        self.assert_denied(late.read_response(), "expired", "photos.localhost")
        self.assert_log("/t05x/short-2", "deny:expired", "shortlived", status=403)
        self.none_for(self.up_photos, "/t05x/short-2")

    def test_05_two_cas_in_one_file_and_crls_per_issuer(self):
        k = self.k
        cases = [("phone (CA 1)", k.phone, 200, None), ("kid (CA 2)", k.kid, 200, None),
                 ("stolen (revoked by CA 1)", k.stolen, 403, "revoked"),
                 ("lost (revoked by CA 2)", k.lost, 403, "revoked"),
                 # CA 2 revoked its own certificate with twin's serial, not CA 1's twin
                 ("twin (CA 1, serial revoked by CA 2)", k.twin, 200, None),
                 ("twin2 (CA 2, revoked)", k.twin2, 403, "revoked"),
                 ("stranger (foreign CA)", k.bad["foreign"], 403, "untrusted"),
                 ("impostor (name of CA 1)", k.bad["impostor"], 403, "untrusted")]
        for i, (name, leaf, status, reason) in enumerate(cases):
            with self.subTest(cert=name):
                path = "/t05m/multi-%d" % i
                r = self.req("multi.localhost", "GET", path, leaf=leaf)
                if status == 200:
                    self.assertEqual(r.status, 200, r)
                    self.assert_identity(self.one(self.up_multi, path), leaf)
                    self.assert_log(path, "allow:cert", leaf.cn)
                else:
                    self.assert_denied(r, reason, "multi.localhost")
                    self.assert_log(path, "deny:" + reason, logged_name(reason, leaf))
                    self.none_for(self.up_multi, path)

    # -------------------------------------------------------- 6. optional

    def test_06_optional_site(self):
        k = self.k
        r = self.curl("opt.localhost", "/t06/none")
        self.assertEqual(r.status, 200, r)
        self.assert_anonymous(self.one(self.up_opt, "/t06/none"))
        self.assert_log("/t06/none", "allow:no-cert", None, status=200)

        r = self.curl("opt.localhost", "/t06/cert", leaf=k.phone)
        self.assertEqual(r.status, 200, r)
        self.assert_identity(self.one(self.up_opt, "/t06/cert"), k.phone)
        self.assert_log("/t06/cert", "allow:cert", "phone", status=200)

        for kind, leaf in k.bad.items():
            with self.subTest(kind=kind):
                path = "/t06/bad-" + kind
                r = self.curl("opt.localhost", path, leaf=leaf)
                self.assertEqual(r.status, 200, r)
                self.assert_anonymous(self.one(self.up_opt, path))
                line = self.assert_log(path, "allow:no-cert", Ellipsis, status=200)
                self.assertIn(line.get("cert"), (leaf.cn, None), line)

    def test_06_sites_without_policy_log_no_access_decision(self):
        r = self.curl("open.localhost", "/t06/open")
        self.assertEqual(r.status, 200, r)
        line = self.log_for("/t06/open")[0]
        self.assertIsNone(line.get("access"), line)

    # -------------------------------------------------------- 7. 421

    def test_07_host_of_protected_site_on_open_sni_is_421(self):
        hosts = ["photos.localhost", "photos.localhost.", "PHOTOS.localhost", "Photos.Localhost.",
                 "photos.localhost:%d" % self.moat_.https_port, "photos.localhost:443",
                 "opt.localhost", "plain.localhost"]
        for host in hosts:
            with self.subTest(host=host):
                path = "/t07/a-%s" % re.sub(r"[^a-z0-9]", "_", host.lower())
                r = self.req("open.localhost", "GET", path, host=host)
                self.assertEqual(r.status, 421, "SNI open.localhost, Host %s: %r" % (host, r))
                # ... with a valid certificate too: the certificate was asked for by no one.
                r = self.req("open.localhost", "GET", path + "c", host=host, leaf=self.k.phone)
                self.assertEqual(r.status, 421, "SNI open.localhost + cert, Host %s: %r"
                                 % (host, r))
        for up in (self.up_photos, self.up_open, self.up_opt, self.up_plain):
            self.none_for(up, "/t07/a-")

    def test_07_host_of_open_site_on_protected_sni_is_421(self):
        hosts = ["open.localhost", "open.localhost.", "OPEN.LOCALHOST",
                 "open.localhost:%d" % self.moat_.https_port]
        for host in hosts:
            for leaf in (None, self.k.phone):
                with self.subTest(host=host, cert=leaf is not None):
                    path = "/t07/b-%s-%d" % (re.sub(r"[^a-z0-9]", "_", host.lower()),
                                              leaf is not None)
                    r = self.req("photos.localhost", "GET", path, host=host, leaf=leaf)
                    self.assertEqual(r.status, 421, "SNI photos.localhost, Host %s: %r"
                                     % (host, r))
                    # also for a path the protected site would let through
                    r = self.req("photos.localhost", "GET", "/share/t07-" + path[5:],
                                 host=host, leaf=leaf)
                    self.assertEqual(r.status, 421, r)
        for up in (self.up_photos, self.up_open):
            self.none_for(up, "/t07/b-")
            self.none_for(up, "/share/t07-")

    def test_07_host_that_canonicalises_to_the_sni_site_is_fine(self):
        for i, host in enumerate(["photos.localhost.", "PHOTOS.LOCALHOST",
                                  "Photos.Localhost.:%d" % self.moat_.https_port,
                                  "photos.localhost:%d" % self.moat_.https_port]):
            with self.subTest(host=host):
                path = "/t07/canon-%d" % i
                r = self.req("photos.localhost", "GET", path, host=host, leaf=self.k.phone)
                self.assertEqual(r.status, 200, "Host %s: %r" % (host, r))
                self.assert_identity(self.one(self.up_photos, path), self.k.phone)
                r = self.req("photos.localhost", "GET", path + "-nocert", host=host)
                self.assert_denied(r, "no-cert", "photos.localhost")

    def test_07_reused_connection_naming_another_host_is_421(self):
        cases = [("open.localhost", None, "open.localhost", "photos.localhost"),
                 ("open.localhost", None, "open.localhost", "Photos.localhost."),
                 ("photos.localhost", self.k.phone, "photos.localhost", "open.localhost"),
                 ("photos.localhost", self.k.phone, "photos.localhost", "opt.localhost"),
                 ("opt.localhost", self.k.phone, "opt.localhost", "photos.localhost")]
        for i, (sni, leaf, first, second) in enumerate(cases):
            with self.subTest(sni=sni, second=second):
                c = connect(self.moat_, sni, leaf)
                self.addCleanup(c.close)
                c.request("GET", "/t07/ka-%d-1" % i, first)
                r1 = c.read_response()
                self.assertEqual(r1.status, 200, r1)
                c.request("GET", "/t07/ka-%d-2" % i, second)
                r2 = c.read_response()
                self.assertEqual(r2.status, 421, "second request, Host %s on SNI %s: %r"
                                 % (second, sni, r2))
                c.close()
                for up in (self.up_photos, self.up_open, self.up_opt):
                    self.assertEqual(up.find("/t07/ka-%d-2" % i), [], up.requests[-3:])

    def test_07_absolute_form_or_second_host_naming_another_site(self):
        cases = [
            ("open.localhost", None, "GET https://photos.localhost/t07/abs-1 HTTP/1.1\r\n"
             "Host: open.localhost\r\n"),
            ("open.localhost", None, "GET https://photos.localhost/t07/abs-2 HTTP/1.1\r\n"
             "Host: photos.localhost\r\n"),
            ("photos.localhost", None, "GET https://open.localhost/share/t07-abs-3 HTTP/1.1\r\n"
             "Host: photos.localhost\r\n"),
            ("photos.localhost", self.k.phone, "GET https://open.localhost/t07/abs-4 HTTP/1.1\r\n"
             "Host: photos.localhost\r\n"),
            ("open.localhost", None, "GET /t07/abs-5 HTTP/1.1\r\nHost: open.localhost\r\n"
             "Host: photos.localhost\r\n"),
            ("open.localhost", None, "GET /t07/abs-6 HTTP/1.1\r\nHost: photos.localhost\r\n"
             "Host: open.localhost\r\n"),
        ]
        for sni, leaf, head in cases:
            with self.subTest(sni=sni, request=head.split("\r\n")[0]):
                c = connect(self.moat_, sni, leaf)
                self.addCleanup(c.close)
                buf, _ = M.raw_exchange(c.sock, (head + "Connection: close\r\n\r\n").encode(),
                                        timeout=5)
                self.assertIn(M.parse_status(buf), (400, 421), buf[:300])
        for up in (self.up_photos, self.up_open):
            self.none_for(up, "/t07/abs-")
            self.none_for(up, "/share/t07-abs-")

    # -------------------------------------------------------- 8. resumption

    def test_08_session_is_not_resumed_under_another_sni(self):
        for flag, version in (("-tls1_2", "TLSv1.2"), ("-tls1_3", "TLSv1.3")):
            with self.subTest(version=version, direction="open -> photos"):
                sess = self.session_file()
                r1 = self.sclient_http("open.localhost", "/t08/x-open-%s" % flag, version=flag,
                                       sess_out=sess)
                self.assertEqual((r1.status(), r1.session()), (200, ("New", version)), r1)
                self.assertTrue(os.path.exists(sess) and os.path.getsize(sess) > 0, r1)
                path = "/t08/x-photos-%s" % flag
                r2 = self.sclient_http("photos.localhost", path, version=flag, sess_in=sess,
                                       extra=["-trace"])
                self.assert_session_offered(r2, version)
                self.assertEqual(r2.session(), ("New", version),
                                 "open.localhost's session resumed under photos: %r" % r2)
                self.assertEqual(r2.status(), 403, r2)
                self.assert_log(path, "deny:no-cert", None)
            with self.subTest(version=version, direction="photos+cert -> opt"):
                sess = self.session_file()
                r1 = self.sclient_http("photos.localhost", "/t08/y-photos-%s" % flag,
                                       leaf=self.k.phone, version=flag, sess_out=sess)
                self.assertEqual((r1.status(), r1.session()), (200, ("New", version)), r1)
                path = "/t08/y-opt-%s" % flag
                r2 = self.sclient_http("opt.localhost", path, version=flag, sess_in=sess,
                                       extra=["-trace"])
                self.assert_session_offered(r2, version)
                self.assertEqual(r2.session(), ("New", version),
                                 "photos' session (with phone's cert) resumed under opt: %r" % r2)
                self.assertEqual(r2.status(), 200, r2)
                self.assert_anonymous(self.one(self.up_opt, path))
                self.assert_log(path, "allow:no-cert", None)
            with self.subTest(version=version, direction="opt+cert -> photos"):
                sess = self.session_file()
                r1 = self.sclient_http("opt.localhost", "/t08/z-opt-%s" % flag,
                                       leaf=self.k.phone, version=flag, sess_out=sess)
                self.assertEqual((r1.status(), r1.session()), (200, ("New", version)), r1)
                path = "/t08/z-photos-%s" % flag
                r2 = self.sclient_http("photos.localhost", path, version=flag, sess_in=sess,
                                       extra=["-trace"])
                self.assert_session_offered(r2, version)
                self.assertEqual(r2.session(), ("New", version), r2)
                self.assertEqual(r2.status(), 403, r2)
                self.assert_log(path, "deny:no-cert", None)
        self.none_for(self.up_photos, "/t08/x-")
        self.none_for(self.up_photos, "/t08/z-")

    def assert_session_offered(self, r, version):
        """The ClientHello (per -trace) really offered the saved session."""
        hello = r.out.split("ClientHello", 1)[-1].split("ServerHello", 1)[0]
        if version == "TLSv1.3":
            m = re.search(r"extension_type=(?:psk|pre_shared_key)\(41\), length=(\d+)", hello)
            self.assertTrue(m and int(m.group(1)) > 0, "s_client offered no PSK: %r" % r)
        else:
            m = re.search(r"extension_type=session_ticket\(35\), length=(\d+)", hello)
            self.assertTrue(m and int(m.group(1)) > 0,
                            "s_client offered no session ticket: %r" % r)

    def test_08_same_site_resumption_keeps_the_certificate(self):
        for flag, version in (("-tls1_2", "TLSv1.2"), ("-tls1_3", "TLSv1.3")):
            with self.subTest(version=version):
                sess = self.session_file()
                r1 = self.sclient_http("photos.localhost", "/t08/same-1-%s" % flag,
                                       leaf=self.k.laptop, version=flag, sess_out=sess)
                self.assertEqual((r1.status(), r1.session()), (200, ("New", version)), r1)
                # No -cert this time: the certificate comes back with the session.
                path = "/t08/same-2-%s" % flag
                r2 = self.sclient_http("photos.localhost", path, version=flag, sess_in=sess)
                self.assertEqual(r2.session(), ("Reused", version), r2)
                self.assertEqual(r2.status(), 200, r2)
                self.assert_identity(self.one(self.up_photos, path), self.k.laptop)
                self.assert_log(path, "allow:cert", "laptop")

    def test_08_resumed_session_of_a_bad_cert_is_still_denied(self):
        leaf = self.k.bad["expired"]
        sess = self.session_file()
        r1 = self.sclient_http("photos.localhost", "/t08/bad-1", leaf=leaf, sess_out=sess)
        self.assertEqual(r1.status(), 403, r1)
        r2 = self.sclient_http("photos.localhost", "/t08/bad-2", sess_in=sess)
        self.assertEqual(r2.status(), 403, r2)
        if r2.session() == ("Reused", "TLSv1.3"):
            self.assertIn('"reason":"expired"', r2.body(), r2)
        self.none_for(self.up_photos, "/t08/bad-")

    # -------------------------------------------------------- 12. renegotiation

    def test_12_client_renegotiation_is_refused(self):
        # If the connection survives, it must still be the first session: the
        # request after "R" is served (or refused) without a new handshake.
        r = S.renegotiate(self, self.moat_, [
            "-servername", "photos.localhost", "-CAfile", self.moat_.ca,
            "-cert", self.k.phone.cert, "-key", self.k.phone.key],
            then=b"GET /t12/after HTTP/1.1\r\nHost: photos.localhost\r\n"
                 b"Connection: close\r\n\r\n", wait=5)
        print("\n  renegotiation: alerts from moat %s, s_client rc %s, http status %s"
              % (r.alerts_received(), r.rc, r.status()))
        S.assert_renegotiation_refused(self, r)
        self.assertEqual(len(r.handshake_received("CertificateRequest")), 1, r)
        self.moat_.assert_alive()
        r = self.curl("photos.localhost", "/t12/health", leaf=self.k.phone)
        self.assertEqual(r.status, 200, r)

    # -------------------------------------------------------- 13. TLS 1.2

    def test_13_tls12_client_cert_via_curl(self):
        r = self.curl("photos.localhost", "/t13/a", leaf=self.k.phone, extra=["--tls-max", "1.2"])
        self.assertEqual(r.status, 200, r)
        self.assert_identity(self.one(self.up_photos, "/t13/a"), self.k.phone)
        line = self.assert_log("/t13/a", "allow:cert", "phone", status=200)
        self.assertEqual(line.get("tls"), "TLSv1.2", line)
        r = self.curl("photos.localhost", "/t13/none", extra=["--tls-max", "1.2"])
        self.assert_denied(r, "no-cert", "photos.localhost")
        r = self.curl("opt.localhost", "/t13/opt", leaf=self.k.laptop, extra=["--tls-max", "1.2"])
        self.assertEqual(r.status, 200, r)
        self.assert_identity(self.one(self.up_opt, "/t13/opt"), self.k.laptop)

    def test_13_certificate_request_names_the_ca(self):
        r = self.s_client(["-servername", "photos.localhost", "-CAfile", self.moat_.ca,
                           "-tls1_2"])
        self.assertEqual(r.rc, 0, r)
        m = re.search(r"Acceptable client certificate CA names\n(.*?)\n(?:Client Certificate|"
                      r"Requested Signature|Shared Requested|Peer signing)", r.out, re.S)
        self.assertTrue(m, "no CertificateRequest CA list: %r" % r)
        self.assertIn("CN = moat test client CA", m.group(1), r)
        self.assertNotIn("foreign", m.group(1), r)
        r = self.s_client(["-servername", "open.localhost", "-CAfile", self.moat_.ca,
                           "-tls1_2"])
        self.assertEqual(r.rc, 0, r)
        self.assertIn("No client certificate CA names sent", r.out, r)

    # -------------------------------------------------------- 14. plain http

    def test_14_plain_http_on_required_site(self):
        r = self.curl("plain.localhost", "/share/t14", scheme="http")
        self.assertEqual(r.status, 200, r)
        self.assertEqual(len(self.up_plain.find("/share/t14")), 1)
        self.assert_log("/share/t14", "allow:public", None)
        r = self.curl("plain.localhost", "/t14/private", scheme="http")
        self.assert_denied(r, "no-cert", "plain.localhost")
        self.assert_log("/t14/private", "deny:no-cert", None)
        r = self.curl("plain.localhost", "/t14/html", scheme="http",
                      headers=["Accept: " + BROWSER_ACCEPT])
        self.assert_denied(r, "no-cert", "plain.localhost", html=True)
        r = self.req(None, "GET", "/share/../t14/dotdot", host="plain.localhost", scheme="http")
        self.assertEqual(r.status, 403, r)
        self.none_for(self.up_plain, "/t14")
        # The same site over https with a certificate
        r = self.curl("plain.localhost", "/t14/tls", leaf=self.k.phone)
        self.assertEqual(r.status, 200, r)
        self.assert_identity(self.one(self.up_plain, "/t14/tls"), self.k.phone)


# ================================================================ Revocation

class Revocation(Base):
    """One moat per test with photos.localhost (required, public /share/**)
    whose crl.pem each test rewrites while moat runs."""

    @classmethod
    def setUpClass(cls):
        cls.k = make_pki(cls)

    def start(self, revoked=(), ca=None, crls=None, **crl_kw):
        self.up = self.upstream()
        d = self.tmp()
        self.crl = os.path.join(d, "crl.pem")
        if crls is not None:
            self.write_crls(crls)
        else:
            self.k.pki.write_crl(self.crl, self.k.ca, revoked=revoked, **crl_kw)
        self.moat_ = m = M.Moat(self)
        m.start(self.config(ca=ca))
        return m

    def config(self, ca=None):
        return self.moat_.config({
            "photos.localhost": M.site(self.up, clients="required",
                                       client_ca=ca or self.k.ca.cert,
                                       crl=self.crl, public=["GET /share/**"]),
            "open.localhost": M.site(self.up),
        })

    def write_crls(self, crls):
        """crl.pem := one CRL per (ca, revoked) pair, replaced atomically."""
        self.k.pki.write_atomic(self.crl, b"".join(self.k.pki.crl_pem(ca, revoked)
                                                    for ca, revoked in crls))

    def revoke(self, revoked, **kw):
        """Replace crl.pem atomically; returns time.monotonic() of the rename."""
        self.k.pki.write_crl(self.crl, self.k.ca, revoked=revoked, **kw)
        return time.monotonic()

    def status_now(self, leaf, path):
        return self.req("photos.localhost", "GET", path, leaf=leaf).status

    def wait_status(self, leaf, want, what, timeout=10):
        n = [0]

        def probe():
            n[0] += 1
            try:
                return self.status_now(leaf, "/probe/%s-%d" % (leaf.cn, n[0])) == want
            except (AssertionError, OSError) as e:
                # A probe that was in flight when the new CRL arrived may be one
                # of the live connections moat closes for it: try again.
                self.moat_.assert_alive()
                print("\n  probe %d for %s: connection closed (%s); retrying"
                      % (n[0], leaf.cn, str(e)[:80]))
                return False
        t0 = time.monotonic()
        M.wait_until(probe, timeout, what, interval=0.05)
        return time.monotonic() - t0

    # -------------------------------------------------------- 8. resumed after revocation

    def test_08_resumed_session_after_revocation_is_denied(self):
        k = self.k
        self.start()
        sessions = {}
        for flag, version, leaf in (("-tls1_2", "TLSv1.2", k.tablet12),
                                    ("-tls1_3", "TLSv1.3", k.tablet)):
            sess = self.session_file()
            r1 = self.sclient_http("photos.localhost", "/r08/first-%s" % leaf.cn, leaf=leaf,
                                   version=flag, sess_out=sess)
            self.assertEqual((r1.status(), r1.session()), (200, ("New", version)), r1)
            r2 = self.sclient_http("photos.localhost", "/r08/resumed-%s" % leaf.cn,
                                   version=flag, sess_in=sess)
            self.assertEqual((r2.status(), r2.session()), (200, ("Reused", version)), r2)
            sessions[flag] = (sess, version, leaf)
        t0 = self.revoke([k.tablet, k.tablet12])
        self.wait_status(k.tablet, 403, "tablet's revocation to apply")
        print("\n  revocation applied to new connections after %.2f s" % (time.monotonic() - t0))
        for flag, (sess, version, leaf) in sessions.items():
            with self.subTest(version=version):
                path = "/r08/after-%s" % leaf.cn
                r = self.sclient_http("photos.localhost", path, version=flag, sess_in=sess)
                self.assertEqual(r.session(), ("Reused", version), r)
                self.assertEqual(r.status(), 403, r)
                self.assertIn('"reason":"revoked"', r.body(), r)
                self.assert_log(path, "deny:revoked", leaf.cn)
                # public paths still open to it
                r = self.sclient_http("photos.localhost", "/share/r08-%s" % leaf.cn,
                                      version=flag, sess_in=sess)
                self.assertEqual(r.status(), 200, r)
        self.none_for(self.up, "/r08/after-")

    # -------------------------------------------------------- 9. live connections

    def test_09_revocation_closes_live_connections_of_that_cert_only(self):
        k = self.k
        self.start()
        conns = {
            "phone13": connect(self.moat_, "photos.localhost", k.phone),
            "phone12": connect(self.moat_, "photos.localhost", k.phone,
                               max_version=ssl.TLSVersion.TLSv1_2),
            "laptop": connect(self.moat_, "photos.localhost", k.laptop),
            "anon-public": connect(self.moat_, "photos.localhost"),
        }
        for c in conns.values():
            self.addCleanup(c.close)
        for name, c in conns.items():
            path = "/share/r09-%s-1" % name if name == "anon-public" else "/r09/%s-1" % name
            c.request("GET", path, "photos.localhost")
            r = c.read_response()
            self.assertEqual(r.status, 200, "%s: %r" % (name, r))
        t0 = self.revoke([k.phone])
        closed_after = {}
        end = t0 + 10
        for name in ("phone13", "phone12"):
            sock = conns[name].sock
            left = max(0.0, end - time.monotonic())
            if is_closed(sock, left):
                closed_after[name] = time.monotonic() - t0
        print("\n  live connections of the revoked cert closed after: %s"
              % {n: "%.2f s" % v for n, v in closed_after.items()})
        self.assertEqual(sorted(closed_after), ["phone12", "phone13"],
                         "phone's live connections were not closed within 10 s of the "
                         "revocation (closed: %r)" % closed_after)
        # The others stay open and keep working.
        for name in ("laptop", "anon-public"):
            with self.subTest(conn=name):
                c = conns[name]
                self.assertFalse(is_closed(c.sock, 0.3), "%s's connection was closed" % name)
                path = "/share/r09-%s-2" % name if name == "anon-public" else "/r09/%s-2" % name
                c.request("GET", path, "photos.localhost")
                r = c.read_response()
                self.assertEqual(r.status, 200, "%s after phone's revocation: %r" % (name, r))
        self.assert_identity(self.one(self.up, "/r09/laptop-2"), k.laptop)
        # New connections: phone is refused, laptop passes.
        r = self.req("photos.localhost", "GET", "/r09/phone-new", leaf=k.phone)
        self.assert_denied(r, "revoked", "photos.localhost")
        self.assert_log("/r09/phone-new", "deny:revoked", "phone")
        r = self.curl("photos.localhost", "/r09/phone-curl", leaf=k.phone,
                      extra=["--tls-max", "1.2"])
        self.assert_denied(r, "revoked", "photos.localhost")
        r = self.req("photos.localhost", "GET", "/r09/laptop-new", leaf=k.laptop)
        self.assertEqual(r.status, 200, r)
        self.assert_log("/r09/laptop-new", "allow:cert", "laptop")
        self.none_for(self.up, "/r09/phone-new")
        self.none_for(self.up, "/r09/phone-curl")

    def test_09_request_in_flight_on_revoked_connection_is_not_forwarded_later(self):
        # After the CRL change, the old keep-alive connection must not serve a
        # request for phone, whichever moat does first (close or 403).
        k = self.k
        self.start()
        c = connect(self.moat_, "photos.localhost", k.phone)
        self.addCleanup(c.close)
        c.request("GET", "/r09b/1", "photos.localhost")
        self.assertEqual(c.read_response().status, 200)
        t0 = self.revoke([k.phone])
        self.wait_status(k.phone, 403, "phone's revocation to apply")
        print("\n  revocation applied after %.2f s" % (time.monotonic() - t0))
        try:
            c.request("GET", "/r09b/2", "photos.localhost")
            buf, closed = M.raw_exchange(c.sock, b"", timeout=5)
        except (OSError, ssl.SSLError):
            buf = b""
        status = M.parse_status(buf) if buf else None
        self.assertIn(status, (None, 403), "revoked connection answered %r" % buf[:300])
        self.none_for(self.up, "/r09b/2")

    # -------------------------------------------------------- 10. broken CRLs

    def test_10_broken_crl_keeps_last_good_list(self):
        k = self.k
        self.start(revoked=[k.phone])
        self.assertEqual(self.status_now(k.phone, "/r10/phone-0"), 403)
        self.assertEqual(self.status_now(k.laptop, "/r10/laptop-0"), 200)
        broken = [
            ("garbage", b"this is not a CRL\n"),
            ("empty", b""),
            ("truncated", k.pki.crl_pem(k.ca, [k.laptop])[:200]),
            ("wrong signer", k.pki.crl_pem(k.foreign_ca, [k.laptop])),
            ("impostor signer", k.pki.crl_pem(k.impostor_ca, [k.laptop])),
            ("certificate instead of CRL", read_file(k.laptop.cert)),
        ]
        for i, (name, data) in enumerate(broken):
            with self.subTest(crl=name):
                before = len(self.moat_.stderr())
                P.ClientPki.write_atomic(self.crl, data)
                t0 = time.monotonic()
                try:
                    new = M.wait_until(lambda: "crl.pem" in self.moat_.stderr()[before:]
                                       and self.moat_.stderr()[before:], 10,
                                       "moat to log the broken CRL")
                except AssertionError:
                    new = ""
                print("\n  %s CRL: logged after %.2f s: %s"
                      % (name, time.monotonic() - t0, new.strip()[:300]))
                self.assertIn("crl.pem", new, "no message naming crl.pem in moat's stderr "
                              "for a %s CRL: %r" % (name, self.moat_.stderr()[before:]))
                self.assertRegex(new.lower(), r"error|refus|ignor|invalid|cannot|could not",
                                 "not reported as an error: %r" % new)
                time.sleep(0.6)  # a few polls
                r = self.req("photos.localhost", "GET", "/r10/phone-%d" % (i + 1), leaf=k.phone)
                self.assert_denied(r, "revoked", "photos.localhost")
                r = self.req("photos.localhost", "GET", "/r10/laptop-%d" % (i + 1),
                             leaf=k.laptop)
                self.assertEqual(r.status, 200, "laptop after a %s CRL: %r" % (name, r))
                self.moat_.assert_alive()
        # A good CRL again (laptop revoked, phone not): applies.
        t0 = self.revoke([k.laptop])
        self.wait_status(k.laptop, 403, "the good CRL to apply after broken ones")
        self.wait_status(k.phone, 200, "phone to be accepted under the new CRL")
        print("\n  good CRL applied after %.2f s" % (time.monotonic() - t0))
        r = self.req("photos.localhost", "GET", "/r10/laptop-end", leaf=k.laptop)
        self.assert_denied(r, "revoked", "photos.localhost")
        self.assert_log("/r10/laptop-end", "deny:revoked", "laptop")
        self.none_for(self.up, "/r10/phone-")
        self.assertEqual(len(self.up.find("/r10/laptop-")), len(broken) + 1)

    def test_10_deleted_crl_keeps_last_good_list(self):
        k = self.k
        self.start(revoked=[k.phone])
        os.unlink(self.crl)
        time.sleep(1.0)
        self.moat_.assert_alive()
        self.assertEqual(self.status_now(k.phone, "/r10d/phone"), 403)
        self.assertEqual(self.status_now(k.laptop, "/r10d/laptop"), 200)
        self.revoke([k.laptop])
        self.wait_status(k.laptop, 403, "a CRL that came back to apply")

    def test_10_older_crl_never_replaces_a_newer_one(self):
        # A backup restored or a replayed download would un-revoke phone.
        k = self.k
        self.start()
        old = k.pki.crl_pem(k.ca, revoked=[])
        time.sleep(1.1)  # clientpki numbers CRLs by the clock, in whole seconds
        self.revoke([k.phone])
        self.wait_status(k.phone, 403, "phone's revocation to apply")
        before = len(self.moat_.stderr())
        self.k.pki.write_atomic(self.crl, old)
        M.wait_until(lambda: "older than the one in force" in self.moat_.stderr()[before:],
                     10, "moat to notice the older CRL")
        r = self.req("photos.localhost", "GET", "/r10o/phone", leaf=k.phone)
        self.assert_denied(r, "revoked", "photos.localhost")
        self.none_for(self.up, "/r10o/phone")
        # a reload reading the older file keeps the revocation too
        self.assertTrue(self.moat_.reload(self.config()), self.moat_.stderr()[before:])
        r = self.req("photos.localhost", "GET", "/r10o/phone-2", leaf=k.phone)
        self.assert_denied(r, "revoked", "photos.localhost")
        r = self.req("photos.localhost", "GET", "/r10o/laptop", leaf=k.laptop)
        self.assertEqual(r.status, 200, r)
        # a newer CRL still applies, also lifting a revocation
        time.sleep(1.1)  # a CRL of the same second is the same version: kept with it
        self.revoke([])
        self.wait_status(k.phone, 200, "a newer CRL to apply")

    def test_10_file_that_lost_a_ca_crl_keeps_its_revocations(self):
        # Two CAs, one CRL each in one file; the file loses CA 2's CRL. CA 2's
        # revocations stay, while the poll and after a reload, and CA 1's new
        # ones still apply.
        k = self.k
        ca_bundle = k.pki.write_atomic(os.path.join(self.tmp(), "ca.pem"),
                                       read_file(k.ca.cert) + read_file(k.ca2.cert))
        self.start(ca=ca_bundle, crls=[(k.ca, []), (k.ca2, [k.kid])])
        self.assertEqual(self.status_now(k.kid, "/r10l/kid-0"), 403)
        self.assertEqual(self.status_now(k.phone, "/r10l/phone-0"), 200)
        time.sleep(1.1)
        before = len(self.moat_.stderr())
        self.write_crls([(k.ca, [k.phone])])
        self.wait_status(k.phone, 403, "CA 1's new revocation to apply")
        self.assertIn("is missing or older than the one in force", self.moat_.stderr()[before:])
        self.assertEqual(self.status_now(k.kid, "/r10l/kid-1"), 403, "kid came back")
        self.assertTrue(self.moat_.reload(self.config(ca=ca_bundle)))
        self.assertEqual(self.status_now(k.kid, "/r10l/kid-2"), 403, "kid came back on reload")
        self.assertEqual(self.status_now(k.phone, "/r10l/phone-2"), 403)
        self.none_for(self.up, "/r10l/kid")

    def test_09_reload_that_adds_a_ca_keeps_old_connections_revocable(self):
        # After a reload that trusts one more CA (and its CRL joins the file),
        # connections made before it must still see new revocations.
        k = self.k
        self.start()
        held = connect(self.moat_, "photos.localhost", k.phone)
        self.addCleanup(held.close)
        held.request("GET", "/r09a/phone-1", "photos.localhost")
        self.assertEqual(held.read_response().status, 200)
        ca_bundle = k.pki.write_atomic(os.path.join(self.tmp(), "ca.pem"),
                                       read_file(k.ca.cert) + read_file(k.ca2.cert))
        time.sleep(1.1)
        self.write_crls([(k.ca, []), (k.ca2, [])])
        self.assertTrue(self.moat_.reload(self.config(ca=ca_bundle)))
        self.assertEqual(self.status_now(k.kid, "/r09a/kid"), 200)
        time.sleep(1.1)
        self.write_crls([(k.ca, [k.phone]), (k.ca2, [])])
        self.assertTrue(is_closed(held.sock, 10),
                        "the connection made before the reload was not closed on revocation")
        self.wait_status(k.phone, 403, "phone's revocation to apply")

    def test_09_connection_that_never_had_a_valid_cert_is_not_closed(self):
        # Revocation closes connections whose certificate counted when they
        # were made (also before any request); a connection that arrived with
        # an already revoked certificate only fetches public paths and stays.
        k = self.k
        self.start()
        idle = connect(self.moat_, "photos.localhost", k.phone)
        self.addCleanup(idle.close)
        self.revoke([k.phone])
        self.assertTrue(is_closed(idle.sock, 10),
                        "phone's connection without requests stayed open after revocation")
        self.wait_status(k.phone, 403, "phone's revocation to apply")
        late = connect(self.moat_, "photos.localhost", k.phone)
        self.addCleanup(late.close)
        late.request("GET", "/share/r09u-1", "photos.localhost")
        self.assertEqual(late.read_response().status, 200)
        time.sleep(1.1)  # the next CRL change must come from a new second
        self.revoke([k.phone, k.laptop])
        self.wait_status(k.laptop, 403, "laptop's revocation to apply")
        self.assertFalse(is_closed(late.sock, 1.5), "a public-only connection was closed")
        late.request("GET", "/r09u/private", "photos.localhost")
        self.assert_denied(late.read_response(), "revoked", "photos.localhost")
        late.request("GET", "/share/r09u-2", "photos.localhost")
        self.assertEqual(late.read_response().status, 200)
        self.none_for(self.up, "/r09u/private")

    # -------------------------------------------------------- stale CRL

    def test_15_crl_going_stale_denies_certificates(self):
        k = self.k
        self.start(next_update_seconds=5)
        t_start = time.monotonic()
        r = self.req("photos.localhost", "GET", "/r15/before", leaf=k.phone)
        if time.monotonic() - t_start < 3.5:
            self.assertEqual(r.status, 200, r)
        self.wait_status(k.phone, 403, "the CRL to go stale", timeout=20)
        print("\n  CRL stale: denied after %.2f s (nextUpdate 5 s after start)"
              % (time.monotonic() - t_start))
        r = self.req("photos.localhost", "GET", "/r15/after", leaf=k.phone)
        self.assert_denied(r, "crl-stale", "photos.localhost")
        self.assert_log("/r15/after", "deny:crl-stale", Ellipsis)
        r = self.req("photos.localhost", "GET", "/share/r15")
        self.assertEqual(r.status, 200, r)
        # A fresh CRL brings certificates back.
        self.revoke([])
        self.wait_status(k.phone, 200, "a fresh CRL to apply")


# ================================================================ Refusals

class Refusals(Base):
    """Bad client_ca / crl files: startup, reload, moat check."""

    @classmethod
    def setUpClass(cls):
        cls.k = k = make_pki(cls)
        d = k.dir
        cls.good_crl = k.pki.write_crl(os.path.join(d, "good-crl.pem"), k.ca, revoked=[k.stolen])
        cls.files = {
            "garbage-ca.pem": b"not a certificate\n",
            "empty-ca.pem": b"",
            "foreign-crl.pem": k.pki.crl_pem(k.foreign_ca),
            "expired-crl.pem": k.pki.crl_pem(k.ca, next_update=-1, last_update=-10),
            "garbage-crl.pem": b"-----BEGIN X509 CRL-----\nAAAA\n-----END X509 CRL-----\n",
        }
        for name, data in cls.files.items():
            P.ClientPki.write_atomic(os.path.join(d, name), data)
        os.mkdir(os.path.join(d, "a-directory.pem"))
        # (what, client_ca, crl, the file the refusal must name, words one of which
        #  the message should contain, case-insensitive)
        j = lambda n: os.path.join(d, n)
        missing = ("no such file", "missing", "not found", "does not exist", "cannot")
        cls.bad = [
            ("missing client_ca", j("missing-ca.pem"), cls.good_crl, j("missing-ca.pem"),
             missing),
            ("client_ca is a directory", j("a-directory.pem"), cls.good_crl,
             j("a-directory.pem"), ()),
            ("client_ca holds a leaf", k.phone.cert, None, k.phone.cert, ("ca", "authority")),
            ("client_ca is garbage", j("garbage-ca.pem"), None, j("garbage-ca.pem"), ()),
            ("client_ca is empty", j("empty-ca.pem"), None, j("empty-ca.pem"), ()),
            ("missing crl", k.ca.cert, j("missing-crl.pem"), j("missing-crl.pem"), missing),
            ("crl signed by another CA", k.ca.cert, j("foreign-crl.pem"), j("foreign-crl.pem"),
             ("sign", "issuer", "issued")),
            ("crl expired", k.ca.cert, j("expired-crl.pem"), j("expired-crl.pem"),
             ("expired", "nextupdate", "next update", "out of date", "stale", "past")),
            ("crl is garbage", k.ca.cert, j("garbage-crl.pem"), j("garbage-crl.pem"), ()),
        ]

    def site_cfg(self, up, ca, crl, public=None):
        s = M.site(up, clients="required", client_ca=ca, public=public or ["GET /share/**"])
        if crl is not None:
            s["crl"] = crl
        return s

    def assert_names_file(self, text, path, words):
        self.assertIn(os.path.basename(path), text, "message does not name %s: %r"
                      % (path, text))
        if words:
            self.assertTrue(any(w in text.lower() for w in words),
                            "message does not say why (%s): %r" % ("/".join(words), text))

    def test_11_startup_refusals(self):
        up = self.upstream()
        for what, ca, crl, named, words in self.bad:
            with self.subTest(what=what):
                m = M.Moat(self)
                cfg = m.config({"photos.localhost": self.site_cfg(up, ca, crl),
                                "open.localhost": M.site(up)})
                try:
                    m.start(cfg)
                    started = True
                except AssertionError:
                    started = False
                if started:
                    m.stop()
                self.assertFalse(started, "moat started with %s; stderr:\n%s"
                                 % (what, m.stderr()))
                rc = m.proc.returncode
                self.assertIsNotNone(rc, "moat did not exit: %s" % m.stderr())
                self.assertNotEqual(rc, 0, "exit status 0 for %s" % what)
                err = m.stderr()
                print("\n  %s: exit %s: %s" % (what, rc, err.strip()[-300:]))
                self.assert_names_file(err, named, words)
                self.assertFalse(any(s in err for s in M.SANITIZER_MARKS), err)

    def test_11_reload_refusals_keep_the_old_policy(self):
        k = self.k
        up = self.upstream()
        m = self.moat_ = M.Moat(self)
        m.start(m.config({"photos.localhost": self.site_cfg(up, k.ca.cert, self.good_crl),
                          "open.localhost": M.site(up)}))
        self.assertEqual(self.status_pair("/rl/0"), (403, 200))
        for i, (what, ca, crl, named, words) in enumerate(self.bad, 1):
            with self.subTest(what=what):
                before = len(m.stderr())
                ok = m.reload(m.config({
                    "photos.localhost": self.site_cfg(up, ca, crl,
                                                      public=["GET /share/**", "GET /oops/**"]),
                    "open.localhost": M.site(up)}))
                new = m.stderr()[before:]
                print("\n  reload with %s: %s" % (what, new.strip()[-300:]))
                self.assertFalse(ok, "reload accepted %s: %s" % (what, new))
                self.assert_names_file(new, named, words)
                # the old policy still serves
                self.assertEqual(self.status_pair("/rl/%d" % i), (403, 200))
                r = self.req("photos.localhost", "GET", "/oops/%d" % i)
                self.assertEqual(r.status, 403, r)
                r = self.req("photos.localhost", "GET", "/rl/stolen-%d" % i, leaf=k.stolen)
                self.assert_denied(r, "revoked", "photos.localhost")
        # A good reload still works and applies.
        ok = m.reload(m.config({
            "photos.localhost": self.site_cfg(up, k.ca.cert, self.good_crl,
                                              public=["GET /share/**", "GET /now-public/**"]),
            "open.localhost": M.site(up)}))
        self.assertTrue(ok, m.stderr())
        r = self.req("photos.localhost", "GET", "/now-public/x")
        self.assertEqual(r.status, 200, r)
        m.assert_alive()

    def status_pair(self, path):
        """(without cert, with phone's cert) on photos.localhost."""
        a = self.req("photos.localhost", "GET", path + "-none").status
        b = self.req("photos.localhost", "GET", path + "-phone", leaf=self.k.phone).status
        return a, b

    def run_check(self, cfg):
        d = self.tmp()
        f = os.path.join(d, "moat.yaml")
        with open(f, "w") as fh:
            fh.write(M.to_yaml(cfg))
        p = subprocess.run([M.MOAT_BIN, "check", "-c", f], capture_output=True, timeout=30,
                           cwd=d)
        return p.returncode, p.stdout.decode("utf-8", "replace"), p.stderr.decode("utf-8",
                                                                                   "replace")

    def check_cfg(self, sites):
        d = self.tmp()
        return {"data": os.path.join(d, "data"),
                "listen": {"http": "127.0.0.1:%d" % M.free_port(),
                           "https": "127.0.0.1:%d" % M.free_port()},
                "sites": sites}

    def test_11_check_lists_public_paths(self):
        k = self.k
        rc, out, err = self.run_check(self.check_cfg({
            "photos.localhost": M.site(8080, clients="required", client_ca=k.ca.cert,
                                       crl=self.good_crl, public=PUBLIC),
            "vault.localhost": M.site(8081, clients="required", client_ca=k.ca.cert),
            "opt.localhost": M.site(8082, clients="optional", client_ca=k.ca.cert),
            "open.localhost": M.site(8083),
        }))
        print("\n  moat check:\n" + out)
        self.assertEqual(rc, 0, "stdout:\n%s\nstderr:\n%s" % (out, err))
        self.assertIn("photos.localhost", out)
        sect = out.split("photos.localhost:", 1)
        self.assertEqual(len(sect), 2, "no per-site section for photos.localhost:\n" + out)
        photos = sect[1].split("\n\n", 1)[0]
        for entry in PUBLIC:
            self.assertIn(entry, photos, "public entry %r not listed:\n%s" % (entry, out))
        self.assertIn("certificate needed", photos, out)
        vault = out.split("vault.localhost:", 1)[-1].split("\n\n", 1)[0]
        self.assertIn("certificate needed", vault, out)
        self.assertNotIn("/share/**", vault, out)
        self.assertIn(k.ca.cert, out)

    def test_11_check_reports_bad_files(self):
        for what, ca, crl, named, words in self.bad:
            with self.subTest(what=what):
                rc, out, err = self.run_check(self.check_cfg({
                    "photos.localhost": self.site_cfg(8080, ca, crl)}))
                print("\n  check with %s: rc %s: %s" % (what, rc, err.strip()[-300:]))
                self.assertEqual(rc, 1, "moat check with %s: rc %s\nstdout:\n%s\nstderr:\n%s"
                                 % (what, rc, out, err))
                self.assert_names_file(err, named, words)


if __name__ == "__main__":
    M.main()
