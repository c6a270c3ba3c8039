"""Regression tests for message framing bugs found in the second review
(src/forward.c, src/proxy.c).

Each test failed before its fix:
- an upstream response with "Content-Length: 0" was never finished: moat
  waited for body bytes that could not come, so the next request on a
  keep-alive connection got no answer until timeouts.response aborted the
  connection (and the access log line came only then);
- a client that named Content-Length as a connection option
  ("Connection: content-length") had that header stripped as hop-by-hop while
  moat still forwarded the body: the upstream saw a request without a body and
  read the body as a second, smuggled request that never passed moat's routing
  or its X-Forwarded-*/Forwarded headers;
- the same trick from an upstream removed Content-Length from the response
  moat relayed on a connection it kept open, so the client could not tell
  where the body ended.
"""

import socket

import moatlib as M

HOST = "app.localhost"


def plain(moat, owner):
    s = socket.create_connection(("127.0.0.1", moat.http_port))
    owner.addCleanup(s.close)
    return s, M.H1Client(s)


class EmptyLengthBody(M.MoatTestCase):
    def test_content_length_zero_response_completes(self):
        up = self.upstream(M.Reply(200, [("X-Empty", "1")], b""))
        moat = self.moat({HOST: M.site(up, redirect=False)})
        s, c = plain(moat, self)
        for i in range(3):
            s.sendall(b"GET /empty%d HTTP/1.1\r\nHost: app.localhost\r\n\r\n" % i)
            r = c.read_response(timeout=5)
            self.assertEqual(r.status, 200)
            self.assertEqual(r.headers.get("content-length"), "0")
            self.assertEqual(r.body, b"")
        # the exchanges were finished (logged) without waiting for a timeout
        lines = moat.wait_access_log(lambda x: x.get("path", "").startswith("/empty"),
                                     timeout=5, count=3)
        self.assertEqual({x["status"] for x in lines}, {200})
        # and the upstream connection went back to the pool
        self.assertEqual(up.counts()[0], 1)

    def test_content_length_zero_response_over_tls(self):
        up = self.upstream(M.Reply(201, [], b""))
        moat = self.moat({HOST: M.site(up)})
        s = M.tls_connect(moat, HOST)
        self.addCleanup(s.close)
        c = M.H1Client(s)
        for i in range(2):
            c.request("POST", "/made%d" % i, HOST, body=b"x" * 10)
            r = c.read_response(timeout=5)
            self.assertEqual(r.status, 201)
            self.assertEqual(r.body, b"")


class ContentLengthAsConnectionOption(M.MoatTestCase):
    def test_request_cannot_make_content_length_hop_by_hop(self):
        """Regression: "Connection: content-length" used to strip the length
        from the upstream head while the body was still forwarded, so the
        upstream read the body as a request of its own. moat now writes the
        framing itself: the upstream sees one request with the body intact."""
        up = self.upstream()
        moat = self.moat({HOST: M.site(up, redirect=False)})
        s, c = plain(moat, self)
        inner = (b"GET /smuggled HTTP/1.1\r\nHost: app.localhost\r\n"
                 b"X-Forwarded-For: 6.6.6.6\r\n\r\n")
        s.sendall(b"POST /outer HTTP/1.1\r\nHost: app.localhost\r\n"
                  b"Connection: content-length\r\nContent-Length: %d\r\n\r\n" % len(inner)
                  + inner)
        r = c.read_response(timeout=5)
        self.assertEqual(r.status, 200)
        got = up.wait_requests(1)
        self.assertEqual([q.target for q in got], ["/outer"])
        self.assertEqual(got[0].body, inner)
        self.assertEqual(got[0].headers.get("content-length"), str(len(inner)))
        self.assertEqual(up.find("/smuggled"), [])

    def test_other_connection_options_still_forward_the_body(self):
        up = self.upstream(lambda req: M.Reply(200, [], req.body))
        moat = self.moat({HOST: M.site(up, redirect=False)})
        s, c = plain(moat, self)
        s.sendall(b"POST /opt HTTP/1.1\r\nHost: app.localhost\r\nConnection: x-opt\r\n"
                  b"X-Opt: 1\r\nContent-Length: 5\r\n\r\nhello")
        r = c.read_response(timeout=5)
        self.assertEqual(r.status, 200)
        self.assertEqual(r.body, b"hello")
        got = up.find("/opt")
        self.assertEqual(len(got), 1)
        self.assertEqual(got[0].headers.get("content-length"), "5")
        self.assertIsNone(got[0].headers.get("x-opt"))

    def test_upstream_content_length_option_ends_body_at_close(self):
        body = b"0123456789" * 10
        up = self.upstream(M.Reply(200, [("Connection", "content-length"),
                                         ("Content-Length", str(len(body)))], body))
        moat = self.moat({HOST: M.site(up, redirect=False)})
        s, _ = plain(moat, self)
        s.sendall(b"GET /cl-option HTTP/1.1\r\nHost: app.localhost\r\n\r\n")
        data, closed = M.raw_exchange(s, b"", timeout=5)
        head, _, got = data.partition(b"\r\n\r\n")
        lower = head.lower()
        self.assertTrue(head.startswith(b"HTTP/1.1 200"), data[:300])
        # the client must always be able to find the end of the body
        self.assertIn(b"content-length: %d" % len(body), lower)
        self.assertEqual(got, body)


if __name__ == "__main__":
    M.main()
