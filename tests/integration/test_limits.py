"""
Limits and deadlines on the client side: every one answers with its status,
closes the connection, and lets nothing reach the upstream.
"""
import moatlib as M

HOST = "lim.localhost"


class Limits(M.MoatTestCase):
    def setUp(self):
        self.up = self.upstream()
        self.m = self.moat({HOST: M.site(self.up)},
                           limits={"header_size": "1KiB", "body_size": 100},
                           timeouts={"header": "1s", "idle": "1s"})

    def exchange(self, data, timeout=15):
        s = M.tls_connect(self.m, HOST)
        self.addCleanup(s.close)
        return M.raw_exchange(s, data, timeout)

    def refused(self, data, status, what):
        resp, closed = self.exchange(data)
        self.assertEqual(M.parse_status(resp), status, "%s: %r" % (what, resp[:200]))
        self.assertTrue(closed, "%s: moat kept the connection open" % what)
        return resp

    def assert_upstream_saw_nothing(self):
        self.assertEqual(self.up.requests, [], "a refused request reached the upstream")

    def test_head_over_header_size_is_431(self):
        big = b"X-Big: " + b"a" * 2048 + b"\r\n"
        self.refused(b"GET / HTTP/1.1\r\nHost: %s\r\n%s\r\n" % (HOST.encode(), big), 431,
                     "2 KiB head with header_size 1KiB")
        self.assert_upstream_saw_nothing()

    def test_too_many_headers_is_431(self):
        many = b"".join(b"X-%d: 1\r\n" % i for i in range(101))
        # header_size is 1KiB, so use a moat with the default size for this one
        up = self.upstream()
        m = self.moat({HOST: M.site(up)})
        s = M.tls_connect(m, HOST)
        self.addCleanup(s.close)
        resp, closed = M.raw_exchange(s, b"GET / HTTP/1.1\r\nHost: %s\r\n%s\r\n" % (HOST.encode(), many))
        self.assertEqual(M.parse_status(resp), 431, resp[:200])
        self.assertTrue(closed)
        self.assertEqual(up.requests, [])

    def test_content_length_over_body_size_is_413(self):
        self.refused(b"POST / HTTP/1.1\r\nHost: %s\r\nContent-Length: 101\r\n\r\n" % HOST.encode()
                     + b"a" * 101, 413, "Content-Length 101 with body_size 100")
        self.assert_upstream_saw_nothing()

    def test_chunked_over_body_size_is_413(self):
        self.refused(b"POST / HTTP/1.1\r\nHost: %s\r\nTransfer-Encoding: chunked\r\n\r\n"
                     b"65\r\n%s\r\n0\r\n\r\n" % (HOST.encode(), b"a" * 101), 413,
                     "a 101-byte chunk with body_size 100")
        self.assert_upstream_saw_nothing()

    def test_body_at_the_limit_passes(self):
        r = M.curl(self.m, HOST, "/ok", data=b"a" * 100)
        self.assertEqual(r.status, 200)
        self.assertEqual(self.up.requests[-1].body, b"a" * 100)

    def test_unknown_expectation_is_417(self):
        self.refused(b"POST / HTTP/1.1\r\nHost: %s\r\nExpect: 200-ok\r\nContent-Length: 1\r\n\r\na"
                     % HOST.encode(), 417, "Expect: 200-ok")
        self.assert_upstream_saw_nothing()

    def test_head_not_complete_in_time_is_408(self):
        # the head never completes; the header deadline (1s) answers 408
        self.refused(b"GET / HTTP/1.1\r\nHost: %s\r\nX-Slow: " % HOST.encode(), 408,
                     "an incomplete head")
        self.assert_upstream_saw_nothing()

    def test_body_that_stops_is_408(self):
        resp, closed = self.exchange(b"POST /slow HTTP/1.1\r\nHost: %s\r\nContent-Length: 50\r\n\r\nabc"
                                     % HOST.encode())
        self.assertEqual(M.parse_status(resp), 408, resp[:200])
        self.assertTrue(closed, "a stalled body must not hold the connection forever")
        # the upstream may have seen the head and 3 bytes, never a complete request
        for req in self.up.requests:
            self.assertNotEqual(len(req.body), 50, "an incomplete body was completed upstream")

if __name__ == "__main__":
    M.main()
