"""Regression test for TLS session binding after a HelloRetryRequest (src/tls.c).

Sessions are bound to the site by a session id context that the ClientHello
callback derives from the SNI. OpenSSL takes that callback from the SSL's
current context, and after the first ClientHello the SNI callback has switched
it to the site's context, which had no ClientHello callback. So a client that
forced a HelloRetryRequest (a key share for a group moat does not use) and
named another site in its second ClientHello kept the first site's session id
context: its ticket for site A was resumed under SNI B, without B's
certificate or full handshake. Before the fix this test saw "reused" there.

Python's ssl module can neither force a HelloRetryRequest nor change the SNI
between the two ClientHellos, so the client drives libssl through ctypes over
memory BIOs.
"""

import ctypes
import ctypes.util
import socket

import moatlib as M

A, B = "a.localhost", "b.localhost"

SSL_CTRL_SET_TLSEXT_HOSTNAME = 55
SSL_CTRL_SET_GROUPS_LIST = 92
SSL_CTRL_SET_MIN_PROTO_VERSION = 123
BIO_C_SET_BUF_MEM_EOF_RETURN = 130
TLS1_3_VERSION = 0x0304
SSL_ERROR_WANT_READ = 2
SSL_SENT_SHUTDOWN, SSL_RECEIVED_SHUTDOWN = 1, 2

MSG_CB = ctypes.CFUNCTYPE(None, ctypes.c_int, ctypes.c_int, ctypes.c_int, ctypes.c_void_p,
                          ctypes.c_size_t, ctypes.c_void_p, ctypes.c_void_p)


def load_libssl():
    lib = ctypes.CDLL(ctypes.util.find_library("ssl") or "libssl.so.3")
    P, I, L = ctypes.c_void_p, ctypes.c_int, ctypes.c_long
    sigs = {
        "TLS_client_method": (P, []),
        "SSL_CTX_new": (P, [P]),
        "SSL_CTX_free": (None, [P]),
        "SSL_CTX_ctrl": (L, [P, I, L, P]),
        "SSL_CTX_set_verify": (None, [P, I, P]),
        "SSL_new": (P, [P]),
        "SSL_free": (None, [P]),
        "SSL_ctrl": (L, [P, I, L, P]),
        "SSL_set_bio": (None, [P, P, P]),
        "SSL_set_connect_state": (None, [P]),
        "SSL_do_handshake": (I, [P]),
        "SSL_get_error": (I, [P, I]),
        "SSL_read": (I, [P, P, I]),
        "SSL_write": (I, [P, P, I]),
        "SSL_get1_session": (P, [P]),
        "SSL_set_session": (I, [P, P]),
        "SSL_SESSION_free": (None, [P]),
        "SSL_session_reused": (I, [P]),
        "SSL_set_shutdown": (None, [P, I]),
        "SSL_set_msg_callback": (None, [P, MSG_CB]),
        "BIO_s_mem": (P, []),
        "BIO_new": (P, [P]),
        "BIO_ctrl": (L, [P, I, L, P]),
        "BIO_read": (I, [P, P, I]),
        "BIO_write": (I, [P, P, I]),
    }
    for name, (res, args) in sigs.items():
        f = getattr(lib, name)
        f.restype, f.argtypes = res, args
    return lib


class Client:
    """One TLS 1.3 client connection over memory BIOs and a plain socket."""

    def __init__(self, lib, ctx, port, sni, groups=None, session=None):
        self.lib = lib
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=10)
        self.ssl = lib.SSL_new(ctx)
        self.rbio, self.wbio = lib.BIO_new(lib.BIO_s_mem()), lib.BIO_new(lib.BIO_s_mem())
        lib.BIO_ctrl(self.rbio, BIO_C_SET_BUF_MEM_EOF_RETURN, -1, None)
        lib.SSL_set_bio(self.ssl, self.rbio, self.wbio)
        lib.SSL_set_connect_state(self.ssl)
        self.client_hellos = 0
        self._cb = MSG_CB(self._msg)  # keep a reference while the SSL lives
        lib.SSL_set_msg_callback(self.ssl, self._cb)
        self.set_sni(sni)
        if groups:
            lib.SSL_ctrl(self.ssl, SSL_CTRL_SET_GROUPS_LIST, 0, groups.encode())
        if session:
            lib.SSL_set_session(self.ssl, session)

    def _msg(self, write_p, version, content_type, buf, length, ssl, arg):
        if write_p and content_type == 22 and length > 0 and ctypes.string_at(buf, 1) == b"\x01":
            self.client_hellos += 1

    def set_sni(self, name):
        self._sni = ctypes.create_string_buffer(name.encode())
        self.lib.SSL_ctrl(self.ssl, SSL_CTRL_SET_TLSEXT_HOSTNAME, 0, self._sni)

    def flush(self):
        buf = ctypes.create_string_buffer(65536)
        while True:
            n = self.lib.BIO_read(self.wbio, buf, len(buf))
            if n <= 0:
                return
            self.sock.sendall(buf.raw[:n])

    def fill(self):
        """Feed one read from the socket to OpenSSL; False at EOF."""
        try:
            data = self.sock.recv(65536)
        except (socket.timeout, TimeoutError, ConnectionResetError):
            return False
        if not data:
            return False
        self.lib.BIO_write(self.rbio, data, len(data))
        return True

    def handshake(self, second_sni=None):
        """True once done; second_sni replaces the SNI after the first ClientHello."""
        for _ in range(100):
            r = self.lib.SSL_do_handshake(self.ssl)
            self.flush()
            if r == 1:
                return True
            if self.lib.SSL_get_error(self.ssl, r) != SSL_ERROR_WANT_READ:
                return False
            if second_sni is not None:
                self.set_sni(second_sni)
                second_sni = None
            if not self.fill():
                return False
        return False

    def get(self, host, path):
        """Status line of a Connection: close request, reading to the end
        (so TLS 1.3 tickets are processed)."""
        req = ("GET %s HTTP/1.1\r\nHost: %s\r\nConnection: close\r\n\r\n" % (path, host)).encode()
        self.lib.SSL_write(self.ssl, req, len(req))
        self.flush()
        buf = ctypes.create_string_buffer(65536)
        data = b""
        while True:
            while True:
                n = self.lib.SSL_read(self.ssl, buf, len(buf))
                if n <= 0:
                    break
                data += buf.raw[:n]
            self.flush()
            if not self.fill():
                break
        return data.split(b"\r\n", 1)[0]

    def reused(self):
        return self.lib.SSL_session_reused(self.ssl) == 1

    def close(self):
        # a clean shutdown state keeps OpenSSL from marking the session unusable
        self.lib.SSL_set_shutdown(self.ssl, SSL_SENT_SHUTDOWN | SSL_RECEIVED_SHUTDOWN)
        self.lib.SSL_free(self.ssl)
        self.sock.close()


class HelloRetry(M.MoatTestCase):
    def setUp(self):
        self.lib = load_libssl()
        self.ctx = self.lib.SSL_CTX_new(self.lib.TLS_client_method())
        self.addCleanup(self.lib.SSL_CTX_free, self.ctx)
        self.lib.SSL_CTX_ctrl(self.ctx, SSL_CTRL_SET_MIN_PROTO_VERSION, TLS1_3_VERSION, None)
        self.lib.SSL_CTX_set_verify(self.ctx, 0, None)
        up = self.upstream()
        self.moat_ = self.moat({A: M.site(up), B: M.site(up)})

    def session_of_a(self):
        c = Client(self.lib, self.ctx, self.moat_.https_port, A)
        self.assertTrue(c.handshake(), "first handshake with %s failed" % A)
        self.assertEqual(c.get(A, "/first"), b"HTTP/1.1 200 OK")
        sess = self.lib.SSL_get1_session(c.ssl)
        c.close()
        self.assertTrue(sess)
        self.addCleanup(self.lib.SSL_SESSION_free, sess)
        return sess

    def resume(self, sess, second_sni):
        # P-521 first: the client's key share is for a group moat does not
        # offer, so moat answers with a HelloRetryRequest for X25519.
        c = Client(self.lib, self.ctx, self.moat_.https_port, A, groups="P-521:X25519",
                   session=sess)
        self.addCleanup(c.close)
        self.assertTrue(c.handshake(second_sni=second_sni), "handshake failed")
        self.assertEqual(c.client_hellos, 2, "no HelloRetryRequest happened")
        return c

    def test_same_sni_after_hello_retry_resumes(self):
        # the control: resumption through a HelloRetryRequest works at all
        c = self.resume(self.session_of_a(), A)
        self.assertTrue(c.reused())
        self.assertEqual(c.get(A, "/same"), b"HTTP/1.1 200 OK")

    def test_other_sni_after_hello_retry_is_not_resumed(self):
        c = self.resume(self.session_of_a(), B)
        self.assertFalse(c.reused(), "a session of %s was resumed under SNI %s" % (A, B))
        self.assertEqual(c.get(B, "/other"), b"HTTP/1.1 200 OK")


if __name__ == "__main__":
    M.main()
