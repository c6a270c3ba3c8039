"""workers: 3 gives three SO_REUSEPORT listening sockets on the https port
(and on the http port), all owned by moat, and many parallel requests on
fresh connections all succeed."""

import os
import re
import shutil
import subprocess
import threading

import moatlib as M
from peers import Client

HOST = "w.test"
NWORKERS = 3


def listeners(port):
    """[(inode, state)] of IPv4/IPv6 TCP sockets listening on port, from /proc."""
    out = []
    for f in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            with open(f) as fh:
                next(fh)
                for ln in fh:
                    parts = ln.split()
                    lport = int(parts[1].rsplit(":", 1)[1], 16)
                    if lport == port and parts[3] == "0A":  # TCP_LISTEN
                        out.append(int(parts[9]))
        except FileNotFoundError:
            pass
    return out


def socket_inodes(pid):
    inodes = set()
    d = "/proc/%d/fd" % pid
    for fd in os.listdir(d):
        try:
            t = os.readlink(os.path.join(d, fd))
        except OSError:
            continue
        m = re.fullmatch(r"socket:\[(\d+)\]", t)
        if m:
            inodes.add(int(m.group(1)))
    return inodes


class Workers(M.MoatTestCase):
    @classmethod
    def setUpClass(cls):
        cls.up = M.RecordingUpstream(owner=cls)
        cls.moat_ = M.Moat(cls)
        cls.moat_.start(cls.moat_.config({HOST: M.site(cls.up)}, workers=NWORKERS))

    def test_listening_sockets(self):
        for port in (self.moat_.https_port, self.moat_.http_port):
            with self.subTest(port=port):
                inodes = listeners(port)
                self.assertEqual(len(inodes), NWORKERS,
                                 "%d listening sockets on port %d, want one per worker"
                                 % (len(inodes), port))
                mine = socket_inodes(self.moat_.pid)
                self.assertTrue(set(inodes) <= mine, "listening sockets not owned by moat")
        if shutil.which("ss"):
            p = subprocess.run(["ss", "-ltnH", "sport = :%d" % self.moat_.https_port],
                               capture_output=True, text=True, timeout=30)
            lines = [ln for ln in p.stdout.splitlines() if ln.strip()]
            self.assertEqual(len(lines), NWORKERS, p.stdout)

    def test_second_moat_on_the_same_ports_refuses_to_start(self):
        # SO_REUSEPORT alone would let it bind and silently take half the traffic
        d = M.tempdir(self)
        conf = os.path.join(d, "moat.yaml")
        with open(conf, "w") as f:
            f.write(M.to_yaml({
                "data": os.path.join(d, "data"),
                "listen": {"https": "127.0.0.1:%d" % self.moat_.https_port,
                           "http": "127.0.0.1:%d" % self.moat_.http_port},
                "sites": {"other.localhost": M.site(self.up)}}))
        p = subprocess.run([M.MOAT_BIN, "run", "-c", conf], capture_output=True, text=True,
                           timeout=60, stdin=subprocess.DEVNULL)
        self.assertEqual(p.returncode, 1, p.stderr)
        self.assertIn("cannot listen on 127.0.0.1:%d: another program is already listening"
                      % self.moat_.https_port, p.stderr)
        self.assertEqual(len(listeners(self.moat_.https_port)), NWORKERS)

    def test_parallel_requests(self):
        nthreads, per_thread = 20, 10
        results, errors = [], []
        lock = threading.Lock()

        def worker(t):
            for i in range(per_thread):
                path = "/t%d/r%d" % (t, i)
                try:
                    c = Client(self.moat_.https_port, HOST, self.moat_.ca)
                    try:
                        status, _, body = c.request("GET", path,
                                                    headers=[("Connection", "close")])
                    finally:
                        c.close()
                    with lock:
                        results.append((path, status, body))
                except Exception as e:  # noqa: BLE001 - collected and asserted
                    with lock:
                        errors.append("%s: %r" % (path, e))

        threads = [threading.Thread(target=worker, args=(t,)) for t in range(nthreads)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(300)
        self.assertEqual(errors, [])
        self.assertEqual(len(results), nthreads * per_thread)
        bad = [r for r in results if r[1] != 200 or r[2] != b"hello from upstream\n"]
        self.assertEqual(bad, [])
        got = {r.target for r in self.up.find("/t")}
        self.assertEqual(got, {r[0] for r in results}, "upstream did not see every request")


if __name__ == "__main__":
    M.main()
