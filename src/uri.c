/*
 * uri.c - canonical hosts and paths; see uri.h.
 *
 * Routing and access policy compare these canonical forms, never the raw
 * bytes, so every spelling that could reach the upstream as something other
 * than what policy saw is refused here rather than "fixed" (docs/internals/h1.md).
 */
#include "uri.h"

#include <stdbool.h>
#include <string.h>

#include "util.h"

#define MAX_LABEL 63
#define MAX_NAME 253

static bool is_digit(unsigned char c)
{
	return c >= '0' && c <= '9';
}

int uri_hex_value(unsigned char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	return -1;
}

static unsigned char lower(unsigned char c)
{
	return (c >= 'A' && c <= 'Z') ? (unsigned char)(c + 32) : c;
}

/* RFC 3986 2.3 */
static bool is_unreserved(unsigned char c)
{
	return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || is_digit(c) ||
	       c == '-' || c == '.' || c == '_' || c == '~';
}

/* ":port" with 1-5 digits and a value of 1-65535; an empty port is refused. */
static int parse_port(const char *p, size_t n, int *port)
{
	long v = 0;
	size_t i;

	if (n < 2 || n > 6 || p[0] != ':')
		return MOAT_EPROTO;
	for (i = 1; i < n; i++) {
		if (!is_digit((unsigned char)p[i]))
			return MOAT_EPROTO;
		v = v * 10 + (p[i] - '0');
	}
	if (v < 1 || v > 65535)
		return MOAT_EPROTO;
	*port = (int)v;
	return 0;
}

/* "[" hex / ":" / "." "]": enough to route on, no more (no zone IDs, no IPvFuture). */
static int check_ip_literal(const char *p, size_t n)
{
	bool colon = false;
	size_t i;

	if (n < 3)
		return MOAT_EPROTO;
	for (i = 1; i + 1 < n; i++) {
		unsigned char c = (unsigned char)p[i];

		if (c == ':')
			colon = true;
		else if (c != '.' && uri_hex_value(c) < 0)
			return MOAT_EPROTO;
	}
	return colon ? 0 : MOAT_EPROTO;
}

/* reg-name restricted to DNS: labels of [A-Za-z0-9_-], 1-63 each, 253 in all. */
static int check_name(const char *p, size_t n)
{
	size_t i, label = 0;

	if (n == 0 || n > MAX_NAME)
		return MOAT_EPROTO;
	for (i = 0; i < n; i++) {
		unsigned char c = lower((unsigned char)p[i]);

		if (c == '.') {
			if (label == 0)
				return MOAT_EPROTO;
			label = 0;
			continue;
		}
		if (!((c >= 'a' && c <= 'z') || is_digit(c) || c == '-' || c == '_'))
			return MOAT_EPROTO;
		if (++label > MAX_LABEL)
			return MOAT_EPROTO;
	}
	return label == 0 ? MOAT_EPROTO : 0;
}

int uri_canon_host(const char *in, size_t n, char *out, size_t outsz, int *port)
{
	const char *end;
	size_t hn, i;
	int rc = MOAT_EPROTO;

	*port = 0;
	if (outsz > 0)
		out[0] = '\0';
	if (n == 0 || memchr(in, '@', n) != NULL)
		goto out;
	if (in[0] == '[') {
		end = memchr(in, ']', n);
		if (end == NULL)
			goto out;
		hn = (size_t)(end - in) + 1;
		if (check_ip_literal(in, hn) < 0)
			goto out;
	} else {
		end = memchr(in, ':', n);
		hn = end != NULL ? (size_t)(end - in) : n;
	}
	if (hn < n && parse_port(in + hn, n - hn, port) < 0)
		goto out;
	if (in[0] != '[') {
		/* "example.org." names the same host as "example.org". */
		if (hn > 1 && in[hn - 1] == '.')
			hn--;
		if (check_name(in, hn) < 0)
			goto out;
	}
	if (hn + 1 > outsz) {
		rc = MOAT_ETOOBIG;
		goto out;
	}
	for (i = 0; i < hn; i++)
		out[i] = (char)lower((unsigned char)in[i]);
	out[hn] = '\0';
	rc = 0;
out:
	if (rc < 0)
		*port = 0;
	return rc;
}

struct outbuf {
	char *p;
	size_t n;
	size_t cap; /* bytes usable before the NUL */
};

static bool put(struct outbuf *o, char c)
{
	if (o->n >= o->cap)
		return false;
	o->p[o->n++] = c;
	return true;
}

/* What one path segment turned out to be once decoded. */
struct seg {
	size_t dlen;    /* decoded length */
	char lead[3];   /* first decoded bytes, to spot "." "..", ".;" and "..;" */
	bool escaped;   /* any percent-escape in it */
};

/*
 * Write "/" and the normalised segment in[0..n) to o. Escapes of unreserved
 * characters are decoded, all others upper-cased.
 */
static int put_segment(const char *in, size_t n, struct outbuf *o, struct seg *sg)
{
	static const char hex[] = "0123456789ABCDEF";
	size_t i;
	int hi, lo;

	memset(sg, 0, sizeof(*sg));
	if (!put(o, '/'))
		return MOAT_ETOOBIG;
	for (i = 0; i < n; i++) {
		unsigned char c = (unsigned char)in[i], d = c;

		if (c < 0x21 || c >= 0x7f || c == '\\' || c == '#')
			return MOAT_EPROTO;
		if (c == '%') {
			hi = i + 2 < n ? uri_hex_value((unsigned char)in[i + 1]) : -1;
			lo = i + 2 < n ? uri_hex_value((unsigned char)in[i + 2]) : -1;
			if (hi < 0 || lo < 0)
				return MOAT_EPROTO;
			d = (unsigned char)(hi << 4 | lo);
			/* A decoded separator or NUL means two different paths. */
			if (d == '/' || d == '\\' || d == '\0')
				return MOAT_EPROTO;
			sg->escaped = true;
			i += 2;
		}
		if (sg->dlen < sizeof(sg->lead))
			sg->lead[sg->dlen] = (char)d;
		sg->dlen++;
		if (c != '%' || is_unreserved(d)) {
			if (!put(o, (char)d))
				return MOAT_ETOOBIG;
		} else if (!put(o, '%') || !put(o, hex[d >> 4]) || !put(o, hex[d & 15])) {
			return MOAT_ETOOBIG;
		}
	}
	return 0;
}

static bool seg_is(const struct seg *sg, const char *s)
{
	size_t n = strlen(s);

	return sg->dlen == n && memcmp(sg->lead, s, n) == 0;
}

static bool seg_starts(const struct seg *sg, const char *s)
{
	size_t n = strlen(s);

	return sg->dlen >= n && memcmp(sg->lead, s, n) == 0;
}

/* RFC 3986 5.2.4 on whole segments, with "//" collapsed; never above root. */
static int normalize_path(const char *in, size_t n, struct outbuf *o)
{
	struct seg sg;
	size_t i = 1, e;
	bool trailing = false, last = false;

	while (!last) {
		size_t mark = o->n;
		int rc;

		for (e = i; e < n && in[e] != '/'; e++)
			;
		last = e >= n;
		rc = put_segment(in + i, e - i, o, &sg);
		if (rc < 0)
			return rc;
		if ((seg_is(&sg, ".") || seg_is(&sg, "..")) && sg.escaped)
			return MOAT_EPROTO;
		/* Tomcat and friends read "..;x" as "..": refuse, do not guess. */
		if (seg_starts(&sg, ".;") || seg_starts(&sg, "..;"))
			return MOAT_EPROTO;
		trailing = false;
		if (sg.dlen == 0 || seg_is(&sg, ".")) {
			o->n = mark;
			trailing = true;
		} else if (seg_is(&sg, "..")) {
			o->n = mark;
			while (o->n > 0 && o->p[o->n - 1] != '/')
				o->n--;
			if (o->n > 0)
				o->n--;
			trailing = true;
		}
		i = e + 1;
	}
	if ((o->n == 0 || trailing) && !put(o, '/'))
		return MOAT_ETOOBIG;
	return 0;
}

int uri_normalize_target(const char *in, size_t n, char *out, size_t outsz, size_t *outlen)
{
	struct outbuf o = { out, 0, outsz > 0 ? outsz - 1 : 0 };
	const char *q;
	size_t pn, i;
	int rc = MOAT_EPROTO;

	*outlen = 0;
	if (outsz > 0)
		out[0] = '\0';
	if (n == 0 || in[0] != '/')
		goto out;
	q = memchr(in, '?', n);
	pn = q != NULL ? (size_t)(q - in) : n;
	if (outsz == 0) {
		rc = MOAT_ETOOBIG;
		goto out;
	}
	rc = normalize_path(in, pn, &o);
	if (rc < 0)
		goto out;
	for (i = pn; i < n; i++) {
		unsigned char c = (unsigned char)in[i];

		if (c < 0x21 || c > 0x7e || c == '#') {
			rc = MOAT_EPROTO;
			goto out;
		}
		if (!put(&o, (char)c)) {
			rc = MOAT_ETOOBIG;
			goto out;
		}
	}
	out[o.n] = '\0';
	*outlen = o.n;
	rc = 0;
out:
	if (rc < 0 && outsz > 0)
		out[0] = '\0';
	return rc;
}
