"""
The internal CA and its leaves on disk (docs/internals/pki.md, docs/config.md
"data" and "tls"; runtime-contract.md "HTTPS").

First start: file modes, no temp files left, served leaves chain to the root
and have the documented shape. Restart: nothing reissued. Renewal: a leaf
inside the renewal window is replaced at start. Never fail open: a missing or
corrupt CA key, a mismatched file pair and a reload whose key file vanished are
all refused without touching the files. `moat check` writes nothing.
"""

import datetime
import hashlib
import os
import shutil
import signal
import stat
import subprocess

import moatlib as M

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

A, W, W_HOST = "a.test", "*.w.test", "x.w.test"
WAIT = 60.0  # deadlock breaker only
DAY = datetime.timedelta(days=1)


def utcnow():
    return datetime.datetime.now(datetime.timezone.utc).replace(tzinfo=None)


def not_before(c):
    """Naive UTC notBefore (cryptography before and after 42)."""
    if hasattr(c, "not_valid_before_utc"):
        return c.not_valid_before_utc.replace(tzinfo=None)
    return c.not_valid_before


def not_after(c):
    if hasattr(c, "not_valid_after_utc"):
        return c.not_valid_after_utc.replace(tzinfo=None)
    return c.not_valid_after


def mode(path):
    return stat.S_IMODE(os.stat(path).st_mode)


def read(path):
    with open(path, "rb") as f:
        return f.read()


def entries(root):
    """Every file and directory under root, relative."""
    return sorted(os.path.relpath(os.path.join(d, n), root)
                  for d, dns, fns in os.walk(root) for n in dns + fns)


def snapshot(root):
    """{relative path: bytes} of every regular file under root ({} if root is
    absent), except the daemon's lock, which each start writes its pid into."""
    out = {}
    for d, _, files in os.walk(root):
        for n in files:
            p = os.path.join(d, n)
            if stat.S_ISREG(os.lstat(p).st_mode) and os.path.relpath(p, root) != "moat.lock":
                out[os.path.relpath(p, root)] = read(p)
    return out


def served_cert(moat, sni, ca=None):
    """The leaf moat sends for sni, after a handshake verified against ca
    (default: the internal root) with host name checking."""
    ctx = M.tls_context(ca or moat.ca)
    s = M.tls_connect(moat, sni, ctx=ctx)
    try:
        der = s.getpeercert(binary_form=True)
    finally:
        s.close()
    return x509.load_der_x509_certificate(der)


def signed_by(cert, issuer):
    if cert.issuer != issuer.subject:
        return False
    try:
        issuer.public_key().verify(cert.signature, cert.tbs_certificate_bytes,
                                   ec.ECDSA(cert.signature_hash_algorithm))
    except InvalidSignature:
        return False
    return True


def load_pem_cert(path):
    return x509.load_pem_x509_certificate(read(path))


class InternalCA(M.MoatTestCase):
    def new_moat(self, data=None):
        """A Moat (not started); data: reuse another moat's data dir."""
        m = M.Moat(self)
        if data is not None:
            m.data = data
            m.ca = os.path.join(data, "internal-ca.pem")
        return m

    def start(self, up, data=None, sites=None):
        m = self.new_moat(data)
        m.start(m.config(sites or {A: M.site(up), W: M.site(up)}))
        return m

    def run_refused(self, conf_file, cwd):
        """`moat run -c conf_file` that must exit on its own (never serve):
        returns (rc, stderr). A moat that starts anyway is stopped by pid."""
        errf = os.path.join(cwd, "refused-stderr.txt")
        with open(errf, "wb") as err:
            p = subprocess.Popen([M.MOAT_BIN, "run", "-c", conf_file], stdin=subprocess.DEVNULL,
                                 stdout=subprocess.DEVNULL, stderr=err, cwd=cwd)

        def reap():
            if p.poll() is None:
                p.kill()
            p.wait(10)
        self.addCleanup(reap)
        try:
            rc = p.wait(WAIT)
        except subprocess.TimeoutExpired:
            p.send_signal(signal.SIGTERM)
            try:
                p.wait(15)
            except subprocess.TimeoutExpired:
                p.kill()
            self.fail("moat run did not refuse (still running after %.0f s); stderr:\n%s"
                      % (WAIT, read(errf).decode("utf-8", "replace")))
        text = read(errf).decode("utf-8", "replace")
        self.assertNotIn("moat: ready", text, "moat served with a broken certificate setup")
        for mark in M.SANITIZER_MARKS:
            self.assertNotIn(mark, text, "sanitizer report:\n" + text)
        return rc, text

    def check(self, conf_file, cwd):
        p = subprocess.run([M.MOAT_BIN, "check", "-c", conf_file], stdin=subprocess.DEVNULL,
                           capture_output=True, cwd=cwd, timeout=WAIT)
        err = p.stderr.decode("utf-8", "replace")
        for mark in M.SANITIZER_MARKS:
            self.assertNotIn(mark, err, "sanitizer report:\n" + err)
        return p.returncode, p.stdout.decode("utf-8", "replace"), err

    def write_conf(self, moat, sites):
        text = M.to_yaml(moat.config(sites))
        with open(moat.conf_file, "w") as f:
            f.write(text)
        return moat.conf_file

    # ------------------------------------------------------------ 1. first start

    def test_first_start_files_and_served_leaves(self):
        up = self.upstream()
        moat = self.start(up)
        d = moat.data
        key = os.path.join(d, "internal-ca.key")
        self.assertEqual(mode(d), 0o700, "data dir mode")
        self.assertTrue(os.path.isfile(moat.ca), "no internal-ca.pem")
        self.assertEqual(mode(key), 0o600, "internal-ca.key mode")
        self.assertEqual(mode(os.path.join(d, "certs")), 0o700, "certs/ mode")
        for name in (A, "_.w.test"):
            self.assertTrue(os.path.isfile(os.path.join(d, "certs", name + ".pem")), name)
            self.assertEqual(mode(os.path.join(d, "certs", name + ".key")), 0o600,
                             "certs/%s.key mode" % name)
        leftovers = [os.path.join(dp, n) for dp, dns, fns in os.walk(d)
                     for n in dns + fns if ".tmp" in n]
        self.assertEqual(leftovers, [], "temp files left in the data dir")

        root = load_pem_cert(moat.ca)
        self.assertTrue(root.extensions.get_extension_for_class(x509.BasicConstraints).value.ca)
        now = utcnow()
        for sni, site_name in ((A, A), (W_HOST, W)):
            # the handshake itself verifies the chain to internal-ca.pem and the name
            leaf = served_cert(moat, sni)
            self.assertTrue(signed_by(leaf, root), "%s: leaf not signed by internal-ca.pem" % sni)
            pub = leaf.public_key()
            self.assertIsInstance(pub, ec.EllipticCurvePublicKey, sni)
            self.assertEqual(pub.curve.name, "secp256r1", sni)
            sans = leaf.extensions.get_extension_for_class(
                x509.SubjectAlternativeName).value.get_values_for_type(x509.DNSName)
            self.assertIn(site_name, sans, "%s: SAN %r" % (sni, sans))
            eku = leaf.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
            self.assertIn(ExtendedKeyUsageOID.SERVER_AUTH, list(eku), sni)
            self.assertFalse(leaf.extensions.get_extension_for_class(
                x509.BasicConstraints).value.ca, "%s: leaf is a CA" % sni)
            life = not_after(leaf) - not_before(leaf)
            self.assertTrue(29 * DAY < life < 31 * DAY, "%s: lifetime %s" % (sni, life))
            left = not_after(leaf) - now
            self.assertTrue(29 * DAY < left < 31 * DAY, "%s: expires in %s" % (sni, left))
            self.assertLessEqual(not_before(leaf), now, "%s: not valid yet" % sni)
            # the file on disk is what is served
            name = site_name.replace("*", "_")
            self.assertEqual(load_pem_cert(os.path.join(moat.data, "certs", name + ".pem"))
                             .serial_number, leaf.serial_number, sni)
        self.assertEqual(M.curl(moat, A, "/").status, 200)
        self.assertEqual(M.curl(moat, W_HOST, "/").status, 200)

    # ------------------------------------------------------------ 2. restart

    def test_restart_reuses_ca_and_leaves(self):
        up = self.upstream()
        first = self.start(up)
        ca_bytes = read(first.ca)
        files = snapshot(first.data)
        serials = {sni: served_cert(first, sni).serial_number for sni in (A, W_HOST)}
        first.stop()

        second = self.start(up, data=first.data)
        self.assertEqual(read(second.ca), ca_bytes, "internal-ca.pem changed on restart")
        for sni in (A, W_HOST):
            self.assertEqual(served_cert(second, sni).serial_number, serials[sni],
                             "%s: leaf reissued on restart" % sni)
        self.assertEqual(snapshot(second.data), files, "files in the data dir changed")
        err = second.stderr()
        self.assertNotIn("issued internal certificate", err)
        self.assertNotIn("created internal CA", err)

    # ------------------------------------------------------------ 3. renewal

    def forge_leaf(self, data, host, days_ago, days_left):
        """Replace certs/<host>.{pem,key} with a valid leaf for host signed by
        the internal CA key, valid from days_ago to days_left from now."""
        ca_cert = load_pem_cert(os.path.join(data, "internal-ca.pem"))
        ca_key = serialization.load_pem_private_key(read(os.path.join(data, "internal-ca.key")),
                                                    None)
        key = ec.generate_private_key(ec.SECP256R1())
        now = datetime.datetime.now(datetime.timezone.utc)
        cert = (x509.CertificateBuilder()
                .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, host)]))
                .issuer_name(ca_cert.subject).public_key(key.public_key())
                .serial_number(x509.random_serial_number())
                .not_valid_before(now - datetime.timedelta(days=days_ago))
                .not_valid_after(now + datetime.timedelta(days=days_left))
                .add_extension(x509.SubjectAlternativeName([x509.DNSName(host)]), critical=False)
                .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
                .add_extension(x509.KeyUsage(True, False, False, False, False, False, False,
                                             False, False), critical=True)
                .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]),
                               critical=False)
                .sign(ca_key, hashes.SHA256()))
        stem = os.path.join(data, "certs", host.replace("*", "_"))
        fd = os.open(stem + ".key", os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "wb") as f:
            f.write(key.private_bytes(serialization.Encoding.PEM,
                                      serialization.PrivateFormat.PKCS8,
                                      serialization.NoEncryption()))
        with open(stem + ".pem", "wb") as f:
            f.write(cert.public_bytes(serialization.Encoding.PEM)
                    + ca_cert.public_bytes(serialization.Encoding.PEM))
        return cert

    def test_leaf_in_renewal_window_is_reissued_at_start(self):
        up = self.upstream()
        first = self.start(up)
        w_serial = served_cert(first, W_HOST).serial_number
        first.stop()
        old = self.forge_leaf(first.data, A, days_ago=28, days_left=2)
        old_pem = read(os.path.join(first.data, "certs", A + ".pem"))
        old_key = read(os.path.join(first.data, "certs", A + ".key"))

        second = self.start(up, data=first.data)
        leaf = served_cert(second, A)
        self.assertNotEqual(leaf.serial_number, old.serial_number,
                            "a leaf with 2 of 30 days left was not renewed")
        left = not_after(leaf) - utcnow()
        self.assertTrue(29 * DAY < left < 31 * DAY, "renewed leaf expires in %s" % left)
        self.assertTrue(signed_by(leaf, load_pem_cert(second.ca)))
        pem = os.path.join(second.data, "certs", A + ".pem")
        self.assertNotEqual(read(pem), old_pem, "certs/a.test.pem not replaced")
        self.assertNotEqual(read(os.path.join(second.data, "certs", A + ".key")), old_key,
                            "certs/a.test.key not replaced")
        self.assertEqual(load_pem_cert(pem).serial_number, leaf.serial_number,
                         "the served leaf is not the one on disk")
        self.assertEqual(mode(os.path.join(second.data, "certs", A + ".key")), 0o600)
        err = second.stderr()
        self.assertRegex(err, r"issued internal certificate for a\.test\b")
        # the other site was not due and was kept
        self.assertNotIn("issued internal certificate for *.w.test", err)
        self.assertEqual(served_cert(second, W_HOST).serial_number, w_serial)
        self.assertEqual(M.curl(second, A, "/").status, 200)

    def test_leaf_outside_renewal_window_is_kept(self):
        """Control for the test above: 11 of 30 days left (more than a third)."""
        up = self.upstream()
        first = self.start(up)
        first.stop()
        old = self.forge_leaf(first.data, A, days_ago=19, days_left=11)
        second = self.start(up, data=first.data)
        self.assertEqual(served_cert(second, A).serial_number, old.serial_number,
                         "a leaf with 11 of 30 days left was reissued")
        self.assertNotIn("issued internal certificate for a.test", second.stderr())

    # ------------------------------------------------------------ 4. never fail open

    def stopped_data_dir(self):
        """A data dir populated by one run of moat (stopped), and a fresh Moat
        (not started) configured to use it, with its config file written."""
        up = self.upstream()
        first = self.start(up)
        first.stop()
        m = self.new_moat(first.data)
        self.write_conf(m, {A: M.site(up), W: M.site(up)})
        return m

    def test_missing_ca_key_refuses_to_start(self):
        m = self.stopped_data_dir()
        key = os.path.join(m.data, "internal-ca.key")
        os.unlink(key)
        before = snapshot(m.data)
        rc, err = self.run_refused(m.conf_file, m.dir)
        self.assertNotEqual(rc, 0, err)
        self.assertIn(key, err, "stderr does not name the missing file")
        self.assertIn("missing", err)
        self.assertFalse(os.path.exists(key), "a new CA key was created")
        self.assertEqual(snapshot(m.data), before, "files in the data dir changed")

    def test_garbage_ca_key_refuses_to_start(self):
        m = self.stopped_data_dir()
        key = os.path.join(m.data, "internal-ca.key")
        with open(key, "wb") as f:
            f.write(b"this is not a key\n")
        before = snapshot(m.data)
        rc, err = self.run_refused(m.conf_file, m.dir)
        self.assertNotEqual(rc, 0, err)
        self.assertIn(key, err, "stderr does not name the bad file")
        self.assertEqual(snapshot(m.data), before, "files in the data dir changed")

    def test_mismatched_file_pair_refused_by_run_and_check(self):
        m = self.new_moat()
        c1 = M.make_cert(m.dir, ["files.test"])
        c2 = M.make_cert(self.tmp(), ["files.test"])
        key = os.path.join(m.dir, "other.key")
        shutil.copyfile(c2.key, key)
        up = self.upstream()
        self.write_conf(m, {"files.test": M.site(up, tls={"cert": c1.cert, "key": key})})
        rc, out, check_err = self.check(m.conf_file, m.dir)
        self.assertNotEqual(rc, 0, "moat check accepted a key that does not match:\n" + out)
        rc, run_err = self.run_refused(m.conf_file, m.dir)
        self.assertNotEqual(rc, 0, run_err)
        for cmd, err in (("check", check_err), ("run", run_err)):
            self.assertIn(key, err, "moat %s does not name the key file" % cmd)
            self.assertIn(c1.cert, err, "moat %s does not name the certificate file the key "
                          "fails to match" % cmd)

    def test_reload_with_missing_key_file_keeps_old_certificate(self):
        up = self.upstream()
        m = self.new_moat()
        c = M.make_cert(m.dir, ["files.test"])
        sites = {A: M.site(up), "files.test": M.site(up, tls={"cert": c.cert, "key": c.key})}
        m.start(m.config(sites))
        ctx = M.tls_context(c.ca_file)
        before = served_cert(m, "files.test", ca=c.ca_file)
        self.assertEqual(before.public_bytes(serialization.Encoding.DER), c.der)

        os.unlink(c.key)
        n = len(m.stderr())
        self.assertFalse(m.reload(m.config(sites)), "reload accepted a missing key file")
        err = m.stderr()[n:]
        self.assertIn("reload refused", err)
        self.assertIn(c.key, err, "refusal does not name the missing key file")
        m.assert_alive()
        after = served_cert(m, "files.test", ca=c.ca_file)
        self.assertEqual(hashlib.sha256(after.public_bytes(serialization.Encoding.DER)).hexdigest(),
                         c.sha256, "the running site no longer serves its certificate")
        # and it still proxies
        s = M.tls_connect(m, "files.test", ctx=ctx)
        self.addCleanup(s.close)
        h = M.H1Client(s)
        h.request("GET", "/after-refused", "files.test")
        self.assertEqual(h.read_response().status, 200)
        self.assertEqual(len(up.find("/after-refused")), 1)

    # ------------------------------------------------------------ 5. check writes nothing

    def test_check_does_not_create_data_dir_or_ca(self):
        m = self.new_moat()
        up = self.upstream()
        self.write_conf(m, {A: M.site(up), W: M.site(up)})
        before = snapshot(m.dir)
        rc, out, err = self.check(m.conf_file, m.dir)
        self.assertEqual(rc, 0, err)
        self.assertIn(A, out)
        self.assertFalse(os.path.exists(m.data), "moat check created the data dir")
        self.assertEqual(snapshot(m.dir), before, "moat check wrote files")
        self.assertEqual(entries(m.dir), [os.path.basename(m.conf_file)],
                         "moat check created files or directories")


if __name__ == "__main__":
    M.main()
