/*
 * test_h1.c - the HTTP/1 head parser and chunked decoder, one cmocka test per
 * table row so a failure names the case.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "h1.h"
#include "util.h"

#define MAXHEAD 8192
#define S(lit) lit, sizeof(lit) - 1

static int ntests;
static struct CMUnitTest tests[1024];

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

static void assert_slice(struct h1_slice s, const char *want)
{
	char buf[512];

	assert_true(s.n < sizeof(buf));
	memcpy(buf, s.p ? s.p : "", s.n);
	buf[s.n] = '\0';
	assert_string_equal(buf, want);
}

/* ---- requests that must be refused ---------------------------------- */

struct bad_req {
	const char *name;
	const char *in;
	size_t n;
	int rc;
};

#define BAD(name, lit, rc) { name, S(lit), rc }
#define H11 " HTTP/1.1\r\n"

static const struct bad_req bad_reqs[] = {
	/* line endings and control bytes */
	BAD("bare LF everywhere", "GET / HTTP/1.1\nHost: a\n\n", MOAT_EPROTO),
	BAD("bare LF in header", "GET /" H11 "Host: a\nX: y\r\n\r\n", MOAT_EPROTO),
	BAD("bare LF ends head", "GET /" H11 "Host: a\r\n\n", MOAT_EPROTO),
	BAD("bare CR in header", "GET /" H11 "Host: a\rX: y\r\n\r\n", MOAT_EPROTO),
	BAD("bare CR in request line", "GET /\r HTTP/1.1\r\nHost: a\r\n\r\n", MOAT_EPROTO),
	BAD("CR CR LF", "GET /" H11 "Host: a\r\r\n\r\n", MOAT_EPROTO),
	BAD("NUL in value", "GET /" H11 "Host: a\r\nX: a\0b\r\n\r\n", MOAT_EPROTO),
	BAD("NUL in target", "GET /a\0b" H11 "Host: a\r\n\r\n", MOAT_EPROTO),
	BAD("NUL in name", "GET /" H11 "Host: a\r\nX\0: b\r\n\r\n", MOAT_EPROTO),
	BAD("SOH in value", "GET /" H11 "Host: a\r\nX: a\x01\r\n\r\n", MOAT_EPROTO),
	BAD("DEL in value", "GET /" H11 "Host: a\r\nX: a\x7f\r\n\r\n", MOAT_EPROTO),
	BAD("VT in name", "GET /" H11 "Host: a\r\nX\vY: b\r\n\r\n", MOAT_EPROTO),
	BAD("5 leading CRLF", "\r\n\r\n\r\n\r\n\r\nGET /" H11 "Host: a\r\n\r\n", MOAT_EPROTO),
	BAD("leading LF", "\nGET /" H11 "Host: a\r\n\r\n", MOAT_EPROTO),
	/* request line */
	BAD("double SP", "GET  /" H11 "Host: a\r\n\r\n", MOAT_EPROTO),
	BAD("double SP before version", "GET /  HTTP/1.1\r\nHost: a\r\n\r\n", MOAT_EPROTO),
	BAD("HTAB separator", "GET\t/" H11 "Host: a\r\n\r\n", MOAT_EPROTO),
	BAD("HTAB in target", "GET /a\tb" H11 "Host: a\r\n\r\n", MOAT_EPROTO),
	BAD("SP after version", "GET / HTTP/1.1 \r\nHost: a\r\n\r\n", MOAT_EPROTO),
	BAD("leading SP", " GET /" H11 "Host: a\r\n\r\n", MOAT_EPROTO),
	BAD("lowercase version", "GET / http/1.1\r\nHost: a\r\n\r\n", MOAT_EPROTO),
	BAD("HTTP/2.0", "GET / HTTP/2.0\r\nHost: a\r\n\r\n", MOAT_EVERSION),
	BAD("HTTP/1.2", "GET / HTTP/1.2\r\nHost: a\r\n\r\n", MOAT_EVERSION),
	BAD("HTTP/0.9 version", "GET / HTTP/0.9\r\nHost: a\r\n\r\n", MOAT_EVERSION),
	BAD("HTTP/3.0", "GET / HTTP/3.0\r\nHost: a\r\n\r\n", MOAT_EVERSION),
	BAD("h2 preface", "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n", MOAT_EVERSION),
	BAD("HTTP/1.10", "GET / HTTP/1.10\r\nHost: a\r\n\r\n", MOAT_EPROTO),
	BAD("HTTP/1", "GET / HTTP/1\r\nHost: a\r\n\r\n", MOAT_EPROTO),
	BAD("HTTP/1.x", "GET / HTTP/1.x\r\nHost: a\r\n\r\n", MOAT_EPROTO),
	BAD("no version (0.9 style)", "GET /\r\n\r\n", MOAT_EPROTO),
	BAD("only method", "GET\r\n\r\n", MOAT_EPROTO),
	BAD("SP in target", "GET /a b" H11 "Host: a\r\n\r\n", MOAT_EPROTO),
	BAD("empty method", " /" H11 "Host: a\r\n\r\n", MOAT_EPROTO),
	BAD("method non-token", "G@T /" H11 "Host: a\r\n\r\n", MOAT_EPROTO),
	BAD("method 33 chars", "ABCDEFGHIJKLMNOPQRSTUVWXYZABCDEFG /" H11 "Host: a\r\n\r\n",
	    MOAT_EPROTO),
	BAD("target 0x80", "GET /\x80" H11 "Host: a\r\n\r\n", MOAT_EPROTO),
	BAD("target 0xff", "GET /\xff" H11 "Host: a\r\n\r\n", MOAT_EPROTO),
	BAD("target fragment", "GET /a#b" H11 "Host: a\r\n\r\n", MOAT_EPROTO),
	BAD("target relative", "GET a/b" H11 "Host: a\r\n\r\n", MOAT_EPROTO),
	BAD("asterisk with GET", "GET *" H11 "Host: a\r\n\r\n", MOAT_EPROTO),
	BAD("asterisk-ish", "OPTIONS *x" H11 "Host: a\r\n\r\n", MOAT_EPROTO),
	BAD("CONNECT", "CONNECT a:443" H11 "Host: a:443\r\n\r\n", MOAT_EUNSUP),
	BAD("authority-form with GET", "GET a:443" H11 "Host: a:443\r\n\r\n", MOAT_EPROTO),
	BAD("absolute userinfo", "GET http://u@a/" H11 "Host: a\r\n\r\n", MOAT_EPROTO),
	BAD("absolute userinfo pw", "GET http://u:p@a/" H11 "Host: a\r\n\r\n", MOAT_EPROTO),
	BAD("absolute ftp", "GET ftp://a/" H11 "Host: a\r\n\r\n", MOAT_EPROTO),
	BAD("absolute empty authority", "GET http:///x" H11 "Host: a\r\n\r\n", MOAT_EPROTO),
	BAD("absolute bad authority", "GET http://a..b/" H11 "Host: a\r\n\r\n", MOAT_EPROTO),
	BAD("absolute authority port 0", "GET http://a:0/" H11 "Host: a\r\n\r\n", MOAT_EPROTO),
	BAD("absolute != Host", "GET http://a/" H11 "Host: b\r\n\r\n", MOAT_EPROTO),
	BAD("absolute port != Host", "GET http://a:8080/" H11 "Host: a\r\n\r\n",
	    MOAT_EPROTO),
	BAD("absolute no port, Host port", "GET http://a/" H11 "Host: a:80\r\n\r\n",
	    MOAT_EPROTO),
	BAD("absolute query no path", "GET http://a?x" H11 "Host: a\r\n\r\n", MOAT_EPROTO),
	/* field syntax */
	BAD("obs-fold", "GET /" H11 "Host: a\r\nX: a\r\n b\r\n\r\n", MOAT_EPROTO),
	BAD("obs-fold tab", "GET /" H11 "Host: a\r\nX: a\r\n\tb\r\n\r\n", MOAT_EPROTO),
	BAD("fold right after request line", "GET /" H11 " Host: a\r\n\r\n", MOAT_EPROTO),
	BAD("folded TE", "POST /" H11 "Host: a\r\n Transfer-Encoding: chunked\r\n\r\n",
	    MOAT_EPROTO),
	BAD("empty name", "GET /" H11 "Host: a\r\n: x\r\n\r\n", MOAT_EPROTO),
	BAD("SP before colon", "GET /" H11 "Host : a\r\n\r\n", MOAT_EPROTO),
	BAD("HTAB before colon", "GET /" H11 "Host\t: a\r\n\r\n", MOAT_EPROTO),
	BAD("name with (", "GET /" H11 "Host: a\r\nX(y: z\r\n\r\n", MOAT_EPROTO),
	BAD("name with SP", "GET /" H11 "Host: a\r\nX Y: z\r\n\r\n", MOAT_EPROTO),
	BAD("name 0x80", "GET /" H11 "Host: a\r\nX\x80: z\r\n\r\n", MOAT_EPROTO),
	BAD("no colon", "GET /" H11 "Host: a\r\nJunk\r\n\r\n", MOAT_EPROTO),
	/* Host */
	BAD("missing Host", "GET /" H11 "\r\n", MOAT_EPROTO),
	BAD("duplicate Host", "GET /" H11 "Host: a\r\nHost: a\r\n\r\n", MOAT_EPROTO),
	BAD("duplicate Host 1.0", "GET / HTTP/1.0\r\nHost: a\r\nhost: b\r\n\r\n", MOAT_EPROTO),
	BAD("empty Host", "GET /" H11 "Host:\r\n\r\n", MOAT_EPROTO),
	BAD("Host userinfo", "GET /" H11 "Host: u@a\r\n\r\n", MOAT_EPROTO),
	BAD("Host empty label", "GET /" H11 "Host: a..b\r\n\r\n", MOAT_EPROTO),
	BAD("Host two trailing dots", "GET /" H11 "Host: a..\r\n\r\n", MOAT_EPROTO),
	BAD("Host bad char", "GET /" H11 "Host: a/b\r\n\r\n", MOAT_EPROTO),
	BAD("Host SP inside", "GET /" H11 "Host: a b\r\n\r\n", MOAT_EPROTO),
	BAD("Host empty port", "GET /" H11 "Host: a:\r\n\r\n", MOAT_EPROTO),
	BAD("Host port 0", "GET /" H11 "Host: a:0\r\n\r\n", MOAT_EPROTO),
	BAD("Host port 65536", "GET /" H11 "Host: a:65536\r\n\r\n", MOAT_EPROTO),
	BAD("Host bad IP literal", "GET /" H11 "Host: [::g]\r\n\r\n", MOAT_EPROTO),
	/* Content-Length */
	BAD("CL list same", "POST /" H11 "Host: a\r\nContent-Length: 5, 5\r\n\r\n", MOAT_EPROTO),
	BAD("CL list differ", "POST /" H11 "Host: a\r\nContent-Length: 5,6\r\n\r\n", MOAT_EPROTO),
	BAD("CL plus", "POST /" H11 "Host: a\r\nContent-Length: +5\r\n\r\n", MOAT_EPROTO),
	BAD("CL minus", "POST /" H11 "Host: a\r\nContent-Length: -5\r\n\r\n", MOAT_EPROTO),
	BAD("CL hex", "POST /" H11 "Host: a\r\nContent-Length: 0x5\r\n\r\n", MOAT_EPROTO),
	BAD("CL empty", "POST /" H11 "Host: a\r\nContent-Length:\r\n\r\n", MOAT_EPROTO),
	BAD("CL spaces only", "POST /" H11 "Host: a\r\nContent-Length:   \r\n\r\n", MOAT_EPROTO),
	BAD("CL inner SP", "POST /" H11 "Host: a\r\nContent-Length: 5 5\r\n\r\n", MOAT_EPROTO),
	BAD("CL 19 digits", "POST /" H11 "Host: a\r\nContent-Length: 1234567890123456789\r\n\r\n",
	    MOAT_EPROTO),
	BAD("CL leading HTAB", "POST /" H11 "Host: a\r\nContent-Length:\t5\r\n\r\n", MOAT_EPROTO),
	BAD("CL trailing HTAB", "POST /" H11 "Host: a\r\nContent-Length: 5\t\r\n\r\n", MOAT_EPROTO),
	BAD("CL duplicate same", "POST /" H11 "Host: a\r\nContent-Length: 5\r\n"
	    "Content-Length: 5\r\n\r\n", MOAT_EPROTO),
	BAD("CL duplicate differ", "POST /" H11 "Host: a\r\nContent-Length: 5\r\n"
	    "content-length: 6\r\n\r\n", MOAT_EPROTO),
	BAD("CL SP before colon", "POST /" H11 "Host: a\r\nContent-Length : 5\r\n\r\n",
	    MOAT_EPROTO),
	BAD("CL decimal point", "POST /" H11 "Host: a\r\nContent-Length: 5.0\r\n\r\n", MOAT_EPROTO),
	/* Transfer-Encoding */
	BAD("TE xchunked", "POST /" H11 "Host: a\r\nTransfer-Encoding: xchunked\r\n\r\n",
	    MOAT_EUNSUP),
	BAD("TE identity", "POST /" H11 "Host: a\r\nTransfer-Encoding: identity\r\n\r\n",
	    MOAT_EUNSUP),
	BAD("TE chunked, identity", "POST /" H11 "Host: a\r\nTransfer-Encoding: chunked, identity\r\n\r\n",
	    MOAT_EPROTO),
	BAD("TE identity, chunked", "POST /" H11 "Host: a\r\nTransfer-Encoding: identity, chunked\r\n\r\n",
	    MOAT_EUNSUP),
	BAD("TE chunked, xchunked", "POST /" H11 "Host: a\r\nTransfer-Encoding: chunked, xchunked\r\n\r\n",
	    MOAT_EPROTO),
	BAD("TE x-gzip, deflate, chunked", "POST /" H11 "Host: a\r\nTransfer-Encoding: x-gzip,deflate ,  chunked\r\n\r\n",
	    MOAT_EUNSUP),
	BAD("TE compress alone", "POST /" H11 "Host: a\r\nTransfer-Encoding: Compress\r\n\r\n", MOAT_EPROTO),
	BAD("TE gzip, chunked", "POST /" H11 "Host: a\r\nTransfer-Encoding: gzip, chunked\r\n\r\n",
	    MOAT_EUNSUP),
	BAD("TE chunked, gzip", "POST /" H11 "Host: a\r\nTransfer-Encoding: chunked, gzip\r\n\r\n",
	    MOAT_EPROTO),
	BAD("TE chunked, chunked", "POST /" H11 "Host: a\r\nTransfer-Encoding: chunked, chunked\r\n\r\n",
	    MOAT_EPROTO),
	BAD("TE gzip alone", "POST /" H11 "Host: a\r\nTransfer-Encoding: gzip\r\n\r\n", MOAT_EPROTO),
	BAD("TE chunked 0xa0", "POST /" H11 "Host: a\r\nTransfer-Encoding: chunked\xa0\r\n\r\n",
	    MOAT_EPROTO),
	BAD("TE leading HTAB", "POST /" H11 "Host: a\r\nTransfer-Encoding:\tchunked\r\n\r\n",
	    MOAT_EPROTO),
	BAD("TE trailing HTAB", "POST /" H11 "Host: a\r\nTransfer-Encoding: chunked\t\r\n\r\n",
	    MOAT_EPROTO),
	BAD("TE trailing comma", "POST /" H11 "Host: a\r\nTransfer-Encoding: chunked,\r\n\r\n",
	    MOAT_EPROTO),
	BAD("TE leading comma", "POST /" H11 "Host: a\r\nTransfer-Encoding: , chunked\r\n\r\n",
	    MOAT_EPROTO),
	BAD("TE empty", "POST /" H11 "Host: a\r\nTransfer-Encoding:\r\n\r\n", MOAT_EPROTO),
	BAD("TE params", "POST /" H11 "Host: a\r\nTransfer-Encoding: chunked;q=1\r\n\r\n",
	    MOAT_EPROTO),
	BAD("TE two words", "POST /" H11 "Host: a\r\nTransfer-Encoding: chunked chunked\r\n\r\n",
	    MOAT_EPROTO),
	BAD("TE quoted", "POST /" H11 "Host: a\r\nTransfer-Encoding: \"chunked\"\r\n\r\n",
	    MOAT_EPROTO),
	BAD("TE SP before colon", "POST /" H11 "Host: a\r\nTransfer-Encoding : chunked\r\n\r\n",
	    MOAT_EPROTO),
	BAD("TE twice", "POST /" H11 "Host: a\r\nTransfer-Encoding: chunked\r\n"
	    "Transfer-Encoding: chunked\r\n\r\n", MOAT_EPROTO),
	BAD("TE then CL", "POST /" H11 "Host: a\r\nTransfer-Encoding: chunked\r\n"
	    "Content-Length: 5\r\n\r\n", MOAT_EPROTO),
	BAD("CL then TE", "POST /" H11 "Host: a\r\nContent-Length: 5\r\n"
	    "Transfer-Encoding: chunked\r\n\r\n", MOAT_EPROTO),
	BAD("CL then unknown TE", "POST /" H11 "Host: a\r\nContent-Length: 5\r\n"
	    "Transfer-Encoding: foo\r\n\r\n", MOAT_EPROTO),
	BAD("TE on HTTP/1.0", "POST / HTTP/1.0\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n",
	    MOAT_EPROTO),
	BAD("duplicate Upgrade", "GET /" H11 "Host: a\r\nConnection: upgrade\r\nUpgrade: a\r\n"
	    "Upgrade: b\r\n\r\n", MOAT_EPROTO),
	BAD("unknown TE and no Host", "POST /" H11 "Transfer-Encoding: foo\r\n\r\n", MOAT_EPROTO),
	/* incomplete heads fail early on bytes already seen */
	BAD("incomplete with bare LF", "GET /" H11 "Host: a\nX", MOAT_EPROTO),
	BAD("incomplete with NUL", "GET /" H11 "Ho\0", MOAT_EPROTO),
	BAD("incomplete with bare CR", "GET /\rX", MOAT_EPROTO),
	BAD("incomplete fold", "GET /" H11 "Host: a\r\n X: b\r\n", MOAT_EPROTO),
	BAD("incomplete bad version", "GET / HTTP/2.0\r\nHost: a\r\n", MOAT_EVERSION),
	BAD("incomplete dup CL", "POST /" H11 "Content-Length: 1\r\nContent-Length: 1\r\n",
	    MOAT_EPROTO),
	BAD("incomplete", "GET / HTTP/1.1\r\nHost: a\r\n", MOAT_EAGAIN),
	BAD("incomplete CR at end", "GET / HTTP/1.1\r\nHost: a\r\n\r", MOAT_EAGAIN),
	BAD("incomplete request line", "GET /index.ht", MOAT_EAGAIN),
	BAD("empty input", "", MOAT_EAGAIN),
	BAD("4 CRLF then nothing", "\r\n\r\n\r\n\r\n", MOAT_EAGAIN),
};

static void t_bad_req(void **state)
{
	const struct bad_req *r = *state;
	struct h1_msg m;
	int rc;

	rc = h1_parse_request(r->in, r->n, MAXHEAD, &m);
	if (rc != r->rc)
		print_error("%s: why=%s\n", r->name, m.why ? m.why : "(null)");
	assert_int_equal(rc, r->rc);
	assert_non_null(m.why);
}

/* ---- requests that must be accepted --------------------------------- */

struct good_req {
	const char *name;
	const char *in;
	size_t n;
	enum h1_method m;
	const char *target, *path, *authority, *host;
	int minor;
	enum h1_framing framing;
	uint64_t cl;
	unsigned flags;
	unsigned nheaders;
	size_t head_len; /* 0: all of the input */
};

static const struct good_req good_reqs[] = {
	{ "simple GET", S("GET /index.html?q=1 HTTP/1.1\r\nHost: example.org\r\n\r\n"),
	  H1_M_GET, "/index.html?q=1", "/index.html?q=1", "", "example.org", 1,
	  H1_BODY_NONE, 0, 0, 1, 0 },
	{ "4 leading CRLF", S("\r\n\r\n\r\n\r\nGET / HTTP/1.1\r\nHost: a\r\n\r\n"),
	  H1_M_GET, "/", "/", "", "a", 1, H1_BODY_NONE, 0, 0, 1, 0 },
	{ "HTTP/1.0 no Host closes", S("GET / HTTP/1.0\r\n\r\n"),
	  H1_M_GET, "/", "/", "", "", 0, H1_BODY_NONE, 0, H1_F_CLOSE, 0, 0 },
	{ "HTTP/1.0 keep-alive", S("GET / HTTP/1.0\r\nConnection: Keep-Alive\r\nHost: a\r\n\r\n"),
	  H1_M_GET, "/", "/", "", "a", 0, H1_BODY_NONE, 0, 0, 2, 0 },
	{ "Connection close", S("GET / HTTP/1.1\r\nHost: a\r\nConnection: foo, close\r\n\r\n"),
	  H1_M_GET, "/", "/", "", "a", 1, H1_BODY_NONE, 0, H1_F_CLOSE, 2, 0 },
	{ "two Connection headers", S("GET / HTTP/1.1\r\nHost: a\r\nConnection: x\r\n"
				      "Connection: ,close,\r\n\r\n"),
	  H1_M_GET, "/", "/", "", "a", 1, H1_BODY_NONE, 0, H1_F_CLOSE, 3, 0 },
	{ "websocket upgrade", S("GET /ws HTTP/1.1\r\nHost: a\r\nConnection: keep-alive, Upgrade\r\n"
				 "Upgrade: websocket\r\n\r\n"),
	  H1_M_GET, "/ws", "/ws", "", "a", 1, H1_BODY_NONE, 0, H1_F_UPGRADE, 3, 0 },
	{ "Upgrade without Connection", S("GET / HTTP/1.1\r\nHost: a\r\nUpgrade: websocket\r\n\r\n"),
	  H1_M_GET, "/", "/", "", "a", 1, H1_BODY_NONE, 0, 0, 2, 0 },
	{ "Connection upgrade without Upgrade", S("GET / HTTP/1.1\r\nHost: a\r\nConnection: upgrade\r\n\r\n"),
	  H1_M_GET, "/", "/", "", "a", 1, H1_BODY_NONE, 0, 0, 2, 0 },
	{ "CL 5", S("POST /f HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\n\r\nhello"),
	  H1_M_POST, "/f", "/f", "", "a", 1, H1_BODY_LENGTH, 5, 0, 2,
	  sizeof("POST /f HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\n\r\n") - 1 },
	{ "CL leading zeros", S("PUT / HTTP/1.1\r\nHost: a\r\nContent-Length: 0007\r\n\r\n"),
	  H1_M_PUT, "/", "/", "", "a", 1, H1_BODY_LENGTH, 7, 0, 2, 0 },
	{ "CL 0", S("PUT / HTTP/1.1\r\nHost: a\r\ncontent-length: 0\r\n\r\n"),
	  H1_M_PUT, "/", "/", "", "a", 1, H1_BODY_LENGTH, 0, 0, 2, 0 },
	{ "CL 18 digits", S("PUT / HTTP/1.1\r\nHost: a\r\nContent-Length: 999999999999999999\r\n\r\n"),
	  H1_M_PUT, "/", "/", "", "a", 1, H1_BODY_LENGTH, 999999999999999999ull, 0, 2, 0 },
	{ "CL with spaces", S("PUT / HTTP/1.1\r\nHost: a\r\nContent-Length:   12  \r\n\r\n"),
	  H1_M_PUT, "/", "/", "", "a", 1, H1_BODY_LENGTH, 12, 0, 2, 0 },
	{ "TE chunked", S("POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n"),
	  H1_M_POST, "/", "/", "", "a", 1, H1_BODY_CHUNKED, 0, 0, 2, 0 },
	{ "TE CHUNKED", S("POST / HTTP/1.1\r\nHost: a\r\ntransfer-encoding: CHUNKED\r\n\r\n"),
	  H1_M_POST, "/", "/", "", "a", 1, H1_BODY_CHUNKED, 0, 0, 2, 0 },
	{ "TE extra SP", S("POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding:   chunked  \r\n\r\n"),
	  H1_M_POST, "/", "/", "", "a", 1, H1_BODY_CHUNKED, 0, 0, 2, 0 },
	{ "absolute-form", S("GET http://A.Example.:8080/x?y HTTP/1.1\r\nHost: a.example:8080\r\n\r\n"),
	  H1_M_GET, "http://A.Example.:8080/x?y", "/x?y", "A.Example.:8080", "a.example:8080", 1,
	  H1_BODY_NONE, 0, H1_F_ABSOLUTE_FORM, 1, 0 },
	{ "absolute-form HTTPS no path", S("GET HTTPS://a HTTP/1.1\r\nHost: A\r\n\r\n"),
	  H1_M_GET, "HTTPS://a", "/", "a", "A", 1, H1_BODY_NONE, 0, H1_F_ABSOLUTE_FORM, 1, 0 },
	{ "absolute-form 1.0 no Host", S("GET http://a/b HTTP/1.0\r\n\r\n"),
	  H1_M_GET, "http://a/b", "/b", "a", "", 0, H1_BODY_NONE, 0,
	  H1_F_ABSOLUTE_FORM | H1_F_CLOSE, 0, 0 },
	{ "absolute IPv6", S("GET http://[::1]:8080/ HTTP/1.1\r\nHost: [::1]:8080\r\n\r\n"),
	  H1_M_GET, "http://[::1]:8080/", "/", "[::1]:8080", "[::1]:8080", 1, H1_BODY_NONE, 0,
	  H1_F_ABSOLUTE_FORM, 1, 0 },
	{ "OPTIONS *", S("OPTIONS * HTTP/1.1\r\nHost: a\r\n\r\n"),
	  H1_M_OPTIONS, "*", "*", "", "a", 1, H1_BODY_NONE, 0, H1_F_ASTERISK_FORM, 1, 0 },
	{ "Expect 100-continue", S("PUT / HTTP/1.1\r\nHost: a\r\nExpect: 100-Continue\r\n"
				   "Content-Length: 3\r\n\r\n"),
	  H1_M_PUT, "/", "/", "", "a", 1, H1_BODY_LENGTH, 3, H1_F_EXPECT_CONTINUE, 3, 0 },
	{ "Expect other", S("PUT / HTTP/1.1\r\nHost: a\r\nExpect: 200-ok\r\n\r\n"),
	  H1_M_PUT, "/", "/", "", "a", 1, H1_BODY_NONE, 0, H1_F_EXPECT_OTHER, 2, 0 },
	{ "Expect 100-continue on 1.0 ignored", S("PUT / HTTP/1.0\r\nExpect: 100-continue\r\n\r\n"),
	  H1_M_PUT, "/", "/", "", "", 0, H1_BODY_NONE, 0, H1_F_CLOSE, 1, 0 },
	{ "obs-text value", S("GET / HTTP/1.1\r\nHost: a\r\nX-Name: caf\xc3\xa9\r\n\r\n"),
	  H1_M_GET, "/", "/", "", "a", 1, H1_BODY_NONE, 0, 0, 2, 0 },
	{ "empty value and HTAB inside", S("GET / HTTP/1.1\r\nX:\r\nY: a\tb\r\nHost: a\r\n\r\n"),
	  H1_M_GET, "/", "/", "", "a", 1, H1_BODY_NONE, 0, 0, 3, 0 },
	{ "method 32 chars", S("ABCDEFGHIJKLMNOPQRSTUVWXYZABCDEF / HTTP/1.1\r\nHost: a\r\n\r\n"),
	  H1_M_OTHER, "/", "/", "", "a", 1, H1_BODY_NONE, 0, 0, 1, 0 },
	{ "lowercase get is not GET", S("get / HTTP/1.1\r\nHost: a\r\n\r\n"),
	  H1_M_OTHER, "/", "/", "", "a", 1, H1_BODY_NONE, 0, 0, 1, 0 },
	{ "HEAD", S("HEAD / HTTP/1.1\r\nHost: a\r\n\r\n"),
	  H1_M_HEAD, "/", "/", "", "a", 1, H1_BODY_NONE, 0, 0, 1, 0 },
	{ "DELETE trailing-dot Host", S("DELETE /x HTTP/1.1\r\nHost: a.example.\r\n\r\n"),
	  H1_M_DELETE, "/x", "/x", "", "a.example.", 1, H1_BODY_NONE, 0, 0, 1, 0 },
	{ "Host IPv4 with port", S("PATCH / HTTP/1.1\r\nHost: 127.0.0.1:8080\r\n\r\n"),
	  H1_M_PATCH, "/", "/", "", "127.0.0.1:8080", 1, H1_BODY_NONE, 0, 0, 1, 0 },
	{ "TRACE raw odd target", S("TRACE /a/../%2f;x HTTP/1.1\r\nHost: a\r\n\r\n"),
	  H1_M_TRACE, "/a/../%2f;x", "/a/../%2f;x", "", "a", 1, H1_BODY_NONE, 0, 0, 1, 0 },
	{ "pipelined: first of two", S("GET /1 HTTP/1.1\r\nHost: a\r\n\r\nGET /2 HTTP/1.1\r\nHost: a\r\n\r\n"),
	  H1_M_GET, "/1", "/1", "", "a", 1, H1_BODY_NONE, 0, 0, 1,
	  sizeof("GET /1 HTTP/1.1\r\nHost: a\r\n\r\n") - 1 },
	{ "head followed by garbage", S("GET / HTTP/1.1\r\nHost: a\r\n\r\n\n\0\r"),
	  H1_M_GET, "/", "/", "", "a", 1, H1_BODY_NONE, 0, 0, 1,
	  sizeof("GET / HTTP/1.1\r\nHost: a\r\n\r\n") - 1 },
};

static void t_good_req(void **state)
{
	const struct good_req *r = *state;
	struct h1_msg m;
	int rc;

	rc = h1_parse_request(r->in, r->n, MAXHEAD, &m);
	if (rc != 0)
		print_error("%s: why=%s\n", r->name, m.why ? m.why : "(null)");
	assert_int_equal(rc, 0);
	assert_int_equal(m.m, r->m);
	assert_slice(m.target, r->target);
	assert_slice(m.path, r->path);
	assert_slice(m.authority, r->authority);
	assert_slice(m.host, r->host);
	assert_int_equal(m.minor, r->minor);
	assert_int_equal(m.framing, r->framing);
	if (r->framing == H1_BODY_LENGTH)
		assert_int_equal(m.content_length, r->cl);
	assert_int_equal(m.flags, r->flags);
	assert_int_equal(m.nheaders, r->nheaders);
	assert_int_equal(m.head_len, r->head_len ? r->head_len : r->n);
	/* The same head with exactly max_head = head_len still fits. */
	assert_int_equal(h1_parse_request(r->in, r->n, m.head_len, &m), 0);
	/* Any strict prefix is incomplete, never an error or a success. */
	for (size_t k = 0; k < m.head_len; k++) {
		struct h1_msg pm;

		assert_int_equal(h1_parse_request(r->in, k, MAXHEAD, &pm), MOAT_EAGAIN);
	}
}

static void t_fields(void **state)
{
	static const char in[] = "GET / HTTP/1.1\r\nHost:  a  \r\nX-Y:\tv 1 \t\r\nEmpty:\r\n\r\n";
	struct h1_msg m;

	(void)state;
	assert_int_equal(h1_parse_request(in, sizeof(in) - 1, MAXHEAD, &m), 0);
	assert_int_equal(m.nheaders, 3);
	assert_slice(m.headers[0].name, "Host");
	assert_slice(m.headers[0].value, "a");
	assert_slice(m.headers[1].name, "X-Y");
	assert_slice(m.headers[1].value, "v 1");
	assert_slice(m.headers[2].name, "Empty");
	assert_slice(m.headers[2].value, "");
	assert_slice(m.method, "GET");
}

static void t_pipeline(void **state)
{
	static const char in[] =
		"POST /a HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\n\r\nhello"
		"GET /b HTTP/1.1\r\nHost: a\r\n\r\n"
		"GET /c HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n";
	struct h1_msg m;
	size_t off = 0;

	(void)state;
	assert_int_equal(h1_parse_request(in, sizeof(in) - 1, MAXHEAD, &m), 0);
	assert_int_equal(m.head_len, strlen("POST /a HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\n\r\n"));
	assert_int_equal(m.framing, H1_BODY_LENGTH);
	assert_int_equal(m.content_length, 5);
	off = m.head_len + m.content_length;
	assert_int_equal(h1_parse_request(in + off, sizeof(in) - 1 - off, MAXHEAD, &m), 0);
	assert_slice(m.path, "/b");
	assert_int_equal(m.head_len, strlen("GET /b HTTP/1.1\r\nHost: a\r\n\r\n"));
	assert_int_equal(m.flags, 0);
	off += m.head_len;
	assert_int_equal(h1_parse_request(in + off, sizeof(in) - 1 - off, MAXHEAD, &m), 0);
	assert_slice(m.path, "/c");
	assert_int_equal(m.flags, H1_F_CLOSE);
	assert_int_equal(off + m.head_len, sizeof(in) - 1);
}

static void t_limits(void **state)
{
	static const char head[] = "GET / HTTP/1.1\r\nHost: a\r\n\r\n";
	char buf[8192];
	struct h1_msg m;
	size_t n, i;

	(void)state;
	/* head_len == max_head fits; one less does not. */
	assert_int_equal(h1_parse_request(head, sizeof(head) - 1, sizeof(head) - 1, &m), 0);
	assert_int_equal(h1_parse_request(head, sizeof(head) - 1, sizeof(head) - 2, &m),
			 MOAT_ETOOBIG);
	assert_non_null(m.why);
	/* Incomplete at the limit: too big, not "need more". */
	assert_int_equal(h1_parse_request(head, 10, 10, &m), MOAT_ETOOBIG);
	assert_int_equal(h1_parse_request(head, 10, 11, &m), MOAT_EAGAIN);
	assert_int_equal(h1_parse_request(head, 0, 0, &m), MOAT_ETOOBIG);

	/* H1_MAX_HEADERS fields are fine, one more is 431. */
	n = (size_t)snprintf(buf, sizeof(buf), "GET / HTTP/1.1\r\n");
	for (i = 0; i < H1_MAX_HEADERS; i++)
		n += (size_t)snprintf(buf + n, sizeof(buf) - n, "%s\r\n", i == 0 ? "Host: a" : "X: y");
	memcpy(buf + n, "\r\n", 2);
	assert_int_equal(h1_parse_request(buf, n + 2, sizeof(buf), &m), 0);
	assert_int_equal(m.nheaders, H1_MAX_HEADERS);
	memcpy(buf + n, "X: y\r\n\r\n", 8);
	assert_int_equal(h1_parse_request(buf, n + 8, sizeof(buf), &m), MOAT_ETOOBIG);
	/* Even before the head is complete. */
	assert_int_equal(h1_parse_request(buf, n + 6, sizeof(buf), &m), MOAT_ETOOBIG);

	/* A long value that never ends: EAGAIN until max_head, then 431. */
	n = (size_t)snprintf(buf, sizeof(buf), "GET / HTTP/1.1\r\nX: ");
	memset(buf + n, 'v', sizeof(buf) - n);
	assert_int_equal(h1_parse_request(buf, 4000, 4096, &m), MOAT_EAGAIN);
	assert_int_equal(h1_parse_request(buf, 4096, 4096, &m), MOAT_ETOOBIG);
	assert_int_equal(h1_parse_request(buf, sizeof(buf), 4096, &m), MOAT_ETOOBIG);
}

static void t_hop_by_hop(void **state)
{
	static const char in[] = "GET / HTTP/1.1\r\nHost: a\r\nConnection: close, X-Secret\r\n"
				 "Connection: x-other , \r\nX-Keep: 1\r\n\r\n";
	static const char *const hop[] = {
		"Connection", "keep-alive", "Proxy-Connection", "TE", "Trailer",
		"Transfer-Encoding", "UPGRADE", "Proxy-Authenticate", "proxy-authorization",
		"x-secret", "X-SECRET", "X-Other", "close",
	};
	static const char *const e2e[] = {
		"Host", "X-Keep", "X-Secre", "X-Secrets", "Content-Length", "Trailers", "", "x",
	};
	struct h1_msg m;
	size_t i;

	(void)state;
	assert_int_equal(h1_parse_request(in, sizeof(in) - 1, MAXHEAD, &m), 0);
	for (i = 0; i < sizeof(hop) / sizeof(hop[0]); i++) {
		if (!h1_is_hop_by_hop(&m, (struct h1_slice){ hop[i], strlen(hop[i]) }))
			print_error("%s should be hop-by-hop\n", hop[i]);
		assert_true(h1_is_hop_by_hop(&m, (struct h1_slice){ hop[i], strlen(hop[i]) }));
	}
	for (i = 0; i < sizeof(e2e) / sizeof(e2e[0]); i++) {
		if (h1_is_hop_by_hop(&m, (struct h1_slice){ e2e[i], strlen(e2e[i]) }))
			print_error("%s should be end-to-end\n", e2e[i]);
		assert_false(h1_is_hop_by_hop(&m, (struct h1_slice){ e2e[i], strlen(e2e[i]) }));
	}
	assert_true(h1_slice_ieq((struct h1_slice){ "HoSt", 4 }, "host"));
	assert_false(h1_slice_ieq((struct h1_slice){ "Hos", 3 }, "host"));
	assert_false(h1_slice_ieq((struct h1_slice){ "Hosts", 5 }, "host"));
}

/* ---- responses ------------------------------------------------------- */

struct resp {
	const char *name;
	const char *in;
	size_t n;
	enum h1_method req;
	int rc;
	int status;
	enum h1_framing framing;
	unsigned flags;
	const char *reason;
};

#define RESP_OK(name, lit, req, st, fr, fl, rs) { name, S(lit), req, 0, st, fr, fl, rs }
#define RESP_BAD(name, lit, rc) { name, S(lit), H1_M_GET, rc, 0, 0, 0, NULL }

static const struct resp resps[] = {
	RESP_OK("200 CL", "HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\n", H1_M_GET, 200,
		H1_BODY_LENGTH, 0, "OK"),
	RESP_OK("no reason", "HTTP/1.1 204\r\n\r\n", H1_M_GET, 204, H1_BODY_NONE, 0, ""),
	RESP_OK("empty reason", "HTTP/1.1 200 \r\nContent-Length: 0\r\n\r\n", H1_M_GET, 200,
		H1_BODY_LENGTH, 0, ""),
	RESP_OK("reason with spaces", "HTTP/1.1 404 Not  Found\t!\r\nContent-Length: 0\r\n\r\n",
		H1_M_GET, 404, H1_BODY_LENGTH, 0, "Not  Found\t!"),
	RESP_OK("chunked", "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n", H1_M_GET, 200,
		H1_BODY_CHUNKED, 0, "OK"),
	RESP_OK("until close", "HTTP/1.1 200 OK\r\n\r\n", H1_M_GET, 200, H1_BODY_UNTIL_CLOSE,
		H1_F_CLOSE, "OK"),
	RESP_OK("HEAD with CL", "HTTP/1.1 200 OK\r\nContent-Length: 99\r\n\r\n", H1_M_HEAD, 200,
		H1_BODY_NONE, 0, "OK"),
	RESP_OK("HEAD with TE", "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n", H1_M_HEAD,
		200, H1_BODY_NONE, 0, "OK"),
	RESP_OK("HEAD with gzip TE", "HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip, chunked\r\n\r\n",
		H1_M_HEAD, 200, H1_BODY_NONE, 0, "OK"),
	RESP_OK("304", "HTTP/1.1 304 Not Modified\r\nContent-Length: 10\r\n\r\n", H1_M_GET, 304,
		H1_BODY_NONE, 0, "Not Modified"),
	RESP_OK("204", "HTTP/1.1 204 No Content\r\n\r\n", H1_M_POST, 204, H1_BODY_NONE, 0,
		"No Content"),
	RESP_OK("100", "HTTP/1.1 100 Continue\r\n\r\n", H1_M_PUT, 100, H1_BODY_NONE, 0, "Continue"),
	RESP_OK("101", "HTTP/1.1 101 Switching Protocols\r\nConnection: Upgrade\r\n"
		"Upgrade: websocket\r\n\r\n", H1_M_GET, 101, H1_BODY_NONE, H1_F_UPGRADE,
		"Switching Protocols"),
	RESP_OK("999", "HTTP/1.1 999 X\r\nContent-Length: 0\r\n\r\n", H1_M_GET, 999,
		H1_BODY_LENGTH, 0, "X"),
	RESP_OK("1.0 closes", "HTTP/1.0 200 OK\r\nContent-Length: 1\r\n\r\n", H1_M_GET, 200,
		H1_BODY_LENGTH, H1_F_CLOSE, "OK"),
	RESP_OK("1.0 keep-alive", "HTTP/1.0 200 OK\r\nConnection: keep-alive\r\n"
		"Content-Length: 1\r\n\r\n", H1_M_GET, 200, H1_BODY_LENGTH, 0, "OK"),
	RESP_OK("Connection close", "HTTP/1.1 200 OK\r\nConnection: close\r\n"
		"Content-Length: 1\r\n\r\n", H1_M_GET, 200, H1_BODY_LENGTH, H1_F_CLOSE, "OK"),
	RESP_OK("no Host needed, two Hosts ok", "HTTP/1.1 200 OK\r\nHost: a\r\nHost: b\r\n"
		"Content-Length: 0\r\n\r\n", H1_M_GET, 200, H1_BODY_LENGTH, 0, "OK"),
	RESP_OK("obs-text reason", "HTTP/1.1 200 \xc3\x96K\r\nContent-Length: 0\r\n\r\n", H1_M_GET,
		200, H1_BODY_LENGTH, 0, "\xc3\x96K"),
	RESP_BAD("leading CRLF", "\r\nHTTP/1.1 200 OK\r\n\r\n", MOAT_EPROTO),
	RESP_BAD("two-digit status", "HTTP/1.1 99 X\r\n\r\n", MOAT_EPROTO),
	RESP_BAD("status 099", "HTTP/1.1 099 X\r\n\r\n", MOAT_EPROTO),
	RESP_BAD("four-digit status", "HTTP/1.1 2000 X\r\n\r\n", MOAT_EPROTO),
	RESP_BAD("status letters", "HTTP/1.1 abc X\r\n\r\n", MOAT_EPROTO),
	RESP_BAD("no SP after status", "HTTP/1.1 200OK\r\n\r\n", MOAT_EPROTO),
	RESP_BAD("double SP", "HTTP/1.1  200 OK\r\n\r\n", MOAT_EPROTO),
	RESP_BAD("HTTP/2.0", "HTTP/2.0 200 OK\r\n\r\n", MOAT_EVERSION),
	RESP_BAD("HTTP/1.2 short", "HTTP/1.2 200\r\n\r\n", MOAT_EVERSION),
	RESP_BAD("HTTP/2 short", "HTTP/2 200\r\n\r\n", MOAT_EPROTO),
	RESP_BAD("lowercase", "http/1.1 200 OK\r\n\r\n", MOAT_EPROTO),
	RESP_BAD("only version", "HTTP/1.1\r\n\r\n", MOAT_EPROTO),
	RESP_BAD("bare LF", "HTTP/1.1 200 OK\n\n", MOAT_EPROTO),
	RESP_BAD("control in reason", "HTTP/1.1 200 O\x01K\r\n\r\n", MOAT_EPROTO),
	RESP_BAD("TE + CL", "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n"
		 "Content-Length: 5\r\n\r\n", MOAT_EPROTO),
	RESP_BAD("xchunked", "HTTP/1.1 200 OK\r\nTransfer-Encoding: xchunked\r\n\r\n", MOAT_EUNSUP),
	RESP_BAD("gzip", "HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip\r\n\r\n", MOAT_EUNSUP),
	RESP_BAD("chunked, gzip", "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked, gzip\r\n\r\n",
		 MOAT_EUNSUP),
	RESP_BAD("TE HTAB", "HTTP/1.1 200 OK\r\nTransfer-Encoding:\tchunked\r\n\r\n", MOAT_EPROTO),
	RESP_BAD("TE on 1.0", "HTTP/1.0 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n", MOAT_EPROTO),
	RESP_BAD("dup CL", "HTTP/1.1 200 OK\r\nContent-Length: 1\r\nContent-Length: 1\r\n\r\n",
		 MOAT_EPROTO),
	RESP_BAD("CL list", "HTTP/1.1 200 OK\r\nContent-Length: 1,1\r\n\r\n", MOAT_EPROTO),
	RESP_BAD("obs-fold", "HTTP/1.1 200 OK\r\nX: a\r\n b\r\n\r\n", MOAT_EPROTO),
	RESP_BAD("SP before colon", "HTTP/1.1 200 OK\r\nContent-Length : 1\r\n\r\n", MOAT_EPROTO),
	RESP_BAD("incomplete", "HTTP/1.1 200 OK\r\nContent-Length: 1\r\n", MOAT_EAGAIN),
};

static void t_resp(void **state)
{
	const struct resp *r = *state;
	struct h1_msg m;
	int rc;

	rc = h1_parse_response(r->in, r->n, MAXHEAD, r->req, &m);
	if (rc != r->rc)
		print_error("%s: why=%s\n", r->name, m.why ? m.why : "(null)");
	assert_int_equal(rc, r->rc);
	if (rc != 0) {
		assert_non_null(m.why);
		return;
	}
	assert_int_equal(m.status, r->status);
	assert_int_equal(m.framing, r->framing);
	assert_int_equal(m.flags, r->flags);
	assert_slice(m.reason, r->reason);
	assert_int_equal(m.head_len, r->n);
}

/* ---- chunked decoder ------------------------------------------------- */

struct chunk {
	const char *name;
	const char *in;
	size_t n;
	int rc;
	const char *out;  /* decoded body (valid vectors) */
	size_t outn;
	size_t end;       /* bytes of the chunked body; the rest is the next message */
};

#define CH_OK(name, lit, body) { name, S(lit), 0, S(body), sizeof(lit) - 1 }
#define CH_OK_TAIL(name, lit, body, tail) \
	{ name, S(lit tail), 0, S(body), sizeof(lit) - 1 }
#define CH_BAD(name, lit) { name, S(lit), MOAT_EPROTO, "", 0, 0 }

static const struct chunk chunks[] = {
	CH_OK("one chunk", "5\r\nhello\r\n0\r\n\r\n", "hello"),
	CH_OK("two chunks", "5\r\nhello\r\n6\r\n world\r\n0\r\n\r\n", "hello world"),
	CH_OK("empty body", "0\r\n\r\n", ""),
	CH_OK("uppercase hex", "A\r\n0123456789\r\n0\r\n\r\n", "0123456789"),
	CH_OK("lowercase hex", "b\r\n0123456789a\r\n0\r\n\r\n", "0123456789a"),
	CH_OK("leading zeros", "0005\r\nhello\r\n000\r\n\r\n", "hello"),
	CH_OK("16 digits", "0000000000000005\r\nhello\r\n0\r\n\r\n", "hello"),
	CH_OK("CRLF in data", "4\r\n\r\n\r\n\r\n0\r\n\r\n", "\r\n\r\n"),
	CH_OK("binary data", "3\r\n\0\xff\n\r\n0\r\n\r\n", "\0\xff\n"),
	CH_OK("extension", "5;a=b\r\nhello\r\n0;x\r\n\r\n", "hello"),
	CH_OK("extension BWS", "5 ; a = b ;c\t;\td\r\nhello\r\n0\r\n\r\n", "hello"),
	CH_OK("extension quoted", "5;a=\"q\\\"x;y\\\\\"\r\nhello\r\n0\r\n\r\n", "hello"),
	CH_OK("extension all BWS spots", "5  ; a ;b;c = d  ;e\t=\t\"\"\r\nhello\r\n0\r\n\r\n", "hello"),
	CH_OK("extensions back to back", "5;name=value;x=\"q\";yy\r\nhello\r\n0;last=1\r\n\r\n", "hello"),
	CH_OK("extension quoted then more", "5;a=\"\" ;b\r\nhello\r\n0\r\n\r\n", "hello"),
	CH_OK("trailers", "5\r\nhello\r\n0\r\nX-T: v\r\nY:\r\nZ: a\tb \xff\r\n\r\n", "hello"),
	CH_OK_TAIL("next message follows", "3\r\nabc\r\n0\r\n\r\n", "abc", "GET / HTTP/1.1\r\n"),
	CH_OK_TAIL("next chunked follows", "1\r\na\r\n0\r\n\r\n", "a", "1\r\nb\r\n0\r\n\r\n"),
	CH_BAD("0x prefix", "0x5\r\nhello\r\n0\r\n\r\n"),
	CH_BAD("plus sign", "+5\r\nhello\r\n0\r\n\r\n"),
	CH_BAD("minus sign", "-5\r\nhello\r\n0\r\n\r\n"),
	CH_BAD("leading SP", " 5\r\nhello\r\n0\r\n\r\n"),
	CH_BAD("empty size", "\r\nhello\r\n0\r\n\r\n"),
	CH_BAD("17 hex digits", "00000000000000005\r\nhello\r\n0\r\n\r\n"),
	CH_BAD("huge size", "fffffffffffffffff\r\n"),
	CH_BAD("non-hex", "g\r\n"),
	CH_BAD("bare LF after size", "5\nhello\r\n0\r\n\r\n"),
	CH_BAD("bare CR after size", "5\rhello\r\n0\r\n\r\n"),
	CH_BAD("BWS without extension", "5 \r\nhello\r\n0\r\n\r\n"),
	CH_BAD("empty extension name", "5;\r\nhello\r\n0\r\n\r\n"),
	CH_BAD("empty extension value", "5;a=\r\nhello\r\n0\r\n\r\n"),
	CH_BAD("extension two words", "5;a b\r\nhello\r\n0\r\n\r\n"),
	CH_BAD("extension value two words", "5;a=b c\r\nhello\r\n0\r\n\r\n"),
	CH_BAD("extension trailing BWS", "5;a=b \r\nhello\r\n0\r\n\r\n"),
	CH_BAD("extension unterminated quote", "5;a=\"x\r\nhello\r\n0\r\n\r\n"),
	CH_BAD("extension NUL", "5;a\0\r\nhello\r\n0\r\n\r\n"),
	CH_BAD("extension bad char", "5;a=b@\r\nhello\r\n0\r\n\r\n"),
	CH_BAD("data too long", "5\r\nhelloX\r\n0\r\n\r\n"),
	CH_BAD("data without CRLF", "5\r\nhello0\r\n\r\n"),
	CH_BAD("data then LF", "5\r\nhello\n0\r\n\r\n"),
	CH_BAD("data then CR CR", "5\r\nhello\r\r\n0\r\n\r\n"),
	CH_BAD("last chunk bare LF", "0\n\r\n"),
	CH_BAD("final bare LF", "0\r\n\n"),
	CH_BAD("final bare CR", "0\r\n\rX"),
	CH_BAD("trailer obs-fold", "0\r\nX: a\r\n b\r\n\r\n"),
	CH_BAD("trailer SP before colon", "0\r\nX : a\r\n\r\n"),
	CH_BAD("trailer no colon", "0\r\nX\r\n\r\n"),
	CH_BAD("trailer empty name", "0\r\n: a\r\n\r\n"),
	CH_BAD("trailer NUL", "0\r\nX: a\0\r\n\r\n"),
	CH_BAD("trailer bare LF", "0\r\nX: a\n\r\n"),
	CH_BAD("trailer bare CR", "0\r\nX: a\rb\r\n\r\n"),
	CH_BAD("trailer DEL", "0\r\nX: a\x7f\r\n\r\n"),
};

struct feed_result {
	int rc;
	bool done;
	char out[4096];
	size_t outn;
	size_t end;
};

/*
 * Feed in[0..n) to a decoder in pieces ending at cuts[] (then the rest),
 * the way a connection would: keep unconsumed bytes, append what arrives.
 */
static void feed(const char *in, size_t n, const size_t *cuts, size_t ncuts,
		 struct feed_result *r)
{
	struct h1_chunked c;
	char work[4096];
	size_t wn = 0, base = 0, from = 0, k, consumed, out;
	const char *why;

	memset(r, 0, sizeof(*r));
	h1_chunked_init(&c);
	for (k = 0; k <= ncuts; k++) {
		size_t to = k < ncuts ? cuts[k] : n;

		assert_true(wn + (to - from) <= sizeof(work));
		memcpy(work + wn, in + from, to - from);
		wn += to - from;
		from = to;
		r->rc = h1_chunked_decode(&c, work, wn, &consumed, &out, &r->done, &why);
		assert_true(consumed <= wn);
		assert_true(out <= consumed);
		assert_true(r->outn + out <= sizeof(r->out));
		memcpy(r->out + r->outn, work, out);
		r->outn += out;
		if (r->rc < 0) {
			assert_non_null(why);
			return;
		}
		assert_null(why);
		memmove(work, work + consumed, wn - consumed);
		wn -= consumed;
		base += consumed;
		if (r->done) {
			r->end = base;
			return;
		}
	}
}

static void check_feed(const struct chunk *ch, const struct feed_result *r, const char *how)
{
	if (r->rc != ch->rc || (ch->rc == 0 && !r->done))
		print_error("%s fed %s: rc %d done %d\n", ch->name, how, r->rc, r->done);
	assert_int_equal(r->rc, ch->rc);
	if (ch->rc < 0)
		return;
	assert_true(r->done);
	assert_int_equal(r->outn, ch->outn);
	assert_memory_equal(r->out, ch->out, ch->outn);
	assert_int_equal(r->end, ch->end);
}

static void t_chunk(void **state)
{
	const struct chunk *ch = *state;
	struct feed_result r;
	size_t cuts[512] = { 0 }, k;

	assert_true(ch->n < sizeof(cuts) / sizeof(cuts[0]));
	feed(ch->in, ch->n, cuts, 0, &r);
	check_feed(ch, &r, "whole");
	for (k = 0; k <= ch->n; k++) {
		cuts[0] = k;
		feed(ch->in, ch->n, cuts, 1, &r);
		check_feed(ch, &r, "split");
	}
	for (k = 0; k < ch->n; k++)
		cuts[k] = k + 1;
	feed(ch->in, ch->n, cuts, ch->n, &r);
	check_feed(ch, &r, "byte by byte");
	/* Every split into three pieces, too. */
	for (k = 0; k <= ch->n; k++) {
		for (size_t j = k; j <= ch->n; j++) {
			cuts[0] = k;
			cuts[1] = j;
			feed(ch->in, ch->n, cuts, 2, &r);
			check_feed(ch, &r, "three pieces");
		}
	}
}

static void t_chunk_limits(void **state)
{
	static char buf[16384];
	struct h1_chunked c;
	size_t n, consumed, out;
	bool done;
	const char *why;

	(void)state;
	/* A size line of exactly H1_MAX_CHUNK_LINE bytes is fine; one more is not. */
	n = (size_t)snprintf(buf, sizeof(buf), "1;x=");
	memset(buf + n, 'a', H1_MAX_CHUNK_LINE - n);
	n = H1_MAX_CHUNK_LINE;
	memcpy(buf + n, "\r\nZ\r\n0\r\n\r\n", 10);
	h1_chunked_init(&c);
	assert_int_equal(h1_chunked_decode(&c, buf, n + 10, &consumed, &out, &done, &why), 0);
	assert_true(done);
	assert_int_equal(out, 1);
	assert_int_equal(buf[0], 'Z');
	n = (size_t)snprintf(buf, sizeof(buf), "1;x=");
	memset(buf + n, 'a', H1_MAX_CHUNK_LINE + 1 - n);
	h1_chunked_init(&c);
	assert_int_equal(h1_chunked_decode(&c, buf, H1_MAX_CHUNK_LINE + 1, &consumed, &out,
					   &done, &why), MOAT_EPROTO);
	assert_non_null(why);
	/* Once failed, always failed. */
	assert_int_equal(h1_chunked_decode(&c, buf, 1, &consumed, &out, &done, NULL),
			 MOAT_EPROTO);

	/* Trailers: H1_MAX_TRAILER_BYTES in all (including the final CRLF). */
	memcpy(buf, "0\r\nX: ", 6);
	memset(buf + 6, 'v', H1_MAX_TRAILER_BYTES - 7);
	memcpy(buf + 3 + H1_MAX_TRAILER_BYTES - 4, "\r\n\r\n", 4);
	h1_chunked_init(&c);
	assert_int_equal(h1_chunked_decode(&c, buf, 3 + H1_MAX_TRAILER_BYTES, &consumed, &out,
					   &done, &why), 0);
	assert_true(done);
	assert_int_equal(consumed, 3 + H1_MAX_TRAILER_BYTES);
	memset(buf + 6, 'v', H1_MAX_TRAILER_BYTES - 6);
	memcpy(buf + 3 + H1_MAX_TRAILER_BYTES - 3, "\r\n\r\n", 4);
	h1_chunked_init(&c);
	assert_int_equal(h1_chunked_decode(&c, buf, 4 + H1_MAX_TRAILER_BYTES, &consumed, &out,
					   &done, &why), MOAT_EPROTO);

	/* The largest size does not overflow; data is passed through as it comes. */
	memcpy(buf, "ffffffffffffffff\r\nabc", 21);
	h1_chunked_init(&c);
	assert_int_equal(h1_chunked_decode(&c, buf, 21, &consumed, &out, &done, &why), 0);
	assert_false(done);
	assert_int_equal(consumed, 21);
	assert_int_equal(out, 3);
	assert_memory_equal(buf, "abc", 3);
	assert_int_equal(c.remaining, UINT64_MAX - 3);

	/* After done, nothing more is consumed. */
	memcpy(buf, "0\r\n\r\n", 5);
	h1_chunked_init(&c);
	assert_int_equal(h1_chunked_decode(&c, buf, 5, &consumed, &out, &done, &why), 0);
	assert_true(done);
	assert_int_equal(h1_chunked_decode(&c, buf, 5, &consumed, &out, &done, &why), 0);
	assert_true(done);
	assert_int_equal(consumed, 0);
}

int main(void)
{
	size_t i;

	for (i = 0; i < sizeof(bad_reqs) / sizeof(bad_reqs[0]); i++)
		add(bad_reqs[i].name, t_bad_req, &bad_reqs[i]);
	for (i = 0; i < sizeof(good_reqs) / sizeof(good_reqs[0]); i++)
		add(good_reqs[i].name, t_good_req, &good_reqs[i]);
	for (i = 0; i < sizeof(resps) / sizeof(resps[0]); i++)
		add(resps[i].name, t_resp, &resps[i]);
	for (i = 0; i < sizeof(chunks) / sizeof(chunks[0]); i++)
		add(chunks[i].name, t_chunk, &chunks[i]);
	add("header fields", t_fields, NULL);
	add("pipelining", t_pipeline, NULL);
	add("head limits", t_limits, NULL);
	add("hop-by-hop", t_hop_by_hop, NULL);
	add("chunked limits", t_chunk_limits, NULL);
	return _cmocka_run_group_tests("h1", tests, (size_t)ntests, NULL, NULL);
}
