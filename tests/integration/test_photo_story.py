"""
The photo-library story end to end (issue #4): share links work for anyone,
everything else only from devices holding a certificate the owner issued with
`moat ca`, a stranger gets a clear 403, and a lost phone is shut out within a
second of `moat ca revoke`, also on the connection it has open.

Real parts only: the moat binary (run and ca), curl with the PKCS#12 bundles
`moat ca issue --p12` wrote (modern and --legacy), a Python TLS client holding
a keep-alive connection, and a recording upstream standing in for the app.
"""

import json
import os
import re
import socket
import ssl
import subprocess
import time

import moatlib as M

PUBLIC = ["GET /share/**", "GET /api/shared-links/me", "GET,HEAD /api/assets/*/thumbnail"]


def ca(moat, *args, check=True):
    p = subprocess.run([M.MOAT_BIN, "ca"] + list(args) + ["--data", moat.data],
                       capture_output=True, text=True, timeout=60)
    if check and p.returncode != 0:
        raise AssertionError("moat ca %s: exit %d\nstdout:\n%s\nstderr:\n%s"
                             % (" ".join(args), p.returncode, p.stdout, p.stderr))
    return p


def issued_paths(out):
    cert = re.search(r"certificate: (\S+)", out).group(1)
    key = re.search(r"key: +(\S+)", out).group(1)
    return cert, key


def p12_curl(moat, path, p12, password, accept=None):
    headers = [("Accept", accept)] if accept else []
    return M.curl(moat, "photos.localhost", path, headers=headers,
                  extra=["--cert-type", "P12", "--cert", "%s:%s" % (p12, password)])


class PhotoStory(M.MoatTestCase):
    def test_story(self):
        up = self.upstream(reply=M.Reply(200, body=b"photo bytes"))
        moat = M.Moat(self)
        out = ca(moat, "init", "--name", "Home CA").stdout
        self.assertIn("created client CA \"Home CA\"", out)

        # the phone's bundle: modern encryption, generated password
        phone_p12 = os.path.join(moat.dir, "phone.p12")
        out = ca(moat, "issue", "phone", "--p12", phone_p12).stdout
        phone_pw = re.search(r"bundle password \(shown only once[^:]*\): (\S+)", out).group(1)
        phone_cert, phone_key = issued_paths(out)
        # an older tablet: legacy bundle, password from a file
        tablet_p12 = os.path.join(moat.dir, "tablet.p12")
        pwfile = os.path.join(moat.dir, "tablet.pw")
        with open(pwfile, "w") as f:
            f.write("correct horse battery staple\n")
        ca(moat, "issue", "tablet", "--p12", tablet_p12, "--legacy", "--password-file", pwfile)

        moat.start(moat.config({"photos.localhost": M.site(up, clients="required",
                                                           public=PUBLIC)}))

        # share links work for anyone
        for path in ("/share/abc123", "/share/abc123/photo/1", "/api/shared-links/me?key=k",
                     "/api/assets/42/thumbnail"):
            r = M.curl(moat, "photos.localhost", path)
            self.assertEqual(r.status, 200, "%s without a certificate: %r" % (path, r))
        r = M.curl(moat, "photos.localhost", "/api/assets/42/thumbnail", method="HEAD",
                   extra=["-I"])
        self.assertEqual(r.status, 200, "HEAD thumbnail")
        self.assertEqual(len(up.requests), 5)

        # everything else: 403 JSON for the app, HTML for a browser; nothing upstream
        r = M.curl(moat, "photos.localhost", "/api/albums", headers=[("Accept", "application/json")])
        self.assertEqual(r.status, 403, r)
        self.assertEqual(r.headers.get("Content-Type"), "application/json")
        body = json.loads(r.body)
        self.assertEqual(body["error"], "client_certificate_required")
        self.assertEqual(body["reason"], "no-cert")
        r = M.curl(moat, "photos.localhost", "/", headers=[("Accept", "text/html,*/*;q=0.8")])
        self.assertEqual(r.status, 403)
        self.assertIn("text/html", r.headers.get("Content-Type"))
        self.assertIn(b"Client certificate required", r.body)
        r = M.curl(moat, "photos.localhost", "/api/assets/42/original")
        self.assertEqual(r.status, 403, "a non-public asset path")
        self.assertEqual(len(up.requests), 5, "denied requests reached the upstream")

        # with the bundles everything passes, and the app learns who it is
        r = p12_curl(moat, "/api/albums", phone_p12, phone_pw)
        self.assertEqual(r.status, 200, r)
        req = up.requests[-1]
        self.assertEqual(req.target, "/api/albums")
        self.assertEqual(req.headers.get("X-Client-Cert-Subject"), "CN=phone")
        self.assertRegex(req.headers.get("X-Client-Cert-Fingerprint"), r"^[0-9a-f]{64}$")
        r = p12_curl(moat, "/api/albums", tablet_p12, "correct horse battery staple")
        self.assertEqual(r.status, 200, "legacy bundle: %r" % (r,))
        self.assertEqual(up.requests[-1].headers.get("X-Client-Cert-Subject"), "CN=tablet")

        # the phone keeps a connection open; then it is lost and revoked
        ctx = ssl.create_default_context(cafile=moat.ca)
        ctx.load_cert_chain(phone_cert, phone_key)
        sock = ctx.wrap_socket(socket.create_connection(("127.0.0.1", moat.https_port)),
                               server_hostname="photos.localhost")
        self.addCleanup(sock.close)
        h = M.H1Client(sock)
        h.request("GET", "/api/albums", "photos.localhost")
        self.assertEqual(h.read_response().status, 200)
        seen = len(up.requests)

        out = ca(moat, "revoke", "phone").stdout
        self.assertIn("revoked \"phone\"", out)
        t0 = time.monotonic()
        sock.settimeout(10)
        try:
            data = sock.recv(1)
        except (ConnectionResetError, ssl.SSLError):
            data = b""
        closed_after = time.monotonic() - t0
        self.assertEqual(data, b"", "the revoked phone's open connection was not closed")
        print("revoked phone's connection closed %.2f s after moat ca revoke" % closed_after)

        # a new connection from the phone: 403, saying why
        def denied():
            r = p12_curl(moat, "/api/albums", phone_p12, phone_pw)
            return r if r.status == 403 else None
        r = M.wait_until(denied, timeout=10, what="the revoked phone to get 403")
        self.assertEqual(json.loads(r.body)["reason"], "revoked")
        # share links still work for it, like for anyone
        self.assertEqual(p12_curl(moat, "/share/abc123", phone_p12, phone_pw).status, 200)
        # the tablet is unaffected
        self.assertEqual(p12_curl(moat, "/api/albums", tablet_p12,
                                  "correct horse battery staple").status, 200)
        self.assertEqual(len([r for r in up.requests[seen:] if r.target == "/api/albums"]), 1,
                         "only the tablet's request reached the app after the revocation")

        # the access log tells the story
        lines = moat.wait_access_log(lambda l: l.get("access") == "deny:revoked", timeout=10)
        self.assertEqual(lines[-1]["cert"], "phone")
        log = moat.access_log_lines()
        decisions = {(l["path"], l["access"], l["cert"]) for l in log}
        self.assertIn(("/share/abc123", "allow:public", None), decisions)
        self.assertIn(("/api/albums", "deny:no-cert", None), decisions)
        self.assertIn(("/api/albums", "allow:cert", "phone"), decisions)
        self.assertIn(("/api/albums", "allow:cert", "tablet"), decisions)
        self.assertIn(("/api/albums", "deny:revoked", "phone"), decisions)

        # moat ca list agrees
        out = ca(moat, "list").stdout
        self.assertRegex(out, r"phone\s+[0-9A-F]+\s+.*\brevoked\b")
        self.assertRegex(out, r"tablet\s+[0-9A-F]+\s+.*\bactive\b")
        moat.stop()


if __name__ == "__main__":
    M.main()
