"""A stock nginx as moat's upstream: a static 1 MiB file, `return 200 "hello"`,
and a location echoing what moat forwarded (X-Forwarded-For, -Proto, Host);
fetched through moat with curl, compared byte for byte and header by header
with a direct fetch, and 50 requests over one keep-alive connection."""

import hashlib
import os
import subprocess

import moatlib as M
from peers import Nginx

HOST = "nginx.test"
SERVER = r"""
        location = /hello { return 200 "hello"; }
        location = /echo { return 200 "$http_x_forwarded_for $http_x_forwarded_proto $host"; }
        location = /echo-more {
            return 200 "$http_x_forwarded_host|$http_forwarded|$http_connection|$http_x_custom";
        }
"""


class NginxUpstream(M.MoatTestCase):
    @classmethod
    def setUpClass(cls):
        cls.ng = Nginx(SERVER)
        cls.addClassCleanup(cls.ng.stop)
        cls.big = os.urandom(1 << 20)
        with open(os.path.join(cls.ng.root, "big.bin"), "wb") as f:
            f.write(cls.big)
        cls.ng.start()
        cls.moat_ = M.Moat(cls)
        cls.moat_.start(cls.moat_.config({HOST: M.site("http://127.0.0.1:%d" % cls.ng.port)}))

    def direct(self, path):
        """curl straight to nginx, for comparison."""
        return M.curl(self.moat_, "127.0.0.1", path, scheme="http", port=self.ng.port)

    def via(self, path, **kw):
        return M.curl(self.moat_, HOST, path, **kw)

    def test_static_file(self):
        r = self.via("/big.bin")
        self.assertEqual(r.status, 200, r)
        self.assertEqual(len(r.body), len(self.big))
        self.assertEqual(hashlib.sha256(r.body).hexdigest(), hashlib.sha256(self.big).hexdigest())
        d = self.direct("/big.bin")
        self.assertEqual(d.status, 200, d)
        for h in ("Content-Length", "Content-Type", "ETag", "Last-Modified", "Accept-Ranges"):
            self.assertEqual(r.headers.get(h), d.headers.get(h), "header %s differs" % h)
        self.assertEqual(r.headers.get("Content-Length"), str(1 << 20))
        self.assertEqual(r.headers.get("Strict-Transport-Security"), "max-age=31536000")

    def test_conditional_and_range(self):
        d = self.direct("/big.bin")
        r = self.via("/big.bin", headers=[("If-None-Match", d.headers.get("ETag"))])
        self.assertEqual(r.status, 304, r)
        self.assertEqual(r.body, b"")
        r = self.via("/big.bin", headers=[("Range", "bytes=1000-1999")])
        self.assertEqual(r.status, 206, r)
        self.assertEqual(r.body, self.big[1000:2000])

    def test_hello(self):
        r = self.via("/hello")
        self.assertEqual((r.status, r.body), (200, b"hello"), r)
        self.assertEqual(r.headers.get("Content-Length"), "5")

    def test_forwarded_headers(self):
        r = self.via("/echo")
        self.assertEqual(r.status, 200, r)
        self.assertEqual(r.body.decode(), "127.0.0.1 https " + HOST)
        # client-sent X-Forwarded-* are replaced, not appended to
        r = self.via("/echo", headers=[("X-Forwarded-For", "203.0.113.9"),
                                       ("X-Forwarded-Proto", "http")])
        self.assertEqual(r.body.decode(), "127.0.0.1 https " + HOST)
        r = self.via("/echo-more", headers=[("X-Custom", "kept"), ("Connection", "X-Custom")])
        # X-Custom is named by Connection: hop-by-hop, removed; Connection too
        xfh, fwd, conn, custom = r.body.decode().split("|")
        self.assertEqual(xfh, "%s:%d" % (HOST, self.moat_.https_port))
        self.assertEqual(fwd, 'for=127.0.0.1;proto=https;host="%s:%d"' % (HOST, self.moat_.https_port))
        self.assertEqual(custom, "")
        self.assertNotIn("x-custom", conn.lower())

    def test_keepalive_50(self):
        paths = ["/hello", "/big.bin", "/echo"] * 17
        paths = paths[:50]
        cmd = ["curl", "-sS", "--http1.1", "--cacert", self.moat_.ca,
               "--resolve", "%s:%d:127.0.0.1" % (HOST, self.moat_.https_port)]
        for p in paths:
            cmd += ["-o", "/dev/null", "-w", "%{http_code} %{num_connects} %{size_download}\\n",
                    "https://%s:%d%s" % (HOST, self.moat_.https_port, p)]
        proc = subprocess.run(cmd, capture_output=True, timeout=120)
        self.assertEqual(proc.returncode, 0, proc.stderr.decode(errors="replace"))
        rows = [ln.split() for ln in proc.stdout.decode().splitlines()]
        self.assertEqual(len(rows), 50, proc.stdout)
        sizes = {"/hello": 5, "/big.bin": 1 << 20, "/echo": len("127.0.0.1 https " + HOST)}
        for i, (p, row) in enumerate(zip(paths, rows)):
            self.assertEqual(row[0], "200", "request %d (%s): %s" % (i, p, row))
            self.assertEqual(int(row[2]), sizes[p], "request %d (%s) size" % (i, p))
        connects = [int(r[1]) for r in rows]
        self.assertEqual(connects[0], 1)
        self.assertEqual(sum(connects), 1, "curl had to reconnect: %s" % connects)


if __name__ == "__main__":
    M.main()
