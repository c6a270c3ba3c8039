"""`moat ca`: the client-certificate CA, driven through the real binary with
--data in a temp dir (and once with -c FILE), its results checked with real
tools: openssl x509 / verify / pkcs12 / crl, python3-cryptography's PKCS#12
loader, and faketime for "expired"."""

import datetime
import os
import re
import shutil
import signal
import stat
import subprocess
import threading

from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.serialization import pkcs12

import moatlib as M

RUN_TIMEOUT = 60
PASSWORD_LINE = re.compile(r"^bundle password \(shown only once[^)]*\): (\S+)$", re.M)
GENERATED = re.compile(r"^[2-9A-HJ-NP-Z]{4}(-[2-9A-HJ-NP-Z]{4}){5}$")
SERIAL_ROW = re.compile(r"^(\S+)\s+([0-9A-F]+)\s+(\d{4}-\d\d-\d\d \d\d:\d\d:\d\d UTC)\s+(\S+)$")


def run(*args, env=None, timeout=RUN_TIMEOUT, prefix=()):
    """Run moat with args (prefix: a wrapper such as faketime); returns
    (rc, stdout, stderr). A process that outlives timeout is killed by pid."""
    p = subprocess.Popen(list(prefix) + [M.MOAT_BIN] + list(args), stdin=subprocess.DEVNULL,
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env)
    try:
        out, err = p.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.kill(p.pid, signal.SIGKILL)
        p.communicate()
        raise AssertionError("moat %s still running after %d s (killed)" % (" ".join(args), timeout))
    out, err = out.decode("utf-8", "replace"), err.decode("utf-8", "replace")
    for mark in M.SANITIZER_MARKS:
        if mark in err:
            raise AssertionError("sanitizer report from moat %s:\n%s" % (" ".join(args), err))
    return p.returncode, out, err


def tool(*args, input_=None):
    p = subprocess.run(list(args), input=input_, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                       timeout=RUN_TIMEOUT)
    return p.returncode, p.stdout.decode("utf-8", "replace"), p.stderr.decode("utf-8", "replace")


def mode(path):
    return "%04o" % stat.S_IMODE(os.stat(path).st_mode)


def read(path, binary=False):
    with open(path, "rb" if binary else "r") as f:
        return f.read()


def write(path, data, binary=False):
    with open(path, "wb" if binary else "w") as f:
        f.write(data)


def not_after(cert):
    return getattr(cert, "not_valid_after_utc", None) or \
        cert.not_valid_after.replace(tzinfo=datetime.timezone.utc)


def not_before(cert):
    return getattr(cert, "not_valid_before_utc", None) or \
        cert.not_valid_before.replace(tzinfo=datetime.timezone.utc)


class CaTestCase(M.MoatTestCase):
    def setUp(self):
        self.d = self.tmp()
        self.data = os.path.join(self.d, "data")
        self.ca_dir = os.path.join(self.data, "client-ca")
        self.ca_pem = os.path.join(self.ca_dir, "ca.pem")
        self.ca_key = os.path.join(self.ca_dir, "ca.key")
        self.crl = os.path.join(self.ca_dir, "crl.pem")
        self.index = os.path.join(self.ca_dir, "index.json")
        self.clients = os.path.join(self.ca_dir, "clients")

    def ca(self, *args, want=0, **kw):
        rc, out, err = run("ca", *args, "--data", self.data, **kw)
        if want is not None:
            self.assertEqual(rc, want, "moat ca %s: exit %d, want %d\nstdout:\n%s\nstderr:\n%s"
                             % (" ".join(args), rc, want, out, err))
        return rc, out, err

    def init(self, *args):
        return self.ca("init", *args)

    def issue(self, name, *args, want=0):
        return self.ca("issue", name, *args, want=want)

    def rows(self):
        """moat ca list as [(name, serial, not_after, status)]."""
        _, out, _ = self.ca("list")
        lines = out.splitlines()
        self.assertRegex(lines[0], r"^NAME\s+SERIAL\s+NOT-AFTER\s+STATUS$", out)
        rows = []
        for line in lines[1:]:
            m = SERIAL_ROW.match(line)
            self.assertIsNotNone(m, "unexpected list line %r in:\n%s" % (line, out))
            rows.append(m.groups())
        return rows

    def serial_of(self, pem_path):
        rc, out, err = tool("openssl", "x509", "-in", pem_path, "-noout", "-serial")
        self.assertEqual(rc, 0, err)
        return out.strip().split("=", 1)[1]

    def load_cert(self, path):
        return x509.load_pem_x509_certificate(read(path, True))


class Init(CaTestCase):
    def test_creates_ca(self):
        _, out, _ = self.init("--name", "Home CA")
        self.assertIn(self.ca_dir, out, "init output does not name the CA directory")
        self.assertIn(self.ca_pem, out)
        for path, want in ((self.ca_dir, "0700"), (self.ca_key, "0600"), (self.index, "0600"),
                           (self.ca_pem, "0644"), (self.crl, "0644")):
            self.assertEqual(mode(path), want, "mode of %s: %s, want %s" % (path, mode(path), want))
        rc, text, err = tool("openssl", "x509", "-in", self.ca_pem, "-noout", "-text")
        self.assertEqual(rc, 0, err)
        self.assertIn("Subject: O = moat, CN = Home CA", text)
        self.assertRegex(text, r"X509v3 Basic Constraints: critical\s+CA:TRUE, pathlen:0")
        self.assertRegex(text, r"X509v3 Key Usage: critical\s+Certificate Sign, CRL Sign")
        self.assertIn("X509v3 Subject Key Identifier", text)
        self.assertIn("ASN1 OID: prime256v1", text)
        cert = self.load_cert(self.ca_pem)
        life = not_after(cert) - not_before(cert)
        self.assertEqual(life, datetime.timedelta(days=3652, minutes=5),
                         "CA lifetime %s, want 3652 days + 5 min backdating" % life)
        rc, out, err = tool("openssl", "crl", "-in", self.crl, "-CAfile", self.ca_pem,
                            "-noout", "-text")
        self.assertEqual(rc, 0, err)
        self.assertIn("verify OK", out + err)
        self.assertIn("No Revoked Certificates", out)
        self.assertEqual(read(self.index).count('"certs": []'), 1, read(self.index))

    def test_default_name(self):
        self.init()
        cn = self.load_cert(self.ca_pem).subject.get_attributes_for_oid(
            x509.NameOID.COMMON_NAME)[0].value
        self.assertTrue(cn.startswith("moat client CA (") and cn.endswith(")"),
                        "default CN %r" % cn)
        self.assertLessEqual(len(cn), 64)

    def test_refuses_overwrite(self):
        self.init()
        before = (read(self.ca_pem), read(self.ca_key), read(self.index))
        rc, out, err = self.ca("init", "--name", "Other", want=1)
        self.assertIn(self.ca_dir, err, "refusal does not name the CA directory")
        self.assertIn("already exists", err)
        self.assertEqual((read(self.ca_pem), read(self.ca_key), read(self.index)), before,
                         "a refused init changed the CA files")

    def test_interrupted_init_starts_over(self):
        # a crash between writing the key and the certificate (written last)
        self.init()
        old_key = read(self.ca_key)
        os.unlink(self.ca_pem)
        rc, out, err = self.ca("init", "--name", "Again")
        self.assertIn("interrupted", err)
        self.assertNotEqual(read(self.ca_key), old_key)
        self.assertIn("CN=Again", self.load_cert(self.ca_pem).subject.rfc4514_string())
        aside = [f for f in os.listdir(self.ca_dir) if f.startswith("ca.key.interrupted-")]
        self.assertEqual(len(aside), 1, os.listdir(self.ca_dir))
        self.assertEqual(read(os.path.join(self.ca_dir, aside[0])), old_key,
                         "the old key was not kept")
        # the same without an index at all
        os.unlink(self.ca_pem)
        os.unlink(self.index)
        self.ca("init")

    def test_used_ca_without_certificate_and_index_is_not_replaced(self):
        # revoked something (CRL number 2, an entry) and lost ca.pem and the
        # index: the key was used, so init refuses
        self.init()
        self.ca("issue", "phone")
        self.ca("revoke", "phone")
        os.unlink(self.ca_pem)
        os.unlink(self.index)
        key = read(self.ca_key)
        rc, out, err = self.ca("init", want=1)
        self.assertIn("already exists", err)
        self.assertEqual(read(self.ca_key), key)
        # issued but nothing revoked: the client files give it away
        shutil.rmtree(self.ca_dir)
        self.init()
        self.ca("issue", "laptop")
        os.unlink(self.ca_pem)
        os.unlink(self.index)
        self.ca("init", want=1)

    def test_lost_certificate_of_a_used_ca_is_not_replaced(self):
        # the key issued something: a new CA would orphan it; never guess
        self.init()
        self.ca("issue", "alice")
        os.unlink(self.ca_pem)
        key = read(self.ca_key)
        rc, out, err = self.ca("init", want=1)
        self.assertIn("already exists", err)
        self.assertEqual(read(self.ca_key), key)

    def test_bad_ca_name(self):
        rc, out, err = self.ca("init", "--name", "x" * 65, want=2)
        self.assertIn("64", err)
        self.assertFalse(os.path.exists(self.ca_pem), "a CA was created with a bad name")


class Issue(CaTestCase):
    def setUp(self):
        super().setUp()
        self.init()

    def test_client_certificate(self):
        _, out, _ = self.issue("alice", "--days", "30")
        pem = os.path.join(self.clients, "alice.pem")
        key = os.path.join(self.clients, "alice.key")
        self.assertIn(pem, out, "issue output does not print the certificate path")
        self.assertIn(key, out, "issue output does not print the key path")
        self.assertEqual(mode(self.clients), "0700")
        self.assertEqual(mode(pem), "0644")
        self.assertEqual(mode(key), "0600")
        rc, text, err = tool("openssl", "x509", "-in", pem, "-noout", "-text")
        self.assertEqual(rc, 0, err)
        self.assertRegex(text, r"X509v3 Extended Key Usage:\s*\n\s+TLS Web Client Authentication\n")
        self.assertIn("Subject: CN = alice\n", text)
        self.assertRegex(text, r"X509v3 Key Usage: critical\s+Digital Signature\n")
        self.assertRegex(text, r"X509v3 Basic Constraints: critical\s+CA:FALSE")
        self.assertIn("X509v3 Authority Key Identifier", text)
        serial = int(self.serial_of(pem), 16)
        self.assertGreater(serial.bit_length(), 64, "serial %x is not random 128-bit" % serial)
        self.assertLessEqual(serial.bit_length(), 127)
        self.assertIn("%X" % serial, out, "issue output does not print the serial")
        cert = self.load_cert(pem)
        life = not_after(cert) - not_before(cert)
        self.assertEqual(life, datetime.timedelta(days=30, minutes=5))
        rc, out, err = tool("openssl", "verify", "-purpose", "sslclient", "-CAfile",
                            self.ca_pem, pem)
        self.assertEqual(rc, 0, out + err)
        self.assertIn("OK", out)
        # A client certificate is not a server certificate.
        rc, out, err = tool("openssl", "verify", "-purpose", "sslserver", "-CAfile",
                            self.ca_pem, pem)
        self.assertNotEqual(rc, 0, "verified as a TLS server certificate:\n" + out)
        pub = serialization.load_pem_private_key(read(key, True), None).public_key()
        self.assertEqual(pub.public_numbers(), cert.public_key().public_numbers())

    def test_default_days_and_limits(self):
        self.issue("dflt")
        cert = self.load_cert(os.path.join(self.clients, "dflt.pem"))
        self.assertEqual(not_after(cert) - not_before(cert), datetime.timedelta(days=825, minutes=5))
        for bad in ("0", "3651", "abc", "-5", "10x"):
            rc, out, err = self.ca("issue", "x", "--days", bad, want=2)
            self.assertIn(bad, err, "--days %s: the message does not name the value" % bad)
        self.issue("longest", "--days", "3650")

    def test_bad_names(self):
        for name in (".hidden", "-rf", "a/b", "../up", "sp ace", "x" * 65, "caf\u00e9"):
            rc, out, err = run("ca", "issue", "--data", self.data, "--", name)
            self.assertEqual(rc, 2, "name %r: exit %d\n%s" % (name, rc, err))
            self.assertIn("cannot be a certificate name", err, "name %r: %s" % (name, err))
        self.assertFalse(os.path.exists(self.clients), "files were written for a bad name")
        self.issue("ok.name_1@home-x")

    def test_duplicate_needs_force(self):
        self.issue("alice")
        first = self.serial_of(os.path.join(self.clients, "alice.pem"))
        rc, out, err = self.issue("alice", want=1)
        self.assertIn("--force", err)
        self.assertIn("moat ca revoke alice", err)
        self.assertIn(first, err, "the refusal should name the active serial")
        self.assertEqual(len(self.rows()), 1)
        self.issue("alice", "--force")
        rows = self.rows()
        self.assertEqual([r[0] for r in rows], ["alice", "alice"])
        self.assertNotEqual(rows[0][1], rows[1][1])

    def test_out_dir_and_option_order(self):
        out_dir = os.path.join(self.d, "elsewhere")
        rc, out, err = run("ca", "issue", "--data", self.data, "--days", "5", "--out", out_dir,
                           "bob")
        self.assertEqual(rc, 0, err)
        self.assertTrue(os.path.exists(os.path.join(out_dir, "bob.pem")))
        self.assertEqual(mode(os.path.join(out_dir, "bob.key")), "0600")
        rc, out, err = run("--help")  # the top-level usage mentions ca
        self.assertIn("ca COMMAND", out)

    def test_p12_never_lands_in_a_state_directory(self):
        before = read(self.ca_key, True)
        rc, out, err = self.issue("laptop", "--p12", self.ca_key, want=1)
        self.assertIn("one of moat's own state directories", err)
        self.assertEqual(read(self.ca_key, True), before, "ca.key was replaced by a bundle")
        _, out, _ = self.ca("list")
        self.assertIn("no client certificates were issued yet", out,
                      "a refused bundle still issued a certificate")

    def test_p12_into_a_missing_directory_issues_nothing(self):
        rc, out, err = self.issue("alice", "--p12", os.path.join(self.d, "no", "such",
                                                                 "alice.p12"), want=1)
        self.assertIn("nothing was issued", err)
        _, out, _ = self.ca("list")
        self.assertIn("no client certificates were issued yet", out)
        self.issue("alice")  # and the name is still free

    def test_out_dir_is_never_a_state_directory(self):
        # NAME.pem/NAME.key there could replace a CA's certificate and key
        before = {p: read(p, True) for p in (self.ca_pem, self.ca_key, self.crl)}
        for name, out_dir in (("ca", self.ca_dir), ("crl", self.ca_dir),
                              ("internal-ca", self.data), ("app.localhost",
                                                           os.path.join(self.data, "certs"))):
            os.makedirs(out_dir, exist_ok=True)
            rc, out, err = self.issue(name, "--out", out_dir, want=1)
            self.assertIn("one of moat's own state directories", err)
            if name != "ca":  # ca.key is the CA's own, compared below
                self.assertFalse(os.path.exists(os.path.join(out_dir, name + ".key")),
                                 "%s.key was written to %s" % (name, out_dir))
        for p, data in before.items():
            self.assertEqual(read(p, True), data, "%s changed" % p)
        _, out, _ = self.ca("list")
        self.assertIn("no client certificates were issued yet", out,
                      "refused issues left index entries")
        # the same directory reached by another path is refused too
        rc, out, err = self.issue("ca", "--out", self.ca_dir + "/../client-ca/.", want=1)

    def p12_info(self, path, password):
        rc, out, err = tool("openssl", "pkcs12", "-info", "-noout", "-in", path,
                            "-passin", "pass:" + password)
        self.assertEqual(rc, 0, "openssl pkcs12 -info failed:\n" + out + err)
        return out + err

    def check_bundle(self, path, password, name):
        ca_der = self.load_cert(self.ca_pem).public_bytes(serialization.Encoding.DER)
        key, cert, extra = pkcs12.load_key_and_certificates(read(path, True), password.encode())
        self.assertEqual(cert.subject.rfc4514_string(), "CN=" + name)
        self.assertEqual(key.public_key().public_numbers(), cert.public_key().public_numbers())
        self.assertEqual([c.public_bytes(serialization.Encoding.DER) for c in extra], [ca_der],
                         "the bundle's chain is not exactly the CA")
        bundle = pkcs12.load_pkcs12(read(path, True), password.encode())
        self.assertEqual(bundle.cert.friendly_name, name.encode())
        with self.assertRaises(ValueError):
            pkcs12.load_key_and_certificates(read(path, True), b"wrong" + password.encode())

    def test_p12_modern(self):
        p12 = os.path.join(self.d, "alice.p12")
        self.issue("alice", "--p12", p12, "--password", "correct horse")
        self.assertEqual(mode(p12), "0600")
        info = self.p12_info(p12, "correct horse")
        self.assertIn("MAC: sha256, Iteration 20000", info)
        self.assertIn("PKCS7 Encrypted data: PBES2, PBKDF2, AES-256-CBC, Iteration 20000, "
                      "PRF hmacWithSHA256", info)
        self.assertIn("Shrouded Keybag: PBES2, PBKDF2, AES-256-CBC, Iteration 20000, "
                      "PRF hmacWithSHA256", info)
        self.assertNotIn("TripleDES", info)
        self.check_bundle(p12, "correct horse", "alice")
        rc, out, err = tool("openssl", "pkcs12", "-info", "-noout", "-in", p12,
                            "-passin", "pass:wrong")
        self.assertNotEqual(rc, 0, "the bundle opened with a wrong password")

    def test_p12_legacy(self):
        p12 = os.path.join(self.d, "old.p12")
        self.issue("old-phone", "--p12", p12, "--password", "pw", "--legacy")
        self.assertEqual(mode(p12), "0600")
        info = self.p12_info(p12, "pw")
        self.assertIn("MAC: sha1, Iteration 2048", info)
        self.assertIn("PKCS7 Encrypted data: pbeWithSHA1And3-KeyTripleDES-CBC, Iteration 2048",
                      info)
        self.assertIn("Shrouded Keybag: pbeWithSHA1And3-KeyTripleDES-CBC, Iteration 2048", info)
        self.assertNotIn("PBES2", info)
        self.check_bundle(p12, "pw", "old-phone")

    def test_generated_password(self):
        p12 = os.path.join(self.d, "gen.p12")
        _, out, err = self.issue("gen", "--p12", p12)
        found = PASSWORD_LINE.findall(out)
        self.assertEqual(len(found), 1, "want exactly one password line:\n" + out)
        pw = found[0]
        self.assertRegex(pw, GENERATED)
        self.assertEqual(out.count(pw), 1, "the password is printed more than once")
        self.assertNotIn(pw, err)
        self.check_bundle(p12, pw, "gen")
        for root, _, files in os.walk(self.data):
            for f in files:
                self.assertNotIn(pw.encode(), read(os.path.join(root, f), True),
                                 "the password is stored in " + f)
        _, out2, _ = self.issue("gen2", "--p12", os.path.join(self.d, "gen2.p12"))
        self.assertNotEqual(PASSWORD_LINE.findall(out2), [pw], "the same password twice")

    def test_password_file(self):
        p12 = os.path.join(self.d, "f.p12")
        pwf = os.path.join(self.d, "pw.txt")
        write(pwf, "from a file\r\nsecond line\n")
        _, out, _ = self.issue("f", "--p12", p12, "--password-file", pwf)
        self.assertEqual(PASSWORD_LINE.findall(out), [], "a given password is not printed")
        self.assertNotIn("from a file", out)
        self.check_bundle(p12, "from a file", "f")
        for content, what in (("\nx\n", "empty"), ("x" * 5000, "bytes")):
            write(pwf, content)
            rc, out, err = self.issue("g", "--p12", os.path.join(self.d, "g.p12"),
                                      "--password-file", pwf, want=1)
            self.assertIn(pwf, err)
            self.assertIn(what, err)
        self.assertNotIn('"g"', read(self.index), "a certificate was issued anyway")

    def test_password_options_need_p12(self):
        for extra in (["--password", "x"], ["--legacy"], ["--password-file", "/dev/null"]):
            rc, out, err = self.ca("issue", "x", *extra, want=2)
            self.assertIn("--p12", err)
        rc, out, err = self.ca("issue", "x", "--p12", "x.p12", "--password", "a",
                               "--password-file", "/dev/null", want=2)
        self.assertIn("not both", err)
        rc, out, err = self.ca("issue", "x", "--p12", "x.p12", "--password=", want=2)
        self.assertIn("empty", err)


class ListAndRevoke(CaTestCase):
    def setUp(self):
        super().setUp()
        self.init()

    def test_empty_list(self):
        _, out, _ = self.ca("list")
        self.assertIn("no client certificates were issued yet", out)

    def test_table(self):
        self.issue("alice", "--days", "10")
        self.issue("bob")
        rows = self.rows()
        serial = self.serial_of(os.path.join(self.clients, "alice.pem"))
        self.assertEqual(rows[0][0], "alice")
        self.assertEqual(rows[0][1], serial)
        self.assertEqual(rows[0][3], "active")
        cert = self.load_cert(os.path.join(self.clients, "alice.pem"))
        self.assertEqual(rows[0][2], not_after(cert).strftime("%Y-%m-%d %H:%M:%S UTC"))
        self.assertEqual((rows[1][0], rows[1][3]), ("bob", "active"))

    def faketime(self):
        if shutil.which("faketime") is None:
            self.skipTest("faketime is not installed (scripts/deps.sh test)")
        env = dict(os.environ)
        # faketime preloads itself, which ASan wants to come first.
        env["ASAN_OPTIONS"] = env.get("ASAN_OPTIONS", "") + ":verify_asan_link_order=0"
        return env

    def test_expired_and_revoked(self):
        env = self.faketime()
        self.issue("short", "--days", "1")
        self.issue("long")
        self.issue("gone", "--days", "1")
        self.ca("revoke", "gone")
        self.assertEqual([r[3] for r in self.rows()], ["active", "active", "revoked"])
        rc, out, err = run("ca", "list", "--data", self.data, env=env,
                           prefix=("faketime", "+2 days"))
        self.assertEqual(rc, 0, err)
        status = {m.group(1): m.group(4) for m in map(SERIAL_ROW.match, out.splitlines()[1:])}
        self.assertEqual(status, {"short": "expired", "long": "active", "gone": "revoked"},
                         "in two days:\n" + out)
        rc, out, err = run("ca", "list", "--data", self.data, env=env,
                           prefix=("faketime", "+900 days"))
        status = {m.group(1): m.group(4) for m in map(SERIAL_ROW.match, out.splitlines()[1:])}
        self.assertEqual(status, {"short": "expired", "long": "expired", "gone": "revoked"},
                         "in 900 days:\n" + out)
        # An expired certificate does not block its name.
        rc, out, err = run("ca", "issue", "short", "--data", self.data, env=env,
                           prefix=("faketime", "+2 days"))
        self.assertEqual(rc, 0, err)

    def crl_text(self):
        rc, out, err = tool("openssl", "crl", "-in", self.crl, "-CAfile", self.ca_pem,
                            "-noout", "-text")
        self.assertEqual(rc, 0, err)
        self.assertIn("verify OK", out + err, "the CRL does not verify against ca.pem")
        return out

    def test_revoke(self):
        self.issue("alice")
        self.issue("bob")
        alice = self.serial_of(os.path.join(self.clients, "alice.pem"))
        bob = self.serial_of(os.path.join(self.clients, "bob.pem"))
        _, out, _ = self.ca("revoke", "alice")
        self.assertIn('revoked "alice" serial %s' % alice, out)
        self.assertIn("within a second", out)
        text = self.crl_text()
        self.assertIn("Serial Number: " + alice, text)
        self.assertNotIn(bob, text)
        self.assertRegex(text, r"X509v3 CRL Number:\s*\n\s+2\n")
        self.assertIn("X509v3 Authority Key Identifier", text)
        self.assertEqual([(r[0], r[3]) for r in self.rows()],
                         [("alice", "revoked"), ("bob", "active")])
        self.ca("revoke", "bob")
        text = self.crl_text()
        self.assertIn("Serial Number: " + alice, text)
        self.assertIn("Serial Number: " + bob, text)
        self.assertRegex(text, r"X509v3 CRL Number:\s*\n\s+3\n")
        # A revoked name may get a new certificate without --force.
        self.issue("alice")

    def test_revoke_one_serial(self):
        self.issue("alice")
        first = self.serial_of(os.path.join(self.clients, "alice.pem"))
        self.issue("alice", "--force")
        second = self.serial_of(os.path.join(self.clients, "alice.pem"))
        _, out, _ = self.ca("revoke", "alice", "--serial", first.lower())
        self.assertIn(first, out)
        self.assertNotIn(second, out)
        self.assertEqual([r[3] for r in self.rows()], ["revoked", "active"])
        self.assertNotIn(second, self.crl_text())

    def test_revoke_errors(self):
        self.issue("alice")
        self.issue("bob")
        bob = self.serial_of(os.path.join(self.clients, "bob.pem"))
        rc, out, err = self.ca("revoke", "nobody", want=1)
        self.assertIn("nobody", err)
        self.assertIn("moat ca list", err)
        rc, out, err = self.ca("revoke", "alice", "--serial", bob, want=1)
        self.assertIn("moat ca list", err)
        self.assertEqual([r[3] for r in self.rows()], ["active", "active"])
        self.ca("revoke", "alice", "--serial", "zz", want=2)
        self.ca("revoke", "alice")
        rc, out, err = self.ca("revoke", "alice", want=1)
        self.assertIn("already revoked", err)
        self.ca("revoke", want=2)


class Export(CaTestCase):
    def test_export(self):
        rc, out, err = self.ca("export", want=1)
        self.assertIn("moat ca init", err)
        self.init()
        _, out, _ = self.ca("export")
        self.assertEqual(out, read(self.ca_pem))
        self.assertIn("-----BEGIN CERTIFICATE-----", out)


class Usage(CaTestCase):
    def test_help(self):
        rc, out, err = run("ca", "--help")
        self.assertEqual(rc, 0, err)
        for sub in ("init", "issue", "list", "revoke", "export"):
            self.assertIn(sub, out)
            rc, sout, err = run("ca", sub, "--help")
            self.assertEqual(rc, 0, err)
            self.assertIn("usage: moat ca " + sub, sout)
        rc, out, err = run("help")
        self.assertIn("ca COMMAND", out)
        for args in (["ca", "help", "revoke"], ["ca", "--help", "revoke"]):
            rc, out, err = run(*args)
            self.assertEqual(rc, 0, "moat %s: %s" % (" ".join(args), err))
            self.assertIn("usage: moat ca revoke", out)

    def test_usage_errors(self):
        cases = [
            (["ca"], "usage"),
            (["ca", "frobnicate"], "frobnicate"),
            (["ca", "list", "--bogus"], "--bogus"),
            (["ca", "list", "--days", "3"], "--days"),
            (["ca", "init", "extra"], "extra"),
            (["ca", "issue"], "NAME"),
            (["ca", "list", "--data"], "--data"),
            (["ca", "list", "--data", "/x", "-c", "/y"], "not both"),
            (["ca", "issue", "x", "--force=yes"], "--force"),
        ]
        for args, word in cases:
            rc, out, err = run(*args)
            self.assertEqual(rc, 2, "moat %s: exit %d, want 2\n%s%s" % (" ".join(args), rc, out, err))
            self.assertIn(word, err, "moat %s: message lacks %r:\n%s" % (" ".join(args), word, err))
            if len(args) > 1:
                self.assertIn("--help", err, "no hint in:\n" + err)

    def test_no_ca_yet(self):
        for sub in ("list", "issue x", "revoke x"):
            rc, out, err = self.ca(*sub.split(), want=1)
            self.assertIn("moat ca init", err, "moat ca %s without a CA:\n%s" % (sub, err))


class Concurrency(CaTestCase):
    def test_parallel_issue(self):
        self.init()
        names = ["user%d" % i for i in range(8)]
        results = {}

        def one(name):
            results[name] = run("ca", "issue", name, "--data", self.data)
        threads = [threading.Thread(target=one, args=(n,)) for n in names]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        for n in names:
            rc, out, err = results[n]
            self.assertEqual(rc, 0, "issue %s: %s" % (n, err))
        rows = self.rows()
        self.assertEqual(sorted(r[0] for r in rows), names, "index lost an entry")
        self.assertEqual(len({r[1] for r in rows}), 8)


class CorruptIndex(CaTestCase):
    def test_rejected_untouched(self):
        self.init()
        self.issue("alice")
        write(self.index, '{"version": 1, "crl_number": 1, "certs": [')
        before = read(self.index)
        for args in (["issue", "bob"], ["list"], ["revoke", "alice"]):
            rc, out, err = self.ca(*args, want=1)
            self.assertIn(self.index, err, "moat ca %s: message does not name the index" % args[0])
            self.assertIn("backup", err)
            self.assertEqual(read(self.index), before, "moat ca %s changed the index" % args[0])


class Config(CaTestCase):
    def config(self, data):
        p = os.path.join(self.d, "moat.yaml")
        write(p, "data: %s\nlisten:\n  http: \"127.0.0.1:%d\"\n  https: \"127.0.0.1:%d\"\n"
                 "sites:\n  app.test:\n    to: http://127.0.0.1:9101\n"
              % (data, *M.free_ports(2)))
        return p

    def test_data_from_config(self):
        conf = self.config(self.data)
        rc, out, err = run("ca", "init", "-c", conf)
        self.assertEqual(rc, 0, err)
        self.assertTrue(os.path.exists(self.ca_pem), "-c did not use the config's data:")
        rc, out, err = run("ca", "issue", "-c", conf, "alice")
        self.assertEqual(rc, 0, err)
        self.assertEqual([r[0] for r in self.rows()], ["alice"])

    def test_config_that_uses_the_ca_before_it_exists(self):
        # moat run and moat check need the CA; moat ca is how it gets made
        conf = os.path.join(self.d, "gated.yaml")
        write(conf, "data: %s\nlisten:\n  http: \"127.0.0.1:%d\"\n  https: \"127.0.0.1:%d\"\n"
                    "sites:\n  app.test:\n    to: http://127.0.0.1:9101\n    clients: required\n"
              % (self.data, *M.free_ports(2)))
        rc, out, err = run("check", "-c", conf)
        self.assertEqual(rc, 1, "moat check passed without the CA:\n" + out + err)
        self.assertIn("moat ca init -c " + conf, err)
        rc, out, err = run("ca", "init", "-c", conf)
        self.assertEqual(rc, 0, err)
        rc, out, err = run("ca", "issue", "alice", "-c", conf)
        self.assertEqual(rc, 0, err)
        # a lost CRL is repaired by the next revoke, through the same config
        os.unlink(self.crl)
        rc, out, err = run("check", "-c", conf)
        self.assertEqual(rc, 1, "moat check passed without the CRL")
        rc, out, err = run("ca", "revoke", "alice", "-c", conf)
        self.assertEqual(rc, 0, err)
        self.assertTrue(os.path.exists(self.crl))
        rc, out, err = run("check", "-c", conf)
        self.assertEqual(rc, 0, out + err)

    def test_bad_config(self):
        p = os.path.join(self.d, "bad.yaml")
        write(p, "data: %s\nbogus_key: 1\n" % self.data)
        rc, out, err = run("ca", "init", "-c", p)
        self.assertEqual(rc, 1, err)
        self.assertIn("%s:2:1:" % p, err)
        self.assertFalse(os.path.exists(self.ca_dir))


if __name__ == "__main__":
    M.main()
