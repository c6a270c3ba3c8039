"""The built-in demo: `moat run` with no -c, in a fresh working directory.
It listens on the fixed ports 8443 (https) and 8080 (http) of localhost, keeps
its data in ./moat-data and prints a curl command that must work as printed."""

import fcntl
import os
import re
import shlex
import signal
import stat
import subprocess
import tempfile
import time
import unittest

import moatlib as M
from peers import port_in_use

HTTPS, HTTP = 8443, 8080


class Demo(M.MoatTestCase):
    def lock_ports(self):
        """Serialise with other demo runs on this machine (the release and
        the _san flavour of this test run in parallel under ctest -j): both
        need the same fixed ports, and SO_REUSEPORT would let them share."""
        f = open(os.path.join(tempfile.gettempdir(), "moat-demo-ports.lock"), "w")
        self.addCleanup(f.close)
        end = time.monotonic() + 300
        while True:
            try:
                fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
                return
            except BlockingIOError:
                if time.monotonic() > end:
                    self.skipTest("another demo run held the port lock for 300 s")
                time.sleep(0.2)

    def setUp(self):
        self.lock_ports()
        busy = [p for p in (HTTPS, HTTP)
                if port_in_use(p, "127.0.0.1") or port_in_use(p, "0.0.0.0")]
        if busy:
            self.skipTest("the demo needs fixed ports %s, but %s already in use on this machine"
                          % ((HTTPS, HTTP), busy))
        self.cwd = self.tmp()
        self.out_file = os.path.join(self.cwd, "out.txt")
        self.err_file = os.path.join(self.cwd, "err.txt")
        with open(self.out_file, "wb") as out, open(self.err_file, "wb") as err:
            self.proc = subprocess.Popen([M.MOAT_BIN, "run"], cwd=self.cwd,
                                         stdin=subprocess.DEVNULL, stdout=out, stderr=err)
        self.addCleanup(self.kill)
        end = time.monotonic() + M.START_TIMEOUT
        while "moat: ready" not in self.err():
            if self.proc.poll() is not None:
                self.fail("demo exited %s before ready:\n%s%s"
                          % (self.proc.returncode, self.out(), self.err()))
            if time.monotonic() > end:
                self.fail("demo not ready after %.0f s:\n%s" % (M.START_TIMEOUT, self.err()))
            time.sleep(0.05)

    def kill(self):
        if self.proc.poll() is None:
            os.kill(self.proc.pid, signal.SIGKILL)
            self.proc.wait(10)

    def _read(self, p):
        with open(p, "rb") as f:
            return f.read().decode("utf-8", "replace")

    def out(self):
        return self._read(self.out_file)

    def err(self):
        return self._read(self.err_file)

    def stop_clean(self):
        os.kill(self.proc.pid, signal.SIGTERM)
        try:
            rc = self.proc.wait(M.STOP_TIMEOUT)
        except subprocess.TimeoutExpired:
            self.fail("demo did not exit within %.0f s of SIGTERM" % M.STOP_TIMEOUT)
        self.assertEqual(rc, 0, "demo exit code after SIGTERM:\n" + self.err())
        for m in M.SANITIZER_MARKS:
            self.assertNotIn(m, self.err())

    def test_demo(self):
        text = self.out() + "\n" + self.err()
        data = os.path.join(os.path.realpath(self.cwd), "moat-data")

        # the printed curl command, run exactly as printed
        m = re.search(r"curl --cacert \S+ https://localhost:8443/\S*", text)
        self.assertIsNotNone(m, "no `curl --cacert ... https://localhost:8443/` line in:\n" + text)
        argv = shlex.split(m.group(0))
        cacert = argv[argv.index("--cacert") + 1]
        self.assertTrue(os.path.isabs(cacert), "the printed CA path is not absolute: " + cacert)
        self.assertEqual(os.path.realpath(cacert), os.path.join(data, "internal-ca.pem"))
        p = subprocess.run(argv, capture_output=True, timeout=60, cwd="/")
        self.assertEqual(p.returncode, 0, "printed curl command failed: %s\n%s"
                         % (m.group(0), p.stderr.decode(errors="replace")))
        body = p.stdout.decode("utf-8", "replace")
        self.assertRegex(body.lower(), r"<html|<!doctype html", "not the welcome page:\n" + body[:500])
        self.assertIn("moat", body.lower())

        # headers of the welcome page
        p = subprocess.run(["curl", "-sS", "-o", "/dev/null", "-D", "-", "--cacert", cacert,
                            "https://localhost:8443/"], capture_output=True, timeout=60)
        head = p.stdout.decode("latin-1")
        self.assertRegex(head, r"(?im)^content-type:\s*text/html")
        self.assertRegex(head, r"(?im)^strict-transport-security:\s*max-age=31536000")

        # http -> https redirect, path and query kept
        for path in ("/", "/some/path?q=1"):
            p = subprocess.run(["curl", "-sS", "-o", "/dev/null", "-w",
                                "%{http_code} %{redirect_url}", "http://localhost:8080" + path],
                               capture_output=True, timeout=60)
            self.assertEqual(p.returncode, 0, p.stderr.decode(errors="replace"))
            self.assertEqual(p.stdout.decode(), "308 https://localhost:8443" + path)

        # data dir and CA key permissions
        st = os.stat(data)
        self.assertEqual(stat.S_IMODE(st.st_mode), 0o700, "moat-data mode %o" % st.st_mode)
        key = os.path.join(data, "internal-ca.key")
        self.assertTrue(os.path.exists(key), "no internal-ca.key in " + str(os.listdir(data)))
        self.assertEqual(stat.S_IMODE(os.stat(key).st_mode), 0o600)

        # the absolute data path is printed
        self.assertIn(data, text)

        self.stop_clean()


if __name__ == "__main__":
    unittest.main(verbosity=2)
