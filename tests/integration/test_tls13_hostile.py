"""
Hostile TLS 1.3 clients that hold the keys (TESTING.md: hostile inputs), against
moat's own record layer (docs/internals/tls13.md).

The client does a real handshake with python's ssl, takes its traffic secrets
from the keylog file, and from then on writes its own records (RFC 8446 5.2:
AEAD, nonce from the sequence number, header as additional data) through the
`cryptography` package, so it can send what no well-behaved client would:
any inner content type, maximal padding, oversized content, malformed or
misplaced post-handshake messages, floods of KeyUpdate. Each refusal must come
with the right fatal alert, close the connection and forward nothing; each
legitimate oddity (padding, KeyUpdate) must keep working; and the worker must
answer normal requests afterwards.
"""

import os
import select
import socket
import ssl
import struct
import tempfile
import time

import moatlib as M

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM, ChaCha20Poly1305
from cryptography.hazmat.primitives.kdf.hkdf import HKDFExpand

SUITES = {"TLS_AES_128_GCM_SHA256": (AESGCM, 16, hashes.SHA256, 32),
          "TLS_AES_256_GCM_SHA384": (AESGCM, 32, hashes.SHA384, 48),
          "TLS_CHACHA20_POLY1305_SHA256": (ChaCha20Poly1305, 32, hashes.SHA256, 32)}
ALERT, HANDSHAKE, APPDATA = 21, 22, 23
UNEXPECTED, BAD_MAC, OVERFLOW, DECODE, ILLEGAL = 10, 20, 22, 50, 47


def expand_label(h, secret, label, length):
    full = b"tls13 " + label
    info = struct.pack(">H", length) + bytes([len(full)]) + full + b"\x00"
    return HKDFExpand(h(), length, info).derive(secret)


class Keys:
    """One direction: traffic secret, key, IV, sequence number."""

    def __init__(self, suite, secret):
        self.aead, self.klen, self.h, self.hlen = SUITES[suite]
        self.install(secret)

    def install(self, secret):
        self.secret = secret
        self.a = self.aead(expand_label(self.h, secret, b"key", self.klen))
        self.iv = expand_label(self.h, secret, b"iv", 12)
        self.seq = 0

    def update(self):
        self.install(expand_label(self.h, self.secret, b"traffic upd", self.hlen))

    def nonce(self):
        n = bytes(a ^ b for a, b in zip(self.iv, self.seq.to_bytes(12, "big")))
        self.seq += 1
        return n

    def seal(self, content, ctype=APPDATA, pad=0):
        inner = content + bytes([ctype]) + b"\x00" * pad
        hdr = b"\x17\x03\x03" + struct.pack(">H", len(inner) + 16)
        return hdr + self.a.encrypt(self.nonce(), inner, hdr)

    def open(self, hdr, body):
        pt = self.a.decrypt(self.nonce(), body, hdr)
        p = len(pt.rstrip(b"\x00"))
        return pt[p - 1], pt[:p - 1]


class KeyHolder:
    """A TLS 1.3 connection to moat whose records this test writes itself."""

    def __init__(self, owner, moat, sni="a.test"):
        fd, keylog = tempfile.mkstemp(prefix="keylog-", dir=moat.dir)
        os.close(fd)
        ctx = M.tls_context(moat.ca, min_version=ssl.TLSVersion.TLSv1_3)
        ctx.keylog_filename = keylog
        self.raw = socket.create_connection(("127.0.0.1", moat.https_port), timeout=10)
        owner.addCleanup(self.raw.close)
        self.raw.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        inc, out = ssl.MemoryBIO(), ssl.MemoryBIO()
        t = ctx.wrap_bio(inc, out, server_hostname=sni)
        while True:
            try:
                t.do_handshake()
                break
            except ssl.SSLWantReadError:
                self.raw.sendall(out.read())
                inc.write(self.raw.recv(65536))
        self.raw.sendall(out.read())
        secrets = {}
        with open(keylog) as f:
            for line in f:
                parts = line.split()
                if len(parts) == 3:
                    secrets[parts[0]] = bytes.fromhex(parts[2])
        suite = t.cipher()[0]
        self.wr = Keys(suite, secrets["CLIENT_TRAFFIC_SECRET_0"])
        self.rd = Keys(suite, secrets["SERVER_TRAFFIC_SECRET_0"])
        self.buf = inc.read()
        self.events = []
        self.closed = False

    def send(self, *records):
        self.raw.sendall(b"".join(records))

    def request(self, path):
        return self.wr.seal(b"GET %s HTTP/1.1\r\nHost: a.test\r\n\r\n" % path.encode())

    def read(self, until, timeout=10.0):
        """Decrypt what moat sends until until(events) or EOF; True if until held."""
        end = time.monotonic() + timeout
        while not until(self.events):
            while len(self.buf) >= 5 and len(self.buf) >= 5 + struct.unpack(">H", self.buf[3:5])[0]:
                n = 5 + struct.unpack(">H", self.buf[3:5])[0]
                hdr, body, self.buf = self.buf[:5], self.buf[5:n], self.buf[n:]
                ctype, content = self.rd.open(hdr, body)
                self.events.append((ctype, content))
                if ctype == HANDSHAKE and content[:1] == b"\x18":
                    self.rd.update()
            if until(self.events) or self.closed:
                break
            left = end - time.monotonic()
            if left <= 0 or not select.select([self.raw], [], [], left)[0]:
                break
            try:
                data = self.raw.recv(65536)
            except ConnectionResetError:
                data = b""
            self.closed = not data
            self.buf += data
        return until(self.events)

    def app(self):
        return b"".join(c for t, c in self.events if t == APPDATA)

    def alerts(self):
        return [c for t, c in self.events if t == ALERT]


def responses(n):
    return lambda ev: b"".join(c for t, c in ev if t == APPDATA).count(b"HTTP/1.1 200") >= n


def an_alert(ev):
    return any(t == ALERT for t, _ in ev)


class HostileTLS13(M.MoatTestCase):
    def setUp(self):
        self.up = self.upstream()
        self.m = self.moat({"a.test": M.site(self.up, default=True)}, workers=1)

    def assert_refused(self, c, alert, what):
        self.assertTrue(c.read(an_alert), "%s: no alert; got %r" % (what, c.events))
        self.assertEqual(c.alerts()[0], bytes([2, alert]), what)
        c.read(lambda ev: False, timeout=5)
        self.assertTrue(c.closed, "%s: connection still open" % what)
        self.assertEqual(self.up.find("/after"), [], "%s: a request after it went upstream" % what)

    def assert_healthy(self):
        self.assertEqual(M.curl(self.m, "a.test", "/health", timeout=10).status, 200)
        self.m.assert_alive()

    def test_the_pipeline_works(self):
        c = KeyHolder(self, self.m)
        c.send(c.request("/one"), c.wr.seal(b"", APPDATA), c.request("/two"))
        self.assertTrue(c.read(responses(2)), c.events)
        self.assertEqual([r.target for r in self.up.wait_requests(2)], ["/one", "/two"])

    def test_inner_content_types(self):
        # every type but application data, empty or one byte: refused
        for ctype, content, alert in ((0, b"", UNEXPECTED), (1, b"", UNEXPECTED),
                                      (20, b"\x01", UNEXPECTED), (24, b"x", UNEXPECTED),
                                      (255, b"x", UNEXPECTED), (ALERT, b"", UNEXPECTED),
                                      (ALERT, b"\x02", DECODE), (ALERT, b"\x01\x00\x00", DECODE),
                                      (HANDSHAKE, b"", UNEXPECTED)):
            with self.subTest(ctype=ctype, content=content):
                c = KeyHolder(self, self.m)
                c.send(c.wr.seal(content, ctype), c.request("/after"))
                self.assert_refused(c, alert, "type %d %r" % (ctype, content))
        self.assert_healthy()

    def test_padding_and_size_limits(self):
        c = KeyHolder(self, self.m)
        # the largest inner plaintext, 2^14 + 256 - 16 bytes, mostly padding: fine
        c.send(c.wr.seal(b"", APPDATA, pad=16384 + 256 - 16 - 1), c.request("/padded"))
        self.assertTrue(c.read(responses(1)), c.events)
        # one byte more cannot be a record
        c = KeyHolder(self, self.m)
        c.send(c.wr.seal(b"", APPDATA, pad=16384 + 256 - 16), c.request("/after"))
        self.assert_refused(c, OVERFLOW, "ciphertext over 2^14 + 256")
        # content of 2^14 + 1 bytes
        c = KeyHolder(self, self.m)
        c.send(c.wr.seal(b"x" * 16385), c.request("/after"))
        self.assert_refused(c, OVERFLOW, "content over 2^14")
        self.assert_healthy()

    def test_malformed_post_handshake_messages(self):
        for msg, alert in ((b"\x18\x00\x00\x01\x02", ILLEGAL),          # request_update 2
                           (b"\x18\x00\x00\x02\x00\x00", DECODE),       # body of 2
                           (b"\x18\x00\x00\x01\x00\x18", UNEXPECTED),   # bytes after it
                           (b"\x18\x00\x00", UNEXPECTED),               # split message
                           (b"\x04\x00\x00\x01\x00", UNEXPECTED),       # NewSessionTicket
                           (b"\x14\x00\x00\x20" + b"\x00" * 32, UNEXPECTED),  # Finished
                           (b"\x18\xff\xff\xff\x00", UNEXPECTED)):      # huge length
            with self.subTest(msg=msg):
                c = KeyHolder(self, self.m)
                c.send(c.wr.seal(msg, HANDSHAKE), c.request("/after"))
                self.assert_refused(c, alert, "post-handshake %r" % msg)
        self.assert_healthy()

    def test_key_update_requested_then_onwards(self):
        c = KeyHolder(self, self.m)
        c.send(c.wr.seal(b"\x18\x00\x00\x01\x01", HANDSHAKE))
        c.wr.update()  # the client's own key moves once its KeyUpdate is sent
        c.send(c.request("/k1"))
        self.assertTrue(c.read(responses(1)), c.events)
        kinds = [(t, x[:1]) for t, x in c.events if t != HANDSHAKE or x[:1] == b"\x18"]
        self.assertEqual(kinds[0], (HANDSHAKE, b"\x18"), "moat's KeyUpdate before its answer")
        # and again: 32 in a row are accepted, one answer owed
        for _ in range(32):
            c.send(c.wr.seal(b"\x18\x00\x00\x01\x01", HANDSHAKE))
            c.wr.update()
        c.send(c.request("/k2"))
        self.assertTrue(c.read(responses(2)), c.events)
        updates = [x for t, x in c.events if t == HANDSHAKE and x[:1] == b"\x18"]
        self.assertEqual(len(updates), 2)
        self.assertEqual([r.target for r in self.up.wait_requests(2)], ["/k1", "/k2"])

    def test_key_update_flood_is_cut_off(self):
        c = KeyHolder(self, self.m)
        records = []
        for _ in range(1000):
            records.append(c.wr.seal(b"\x18\x00\x00\x01\x01", HANDSHAKE))
            c.wr.update()
        records.append(c.request("/after"))
        try:
            c.send(*records)
        except (BrokenPipeError, ConnectionResetError):
            pass
        self.assert_refused(c, UNEXPECTED, "33rd KeyUpdate without data")
        self.assert_healthy()

    def test_close_notify_ends_input(self):
        c = KeyHolder(self, self.m)
        c.send(c.request("/last"), c.wr.seal(b"\x01\x00", ALERT), c.request("/after"),
               b"\x17\x03\x03\x00\x00")
        c.read(lambda ev: False, timeout=5)
        self.assertTrue(c.closed)
        self.assertEqual([r.target for r in self.up.wait_requests(1)], ["/last"])
        time.sleep(0.2)
        self.assertEqual(self.up.find("/after"), [])
        self.assert_healthy()


if __name__ == "__main__":
    M.main()
