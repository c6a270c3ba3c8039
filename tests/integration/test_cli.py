"""moat's command line: version, help, unknown commands, `moat check` on good and
bad configs (every error as FILE:LINE:COL), `moat run` refusing a bad config,
and a tls files site whose key file is missing."""

import os
import re
import signal
import subprocess

import moatlib as M

RUN_TIMEOUT = 30


def run(*args, timeout=RUN_TIMEOUT, cwd=None):
    """Run moat with args; a process that outlives timeout is killed by pid
    and reported as such (e.g. `moat run` that starts instead of refusing)."""
    p = subprocess.Popen([M.MOAT_BIN] + list(args), stdin=subprocess.DEVNULL,
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, cwd=cwd)
    try:
        out, err = p.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.kill(p.pid, signal.SIGKILL)
        out, err = p.communicate()
        raise AssertionError("moat %s still running after %d s (killed); stderr:\n%s"
                             % (" ".join(args), timeout, err.decode("utf-8", "replace")))
    return p.returncode, out.decode("utf-8", "replace"), err.decode("utf-8", "replace")


def cmake_version():
    with open(os.path.join(M.REPO, "CMakeLists.txt")) as f:
        m = re.search(r"project\(moat\s+VERSION\s+([0-9.]+)", f.read())
    return m.group(1) if m else None


class Version(M.MoatTestCase):
    def test_version(self):
        rc, out, err = run("version")
        self.assertEqual(rc, 0, err)
        first = out.strip().splitlines()[0] if out.strip() else ""
        self.assertRegex(first, r"^moat \d+\.\d+\.\d+", "stdout: %r stderr: %r" % (out, err))
        v = cmake_version()
        if v:
            self.assertEqual(first.split()[1], v, "version differs from CMakeLists.txt")


class Help(M.MoatTestCase):
    def check_usage(self, args, must_mention=()):
        rc, out, err = run(*args)
        text = out + err
        self.assertEqual(rc, 0, "moat %s -> %d; %s" % (" ".join(args), rc, text))
        self.assertRegex(text.lower(), r"usage", "moat %s printed no usage:\n%s"
                         % (" ".join(args), text))
        for word in must_mention:
            self.assertIn(word, text, "moat %s usage does not mention %r" % (" ".join(args), word))

    def test_help(self):
        self.check_usage(["help"], ["run", "check", "version"])

    def test_dash_dash_help(self):
        self.check_usage(["--help"], ["run", "check"])

    def test_run_help(self):
        self.check_usage(["run", "--help"], ["-c"])

    def test_check_help(self):
        self.check_usage(["check", "--help"], ["-c"])

    def test_unknown_subcommand(self):
        rc, out, err = run("frobnicate")
        text = out + err
        self.assertNotEqual(rc, 0, "unknown subcommand accepted:\n" + text)
        # 2 is the usual usage-error code; any non-zero code is accepted
        self.assertIn("frobnicate", text, "the message should name the unknown command")
        self.assertIn("help", text.lower(), "the message should hint at `moat help`:\n" + text)


def listen_block(http_port, https_port):
    return ('listen:\n  http: "127.0.0.1:%d"\n  https: "127.0.0.1:%d"\n'
            % (http_port, https_port))


class Check(M.MoatTestCase):
    def setUp(self):
        self.d = self.tmp()
        self.data = os.path.join(self.d, "data")

    def write(self, name, text):
        p = os.path.join(self.d, name)
        with open(p, "w") as f:
            f.write(text)
        return p

    def test_good_config_table(self):
        cert = M.make_cert(self.d, ["files.test"])
        text = ("data: %s\n" % self.data + listen_block(*M.free_ports(2)) +
                "workers: 1\n"
                "sites:\n"
                "  app.test:\n"
                "    to: http://127.0.0.1:9101\n"
                "  pair.test:\n"
                "    to: [http://127.0.0.1:9102, http://127.0.0.1:9103]\n"
                "  files.test:\n"
                "    to: http://127.0.0.1:9104\n"
                "    tls: { cert: %s, key: %s }\n" % (cert.cert, cert.key))
        p = self.write("good.yaml", text)
        rc, out, err = run("check", "-c", p)
        self.assertEqual(rc, 0, "check of a good config failed:\n" + out + err)
        for host in ("app.test", "pair.test", "files.test"):
            self.assertIn(host, out, "table lacks site " + host)
        self.assertIn("internal CA", out, "table does not say where certs come from:\n" + out)
        self.assertIn(cert.cert, out, "table does not name the cert file:\n" + out)
        for url in ("http://127.0.0.1:9101", "http://127.0.0.1:9102",
                    "http://127.0.0.1:9103", "http://127.0.0.1:9104"):
            self.assertIn(url, out, "table lacks upstream " + url)
        # each site's own row/block names its upstream: find the host's line
        # and the url's line and make sure the url comes after the host.
        self.assertLess(out.index("app.test"), out.index("http://127.0.0.1:9101"))
        self.assertLess(out.index("files.test"), out.index("http://127.0.0.1:9104"))

    # line numbers below are those of BAD_LINES (1-based)
    def bad_config(self):
        lines = [
            "data: %s" % self.data,                              # 1
            "listen:",                                           # 2
            '  http: "127.0.0.1:%d"' % M.free_port(),            # 3
            '  https: "127.0.0.1:%d"' % M.free_port(),           # 4
            "bogus_key: 1",                                      # 5  unknown key, col 1
            "timeouts:",                                         # 6
            "  idle: 10x",                                       # 7  bad duration, col 9
            "sites:",                                            # 8
            "  app.test:",                                       # 9
            "    to: ftp://x",                                   # 10 bad upstream, col 9
            "  other.test:",                                     # 11
            "    to: http://127.0.0.1:9105",                     # 12
            "  app.test:",                                       # 13 duplicate site, col 3
            "    to: http://127.0.0.1:9106",                     # 14
        ]
        expected = [(5, 1, "bogus_key"), (7, 9, "10x"), (10, 9, "ftp://x"), (13, 3, "app.test")]
        return "\n".join(lines) + "\n", expected

    def syntax_config(self):
        lines = [
            "data: %s" % self.data,
            "listen:",
            '  http: "127.0.0.1:%d"' % M.free_port(),
            '  https: "127.0.0.1:%d"' % M.free_port(),
            "sites:",
            "  app.test:",
            "    to: http://127.0.0.1:9107: y",                  # 7: ": " inside a plain scalar
        ]
        # libyaml: "mapping values are not allowed in this context" at the ':'
        col = lines[6].index(": y") + 1
        return "\n".join(lines) + "\n", (7, col)

    def assert_errors(self, path, text, expected, what):
        for line, col, token in expected:
            prefix = "%s:%d:%d:" % (path, line, col)
            found = [ln for ln in text.splitlines() if prefix in ln]
            self.assertTrue(found, "%s: no error at %s (for %r); output:\n%s"
                            % (what, prefix, token, text))
            self.assertTrue(any(token in ln for ln in found),
                            "%s: error at %s does not name %r:\n%s" % (what, prefix, token, found))

    def test_check_bad_config(self):
        text, expected = self.bad_config()
        p = self.write("bad.yaml", text)
        rc, out, err = run("check", "-c", p)
        self.assertEqual(rc, 1, "check of a bad config: exit %d\n%s%s" % (rc, out, err))
        self.assert_errors(p, err, expected, "moat check (stderr)")

    def test_check_syntax_error(self):
        text, (line, col) = self.syntax_config()
        p = self.write("syntax.yaml", text)
        rc, out, err = run("check", "-c", p)
        self.assertEqual(rc, 1, "check of a yaml syntax error: exit %d\n%s%s" % (rc, out, err))
        prefix = "%s:%d:%d:" % (p, line, col)
        self.assertIn(prefix, err, "syntax error not reported at %s:\n%s" % (prefix, err))

    def test_run_refuses_bad_config(self):
        text, expected = self.bad_config()
        p = self.write("bad.yaml", text)
        rc, out, err = run("run", "-c", p)
        self.assertEqual(rc, 1, "run with a bad config: exit %d\n%s%s" % (rc, out, err))
        self.assert_errors(p, err, expected, "moat run (stderr)")
        self.assertNotIn("moat: ready", err)

    def test_run_refuses_syntax_error(self):
        text, (line, col) = self.syntax_config()
        p = self.write("syntax.yaml", text)
        rc, out, err = run("run", "-c", p)
        self.assertEqual(rc, 1, "run with a yaml syntax error: exit %d\n%s%s" % (rc, out, err))
        self.assertIn("%s:%d:%d:" % (p, line, col), err)

    def test_missing_key_file(self):
        cert = M.make_cert(self.d, ["files.test"])
        missing = os.path.join(self.d, "nope", "files.test.key")
        text = ("data: %s\n" % self.data + listen_block(*M.free_ports(2)) +
                "sites:\n"
                "  files.test:\n"
                "    to: http://127.0.0.1:9108\n"
                "    tls: { cert: %s, key: %s }\n" % (cert.cert, missing))
        p = self.write("nokey.yaml", text)
        lines = text.splitlines()
        line = [i for i, ln in enumerate(lines, 1) if "key:" in ln][0]
        where = "%s:%d:%d:" % (p, line, lines[line - 1].index(missing) + 1)
        for cmd in ("check", "run"):
            with self.subTest(cmd=cmd):
                rc, out, err = run(cmd, "-c", p)
                self.assertEqual(rc, 1, "%s with a missing key file: exit %d\n%s%s"
                                 % (cmd, rc, out, err))
                self.assertIn(missing, err, "%s does not name the missing file:\n%s" % (cmd, err))
                self.assertIn(where, err, "%s: error should point at the key's value" % cmd)


if __name__ == "__main__":
    M.main()
