/*
 * fuzz_clientip.c - libFuzzer target for the PROXY protocol parser and the
 * X-Forwarded-For / Forwarded walk. Besides "does not crash", it checks
 * properties that must hold for every input:
 *   - a header is accepted only whole: it lies inside the input and within
 *     the limits, every shorter prefix of it is "need more", and it parses
 *     the same without the bytes that follow it;
 *   - "need more" is never said of more bytes than the limits allow, and a
 *     refused beginning stays refused however the input goes on;
 *   - a request from an untrusted peer resolves to the peer.
 * For the walk the input becomes header values: without a newline, the
 * same bytes as X-Forwarded-For and as Forwarded; with newlines, each line
 * is one instance, alternately of either header. The walk runs with a
 * trusted list that holds every address, so it goes as deep as it can, and
 * with one that holds only private ranges, so that it stops on the way.
 * Every buffer is a fresh heap copy of exact size so ASan sees overreads.
 */
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "clientip.h"
#include "h1.h"
#include "netaddr.h"
#include "util.h"

#define MAX_INPUT 4096
#define MAX_LINES 16

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void check(bool ok, const char *what)
{
	if (!ok) {
		fprintf(stderr, "fuzz_clientip: property violated: %s\n", what);
		abort();
	}
}

static int parse_copy(const uint8_t *p, size_t n, struct proxyhdr *h)
{
	uint8_t *b = malloc(n ? n : 1);
	int rc;

	check(b != NULL, "malloc");
	if (n > 0)
		memcpy(b, p, n);
	rc = proxyhdr_parse(b, n, h);
	free(b);
	return rc;
}

static void check_proxyhdr(const uint8_t *data, size_t size)
{
	struct proxyhdr h, h2;
	size_t k, limit;
	int rc, rc2;

	rc = parse_copy(data, size, &h);
	check(rc == 0 || rc == MOAT_EAGAIN || rc == MOAT_EPROTO, "proxyhdr rc");
	limit = size > 0 && data[0] == 'P' ? PROXYHDR_V1_MAX : PROXYHDR_V2_MAX;
	if (rc == MOAT_EAGAIN)
		check(size < limit, "need more beyond the limit");
	if (rc == 0) {
		check(h.len > 0 && h.len <= size && h.len <= limit, "header length");
		rc2 = parse_copy(data, h.len, &h2);
		check(rc2 == 0 && h2.len == h.len && h2.has_src == h.has_src &&
		      (!h.has_src || (ipaddr_equal(&h.src, &h2.src) && h.src_port == h2.src_port)),
		      "the header alone parses the same");
		for (k = 0; k < h.len; k++)
			check(parse_copy(data, k, &h2) == MOAT_EAGAIN,
			      "a prefix of a header needs more");
		return;
	}
	/* refused once, refused for good; walk the prefixes up to the limit */
	for (k = 0; k < size && k <= PROXYHDR_V2_MAX; k++) {
		rc2 = parse_copy(data, k, &h2);
		check(rc2 == MOAT_EAGAIN || rc2 == MOAT_EPROTO, "prefix rc");
		if (rc2 == MOAT_EPROTO)
			check(rc == MOAT_EPROTO, "a refused beginning was taken back");
	}
}

/* "GET / ..." with the input's lines as header values; NULL when the
 * parser refuses it (a CR, a control byte): that is the parser's job. */
static char *build_request(const uint8_t *data, size_t size, size_t *len)
{
	static const char head[] = "GET / HTTP/1.1\r\nHost: a\r\n";
	static const char xff[] = "X-Forwarded-For: ", fwd[] = "Forwarded: ";
	size_t cap = sizeof(head) + 2 * size + MAX_LINES * 32 + 2 * sizeof(xff) + 4, o, start, i;
	const char *nl = memchr(data, '\n', size);
	unsigned line = 0;
	char *req = malloc(cap);

	check(req != NULL, "malloc");
	memcpy(req, head, sizeof(head) - 1);
	o = sizeof(head) - 1;
	if (nl == NULL) {
		o += (size_t)snprintf(req + o, cap - o, "%s%.*s\r\n%s%.*s\r\n", xff, (int)size,
				      (const char *)data, fwd, (int)size, (const char *)data);
	} else {
		for (start = 0, i = 0; i <= size && line < MAX_LINES; i++) {
			if (i < size && data[i] != '\n')
				continue;
			o += (size_t)snprintf(req + o, cap - o, "%s", line % 2 ? fwd : xff);
			memcpy(req + o, data + start, i - start);
			o += i - start;
			memcpy(req + o, "\r\n", 2);
			o += 2;
			line++;
			start = i + 1;
		}
	}
	memcpy(req + o, "\r\n", 2);
	*len = o + 2;
	return req;
}

/* What moat prints (logs, the admin API) reads back as the same address,
 * and as the same single-address prefix. */
static void check_round_trip(const struct ipaddr *a)
{
	char text[NETADDR_TEXT], ctext[NETADDR_TEXT];
	struct ipaddr back;
	struct cidr key, c;
	const char *why;

	ipaddr_format(a, text, sizeof(text));
	check(ipaddr_parse(text, strlen(text), &back) == 0 && ipaddr_equal(a, &back),
	      "formatted address reads back");
	check(cidr_parse(text, &c, &why) == 0 && c.bits == 128 && cidr_contains(&c, a),
	      "formatted address is a /128");
	key = ipaddr_key(a);
	check(cidr_contains(&key, a), "an address is in its own key");
	cidr_format(&key, ctext, sizeof(ctext));
	check(cidr_parse(ctext, &c, &why) == 0 && c.bits == key.bits &&
	      ipaddr_equal(&c.a, &key.a), "formatted key reads back");
}

static void check_walk(const uint8_t *data, size_t size)
{
	static struct h1_msg m;
	struct cidr all, none, some[2];
	struct ipaddr peer, a, b;
	const char *why;
	char *req, *exact;
	size_t len;

	/* the request is built with %.*s: a NUL would cut it short, and the
	 * parser refuses NUL anyway */
	if (memchr(data, '\0', size) != NULL)
		return;
	req = build_request(data, size, &len);
	exact = malloc(len);
	check(exact != NULL, "malloc");
	memcpy(exact, req, len);
	free(req);
	if (h1_parse_request(exact, len, 65536, &m) != 0)
		goto out;
	check(cidr_parse("::/0", &all, &why) == 0, "::/0 parses");
	check(cidr_parse("192.0.2.7", &none, &why) == 0, "192.0.2.7 parses");
	check(cidr_parse("10.0.0.0/8", &some[0], &why) == 0, "10.0.0.0/8 parses");
	check(cidr_parse("2001:db8::/32", &some[1], &why) == 0, "2001:db8::/32 parses");
	check(ipaddr_parse("10.0.0.1", 8, &peer) == 0, "peer parses");

	a = clientip_resolve(&m, CLIENTIP_XFF, &all, 1, &peer);
	b = clientip_resolve(&m, CLIENTIP_XFF, &all, 1, &peer);
	check(ipaddr_equal(&a, &b), "resolve is a function of its input");
	check_round_trip(&a);
	a = clientip_resolve(&m, CLIENTIP_FORWARDED, &all, 1, &peer);
	check_round_trip(&a);
	a = clientip_resolve(&m, CLIENTIP_XFF, some, 2, &peer);
	check_round_trip(&a);
	a = clientip_resolve(&m, CLIENTIP_FORWARDED, some, 2, &peer);
	check_round_trip(&a);
	a = clientip_resolve(&m, CLIENTIP_XFF, &none, 1, &peer);
	check(ipaddr_equal(&a, &peer), "untrusted peer keeps its address (XFF)");
	a = clientip_resolve(&m, CLIENTIP_FORWARDED, NULL, 0, &peer);
	check(ipaddr_equal(&a, &peer), "untrusted peer keeps its address (Forwarded)");
out:
	free(exact);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (size > MAX_INPUT)
		return 0;
	check_proxyhdr(data, size);
	check_walk(data, size);
	return 0;
}
