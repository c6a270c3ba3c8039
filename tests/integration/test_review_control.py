"""Regression tests for control-thread bugs found in review (src/cli_run.c).

Each test failed before its fix:
- a reload refused because it changed the listen addresses had already
  switched the access log to the new file: part of a refused configuration
  was applied;
- the first SIGTERM closed the SIGHUP handler, which restored SIGHUP's default
  action: a SIGHUP while draining (a log rotation, say) killed moat and cut
  the in-flight requests.
"""

import os
import signal
import socket
import time

import moatlib as M

HOST = "app.localhost"


class Control(M.MoatTestCase):
    def test_refused_reload_keeps_the_access_log(self):
        up = self.upstream()
        m = M.Moat(self)
        cfg = m.config({HOST: M.site(up, redirect=False)})
        m.start(cfg)
        other = os.path.join(m.dir, "other-access.log")
        bad = dict(cfg)
        bad["access_log"] = other
        bad["listen"] = {"http": "127.0.0.1:%d" % M.free_port(),
                         "https": "127.0.0.1:%d" % m.https_port}
        self.assertFalse(m.reload(bad))
        r = M.curl(m, HOST, "/after-refused", scheme="http", port=m.http_port)
        self.assertEqual(r.status, 200)
        m.wait_access_log(lambda x: x["path"] == "/after-refused", timeout=5)
        self.assertFalse(os.path.exists(other), "a refused reload opened its access log")

    def test_accepted_reload_switches_the_access_log(self):
        up = self.upstream()
        m = M.Moat(self)
        cfg = m.config({HOST: M.site(up, redirect=False)})
        m.start(cfg)
        other = os.path.join(m.dir, "other-access.log")
        good = dict(cfg)
        good["access_log"] = other
        self.assertTrue(m.reload(good))
        r = M.curl(m, HOST, "/after-reload", scheme="http", port=m.http_port)
        self.assertEqual(r.status, 200)
        M.wait_until(lambda: os.path.exists(other) and b"/after-reload" in open(other, "rb").read(),
                     5, "the access line in the new file")

    def test_sighup_while_draining_is_ignored(self):
        def slow(req):
            time.sleep(1.5)
            return M.Reply(200, body=b"late\n")
        up = self.upstream(slow)
        m = self.moat({HOST: M.site(up, redirect=False)})
        s = socket.create_connection(("127.0.0.1", m.http_port))
        self.addCleanup(s.close)
        s.sendall(b"GET /slow HTTP/1.1\r\nHost: app.localhost\r\n\r\n")
        up.wait_requests(1)
        m.proc.send_signal(signal.SIGTERM)
        time.sleep(0.3)
        m.proc.send_signal(signal.SIGHUP)
        r = M.H1Client(s).read_response(timeout=10)
        self.assertEqual(r.status, 200)
        self.assertEqual(r.body, b"late\n")
        self.assertEqual(m.proc.wait(15), 0, m.stderr())


if __name__ == "__main__":
    M.main()
