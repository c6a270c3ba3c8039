"""
sclient - `openssl s_client` against a running moat, and what its output says.

    import sclient as S
    r = S.run(self, moat, ["-servername", "app.localhost", "-CAfile", moat.ca])
    r.session_line()  -> ("New"|"Reused", "TLSv1.3", cipher) or None
    r.status(), r.body()           the HTTP answer when a request went through stdin
    r.received(), r.sent()         -msg lines ("<<<" moat's, ">>>" ours) without record headers
    r.alerts_received(), r.handshake_received(kind), r.certs()

run() registers a cleanup on its owner (a TestCase) that stops the child by pid.
"""

import os
import re
import subprocess

OPENSSL = os.environ.get("OPENSSL", "openssl")
TIMEOUT = 30
PEM_RE = re.compile(r"-----BEGIN CERTIFICATE-----\n.*?-----END CERTIFICATE-----\n?", re.S)


class SClient:
    """Result of one s_client run."""

    def __init__(self, cmd, rc, out, err):
        self.cmd, self.rc, self.out, self.err = cmd, rc, out, err

    @property
    def text(self):
        return self.out + "\n" + self.err

    def __repr__(self):
        return "s_client %s\nrc=%s\n--- stdout:\n%s\n--- stderr:\n%s" % (
            " ".join(self.cmd[2:]), self.rc, self.out[-6000:], self.err[-3000:])

    def session_line(self):
        """("New"|"Reused", "TLSv1.x", cipher) from 'New, TLSv1.3, Cipher is X', or None."""
        m = re.search(r"^(New|Reused), (TLSv[\d.]+), Cipher is (\S+)$", self.out, re.M)
        return m.groups() if m else None

    def session(self):
        """("New"|"Reused", "TLSv1.x") or None."""
        s = self.session_line()
        return s[:2] if s else None

    def status(self):
        """Status of the HTTP response in the output, or None."""
        m = re.search(r"^HTTP/1\.1 (\d{3}) ", self.out, re.M)
        return int(m.group(1)) if m else None

    def body(self):
        i = self.out.find("\r\n\r\n", self.out.find("HTTP/1.1 "))
        return self.out[i + 4:] if i >= 0 else ""

    def certs(self):
        """Certificates printed by -showcerts, leaf first."""
        from cryptography import x509
        return [x509.load_pem_x509_certificate(p.encode()) for p in PEM_RE.findall(self.out)]

    def received(self):
        """-msg lines for records/messages moat sent ("<<< ..."), without record headers."""
        return [line for line in self.out.splitlines()
                if line.startswith("<<<") and "RecordHeader" not in line]

    def sent(self):
        return [line for line in self.out.splitlines()
                if line.startswith(">>>") and "RecordHeader" not in line]

    def alerts_received(self):
        """['fatal protocol_version', ...] from moat's alert records."""
        out = []
        for line in self.received():
            m = re.search(r"Alert \[length [0-9a-f]+\], (\w+ \w+)", line)
            if m:
                out.append(m.group(1))
        return out

    def handshake_received(self, kind):
        return [line for line in self.received()
                if re.search(r"Handshake \[length [0-9a-f]+\], %s$" % kind, line)]


def reap(proc):
    """Cleanup: stop a child by its pid if it is still running."""
    if proc.poll() is None:
        proc.kill()
    try:
        proc.wait(10)
    except subprocess.TimeoutExpired:
        pass
    for f in (proc.stdin, proc.stdout, proc.stderr):
        if f is not None:
            try:
                f.close()
            except OSError:
                pass


def decoded(cmd, rc, out, err):
    return SClient(cmd, rc, out.decode("utf-8", "replace"), err.decode("utf-8", "replace"))


def run(owner, moat, args, stdin=None, timeout=TIMEOUT):
    """Run s_client against moat's https port. stdin: None for /dev/null
    (s_client closes once the handshake is done) or bytes written to a pipe,
    then closed. A non-zero exit checks that moat is still alive."""
    cmd = [OPENSSL, "s_client", "-connect", "127.0.0.1:%d" % moat.https_port] + list(args)
    p = subprocess.Popen(cmd, stdin=subprocess.DEVNULL if stdin is None else subprocess.PIPE,
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    owner.addCleanup(reap, p)
    try:
        out, err = p.communicate(stdin, timeout=timeout)
    except subprocess.TimeoutExpired:
        p.kill()
        out, err = p.communicate()
        raise AssertionError("s_client did not finish within %d s:\n%r"
                             % (timeout, decoded(cmd, None, out, err)))
    r = decoded(cmd, p.returncode, out, err)
    if r.rc != 0:
        moat.assert_alive()
    return r


def renegotiate(owner, moat, args, then=None, wait=TIMEOUT):
    """Connect with TLS 1.2 (-msg), then ask for a renegotiation ("R" on
    stdin once the handshake is done). stdin stays open so that an EOF
    cannot end the connection before moat has answered the new ClientHello;
    then (bytes) is written afterwards, e.g. a request to see whether the
    first session still carries it."""
    cmd = [OPENSSL, "s_client", "-connect", "127.0.0.1:%d" % moat.https_port, "-tls1_2",
           "-msg"] + list(args)
    p = subprocess.Popen(cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                         stderr=subprocess.PIPE)
    owner.addCleanup(reap, p)
    p.stdin.write(b"R\n")
    p.stdin.flush()
    try:
        p.wait(wait)
    except subprocess.TimeoutExpired:
        pass  # still connected: the checks say whether a renegotiation happened
    if then is not None:
        try:
            p.stdin.write(then)
            p.stdin.flush()
        except (BrokenPipeError, OSError):
            pass
    try:
        out, err = p.communicate(timeout=TIMEOUT)
    except subprocess.TimeoutExpired:
        p.kill()
        out, err = p.communicate()
    return decoded(cmd, p.returncode, out, err)


def assert_renegotiation_refused(tc, r):
    """The client asked, and moat completed exactly one handshake: its
    answer to the second ClientHello was a no_renegotiation alert (or a
    fatal alert, or a close), never a handshake message."""
    tc.assertIn("RENEGOTIATING", r.err, r)
    hellos = [line for line in r.sent() if line.endswith("ClientHello")]
    tc.assertEqual(len(hellos), 2, "no second ClientHello was sent: %r" % r)
    tc.assertEqual(len(r.handshake_received("ServerHello")), 1, r)
    tc.assertEqual(len(r.handshake_received("Finished")), 1, r)
    after = r.received()[r.received().index(r.handshake_received("Finished")[0]) + 1:]
    tc.assertFalse([line for line in after if "Handshake" in line], r)
    refused = ("warning no_renegotiation" in r.alerts_received()
               or any(a.startswith("fatal ") for a in r.alerts_received())
               or r.rc not in (None, 0))
    tc.assertTrue(refused, r)
