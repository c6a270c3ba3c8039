"""Huge bodies stream through moat over TLS in bounded memory.

A 2 GiB upload (Content-Length), a 256 MiB chunked upload and a 2 GiB
download are generated on the fly (a deterministic, index-stamped pattern)
and hashed as they flow; nothing is stored.  moat's VmRSS is sampled from
/proc every 0.5 s and must stay under 64 MiB.

Under the ASan+UBSan build (MOAT_FLAVOUR=_san) the sizes drop to 256 MiB and
the RSS bound is not asserted: ASan's shadow memory and quarantine make RSS
meaningless as a measure of moat's own buffering."""

import hashlib
import http.client
import json
import os
import socket

import moatlib as M
from peers import RSSSampler, ScriptedUpstream, pattern_blocks, serve_loop

HOST = "bulk.test"
SAN = os.environ.get("MOAT_FLAVOUR") == "_san"
GiB, MiB = 1 << 30, 1 << 20
BIG = 256 * MiB if SAN else 2 * GiB
CHUNKED = 256 * MiB
RSS_LIMIT_KIB = 64 * 1024
TIMEOUT = 300


class TLSConn(http.client.HTTPSConnection):
    """HTTPS to 127.0.0.1 with SNI and Host = the site name."""

    def connect(self):
        sock = socket.create_connection(("127.0.0.1", self.port), self.timeout)
        self.sock = self._context.wrap_socket(sock, server_hostname=self.host)


def route(conn, req):
    if req.target == "/upload":
        h = hashlib.sha256()
        n = 0
        for piece in req.body_pieces():
            h.update(piece)
            n += len(piece)
        body = json.dumps({"bytes": n, "sha256": h.hexdigest(),
                           "content_length": req.header("content-length"),
                           "transfer_encoding": req.header("transfer-encoding")}).encode()
        conn.respond(200, body, headers=[("Content-Type", "application/json")])
        return None
    if req.target.startswith("/download/"):
        total = int(req.target.rsplit("/", 1)[1])
        conn.send(b"HTTP/1.1 200 OK\r\nContent-Type: application/octet-stream\r\n"
                  b"Content-Length: %d\r\n\r\n" % total)
        h = hashlib.sha256()
        for b in pattern_blocks(total):
            h.update(b)
            conn.send(b)
        conn.sent_sha256 = h.hexdigest()
        Bulk.sent_hashes.append(conn.sent_sha256)
        return None
    conn.respond(404, b"no such path\n")
    return None


class Bulk(M.MoatTestCase):
    sent_hashes = []

    @classmethod
    def setUpClass(cls):
        cls.up = ScriptedUpstream(serve_loop(route))
        cls.addClassCleanup(cls.up.stop)
        cls.moat_ = M.Moat(cls)
        cls.moat_.start(cls.moat_.config({HOST: M.site(cls.up.url)}))
        cls.ctx = M.tls_context(cls.moat_.ca)

    def setUp(self):
        self.rss = RSSSampler(self.moat_.pid)
        self.addCleanup(self.rss.stop)
        self.conn = TLSConn(HOST, self.moat_.https_port, context=self.ctx, timeout=TIMEOUT)
        self.addCleanup(self.conn.close)

    def check_rss(self, what):
        self.rss.stop()
        peak = self.rss.max_kib
        print("%s: moat peak VmRSS %.1f MiB over %d samples%s" % (
            what, peak / 1024, len(self.rss.samples),
            " (not asserted under ASan: shadow memory)" if SAN else ""))
        self.assertGreater(len(self.rss.samples), 0, "no RSS samples taken")
        if not SAN:
            self.assertLess(peak, RSS_LIMIT_KIB, "%s: moat's RSS reached %.1f MiB"
                            % (what, peak / 1024))
        self.assertEqual(self.up.errors, [])

    def upload(self, total, chunked):
        c = self.conn
        c.putrequest("PUT", "/upload")
        c.putheader("Content-Type", "application/octet-stream")
        if chunked:
            c.putheader("Transfer-Encoding", "chunked")
        else:
            c.putheader("Content-Length", str(total))
        c.endheaders()
        h = hashlib.sha256()
        for i, b in enumerate(pattern_blocks(total)):
            h.update(b)
            if chunked:
                # uneven chunk sizes: split each block in two
                cut = 1000 + (i * 7919) % (len(b) - 1000) if len(b) > 2000 else len(b)
                for part in (b[:cut], b[cut:]):
                    if part:
                        c.send(b"%x\r\n" % len(part) + part + b"\r\n")
            else:
                c.send(b)
        if chunked:
            c.send(b"0\r\n\r\n")
        r = c.getresponse()
        body = r.read()
        self.assertEqual(r.status, 200, body[:300])
        got = json.loads(body)
        self.assertEqual(got["bytes"], total, "upstream received a different byte count")
        self.assertEqual(got["sha256"], h.hexdigest(), "upstream received different bytes")
        return got

    def test_upload_content_length(self):
        got = self.upload(BIG, chunked=False)
        self.assertEqual(got["content_length"], str(BIG))
        self.assertIsNone(got["transfer_encoding"])
        self.check_rss("upload %d MiB (Content-Length)" % (BIG // MiB))

    def test_upload_chunked(self):
        got = self.upload(CHUNKED, chunked=True)
        self.assertEqual((got["transfer_encoding"] or "").lower(), "chunked")
        self.assertIsNone(got["content_length"])
        self.check_rss("upload %d MiB (chunked)" % (CHUNKED // MiB))

    def test_download(self):
        before = len(self.sent_hashes)
        c = self.conn
        c.request("GET", "/download/%d" % BIG)
        r = c.getresponse()
        self.assertEqual(r.status, 200)
        self.assertEqual(r.getheader("Content-Length"), str(BIG))
        h = hashlib.sha256()
        n = 0
        while True:
            b = r.read(MiB)
            if not b:
                break
            h.update(b)
            n += len(b)
        self.assertEqual(n, BIG)
        M.wait_until(lambda: len(self.sent_hashes) > before, 30, "upstream to finish sending")
        self.assertEqual(h.hexdigest(), self.sent_hashes[before], "downloaded bytes differ")
        self.check_rss("download %d MiB" % (BIG // MiB))


if __name__ == "__main__":
    M.main()
