/*
 * fuzz_h1.c - libFuzzer target for the HTTP/1 parser, the chunked decoder
 * and the URI canonicaliser. Besides "does not crash", it checks properties
 * that must hold for every input:
 *   - an accepted head lies inside the input and every prefix of it is
 *     "need more", never an error or an acceptance;
 *   - the chunked decoder gives the same answer however its input is split;
 *   - a canonical target is a fixed point of uri_normalize_target.
 * Every buffer is a fresh heap copy of exact size so ASan sees overreads.
 */
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "h1.h"
#include "uri.h"
#include "util.h"

#define MAX_INPUT 65536

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void check(bool ok, const char *what)
{
	if (!ok) {
		fprintf(stderr, "fuzz_h1: property violated: %s\n", what);
		abort();
	}
}

static char *copy(const void *p, size_t n)
{
	char *b = malloc(n ? n : 1);

	check(b != NULL, "malloc");
	if (n > 0)
		memcpy(b, p, n);
	return b;
}

static bool slice_inside(struct h1_slice s, const char *buf, size_t len)
{
	if (s.n == 0)
		return true;
	/* absolute-form without a path points m->path at a static "/" */
	if (s.n == 1 && s.p[0] == '/' && (s.p < buf || s.p >= buf + len))
		return true;
	return s.p >= buf && s.p + s.n <= buf + len;
}

static bool known_rc(int rc)
{
	return rc == 0 || rc == MOAT_EAGAIN || rc == MOAT_EPROTO || rc == MOAT_EUNSUP ||
	       rc == MOAT_EVERSION || rc == MOAT_ETOOBIG;
}

static void check_target(const char *in, size_t n)
{
	char *out = malloc(n + 1);
	size_t outlen = 0, n2 = 0;
	int rc;

	check(out != NULL, "malloc");
	rc = uri_normalize_target(in, n, out, n + 1, &outlen);
	check(rc == 0 || rc == MOAT_EPROTO, "normalize rc");
	if (rc == 0) {
		char *again = malloc(outlen + 1);

		check(outlen <= n && strlen(out) == outlen && out[0] == '/', "normalize output");
		check(again != NULL, "malloc");
		rc = uri_normalize_target(out, outlen, again, outlen + 1, &n2);
		check(rc == 0 && n2 == outlen && memcmp(again, out, outlen) == 0,
		      "canonical target is a fixed point");
		free(again);
	}
	free(out);
}

static void check_host(const char *in, size_t n)
{
	char out[300], small[8];
	int port = -1, port2 = -1, rc;

	rc = uri_canon_host(in, n, out, sizeof(out), &port);
	check(rc == 0 || rc == MOAT_EPROTO || rc == MOAT_ETOOBIG, "canon_host rc");
	check(port >= 0 && port <= 65535, "port range");
	if (rc == 0) {
		char again[300];

		check(strlen(out) <= 253 || out[0] == '[', "host length");
		rc = uri_canon_host(out, strlen(out), again, sizeof(again), &port2);
		check(rc == 0 && strcmp(out, again) == 0 && port2 == 0,
		      "canonical host is a fixed point");
	}
	rc = uri_canon_host(in, n, small, sizeof(small), &port);
	check(rc == 0 || rc == MOAT_EPROTO || rc == MOAT_ETOOBIG, "canon_host small rc");
}

static void check_msg(const char *buf, size_t len, size_t max_head, const struct h1_msg *m)
{
	unsigned i;

	check(m->head_len > 0 && m->head_len <= len && m->head_len <= max_head, "head_len");
	check(m->nheaders <= H1_MAX_HEADERS, "nheaders");
	check(m->minor == 0 || m->minor == 1, "minor");
	for (i = 0; i < m->nheaders; i++) {
		check(m->headers[i].name.n > 0, "empty header name");
		check(slice_inside(m->headers[i].name, buf, m->head_len), "name slice");
		check(slice_inside(m->headers[i].value, buf, m->head_len), "value slice");
		(void)h1_is_hop_by_hop(m, m->headers[i].name);
	}
	check(slice_inside(m->method, buf, m->head_len) && slice_inside(m->target, buf, m->head_len) &&
	      slice_inside(m->path, buf, m->head_len) && slice_inside(m->authority, buf, m->head_len) &&
	      slice_inside(m->host, buf, m->head_len) && slice_inside(m->upgrade, buf, m->head_len) &&
	      slice_inside(m->reason, buf, m->head_len), "slices inside the head");
	check(buf[m->head_len - 1] == '\n' && buf[m->head_len - 2] == '\r', "head ends with CRLF");
}

/* Decode in pieces of `step` bytes the way a connection would. */
static int decode_steps(const char *in, size_t n, size_t step, char *out, size_t *outn,
			size_t *end, bool *done)
{
	struct h1_chunked c;
	char *work = malloc(n ? n : 1);
	size_t wn = 0, from = 0, base = 0, consumed, o;
	const char *why;
	int rc = 0;

	check(work != NULL, "malloc");
	h1_chunked_init(&c);
	*outn = 0;
	*done = false;
	*end = 0;
	while (from < n || (from == 0 && n == 0)) {
		size_t to = from + step < n ? from + step : n;

		memcpy(work + wn, in + from, to - from);
		wn += to - from;
		from = to;
		rc = h1_chunked_decode(&c, work, wn, &consumed, &o, done, &why);
		check(consumed <= wn && o <= consumed, "decode counts");
		memcpy(out + *outn, work, o);
		*outn += o;
		if (rc < 0) {
			check(rc == MOAT_EPROTO && why != NULL, "decode error");
			break;
		}
		check(why == NULL, "why on success");
		memmove(work, work + consumed, wn - consumed);
		wn -= consumed;
		base += consumed;
		if (*done) {
			*end = base;
			break;
		}
		check(wn == 0, "decoder keeps no unconsumed input before done");
		if (n == 0)
			break;
	}
	free(work);
	return rc;
}

static void check_chunked(const char *in, size_t n, size_t step3)
{
	static const size_t steps[] = { 1, 2, 7 };
	char *buf = copy(in, n), *out = malloc(n ? n : 1);
	size_t consumed, o, outn, end, i;
	bool done, done2;
	const char *why;
	int rc;
	struct h1_chunked c;

	check(out != NULL, "malloc");
	h1_chunked_init(&c);
	rc = h1_chunked_decode(&c, buf, n, &consumed, &o, &done, &why);
	check(rc == 0 || rc == MOAT_EPROTO, "chunked rc");
	check(consumed <= n && o <= consumed, "chunked counts");
	check(rc < 0 || done || consumed == n, "all input consumed until done");
	for (i = 0; i <= sizeof(steps) / sizeof(steps[0]); i++) {
		size_t step = i < sizeof(steps) / sizeof(steps[0]) ? steps[i] : step3;
		int rc2 = decode_steps(in, n, step, out, &outn, &end, &done2);

		check(rc2 == rc && done2 == done, "split decode agrees on the outcome");
		check(outn == o && memcmp(out, buf, o) == 0, "split decode agrees on the data");
		check(!done || end == consumed, "split decode agrees on the end");
	}
	free(out);
	free(buf);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static const enum h1_method methods[] = { H1_M_GET, H1_M_HEAD };
	struct h1_msg m;
	char *buf;
	size_t max_head, i;
	int rc;

	if (size > MAX_INPUT)
		return 0;
	buf = copy(data, size);
	max_head = size > 0 && data[0] == 'P' ? size : 8192;

	rc = h1_parse_request(buf, size, max_head, &m);
	check(known_rc(rc), "request rc");
	check(rc == 0 || m.why != NULL, "why on error");
	if (rc == 0) {
		struct h1_msg m2;
		int rc2;

		check_msg(buf, size, max_head, &m);
		rc2 = h1_parse_request(buf, m.head_len, m.head_len, &m2);
		check(rc2 == 0 && m2.head_len == m.head_len && m2.framing == m.framing &&
		      m2.flags == m.flags, "the head alone parses the same");
		rc2 = h1_parse_request(buf, m.head_len - 1, max_head, &m2);
		check(rc2 == MOAT_EAGAIN, "a prefix of a good head needs more");
		check(m.framing != H1_BODY_UNTIL_CLOSE, "requests never read until close");
		if (m.path.p[0] == '/')
			check_target(m.path.p, m.path.n);
		if (m.host.n > 0)
			check_host(m.host.p, m.host.n);
		if (m.framing == H1_BODY_CHUNKED)
			check_chunked(buf + m.head_len, size - m.head_len, 5);
	}

	for (i = 0; i < sizeof(methods) / sizeof(methods[0]); i++) {
		rc = h1_parse_response(buf, size, max_head, methods[i], &m);
		check(known_rc(rc), "response rc");
		check(rc == 0 || m.why != NULL, "why on error");
		if (rc != 0)
			continue;
		check_msg(buf, size, max_head, &m);
		check(m.status >= 100 && m.status <= 999, "status range");
		if (m.framing == H1_BODY_CHUNKED && i == 0)
			check_chunked(buf + m.head_len, size - m.head_len, 3);
	}

	check_chunked(buf, size, size > 0 ? (size_t)data[0] % 13 + 1 : 1);
	check_target(buf, size);
	check_host(buf, size);
	free(buf);
	return 0;
}
