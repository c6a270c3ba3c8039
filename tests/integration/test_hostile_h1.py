"""
Hostile HTTP/1.1 input (TESTING.md "HTTP/1 framing" and "Host and path").

Each REFUSED row is sent on its own TLS connection (SNI app.localhost) to one
moat with RecordingUpstreams behind; moat must answer the given status (with
Connection: close) and close the connection, and no request may reach an
upstream. Rows whose path is not under test use the target "/@", replaced by
"/c/<case name>" so that anything reaching an upstream (possibly late, after
the client connection closed) is attributed to its case.
Each NORMALISED row must instead reach the upstream in canonical form.
"""

import time

import moatlib as M

H = b"Host: app.localhost\r\n"


def req(head, body=b""):
    """head: request line and header lines joined by CRLF, without the blank line."""
    return head + b"\r\n\r\n" + body


SMUGGLE = b"GET /smuggled HTTP/1.1\r\nHost: app.localhost\r\n\r\n"
CHUNKED_BODY = b"5\r\nhello\r\n0\r\n\r\n"

REFUSED = [
    # -- HTTP/1 framing
    ("cl_and_te", req(b"POST /@ HTTP/1.1\r\n" + H + b"Content-Length: 5\r\nTransfer-Encoding: chunked",
                      b"0\r\n\r\n" + SMUGGLE), 400),
    ("te_and_cl", req(b"POST /@ HTTP/1.1\r\n" + H + b"Transfer-Encoding: chunked\r\nContent-Length: 5",
                      b"0\r\n\r\n" + SMUGGLE), 400),
    ("two_cl_same", req(b"POST /@ HTTP/1.1\r\n" + H + b"Content-Length: 5\r\nContent-Length: 5", b"hello"), 400),
    ("two_cl_different", req(b"POST /@ HTTP/1.1\r\n" + H + b"Content-Length: 5\r\nContent-Length: 6",
                             b"hello!"), 400),
    ("cl_list_same", req(b"POST /@ HTTP/1.1\r\n" + H + b"Content-Length: 5, 5", b"hello"), 400),
    ("cl_plus", req(b"POST /@ HTTP/1.1\r\n" + H + b"Content-Length: +5", b"hello"), 400),
    ("cl_negative", req(b"POST /@ HTTP/1.1\r\n" + H + b"Content-Length: -1", b"hello"), 400),
    ("cl_overflow", req(b"POST /@ HTTP/1.1\r\n" + H + b"Content-Length: 99999999999999999999999", b"hello"), 400),
    ("te_xchunked", req(b"POST /@ HTTP/1.1\r\n" + H + b"Transfer-Encoding: xchunked", CHUNKED_BODY), 501),
    ("te_identity", req(b"POST /@ HTTP/1.1\r\n" + H + b"Transfer-Encoding: identity", CHUNKED_BODY), 501),
    ("te_gzip_chunked", req(b"POST /@ HTTP/1.1\r\n" + H + b"Transfer-Encoding: gzip, chunked", CHUNKED_BODY), 501),
    ("te_chunked_identity", req(b"POST /@ HTTP/1.1\r\n" + H + b"Transfer-Encoding: chunked, identity",
                                CHUNKED_BODY), 400),
    ("te_line_leading_space", req(b"POST /@ HTTP/1.1\r\n" + H + b" Transfer-Encoding: chunked",
                                  CHUNKED_BODY), 400),
    ("te_value_folded", req(b"POST /@ HTTP/1.1\r\n" + H + b"Transfer-Encoding:\r\n chunked", CHUNKED_BODY), 400),
    ("te_tab", req(b"POST /@ HTTP/1.1\r\n" + H + b"Transfer-Encoding:\tchunked", CHUNKED_BODY), 400),
    ("te_nbsp", req(b"POST /@ HTTP/1.1\r\n" + H + b"Transfer-Encoding: chunked\xa0", CHUNKED_BODY), 400),
    ("te_space_before_colon", req(b"POST /@ HTTP/1.1\r\n" + H + b"Transfer-Encoding : chunked",
                                  CHUNKED_BODY), 400),
    ("te_repeated", req(b"POST /@ HTTP/1.1\r\n" + H +
                        b"Transfer-Encoding: chunked\r\nTransfer-Encoding: chunked", CHUNKED_BODY), 400),
    ("chunk_size_0x", req(b"POST /@ HTTP/1.1\r\n" + H + b"Transfer-Encoding: chunked",
                          b"0x5\r\nhello\r\n0\r\n\r\n"), 400),
    ("chunk_size_plus", req(b"POST /@ HTTP/1.1\r\n" + H + b"Transfer-Encoding: chunked",
                            b"+5\r\nhello\r\n0\r\n\r\n"), 400),
    ("chunk_size_17_hex", req(b"POST /@ HTTP/1.1\r\n" + H + b"Transfer-Encoding: chunked",
                              b"00000000000000005\r\nhello\r\n0\r\n\r\n"), 400),
    ("bare_cr_in_value", req(b"GET /@ HTTP/1.1\r\n" + H + b"Foo: a\rb"), 400),
    ("bare_cr_line_end", req(b"POST /@ HTTP/1.1\r\n" + H + b"Foo: a\rTransfer-Encoding: chunked",
                             CHUNKED_BODY), 400),
    ("bare_lf_line_end", b"GET /@ HTTP/1.1\nHost: app.localhost\n\n", 400),
    ("bare_lf_one_line", req(b"GET /@ HTTP/1.1\r\n" + H + b"Foo: a\nBar: b"), 400),
    ("nul_in_value", req(b"GET /@ HTTP/1.1\r\n" + H + b"Foo: a\x00b"), 400),
    ("obs_fold", req(b"GET /@ HTTP/1.1\r\n" + H + b"Foo: a\r\n b"), 400),
    ("empty_header_name", req(b"GET /@ HTTP/1.1\r\n" + H + b": x"), 400),
    ("space_in_header_name", req(b"GET /@ HTTP/1.1\r\n" + H + b"Fo o: x"), 400),
    ("at_in_header_name", req(b"GET /@ HTTP/1.1\r\n" + H + b"Foo@: x"), 400),
    ("te_on_http10", req(b"POST /@ HTTP/1.0\r\n" + H + b"Transfer-Encoding: chunked", CHUNKED_BODY), 400),
    ("http_2_0", req(b"GET /@ HTTP/2.0\r\n" + H[:-2]), 505),
    ("http_1_2", req(b"GET /@ HTTP/1.2\r\n" + H[:-2]), 505),
    # -- Host
    ("missing_host", req(b"GET /@ HTTP/1.1\r\nFoo: x"), 400),
    ("empty_host", req(b"GET /@ HTTP/1.1\r\nHost: "), 400),
    ("duplicate_host_same", req(b"GET /@ HTTP/1.1\r\n" + H + b"Host: app.localhost"), 400),
    ("duplicate_host_other", req(b"GET /@ HTTP/1.1\r\n" + H + b"Host: other.localhost"), 400),
    ("absolute_uri_other_authority", req(b"GET http://other.localhost/ HTTP/1.1\r\n" + H[:-2]), 400),
    ("host_slash", req(b"GET /@ HTTP/1.1\r\nHost: app.localhost/x"), 400),
    ("host_userinfo", req(b"GET /@ HTTP/1.1\r\nHost: evil@app.localhost"), 400),
    ("host_space", req(b"GET /@ HTTP/1.1\r\nHost: app .localhost"), 400),
    ("host_percent", req(b"GET /@ HTTP/1.1\r\nHost: app.local%68ost"), 400),
    ("host_empty_label", req(b"GET /@ HTTP/1.1\r\nHost: app..localhost"), 400),
    ("host_port_zero", req(b"GET /@ HTTP/1.1\r\nHost: app.localhost:0"), 400),
    ("host_port_too_big", req(b"GET /@ HTTP/1.1\r\nHost: app.localhost:65536"), 400),
    ("host_port_not_number", req(b"GET /@ HTTP/1.1\r\nHost: app.localhost:8x"), 400),
    # -- path
    ("path_escaped_dotdot", req(b"GET /public/%2e%2e/admin HTTP/1.1\r\n" + H[:-2]), 400),
    ("path_escaped_dotdot_upper", req(b"GET /public/%2E%2E/admin HTTP/1.1\r\n" + H[:-2]), 400),
    ("path_half_escaped_dotdot", req(b"GET /public/.%2e/admin HTTP/1.1\r\n" + H[:-2]), 400),
    ("path_escaped_slash", req(b"GET /a%2fb HTTP/1.1\r\n" + H[:-2]), 400),
    ("path_escaped_backslash", req(b"GET /a%5cb HTTP/1.1\r\n" + H[:-2]), 400),
    ("path_backslash", req(b"GET /a\\b HTTP/1.1\r\n" + H[:-2]), 400),
    ("path_escaped_nul", req(b"GET /a%00b HTTP/1.1\r\n" + H[:-2]), 400),
    ("path_dotdot_semicolon", req(b"GET /..;/x HTTP/1.1\r\n" + H[:-2]), 400),
    ("path_public_dotdot_semicolon", req(b"GET /public/..;/admin HTTP/1.1\r\n" + H[:-2]), 400),
    ("path_fragment", req(b"GET /a#b HTTP/1.1\r\n" + H[:-2]), 400),
    ("path_bad_escape", req(b"GET /a%zz HTTP/1.1\r\n" + H[:-2]), 400),
    ("path_truncated_escape", req(b"GET /a%2 HTTP/1.1\r\n" + H[:-2]), 400),
    ("path_control_char", req(b"GET /a\x01b HTTP/1.1\r\n" + H[:-2]), 400),
    ("path_non_ascii", req(b"GET /caf\xc3\xa9 HTTP/1.1\r\n" + H[:-2]), 400),
    ("path_not_origin_form", req(b"GET admin HTTP/1.1\r\n" + H[:-2]), 400),
]

# (name, request target, Host header, SNI, expected upstream target, expected upstream Host, site)
NORMALISED = [
    ("dotdot_removed", "/public/../admin", "app.localhost", "/admin", "app.localhost", "app"),
    ("double_slash", "//x", "app.localhost", "/x", "app.localhost", "app"),
    ("dot_segment", "/a/./b", "app.localhost", "/a/b", "app.localhost", "app"),
    ("never_above_root", "/a/../../../c", "app.localhost", "/c", "app.localhost", "app"),
    ("unreserved_decoded", "/%7euser", "app.localhost", "/~user", "app.localhost", "app"),
    ("unreserved_letters_decoded", "/%41%62c", "app.localhost", "/Abc", "app.localhost", "app"),
    ("reserved_escape_uppercased", "/a%3bb", "app.localhost", "/a%3Bb", "app.localhost", "app"),
    ("query_verbatim", "/a/./b?x=%2f..%2e&y=/../&z=%7e", "app.localhost",
     "/a/b?x=%2f..%2e&y=/../&z=%7e", "app.localhost", "app"),
    ("host_case_and_trailing_dot", "/h", "App.Localhost.", "/h", "app.localhost", "app"),
    ("other_host_case_and_trailing_dot", "/h2", "OTHER.localhost.", "/h2", "other.localhost", "other"),
]


class HostileH1(M.MoatTestCase):
    @classmethod
    def setUpClass(cls):
        cls.up = M.RecordingUpstream(owner=cls)
        cls.other = M.RecordingUpstream(owner=cls)
        cls.moat_ = M.Moat(cls)
        cls.moat_.start(cls.moat_.config({
            "app.localhost": M.site(cls.up),
            "other.localhost": M.site(cls.other),
        }))

    def counts(self):
        return self.up.counts() + self.other.counts()

    def test_refused(self):
        sent = {}  # request target as sent -> case name, to attribute what reaches the upstream
        for name, data, status in REFUSED:
            data = data.replace(b" /@ ", b" /c/%s " % name.encode())
            target = data.split(b"\n", 1)[0].split(b" ")[1].decode("latin-1")
            sent[target] = name
            with self.subTest(name):
                sock = M.tls_connect(self.moat_, "app.localhost")
                try:
                    resp, closed = M.raw_exchange(sock, data, timeout=10)
                finally:
                    sock.close()
                got = M.parse_status(resp)
                self.assertEqual(got, status, "%s: response %r" % (name, resp[:300]))
                self.assertTrue(closed, "%s: moat left the connection open" % name)
                r = M.parse_response(resp)
                conn = (r.headers.get("connection") or "").lower()
                self.assertIn("close", conn, "%s: no Connection: close on %r" % (name, resp[:300]))
        # moat may forward asynchronously, after it closed the client connection:
        # wait until the upstreams are quiet, then attribute each arrival to its case.
        self.wait_quiet()
        normal = {n[3] for n in NORMALISED}
        arrived = [r for r in self.up.requests + self.other.requests if r.target not in normal]
        for name, _, _ in REFUSED:
            with self.subTest(name + ": upstream"):
                mine = [r for r in arrived if sent.get(r.target) == name]
                self.assertEqual(mine, [], "%s: the upstream received the request" % name)
        unattributed = [r for r in arrived if r.target not in sent]
        self.assertEqual(unattributed, [], "upstream saw requests no valid case sent")
        self.moat_.assert_clean()

    def wait_quiet(self, quiet=0.5, limit=10.0):
        end = time.monotonic() + limit
        last = self.counts()
        while time.monotonic() < end:
            time.sleep(quiet)
            now = self.counts()
            if now == last:
                return
            last = now

    def test_normalised(self):
        for name, target, host, want_target, want_host, which in NORMALISED:
            with self.subTest(name):
                up = self.up if which == "app" else self.other
                sni = "app.localhost" if which == "app" else "other.localhost"
                n = len(up.requests)
                sock = M.tls_connect(self.moat_, sni)
                try:
                    data = ("GET %s HTTP/1.1\r\nHost: %s\r\nConnection: close\r\n\r\n"
                            % (target, host)).encode()
                    resp, closed = M.raw_exchange(sock, data, timeout=15)
                finally:
                    sock.close()
                self.assertEqual(M.parse_status(resp), 200, "%s: %r" % (name, resp[:300]))
                self.assertEqual(M.parse_response(resp).body, b"hello from upstream\n")
                self.assertEqual(len(up.requests), n + 1, "%s: upstream requests %r"
                                 % (name, up.requests[n:]))
                got = up.requests[n]
                self.assertEqual(got.target, want_target, name)
                self.assertEqual(got.headers.get_all("host"), [want_host], name)
                self.assertEqual(got.head.split(b"\r\n")[0],
                                 ("GET %s HTTP/1.1" % want_target).encode(), name)
        self.moat_.assert_clean()


if __name__ == "__main__":
    M.main()
