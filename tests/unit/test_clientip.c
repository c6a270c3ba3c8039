/*
 * test_clientip.c - PROXY protocol v1/v2 headers (whole, cut at every
 * length, malformed) and the X-Forwarded-For / Forwarded walk over requests
 * parsed by the real HTTP/1 parser.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "clientip.h"
#include "h1.h"
#include "netaddr.h"
#include "util.h"

#define N(a) (sizeof(a) / sizeof((a)[0]))
#define S(lit) (const uint8_t *)(lit), sizeof(lit) - 1

static const char *rc_name(int rc)
{
	return rc == 0 ? "0" : moat_strerror(rc);
}

/* proxyhdr_parse on an exact-size heap copy of in[0..n), so that ASan
 * reports any read past n. */
static int parse_exact(const uint8_t *in, size_t n, struct proxyhdr *h)
{
	uint8_t *copy = malloc(n ? n : 1);
	int rc;

	assert_non_null(copy);
	if (n > 0)
		memcpy(copy, in, n);
	rc = proxyhdr_parse(copy, n, h);
	free(copy);
	return rc;
}

/*
 * Every proper prefix of a good header needs more bytes; every prefix of a
 * bad one needs more or is refused, and once refused stays refused (a
 * wrong beginning is never "fixed" by what follows). Returns the number of
 * violations, printed.
 */
static size_t check_prefixes(const char *name, const uint8_t *in, size_t n, bool good)
{
	struct proxyhdr h;
	bool refused = false;
	size_t k, failed = 0;
	bool ok;
	int rc;

	for (k = 0; k < n; k++) {
		rc = parse_exact(in, k, &h);
		if (good)
			ok = rc == MOAT_EAGAIN;
		else
			ok = refused ? rc == MOAT_EPROTO : rc == MOAT_EAGAIN || rc == MOAT_EPROTO;
		if (!ok) {
			print_error("%s: first %zu of %zu bytes: rc %s\n", name, k, n, rc_name(rc));
			failed++;
		}
		refused = refused || rc == MOAT_EPROTO;
	}
	return failed;
}

/* ---- PROXY v1 -------------------------------------------------------- */

struct v1_good {
	const char *name;
	const char *in;
	size_t hdr;       /* bytes of the header (in may go on with data) */
	bool has_src;
	const char *src;
	uint16_t port;
};

#define V1_MAX6 "PROXY TCP6 ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff " \
		"ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff 65535 65535\r\n"
#define V1_MAXU "PROXY UNKNOWN ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff " \
		"ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff 65535 65535\r\n"

static const struct v1_good v1_good[] = {
	{ "tcp4", "PROXY TCP4 192.0.2.1 198.51.100.2 56324 443\r\n", 45, true, "192.0.2.1",
	  56324 },
	{ "tcp4 then data", "PROXY TCP4 192.0.2.1 198.51.100.2 56324 443\r\nGET / HTTP/1.1\r\n",
	  45, true, "192.0.2.1", 56324 },
	{ "tcp4 max", "PROXY TCP4 255.255.255.255 255.255.255.255 65535 65535\r\n", 56, true,
	  "255.255.255.255", 65535 },
	{ "tcp4 zeros", "PROXY TCP4 0.0.0.0 0.0.0.0 0 0\r\n", 32, true, "0.0.0.0", 0 },
	{ "tcp6", "PROXY TCP6 2001:db8::1 2001:db8::2 1 65535\r\n", 44, true, "2001:db8::1", 1 },
	{ "tcp6 max", V1_MAX6, 104, true, "ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff", 65535 },
	{ "tcp6 v4-mapped", "PROXY TCP6 ::ffff:192.0.2.1 ::ffff:10.0.0.1 80 443\r\n", 52, true,
	  "192.0.2.1", 80 },
	{ "unknown short", "PROXY UNKNOWN\r\n", 15, false, NULL, 0 },
	{ "unknown with addresses", "PROXY UNKNOWN 192.0.2.1 198.51.100.2 1 2\r\nX", 42, false,
	  NULL, 0 },
	{ "unknown 107 bytes", V1_MAXU, 107, false, NULL, 0 },
};

static void test_v1_good(void **state)
{
	const struct v1_good *g;
	struct proxyhdr h;
	char buf[NETADDR_TEXT];
	size_t i, failed = 0;
	int rc;

	for (i = 0; i < N(v1_good); i++) {
		g = &v1_good[i];
		memset(&h, 0xa5, sizeof(h));
		rc = parse_exact((const uint8_t *)g->in, strlen(g->in), &h);
		if (rc != 0 || h.len != g->hdr || h.has_src != g->has_src) {
			print_error("%s: rc %s len %zu has_src %d, want 0 len %zu has_src %d\n",
				    g->name, rc_name(rc), h.len, h.has_src, g->hdr, g->has_src);
			failed++;
			continue;
		}
		if (g->has_src && (strcmp(ipaddr_format(&h.src, buf, sizeof(buf)), g->src) != 0 ||
				   h.src_port != g->port)) {
			print_error("%s: src %s port %u, want %s port %u\n", g->name, buf,
				    h.src_port, g->src, g->port);
			failed++;
		}
		failed += check_prefixes(g->name, (const uint8_t *)g->in, g->hdr, true);
	}
	assert_int_equal(failed, 0);
}

struct v1_bad {
	const char *name;
	const char *in;
	size_t n;
	size_t refused_at; /* the shortest prefix already refused; 0: only whole */
};

#define BAD(name, lit, at) { name, lit, sizeof(lit) - 1, at }
#define A20 "aaaaaaaaaaaaaaaaaaaa"

static const struct v1_bad v1_bad[] = {
	BAD("http request", "GET / HTTP/1.1\r\nHost: a\r\n\r\n", 1),
	BAD("P but not PROXY", "PUT / HTTP/1.1\r\n", 2),
	BAD("lower case", "proxy TCP4 192.0.2.1 198.51.100.2 1 2\r\n", 1),
	BAD("lower case family", "PROXY tcp4 192.0.2.1 198.51.100.2 1 2\r\n", 7),
	BAD("two spaces", "PROXY  TCP4 192.0.2.1 198.51.100.2 1 2\r\n", 7),
	BAD("two spaces later", "PROXY TCP4 192.0.2.1  198.51.100.2 1 2\r\n", 22),
	BAD("tab", "PROXY\tTCP4 192.0.2.1 198.51.100.2 1 2\r\n", 6),
	BAD("trailing space", "PROXY TCP4 192.0.2.1 198.51.100.2 1 2 \r\n", 38),
	BAD("extra field", "PROXY TCP4 192.0.2.1 198.51.100.2 1 2 3\r\n", 38),
	BAD("missing field", "PROXY TCP4 192.0.2.1 198.51.100.2 1\r\n", 0),
	BAD("no fields", "PROXY\r\n", 0),
	BAD("family only", "PROXY TCP4\r\n", 0),
	BAD("TCP5", "PROXY TCP5 192.0.2.1 198.51.100.2 1 2\r\n", 10),
	BAD("UDP4", "PROXY UDP4 192.0.2.1 198.51.100.2 1 2\r\n", 8),
	BAD("UNKNOWNX", "PROXY UNKNOWNX\r\n", 14),
	BAD("unknown with control", "PROXY UNKNOWN \x01\r\n", 15),
	BAD("unknown with CR inside", "PROXY UNKNOWN a\rb\r\n", 17),
	BAD("bare LF", "PROXY TCP4 192.0.2.1 198.51.100.2 1 2\n", 38),
	BAD("CR CR LF", "PROXY TCP4 192.0.2.1 198.51.100.2 1 2\r\r\n", 39),
	BAD("CR then data", "PROXY TCP4 192.0.2.1 198.51.100.2 1 2\rX", 39),
	BAD("port leading zero", "PROXY TCP4 192.0.2.1 198.51.100.2 01 2\r\n", 36),
	BAD("port 00", "PROXY TCP4 192.0.2.1 198.51.100.2 00 2\r\n", 36),
	BAD("port too big", "PROXY TCP4 192.0.2.1 198.51.100.2 65536 2\r\n", 39),
	BAD("port six digits", "PROXY TCP4 192.0.2.1 198.51.100.2 1 100000\r\n", 42),
	BAD("port sign", "PROXY TCP4 192.0.2.1 198.51.100.2 +1 2\r\n", 35),
	BAD("port hex", "PROXY TCP4 192.0.2.1 198.51.100.2 0x1 2\r\n", 36),
	BAD("dst port missing", "PROXY TCP4 192.0.2.1 198.51.100.2 1 \r\n", 0),
	BAD("v4 leading zero", "PROXY TCP4 192.0.2.01 198.51.100.2 1 2\r\n", 21),
	BAD("v4 octet 256", "PROXY TCP4 192.0.2.256 198.51.100.2 1 2\r\n", 22),
	BAD("v4 three octets", "PROXY TCP4 192.0.2 198.51.100.2 1 2\r\n", 19),
	BAD("v4 five octets", "PROXY TCP4 192.0.2.1.5 198.51.100.2 1 2\r\n", 21),
	BAD("v4 empty octet", "PROXY TCP4 192..2.1 198.51.100.2 1 2\r\n", 16),
	BAD("v6 in TCP4", "PROXY TCP4 2001:db8::1 2001:db8::2 1 2\r\n", 15),
	BAD("v4 in TCP6", "PROXY TCP6 192.0.2.1 198.51.100.2 1 2\r\n", 21),
	BAD("bad dst v4", "PROXY TCP4 192.0.2.1 198.51.100.256 1 2\r\n", 35),
	BAD("v4 dst in TCP6", "PROXY TCP6 2001:db8::1 192.0.2.1 1 2\r\n", 33),
	BAD("v6 zone", "PROXY TCP6 fe80::1%eth0 2001:db8::2 1 2\r\n", 19),
	BAD("v6 brackets", "PROXY TCP6 [2001:db8::1] 2001:db8::2 1 2\r\n", 12),
	BAD("v6 two ::", "PROXY TCP6 2001::db8::1 2001:db8::2 1 2\r\n", 22),
	BAD("v6 :::", "PROXY TCP6 2001:::1 2001:db8::2 1 2\r\n", 18),
	BAD("v6 five hex digits", "PROXY TCP6 2001:0db80::1 2001:db8::2 1 2\r\n", 21),
	BAD("v6 nine groups", "PROXY TCP6 1:2:3:4:5:6:7:8:9 2001:db8::2 1 2\r\n", 0),
	/* 14 + 100 bytes before the CRLF: no LF among the first 107 */
	BAD("no CRLF in 107 bytes", "PROXY UNKNOWN " A20 A20 A20 A20 A20 "\r\n", 107),
	BAD("NUL", "PROXY TCP4 192.0.2.1\0 198.51.100.2 1 2\r\n", 21),
	BAD("8-bit", "PROXY UNKNOWN \xc3\xa9\r\n", 15),
};

static void test_v1_bad(void **state)
{
	const struct v1_bad *b;
	struct proxyhdr h;
	size_t i, failed = 0;
	int rc;

	for (i = 0; i < N(v1_bad); i++) {
		b = &v1_bad[i];
		rc = parse_exact((const uint8_t *)b->in, b->n, &h);
		if (rc != MOAT_EPROTO) {
			print_error("%s: rc %s, want MOAT_EPROTO\n", b->name, rc_name(rc));
			failed++;
		}
		failed += check_prefixes(b->name, (const uint8_t *)b->in, b->n, false);
		if (b->refused_at == 0)
			continue;
		/* refused as soon as the wrong byte is there, not one byte later */
		rc = parse_exact((const uint8_t *)b->in, b->refused_at - 1, &h);
		if (rc != MOAT_EAGAIN) {
			print_error("%s: %zu bytes: rc %s, want MOAT_EAGAIN\n", b->name,
				    b->refused_at - 1, rc_name(rc));
			failed++;
		}
		rc = parse_exact((const uint8_t *)b->in, b->refused_at, &h);
		if (rc != MOAT_EPROTO) {
			print_error("%s: %zu bytes: rc %s, want MOAT_EPROTO\n", b->name,
				    b->refused_at, rc_name(rc));
			failed++;
		}
	}
	assert_int_equal(failed, 0);
}

static void test_v1_partial(void **state)
{
	static const char *const partial[] = {
		"P", "PROX", "PROXY", "PROXY ", "PROXY T", "PROXY U", "PROXY TCP4 192.0.2",
		"PROXY TCP4 192.0.2.1 ", "PROXY TCP4 192.0.2.1 198.51.100.2 1 2",
		"PROXY TCP4 192.0.2.1 198.51.100.2 1 2\r", "PROXY TCP6 2001:db8::",
		"PROXY TCP6 ::ffff:192.0.2.1", "PROXY UNKNOWN", "PROXY UNKNOWN anything at all",
		"PROXY TCP4 192.0.2.1 198.51.100.2 0",
	};
	struct proxyhdr h;
	size_t i, failed = 0;
	int rc;

	assert_int_equal(proxyhdr_parse((const uint8_t *)"", 0, &h), MOAT_EAGAIN);
	for (i = 0; i < N(partial); i++) {
		rc = parse_exact((const uint8_t *)partial[i], strlen(partial[i]), &h);
		if (rc != MOAT_EAGAIN) {
			print_error("\"%s\": rc %s, want MOAT_EAGAIN\n", partial[i], rc_name(rc));
			failed++;
		}
	}
	assert_int_equal(failed, 0);
}

/* ---- PROXY v2 -------------------------------------------------------- */

#define SIG "\r\n\r\n\0\r\nQUIT\n"

struct v2_case {
	const char *name;
	uint8_t ver_cmd, fam;
	size_t len;        /* the length field */
	size_t have;       /* bytes after the 16-byte head actually there */
	int rc;
	bool has_src;
	const char *src;
	uint16_t port;
};

/* 16-byte head, then an address block for fam (the source is 192.0.2.1
 * or 2001:db8::1 port 56324, the destination port 443), then TLV-ish
 * filler up to have bytes. Returns the bytes written. */
static size_t build_v2(uint8_t *out, const struct v2_case *c)
{
	static const uint8_t v4[] = { 192, 0, 2, 1, 198, 51, 100, 2, 0xdc, 0x04, 0x01, 0xbb };
	static const uint8_t v6src[16] = { 0x20, 0x01, 0x0d, 0xb8, [15] = 1 };
	size_t i;

	memcpy(out, SIG, 12);
	out[12] = c->ver_cmd;
	out[13] = c->fam;
	out[14] = (uint8_t)(c->len >> 8);
	out[15] = (uint8_t)c->len;
	for (i = 0; i < c->have; i++)
		out[16 + i] = (uint8_t)(0x40 + i);
	if ((c->fam >> 4) == 1)
		memcpy(out + 16, v4, c->have < sizeof(v4) ? c->have : sizeof(v4));
	if ((c->fam >> 4) == 2 && c->have >= 36) {
		memcpy(out + 16, v6src, 16);
		memset(out + 32, 0, 16);
		out[47] = 2;
		out[48] = 0xdc;
		out[49] = 0x04;
		out[50] = 0x01;
		out[51] = 0xbb;
	}
	return 16 + c->have;
}

static const struct v2_case v2_cases[] = {
	{ "tcp4", 0x21, 0x11, 12, 12, 0, true, "192.0.2.1", 56324 },
	{ "tcp6", 0x21, 0x21, 36, 36, 0, true, "2001:db8::1", 56324 },
	/* an ALPN TLV "h2" and a NOOP padding TLV after the addresses */
	{ "tcp4 with TLVs", 0x21, 0x11, 12 + 5 + 4, 12 + 5 + 4, 0, true, "192.0.2.1", 56324 },
	{ "tcp6 with TLVs", 0x21, 0x21, 36 + 100, 36 + 100, 0, true, "2001:db8::1", 56324 },
	{ "local", 0x20, 0x00, 0, 0, 0, false, NULL, 0 },
	{ "local with addresses", 0x20, 0x11, 12, 12, 0, false, NULL, 0 },
	{ "local ignores the family", 0x20, 0xff, 3, 3, 0, false, NULL, 0 },
	{ "local short block", 0x20, 0x21, 4, 4, 0, false, NULL, 0 },
	{ "unspec", 0x21, 0x00, 0, 0, 0, false, NULL, 0 },
	{ "unspec with bytes", 0x21, 0x01, 7, 7, 0, false, NULL, 0 },
	{ "inet unspec protocol", 0x21, 0x10, 12, 12, 0, false, NULL, 0 },
	{ "unix stream", 0x21, 0x31, 216, 216, 0, false, NULL, 0 },
	{ "largest", 0x21, 0x11, PROXYHDR_V2_MAX - 16, PROXYHDR_V2_MAX - 16, 0, true,
	  "192.0.2.1", 56324 },
	{ "version 1", 0x11, 0x11, 12, 12, MOAT_EPROTO, false, NULL, 0 },
	{ "version 3", 0x31, 0x11, 12, 12, MOAT_EPROTO, false, NULL, 0 },
	{ "version 0", 0x01, 0x11, 12, 12, MOAT_EPROTO, false, NULL, 0 },
	{ "command 2", 0x22, 0x11, 12, 12, MOAT_EPROTO, false, NULL, 0 },
	{ "command 15", 0x2f, 0x11, 12, 12, MOAT_EPROTO, false, NULL, 0 },
	{ "family 4", 0x21, 0x41, 12, 12, MOAT_EPROTO, false, NULL, 0 },
	{ "protocol 3", 0x21, 0x13, 12, 12, MOAT_EPROTO, false, NULL, 0 },
	{ "udp4", 0x21, 0x12, 12, 12, MOAT_EPROTO, false, NULL, 0 },
	{ "udp6", 0x21, 0x22, 36, 36, MOAT_EPROTO, false, NULL, 0 },
	{ "unix dgram", 0x21, 0x32, 216, 216, MOAT_EPROTO, false, NULL, 0 },
	{ "tcp4 short block", 0x21, 0x11, 11, 11, MOAT_EPROTO, false, NULL, 0 },
	{ "tcp4 no block", 0x21, 0x11, 0, 0, MOAT_EPROTO, false, NULL, 0 },
	{ "tcp6 short block", 0x21, 0x21, 35, 35, MOAT_EPROTO, false, NULL, 0 },
	{ "tcp6 with a v4 block", 0x21, 0x21, 12, 12, MOAT_EPROTO, false, NULL, 0 },
	{ "unix short block", 0x21, 0x31, 215, 215, MOAT_EPROTO, false, NULL, 0 },
	{ "too long", 0x21, 0x11, PROXYHDR_V2_MAX - 15, 0, MOAT_EPROTO, false, NULL, 0 },
	{ "longest length field", 0x21, 0x11, 0xffff, 0, MOAT_EPROTO, false, NULL, 0 },
	{ "local too long", 0x20, 0x00, PROXYHDR_V2_MAX - 15, 0, MOAT_EPROTO, false, NULL, 0 },
};

static void test_v2(void **state)
{
	static uint8_t buf[PROXYHDR_V2_MAX + 64];
	const struct v2_case *c;
	struct proxyhdr h;
	char text[NETADDR_TEXT];
	size_t i, n, failed = 0;
	int rc;

	for (i = 0; i < N(v2_cases); i++) {
		c = &v2_cases[i];
		n = build_v2(buf, c);
		if (strcmp(c->name, "tcp4 with TLVs") == 0)
			memcpy(buf + 28, "\x01\x00\x02h2\x04\x00\x01\x00", 9);
		memset(&h, 0xa5, sizeof(h));
		rc = parse_exact(buf, n, &h);
		if (rc != c->rc) {
			print_error("%s: rc %s, want %s\n", c->name, rc_name(rc), rc_name(c->rc));
			failed++;
			continue;
		}
		failed += check_prefixes(c->name, buf, n, rc == 0);
		if (rc != 0)
			continue;
		if (h.len != 16 + c->len || h.has_src != c->has_src) {
			print_error("%s: len %zu has_src %d, want %zu %d\n", c->name, h.len,
				    h.has_src, 16 + c->len, c->has_src);
			failed++;
		} else if (c->has_src &&
			   (strcmp(ipaddr_format(&h.src, text, sizeof(text)), c->src) != 0 ||
			    h.src_port != c->port)) {
			print_error("%s: src %s port %u, want %s %u\n", c->name, text, h.src_port,
				    c->src, c->port);
			failed++;
		}
		/* what follows the header is the connection's, not the header's */
		memcpy(buf + n, "GET / HTTP/1.1\r\n", 16);
		rc = parse_exact(buf, n + 16, &h);
		if (rc != 0 || h.len != n) {
			print_error("%s with data after it: rc %s len %zu\n", c->name, rc_name(rc),
				    h.len);
			failed++;
		}
	}
	assert_int_equal(failed, 0);
}

/* A length over the limit is refused as soon as the length is there, not
 * after waiting for bytes that will never be accepted. */
static void test_v2_refused_early(void **state)
{
	static const struct v2_case big = { "big", 0x21, 0x11, 2000, 0, 0, false, NULL, 0 };
	static const struct v2_case ver = { "ver", 0x31, 0x11, 12, 0, 0, false, NULL, 0 };
	static const struct v2_case dgram = { "dgram", 0x21, 0x12, 12, 0, 0, false, NULL, 0 };
	uint8_t buf[16];
	struct proxyhdr h;

	build_v2(buf, &big);
	assert_int_equal(parse_exact(buf, 15, &h), MOAT_EAGAIN);
	assert_int_equal(parse_exact(buf, 16, &h), MOAT_EPROTO);
	build_v2(buf, &ver);
	assert_int_equal(parse_exact(buf, 12, &h), MOAT_EAGAIN);
	assert_int_equal(parse_exact(buf, 13, &h), MOAT_EPROTO);
	build_v2(buf, &dgram);
	assert_int_equal(parse_exact(buf, 13, &h), MOAT_EAGAIN);
	assert_int_equal(parse_exact(buf, 14, &h), MOAT_EPROTO);
}

static void test_v2_signature(void **state)
{
	static const uint8_t almost[] = "\r\n\r\n\0\r\nQUIT\x0b\x21\x11\x00\x0c";
	static const uint8_t tls[] = "\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03";
	struct proxyhdr h;
	size_t k;

	for (k = 1; k < 12; k++)
		assert_int_equal(parse_exact(almost, k, &h), MOAT_EAGAIN);
	assert_int_equal(parse_exact(almost, 12, &h), MOAT_EPROTO);
	assert_int_equal(parse_exact(almost, sizeof(almost) - 1, &h), MOAT_EPROTO);
	/* a TLS ClientHello sent to a PROXY listener is refused at once */
	assert_int_equal(parse_exact(tls, 1, &h), MOAT_EPROTO);
	assert_int_equal(parse_exact(tls, sizeof(tls) - 1, &h), MOAT_EPROTO);
	/* "\r\n" then something else: neither v2 nor v1 */
	assert_int_equal(parse_exact(S("\r\nGET / HTTP/1.1\r\n"), &h), MOAT_EPROTO);
}

/* ---- X-Forwarded-For / Forwarded ------------------------------------- */

static const char *const trusted_text[] = {
	"10.0.0.0/8", "192.168.0.0/16", "2001:db8:1::/48", "::1",
};

struct walk_case {
	const char *name;
	const char *headers; /* header lines, each ending in CRLF */
	enum clientip_header which;
	const char *peer;
	const char *want;
};

#define XFF CLIENTIP_XFF
#define FWD CLIENTIP_FORWARDED
#define PEER "10.0.0.1"

static const struct walk_case walk_cases[] = {
	/* whom to believe */
	{ "untrusted peer ignores the header", "X-Forwarded-For: 198.51.100.1\r\n", XFF,
	  "203.0.113.9", "203.0.113.9" },
	{ "untrusted v6 peer", "X-Forwarded-For: 198.51.100.1\r\n", XFF, "2001:db8:2::1",
	  "2001:db8:2::1" },
	{ "trusted peer, one hop", "X-Forwarded-For: 198.51.100.1\r\n", XFF, PEER,
	  "198.51.100.1" },
	{ "no header", "Accept: */*\r\n", XFF, PEER, PEER },
	{ "empty header", "X-Forwarded-For: \r\n", XFF, PEER, PEER },
	{ "client, trusted proxy", "X-Forwarded-For: 198.51.100.1, 10.0.0.2\r\n", XFF, PEER,
	  "198.51.100.1" },
	{ "all trusted: left-most", "X-Forwarded-For: 10.0.0.3, 192.168.4.4, 10.0.0.2\r\n", XFF,
	  PEER, "10.0.0.3" },
	{ "forged left part", "X-Forwarded-For: 1.1.1.1, 10.9.9.9, 198.51.100.1\r\n", XFF, PEER,
	  "198.51.100.1" },
	{ "forged through a trusted proxy",
	  "X-Forwarded-For: 1.1.1.1, 198.51.100.1, 10.0.0.2\r\n", XFF, PEER, "198.51.100.1" },
	/* what a hop may look like */
	{ "spaces and tabs", "X-Forwarded-For: 198.51.100.1 ,\t10.0.0.2\t\r\n", XFF, PEER,
	  "198.51.100.1" },
	{ "no spaces", "X-Forwarded-For: 198.51.100.1,10.0.0.2\r\n", XFF, PEER, "198.51.100.1" },
	{ "v4 with port", "X-Forwarded-For: 198.51.100.1:4711\r\n", XFF, PEER, "198.51.100.1" },
	{ "v6", "X-Forwarded-For: 2001:db8:2::7\r\n", XFF, PEER, "2001:db8:2::7" },
	{ "bracketed v6", "X-Forwarded-For: [2001:db8:2::7]\r\n", XFF, PEER, "2001:db8:2::7" },
	{ "bracketed v6 with port", "X-Forwarded-For: [2001:db8:2::7]:443\r\n", XFF, PEER,
	  "2001:db8:2::7" },
	{ "v4-mapped", "X-Forwarded-For: ::ffff:198.51.100.1\r\n", XFF, PEER, "198.51.100.1" },
	{ "v4-mapped trusted proxy", "X-Forwarded-For: 198.51.100.1, ::ffff:10.0.0.2\r\n", XFF,
	  PEER, "198.51.100.1" },
	{ "trusted v6 proxies", "X-Forwarded-For: 198.51.100.1, 2001:db8:1::5\r\n", XFF, "::1",
	  "198.51.100.1" },
	{ "empty elements ignored", "X-Forwarded-For: 198.51.100.1, , ,10.0.0.2,\r\n", XFF, PEER,
	  "198.51.100.1" },
	/* a hop that is not an address ends the walk at the last address */
	{ "garbage hop ends the walk", "X-Forwarded-For: 198.51.100.1, garbage, 10.0.0.2\r\n",
	  XFF, PEER, "10.0.0.2" },
	{ "garbage right-most: the peer", "X-Forwarded-For: 198.51.100.1, unknown\r\n", XFF,
	  PEER, PEER },
	{ "name", "X-Forwarded-For: client.example.org\r\n", XFF, PEER, PEER },
	{ "port too big", "X-Forwarded-For: 198.51.100.1:65536\r\n", XFF, PEER, PEER },
	{ "empty port", "X-Forwarded-For: 198.51.100.1:\r\n", XFF, PEER, PEER },
	{ "bracketed v4", "X-Forwarded-For: [198.51.100.1]\r\n", XFF, PEER, PEER },
	{ "v6 zone", "X-Forwarded-For: fe80::1%eth0\r\n", XFF, PEER, PEER },
	{ "space inside", "X-Forwarded-For: 198.51.100.1 10.0.0.2\r\n", XFF, PEER, PEER },
	{ "quotes mean nothing in XFF", "X-Forwarded-For: \"198.51.100.1\"\r\n", XFF, PEER,
	  PEER },
	{ "garbage left of the client is never reached",
	  "X-Forwarded-For: <script>, 198.51.100.1, 10.0.0.2\r\n", XFF, PEER, "198.51.100.1" },
	/* several instances are one list, in order */
	{ "two instances", "X-Forwarded-For: 198.51.100.1\r\nX-Forwarded-For: 10.0.0.2\r\n", XFF,
	  PEER, "198.51.100.1" },
	{ "two instances, client in the last",
	  "X-Forwarded-For: 10.0.0.5, 198.51.100.7\r\nX-Forwarded-For: 10.0.0.2\r\n", XFF, PEER,
	  "198.51.100.7" },
	{ "instances apart, any case",
	  "x-forwarded-for: 198.51.100.1\r\nAccept: */*\r\nX-FORWARDED-FOR: 10.0.0.3\r\n", XFF,
	  PEER, "198.51.100.1" },
	{ "garbage in the last instance",
	  "X-Forwarded-For: 198.51.100.1\r\nX-Forwarded-For: nope\r\n", XFF, PEER, PEER },
	{ "XFF ignored when Forwarded is chosen", "X-Forwarded-For: 198.51.100.1\r\n", FWD, PEER,
	  PEER },
	{ "Forwarded ignored when XFF is chosen", "Forwarded: for=198.51.100.1\r\n", XFF, PEER,
	  PEER },
	{ "similar names are not the header",
	  "X-Forwarded-For-Extra: 198.51.100.1\r\nX-Forwarded: 198.51.100.2\r\n", XFF, PEER,
	  PEER },
	/* Forwarded (RFC 7239) */
	{ "fwd token", "Forwarded: for=192.0.2.60\r\n", FWD, PEER, "192.0.2.60" },
	{ "fwd quoted v6 with port", "Forwarded: for=\"[2001:db8:cafe::17]:4711\"\r\n", FWD, PEER,
	  "2001:db8:cafe::17" },
	{ "fwd quoted v4 with port", "Forwarded: for=\"192.0.2.60:4711\"\r\n", FWD, PEER,
	  "192.0.2.60" },
	{ "fwd obfuscated port", "Forwarded: for=\"192.0.2.60:_abc-1\"\r\n", FWD, PEER,
	  "192.0.2.60" },
	{ "fwd other parameters", "Forwarded: for=192.0.2.60;proto=http;by=203.0.113.43\r\n",
	  FWD, PEER, "192.0.2.60" },
	{ "fwd for= not first", "Forwarded: proto=https;host=\"a, b\";for=192.0.2.60\r\n", FWD,
	  PEER, "192.0.2.60" },
	{ "fwd case-insensitive name", "Forwarded: For=192.0.2.60\r\n", FWD, PEER, "192.0.2.60" },
	{ "fwd spaces around ;", "Forwarded: for=192.0.2.60 ; proto=http\r\n", FWD, PEER,
	  "192.0.2.60" },
	{ "fwd empty pairs", "Forwarded: ;for=192.0.2.60;;\r\n", FWD, PEER, "192.0.2.60" },
	{ "fwd chain", "Forwarded: for=192.0.2.43, for=198.51.100.17, for=10.0.0.2\r\n", FWD,
	  PEER, "198.51.100.17" },
	{ "fwd escaped quoted-pair", "Forwarded: for=\"\\[2001:db8:cafe::17\\]\"\r\n", FWD, PEER,
	  "2001:db8:cafe::17" },
	{ "fwd comma inside quotes", "Forwarded: for=198.51.100.9;x=\"a,b\", for=10.0.0.2\r\n",
	  FWD, PEER, "198.51.100.9" },
	{ "fwd two instances",
	  "Forwarded: for=198.51.100.1\r\nForwarded: for=\"[2001:db8::7]:1\", for=10.0.0.2\r\n",
	  FWD, PEER, "2001:db8::7" },
	{ "fwd all trusted", "Forwarded: for=10.0.0.9\r\nForwarded: for=\"[2001:db8:1::9]\"\r\n",
	  FWD, PEER, "10.0.0.9" },
	{ "fwd unknown ends the walk", "Forwarded: for=198.51.100.1, for=unknown, for=10.0.0.2\r\n",
	  FWD, PEER, "10.0.0.2" },
	{ "fwd obfuscated node", "Forwarded: for=_hidden\r\n", FWD, PEER, PEER },
	{ "fwd no for=", "Forwarded: proto=https;by=10.0.0.1\r\n", FWD, PEER, PEER },
	{ "fwd no for= ends the walk", "Forwarded: for=198.51.100.1, by=10.0.0.1\r\n", FWD, PEER,
	  PEER },
	{ "fwd for= twice", "Forwarded: for=198.51.100.1;for=10.0.0.2\r\n", FWD, PEER, PEER },
	{ "fwd unquoted v6", "Forwarded: for=2001:db8::1\r\n", FWD, PEER, PEER },
	{ "fwd unbracketed v6", "Forwarded: for=\"2001:db8::1\"\r\n", FWD, PEER, PEER },
	{ "fwd unquoted v4 with port", "Forwarded: for=192.0.2.60:80\r\n", FWD, PEER, PEER },
	{ "fwd empty value", "Forwarded: for=\r\n", FWD, PEER, PEER },
	{ "fwd empty quoted value", "Forwarded: for=\"\"\r\n", FWD, PEER, PEER },
	{ "fwd space before =", "Forwarded: for =192.0.2.60\r\n", FWD, PEER, PEER },
	{ "fwd junk after quoted value", "Forwarded: for=\"192.0.2.60\"x\r\n", FWD, PEER, PEER },
	{ "fwd whole list quoted", "Forwarded: for=\"198.51.100.1, for=10.0.0.2\"\r\n", FWD, PEER,
	  PEER },
	{ "fwd unterminated quote swallows the rest",
	  "Forwarded: for=198.51.100.9;x=\"abc, for=10.0.0.2\r\n", FWD, PEER, PEER },
	{ "fwd forged quote cannot hide the proxy's element",
	  "Forwarded: for=1.1.1.1;x=\", for=\"[2001:db8::5]\"\r\n", FWD, PEER, PEER },
	{ "fwd value too long to be an address",
	  "Forwarded: for=\"[2001:db8::1]:11111111111111111111111111111111111111111111111\"\r\n",
	  FWD, PEER, PEER },
	{ "fwd long other value is fine",
	  "Forwarded: host=\"" A20 A20 A20 A20 A20 A20 "\";for=198.51.100.1\r\n", FWD, PEER,
	  "198.51.100.1" },
};

/* Run "GET / ..." with these header lines through the real parser. */
static void parse_request(const char *headers, char **buf, struct h1_msg *m)
{
	char *req;
	size_t n;
	int rc;

	n = (size_t)snprintf(NULL, 0, "GET / HTTP/1.1\r\nHost: a\r\n%s\r\n", headers);
	req = malloc(n + 1);
	assert_non_null(req);
	snprintf(req, n + 1, "GET / HTTP/1.1\r\nHost: a\r\n%s\r\n", headers);
	rc = h1_parse_request(req, n, 65536, m);
	if (rc != 0)
		fail_msg("request does not parse (%s): %s", m->why, headers);
	*buf = req;
}

static struct cidr trusted[N(trusted_text)];

static int setup_trusted(void **state)
{
	const char *why;
	size_t i;

	for (i = 0; i < N(trusted_text); i++)
		if (cidr_parse(trusted_text[i], &trusted[i], &why) != 0)
			return -1;
	return 0;
}

static void test_walk(void **state)
{
	static struct h1_msg m;
	char got[NETADDR_TEXT];
	struct ipaddr peer, a;
	size_t i, failed = 0;
	char *req;

	for (i = 0; i < N(walk_cases); i++) {
		const struct walk_case *c = &walk_cases[i];

		assert_int_equal(ipaddr_parse(c->peer, strlen(c->peer), &peer), 0);
		parse_request(c->headers, &req, &m);
		a = clientip_resolve(&m, c->which, trusted, N(trusted), &peer);
		ipaddr_format(&a, got, sizeof(got));
		if (strcmp(got, c->want) != 0) {
			print_error("%s: got %s, want %s\n", c->name, got, c->want);
			failed++;
		}
		free(req);
	}
	assert_int_equal(failed, 0);
}

/* With nothing trusted every header is ignored. */
static void test_walk_nothing_trusted(void **state)
{
	static struct h1_msg m;
	struct ipaddr peer, a;
	char *req;

	assert_int_equal(ipaddr_parse("10.0.0.1", 8, &peer), 0);
	parse_request("X-Forwarded-For: 198.51.100.1\r\n", &req, &m);
	a = clientip_resolve(&m, CLIENTIP_XFF, NULL, 0, &peer);
	assert_true(ipaddr_equal(&a, &peer));
	free(req);
}

/*
 * At most 32 hops are examined. 40 trusted hops after the client: the walk
 * stops at the 32nd from the right, a trusted address. Split over two
 * instances the count goes on across them.
 */
static void test_walk_limit(void **state)
{
	static struct h1_msg m;
	char hdr[2048], got[NETADDR_TEXT];
	struct ipaddr peer, a;
	size_t off;
	char *req;
	int i;

	assert_int_equal(ipaddr_parse("10.0.0.1", 8, &peer), 0);
	off = (size_t)snprintf(hdr, sizeof(hdr), "X-Forwarded-For: 198.51.100.1");
	for (i = 1; i <= 40; i++)
		off += (size_t)snprintf(hdr + off, sizeof(hdr) - off, ", 10.0.1.%d", i);
	snprintf(hdr + off, sizeof(hdr) - off, "\r\n");
	parse_request(hdr, &req, &m);
	a = clientip_resolve(&m, CLIENTIP_XFF, trusted, N(trusted), &peer);
	assert_string_equal(ipaddr_format(&a, got, sizeof(got)), "10.0.1.9");
	free(req);

	off = (size_t)snprintf(hdr, sizeof(hdr), "X-Forwarded-For: 198.51.100.1");
	for (i = 1; i <= 40; i++) {
		/* the second instance starts at 10.0.1.21 */
		const char *sep = i == 21 ? "\r\nX-Forwarded-For: " : ", ";

		off += (size_t)snprintf(hdr + off, sizeof(hdr) - off, "%s10.0.1.%d", sep, i);
	}
	snprintf(hdr + off, sizeof(hdr) - off, "\r\n");
	parse_request(hdr, &req, &m);
	a = clientip_resolve(&m, CLIENTIP_XFF, trusted, N(trusted), &peer);
	assert_string_equal(ipaddr_format(&a, got, sizeof(got)), "10.0.1.9");
	free(req);

	/* 31 trusted hops: the client is still found */
	off = (size_t)snprintf(hdr, sizeof(hdr), "X-Forwarded-For: 198.51.100.1");
	for (i = 1; i <= 31; i++)
		off += (size_t)snprintf(hdr + off, sizeof(hdr) - off, ", 10.0.1.%d", i);
	snprintf(hdr + off, sizeof(hdr) - off, "\r\n");
	parse_request(hdr, &req, &m);
	a = clientip_resolve(&m, CLIENTIP_XFF, trusted, N(trusted), &peer);
	assert_string_equal(ipaddr_format(&a, got, sizeof(got)), "198.51.100.1");
	free(req);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_v1_good),
		cmocka_unit_test(test_v1_bad),
		cmocka_unit_test(test_v1_partial),
		cmocka_unit_test(test_v2),
		cmocka_unit_test(test_v2_refused_early),
		cmocka_unit_test(test_v2_signature),
		cmocka_unit_test(test_walk),
		cmocka_unit_test(test_walk_nothing_trusted),
		cmocka_unit_test(test_walk_limit),
	};

	return cmocka_run_group_tests(tests, setup_trusted, NULL);
}
