/*
 * test_headers.c - the heads moat writes: the request sent upstream, the
 * response head relayed to the client, moat's own short responses and the
 * reason phrases. Inputs are real request/response bytes run through the h1
 * parser; every output is compared whole (so order, removals and additions
 * are all checked at once) and then parsed back, because the peer on the
 * other side will parse it the same way. One cmocka test per table row.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <cmocka.h>

#include "h1.h"
#include "headers.h"
#include "util.h"

#define MAXHEAD 8192

static int ntests;
static struct CMUnitTest tests[256];

static void add(const char *name, void (*fn)(void **), const void *row)
{
	assert_true(ntests < (int)(sizeof(tests) / sizeof(tests[0])));
	tests[ntests].name = name;
	tests[ntests].test_func = fn;
	tests[ntests].setup_func = NULL;
	tests[ntests].teardown_func = NULL;
	tests[ntests].initial_state = (void *)(uintptr_t)row;
	ntests++;
}

/* Occurrences of needle in hay, ignoring case (header names). */
static int count_ci(const char *hay, const char *needle)
{
	size_t n = strlen(needle);
	int c = 0;

	for (; *hay != '\0'; hay++) {
		if (strncasecmp(hay, needle, n) == 0)
			c++;
	}
	return c;
}

/* ---- hdr_upstream_request ------------------------------------------------ */

struct up_case {
	const char *name;
	const char *in;   /* the client's request head */
	const char *path; /* canonical path given to hdr_upstream_request */
	const char *host;
	const char *peer;
	bool tls;
	bool upgrade;
	const char *want;
};

#define PEER4 "192.0.2.7"
/* moat's forwarding headers for PEER4 */
#define FWD(host, proto)                                                              \
	"X-Forwarded-For: " PEER4 "\r\nX-Forwarded-Proto: " proto "\r\n"               \
	"X-Forwarded-Host: " host "\r\nForwarded: for=" PEER4 ";proto=" proto         \
	";host=\"" host "\"\r\n"

static const struct up_case up_cases[] = {
	{ "up: end-to-end headers kept in order",
	  "GET /a?b=1 HTTP/1.1\r\nHost: app.example\r\nUser-Agent: t/1\r\nAccept: */*\r\n"
	  "X-Custom: 1\r\nAccept: text/html\r\nCookie: a=b\r\n\r\n",
	  "/a?b=1", "app.example", PEER4, true, false,
	  "GET /a?b=1 HTTP/1.1\r\nHost: app.example\r\nUser-Agent: t/1\r\nAccept: */*\r\n"
	  "X-Custom: 1\r\nAccept: text/html\r\nCookie: a=b\r\n" FWD("app.example", "https") "\r\n" },
	{ "up: canonical path replaces the raw target",
	  "GET /x/../y/%7e HTTP/1.1\r\nHost: app.example\r\n\r\n",
	  "/y/~", "app.example", PEER4, true, false,
	  "GET /y/~ HTTP/1.1\r\nHost: app.example\r\n" FWD("app.example", "https") "\r\n" },
	{ "up: absolute-form becomes origin-form",
	  "GET http://app.example/p?q HTTP/1.1\r\nHost: app.example\r\n\r\n",
	  "/p?q", "app.example", PEER4, false, false,
	  "GET /p?q HTTP/1.1\r\nHost: app.example\r\n" FWD("app.example", "http") "\r\n" },
	{ "up: client Host replaced by the canonical one",
	  "DELETE /r HTTP/1.1\r\nHOST: App.Example.:8443\r\nX-A: 1\r\n\r\n",
	  "/r", "app.example:8443", PEER4, true, false,
	  "DELETE /r HTTP/1.1\r\nHost: app.example:8443\r\nX-A: 1\r\n"
	  FWD("app.example:8443", "https") "\r\n" },
	{ "up: HTTP/1.0 request goes out as HTTP/1.1 with Host",
	  "GET / HTTP/1.0\r\nUser-Agent: old\r\n\r\n",
	  "/", "app.example", PEER4, false, false,
	  "GET / HTTP/1.1\r\nHost: app.example\r\nUser-Agent: old\r\n"
	  FWD("app.example", "http") "\r\n" },
	{ "up: extension method kept",
	  "PURGE /c HTTP/1.1\r\nHost: app.example\r\n\r\n",
	  "/c", "app.example", PEER4, false, false,
	  "PURGE /c HTTP/1.1\r\nHost: app.example\r\n" FWD("app.example", "http") "\r\n" },
	{ "up: hop-by-hop headers removed",
	  "GET / HTTP/1.1\r\nHost: app.example\r\nConnection: keep-alive\r\n"
	  "Keep-Alive: timeout=5\r\nProxy-Connection: keep-alive\r\nTE: trailers\r\n"
	  "Trailer: X-Sum\r\nProxy-Authorization: Basic eDp5\r\nUpgrade: h2c\r\n"
	  "X-Keep: 1\r\n\r\n",
	  "/", "app.example", PEER4, true, false,
	  "GET / HTTP/1.1\r\nHost: app.example\r\nX-Keep: 1\r\n" FWD("app.example", "https") "\r\n" },
	{ "up: headers named by Connection removed",
	  "GET / HTTP/1.1\r\nHost: app.example\r\nX-Secret: s\r\nConnection: X-Secret, x-other\r\n"
	  "X-Other: o\r\nX-Keep: k\r\nConnection: X-Third\r\nx-third: 3\r\n\r\n",
	  "/", "app.example", PEER4, true, false,
	  "GET / HTTP/1.1\r\nHost: app.example\r\nX-Keep: k\r\n" FWD("app.example", "https") "\r\n" },
	{ "up: client forwarding headers and Expect removed",
	  "POST /f HTTP/1.1\r\nHost: app.example\r\nX-Forwarded-For: 10.0.0.1\r\n"
	  "x-forwarded-proto: https\r\nX-Forwarded-Host: evil.example\r\nX-Forwarded-Port: 1\r\n"
	  "Forwarded: for=10.0.0.1\r\nX-Real-IP: 10.0.0.1\r\nExpect: 100-continue\r\n"
	  "Content-Length: 3\r\nX-Keep: 1\r\n\r\n",
	  "/f", "app.example", PEER4, false, false,
	  "POST /f HTTP/1.1\r\nHost: app.example\r\nX-Keep: 1\r\n"
	  FWD("app.example", "http") "Content-Length: 3\r\n\r\n" },
	{ "up: underscore spellings of forwarding headers removed",
	  "GET / HTTP/1.1\r\nHost: app.example\r\nX_Forwarded_For: 6.6.6.6\r\nX_REAL_IP: 6.6.6.6\r\n"
	  "x-forwarded_proto: http\r\nX_Keep: 1\r\n\r\n",
	  "/", "app.example", PEER4, true, false,
	  "GET / HTTP/1.1\r\nHost: app.example\r\nX_Keep: 1\r\n" FWD("app.example", "https") "\r\n" },
	{ "up: IPv6 peer quoted and bracketed in Forwarded",
	  "GET / HTTP/1.1\r\nHost: app.example\r\n\r\n",
	  "/", "app.example", "2001:db8::1", true, false,
	  "GET / HTTP/1.1\r\nHost: app.example\r\nX-Forwarded-For: 2001:db8::1\r\n"
	  "X-Forwarded-Proto: https\r\nX-Forwarded-Host: app.example\r\n"
	  "Forwarded: for=\"[2001:db8::1]\";proto=https;host=\"app.example\"\r\n\r\n" },
	{ "up: IPv6 site host",
	  "GET / HTTP/1.1\r\nHost: [::1]:8443\r\n\r\n",
	  "/", "[::1]:8443", PEER4, true, false,
	  "GET / HTTP/1.1\r\nHost: [::1]:8443\r\n" FWD("[::1]:8443", "https") "\r\n" },
	{ "up: chunked body declared after moat's headers",
	  "POST /u HTTP/1.1\r\nHost: app.example\r\nTransfer-Encoding: chunked\r\n"
	  "Content-Type: text/plain\r\n\r\n",
	  "/u", "app.example", PEER4, true, false,
	  "POST /u HTTP/1.1\r\nHost: app.example\r\nContent-Type: text/plain\r\n"
	  FWD("app.example", "https") "Transfer-Encoding: chunked\r\n\r\n" },
	{ "up: Content-Length body has no Transfer-Encoding",
	  "PUT /u HTTP/1.1\r\nHost: app.example\r\nContent-Length: 5\r\n\r\n",
	  "/u", "app.example", PEER4, true, false,
	  "PUT /u HTTP/1.1\r\nHost: app.example\r\n"
	  FWD("app.example", "https") "Content-Length: 5\r\n\r\n" },
	{ "up: Content-Length written by moat even when Connection names it",
	  "POST /u HTTP/1.1\r\nHost: app.example\r\nConnection: content-length\r\n"
	  "Content-Length: 0005\r\n\r\n",
	  "/u", "app.example", PEER4, true, false,
	  "POST /u HTTP/1.1\r\nHost: app.example\r\n"
	  FWD("app.example", "https") "Content-Length: 5\r\n\r\n" },
	{ "up: upgrade keeps Connection and Upgrade",
	  "GET /ws HTTP/1.1\r\nHost: app.example\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n"
	  "Sec-WebSocket-Key: dGhlIHNhbXBsZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n",
	  "/ws", "app.example", PEER4, true, true,
	  "GET /ws HTTP/1.1\r\nHost: app.example\r\nSec-WebSocket-Key: dGhlIHNhbXBsZQ==\r\n"
	  "Sec-WebSocket-Version: 13\r\n" FWD("app.example", "https")
	  "Connection: upgrade\r\nUpgrade: websocket\r\n\r\n" },
	{ "up: upgrade not set drops Connection and Upgrade",
	  "GET /ws HTTP/1.1\r\nHost: app.example\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n"
	  "Sec-WebSocket-Version: 13\r\n\r\n",
	  "/ws", "app.example", PEER4, true, false,
	  "GET /ws HTTP/1.1\r\nHost: app.example\r\nSec-WebSocket-Version: 13\r\n"
	  FWD("app.example", "https") "\r\n" },
};

static void t_upstream(void **state)
{
	const struct up_case *c = *state;
	struct upstream_req r = {0};
	struct h1_msg m, back;
	size_t len = 0;
	char *out;

	assert_int_equal(h1_parse_request(c->in, strlen(c->in), MAXHEAD, &m), 0);
	r.m = &m;
	r.path = c->path;
	r.host = c->host;
	r.peer = c->peer;
	r.tls = c->tls;
	r.upgrade = c->upgrade;
	out = hdr_upstream_request(&r, &len);
	assert_non_null(out);
	assert_string_equal(out, c->want);
	assert_int_equal(len, strlen(out));
	/* The upstream must read exactly this head and the same framing. */
	assert_int_equal(h1_parse_request(out, len, MAXHEAD, &back), 0);
	assert_int_equal(back.head_len, len);
	assert_int_equal(back.framing, m.framing);
	assert_int_equal(back.content_length, m.content_length);
	assert_int_equal((back.flags & H1_F_UPGRADE) != 0, c->upgrade);
	assert_int_equal(count_ci(out, "\r\nhost:"), 1);
	free(out);
}

/* ---- hdr_client_response ------------------------------------------------- */

struct resp_case {
	const char *name;
	const char *in; /* the upstream's response head */
	enum h1_method req;
	uint32_t hsts;
	bool chunked, close, keepalive_10;
	const char *want;
};

#define HSTS_1Y "Strict-Transport-Security: max-age=31536000\r\n"

static const struct resp_case resp_cases[] = {
	{ "resp: status line and headers kept in order",
	  "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nSet-Cookie: a=1\r\n"
	  "Content-Length: 2\r\nSet-Cookie: b=2\r\n\r\n",
	  H1_M_GET, 0, false, false, false,
	  "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nSet-Cookie: a=1\r\n"
	  "Set-Cookie: b=2\r\nContent-Length: 2\r\n\r\n" },
	{ "resp: Content-Length written by moat even when Connection names it",
	  "HTTP/1.1 200 OK\r\nConnection: content-length\r\nContent-Length: 2\r\n\r\n",
	  H1_M_GET, 0, false, false, false,
	  "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\n" },
	{ "resp: 204 never carries Content-Length",
	  "HTTP/1.1 204 No Content\r\nContent-Length: 0\r\nX-A: 1\r\n\r\n",
	  H1_M_GET, 0, false, false, false,
	  "HTTP/1.1 204 No Content\r\nX-A: 1\r\n\r\n" },
	{ "resp: HEAD keeps the upstream's Content-Length",
	  "HTTP/1.1 200 OK\r\nContent-Length: 1234\r\nX-A: 1\r\n\r\n",
	  H1_M_HEAD, 0, false, false, false,
	  "HTTP/1.1 200 OK\r\nX-A: 1\r\nContent-Length: 1234\r\n\r\n" },
	{ "resp: upstream reason kept",
	  "HTTP/1.1 404 Nothing Here, Sorry\r\nContent-Length: 0\r\n\r\n",
	  H1_M_GET, 0, false, false, false,
	  "HTTP/1.1 404 Nothing Here, Sorry\r\nContent-Length: 0\r\n\r\n" },
	{ "resp: empty reason after SP gets the default",
	  "HTTP/1.1 404 \r\nContent-Length: 0\r\n\r\n",
	  H1_M_GET, 0, false, false, false,
	  "HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n\r\n" },
	{ "resp: missing reason gets the default",
	  "HTTP/1.1 503\r\nContent-Length: 0\r\n\r\n",
	  H1_M_GET, 0, false, true, false,
	  "HTTP/1.1 503 Service Unavailable\r\nContent-Length: 0\r\nConnection: close\r\n\r\n" },
	{ "resp: unlisted status without reason",
	  "HTTP/1.1 299\r\nContent-Length: 0\r\n\r\n",
	  H1_M_GET, 0, false, false, false,
	  "HTTP/1.1 299 Unknown\r\nContent-Length: 0\r\n\r\n" },
	{ "resp: HTTP/1.0 upstream relayed as HTTP/1.1",
	  "HTTP/1.0 200 OK\r\nContent-Length: 1\r\n\r\n",
	  H1_M_GET, 0, false, false, false,
	  "HTTP/1.1 200 OK\r\nContent-Length: 1\r\n\r\n" },
	{ "resp: hop-by-hop removed, chunked and close added",
	  "HTTP/1.1 200 OK\r\nConnection: keep-alive, X-Internal\r\nX-Internal: 1\r\n"
	  "Keep-Alive: timeout=5\r\nTransfer-Encoding: chunked\r\nTrailer: X-Sum\r\n"
	  "Proxy-Authenticate: Basic\r\nUpgrade: h2c\r\nX-Keep: 1\r\n\r\n",
	  H1_M_GET, 0, true, true, false,
	  "HTTP/1.1 200 OK\r\nX-Keep: 1\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n" },
	{ "resp: close-delimited body rechunked",
	  "HTTP/1.1 200 OK\r\nContent-Type: text/html\r\n\r\n",
	  H1_M_GET, 0, true, false, false,
	  "HTTP/1.1 200 OK\r\nContent-Type: text/html\r\nTransfer-Encoding: chunked\r\n\r\n" },
	{ "resp: HSTS added once",
	  "HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n",
	  H1_M_GET, 31536000, false, false, false,
	  "HTTP/1.1 200 OK\r\nContent-Length: 0\r\n" HSTS_1Y "\r\n" },
	{ "resp: upstream HSTS kept, none added",
	  "HTTP/1.1 200 OK\r\nstrict-transport-security: max-age=60\r\nContent-Length: 0\r\n\r\n",
	  H1_M_GET, 31536000, false, false, false,
	  "HTTP/1.1 200 OK\r\nstrict-transport-security: max-age=60\r\nContent-Length: 0\r\n\r\n" },
	{ "resp: HTTP/1.0 client kept alive is told so",
	  "HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n",
	  H1_M_GET, 0, false, false, true,
	  "HTTP/1.1 200 OK\r\nContent-Length: 0\r\nConnection: keep-alive\r\n\r\n" },
	{ "resp: close wins over keep-alive",
	  "HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n",
	  H1_M_GET, 0, false, true, true,
	  "HTTP/1.1 200 OK\r\nContent-Length: 0\r\nConnection: close\r\n\r\n" },
	{ "resp: HEAD response keeps Content-Length",
	  "HTTP/1.1 200 OK\r\nContent-Length: 1234\r\n\r\n",
	  H1_M_HEAD, 0, false, false, false,
	  "HTTP/1.1 200 OK\r\nContent-Length: 1234\r\n\r\n" },
	{ "resp: 101 keeps Upgrade, never close or chunked",
	  "HTTP/1.1 101 Switching Protocols\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n"
	  "Sec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n\r\n",
	  H1_M_GET, 31536000, true, true, false,
	  "HTTP/1.1 101 Switching Protocols\r\n"
	  "Sec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n" HSTS_1Y
	  "Connection: upgrade\r\nUpgrade: websocket\r\n\r\n" },
};

static void t_client(void **state)
{
	const struct resp_case *c = *state;
	struct client_resp r = {0};
	struct h1_msg m, back;
	size_t len = 0;
	char *out;

	assert_int_equal(h1_parse_response(c->in, strlen(c->in), MAXHEAD, c->req, &m), 0);
	r.m = &m;
	r.hsts_max_age = c->hsts;
	r.chunked = c->chunked;
	r.close = c->close;
	r.keepalive_10 = c->keepalive_10;
	out = hdr_client_response(&r, &len);
	assert_non_null(out);
	assert_string_equal(out, c->want);
	assert_int_equal(len, strlen(out));
	assert_int_equal(h1_parse_response(out, len, MAXHEAD, c->req, &back), 0);
	assert_int_equal(back.head_len, len);
	assert_int_equal(back.status, m.status);
	assert_true(count_ci(out, "strict-transport-security:") <= 1);
	free(out);
}

/* ---- hdr_simple ---------------------------------------------------------- */

struct simple_case {
	const char *name;
	int status;
	const char *ctype, *body, *extra;
	bool close;
	uint32_t hsts;
	bool head_only;
	const char *want;
};

#define TXT "text/plain; charset=utf-8"

static const struct simple_case simple_cases[] = {
	{ "simple: complete response", 404, TXT, "Not Found\n", NULL, false, 0, false,
	  "HTTP/1.1 404 Not Found\r\nServer: moat\r\nContent-Type: " TXT "\r\n"
	  "Content-Length: 10\r\n\r\nNot Found\n" },
	{ "simple: HEAD omits the body, keeps its length", 200, "text/html", "<p>hello</p>\n",
	  NULL, false, 0, true,
	  "HTTP/1.1 200 OK\r\nServer: moat\r\nContent-Type: text/html\r\n"
	  "Content-Length: 13\r\n\r\n" },
	{ "simple: close, HSTS and extra lines in order", 308, TXT, "moved\n",
	  "Location: https://app.example/\r\n", true, 600, false,
	  "HTTP/1.1 308 Permanent Redirect\r\nServer: moat\r\nContent-Type: " TXT "\r\n"
	  "Content-Length: 6\r\nStrict-Transport-Security: max-age=600\r\n"
	  "Location: https://app.example/\r\nConnection: close\r\n\r\nmoved\n" },
	{ "simple: no body", 400, TXT, NULL, NULL, true, 0, false,
	  "HTTP/1.1 400 Bad Request\r\nServer: moat\r\nContent-Type: " TXT "\r\n"
	  "Content-Length: 0\r\nConnection: close\r\n\r\n" },
	{ "simple: no body on HEAD", 204, TXT, NULL, NULL, false, 0, true,
	  "HTTP/1.1 204 No Content\r\nServer: moat\r\nContent-Length: 0\r\n\r\n" },
	{ "simple: unlisted status", 599, TXT, "x", NULL, false, 0, false,
	  "HTTP/1.1 599 Unknown\r\nServer: moat\r\nContent-Type: " TXT "\r\n"
	  "Content-Length: 1\r\n\r\nx" },
};

static void t_simple(void **state)
{
	const struct simple_case *c = *state;
	size_t blen = c->body != NULL ? strlen(c->body) : 0;
	struct h1_msg back;
	size_t len = 0;
	char *out;

	out = hdr_simple(c->status, c->ctype, c->body, c->extra, c->close, c->hsts,
			 c->head_only, &len);
	assert_non_null(out);
	assert_string_equal(out, c->want);
	assert_int_equal(len, strlen(out));
	/* A client reads the same length and, unless HEAD, exactly the body. */
	assert_int_equal(h1_parse_response(out, len, MAXHEAD,
					   c->head_only ? H1_M_HEAD : H1_M_GET, &back), 0);
	assert_int_equal(back.status, c->status);
	assert_int_equal(back.content_length, blen);
	assert_int_equal(back.flags & H1_F_CLOSE, c->close ? H1_F_CLOSE : 0);
	if (c->head_only) {
		assert_int_equal(back.framing, H1_BODY_NONE);
		assert_int_equal(back.head_len, len);
	} else if (c->status != 204) {
		assert_int_equal(back.framing, H1_BODY_LENGTH);
		assert_int_equal(len - back.head_len, blen);
		assert_memory_equal(out + back.head_len, c->body != NULL ? c->body : "", blen);
	}
	free(out);
}

/* ---- hdr_reason ---------------------------------------------------------- */

static void t_reason(void **state)
{
	static const struct {
		int status;
		const char *want;
	} rows[] = {
		{ 100, "Continue" },
		{ 101, "Switching Protocols" },
		{ 200, "OK" },
		{ 204, "No Content" },
		{ 301, "Moved Permanently" },
		{ 308, "Permanent Redirect" },
		{ 400, "Bad Request" },
		{ 404, "Not Found" },
		{ 413, "Content Too Large" },
		{ 417, "Expectation Failed" },
		{ 421, "Misdirected Request" },
		{ 431, "Request Header Fields Too Large" },
		{ 500, "Internal Server Error" },
		{ 501, "Not Implemented" },
		{ 502, "Bad Gateway" },
		{ 503, "Service Unavailable" },
		{ 504, "Gateway Timeout" },
		{ 505, "HTTP Version Not Supported" },
		{ 0, "Unknown" },
		{ -1, "Unknown" },
		{ 299, "Unknown" },
		{ 600, "Unknown" },
	};
	size_t i;

	for (i = 0; i < sizeof(rows) / sizeof(rows[0]); i++) {
		/* fail_msg rather than assert_string_equal: it names the status */
		if (strcmp(hdr_reason(rows[i].status), rows[i].want) != 0)
			fail_msg("hdr_reason(%d) = \"%s\", want \"%s\"", rows[i].status,
				 hdr_reason(rows[i].status), rows[i].want);
	}
}

int main(void)
{
	size_t i;

	for (i = 0; i < sizeof(up_cases) / sizeof(up_cases[0]); i++)
		add(up_cases[i].name, t_upstream, &up_cases[i]);
	for (i = 0; i < sizeof(resp_cases) / sizeof(resp_cases[0]); i++)
		add(resp_cases[i].name, t_client, &resp_cases[i]);
	for (i = 0; i < sizeof(simple_cases) / sizeof(simple_cases[0]); i++)
		add(simple_cases[i].name, t_simple, &simple_cases[i]);
	add("reason phrases", t_reason, NULL);
	return _cmocka_run_group_tests("headers", tests, (size_t)ntests, NULL, NULL);
}
