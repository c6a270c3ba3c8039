/*
 * clientip.c - see clientip.h and docs/internals/clientip.md.
 *
 * Nothing here allocates: a PROXY header is read in place, and a forwarding
 * chain is walked with a fixed ring of element slices and one small buffer
 * for an unquoted value.
 */
#include "clientip.h"

#include <string.h>

#include "util.h"

/* ---- PROXY protocol ------------------------------------------------- */

static const uint8_t v2_sig[12] = {
	0x0d, 0x0a, 0x0d, 0x0a, 0x00, 0x0d, 0x0a, 0x51, 0x55, 0x49, 0x54, 0x0a,
};

#define V2_HEAD 16 /* signature, version/command, family/protocol, length */

enum { V2_CMD_LOCAL = 0, V2_CMD_PROXY = 1 };
enum { V2_AF_UNSPEC = 0, V2_AF_INET = 1, V2_AF_INET6 = 2, V2_AF_UNIX = 3 };
enum { V2_P_UNSPEC = 0, V2_P_STREAM = 1, V2_P_DGRAM = 2 };

/* Bytes of the address block each family needs. */
static size_t v2_addr_len(unsigned fam)
{
	static const size_t len[] = { 0, 12, 36, 216 };

	return len[fam];
}

static uint16_t be16(const uint8_t *p)
{
	return (uint16_t)(p[0] << 8 | p[1]);
}

/* The source of a TCP connection over IPv4 or IPv6; the destination is not
 * needed (moat knows where it listens). */
static void v2_source(const uint8_t *blk, unsigned fam, struct proxyhdr *h)
{
	static const uint8_t mapped[12] = { 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff };

	h->has_src = true;
	if (fam == V2_AF_INET) {
		memcpy(h->src.b, mapped, sizeof(mapped));
		memcpy(h->src.b + 12, blk, 4);
		h->src_port = be16(blk + 8);
	} else {
		memcpy(h->src.b, blk, 16);
		h->src_port = be16(blk + 32);
	}
}

/*
 * Checked a byte at a time as the fields arrive, so that a bad version,
 * command, family or length is refused without waiting for the rest. The
 * bytes after the address block (TLVs) are counted in the length and
 * skipped, never read: moat uses none of them.
 */
static int parse_v2(const uint8_t *b, size_t n, struct proxyhdr *h)
{
	unsigned cmd, fam, proto;
	size_t len;

	if (n <= 12)
		return MOAT_EAGAIN;
	cmd = b[12] & 0x0fu;
	if (b[12] >> 4 != 2 || cmd > V2_CMD_PROXY)
		return MOAT_EPROTO;
	if (n == 13)
		return MOAT_EAGAIN;
	/* LOCAL: the family byte is ignored (the spec says so) */
	fam = b[13] >> 4;
	proto = b[13] & 0x0fu;
	if (cmd == V2_CMD_PROXY && (fam > V2_AF_UNIX || proto > V2_P_DGRAM))
		return MOAT_EPROTO;
	if (cmd == V2_CMD_PROXY && proto == V2_P_DGRAM)
		return MOAT_EPROTO; /* moat speaks TCP only */
	if (n < V2_HEAD)
		return MOAT_EAGAIN;
	len = be16(b + 14);
	if (V2_HEAD + len > PROXYHDR_V2_MAX)
		return MOAT_EPROTO;
	if (cmd == V2_CMD_PROXY && len < v2_addr_len(fam))
		return MOAT_EPROTO;
	if (n < V2_HEAD + len)
		return MOAT_EAGAIN;
	h->len = V2_HEAD + len;
	/* UNSPEC family or protocol and AF_UNIX: keep the TCP peer */
	if (cmd == V2_CMD_PROXY && proto == V2_P_STREAM &&
	    (fam == V2_AF_INET || fam == V2_AF_INET6))
		v2_source(b + V2_HEAD, fam, h);
	return 0;
}

#define V1_FIELDS 6 /* PROXY TCPx src dst sport dport */

/* Is s[0..n) lit (complete) or a beginning of it (!complete)? */
static bool lit_ok(struct h1_slice s, const char *lit, bool complete)
{
	size_t l = strlen(lit);

	if (s.n > l || memcmp(s.p, lit, s.n) != 0)
		return false;
	return !complete || s.n == l;
}

static bool is_digit(char c)
{
	return c >= '0' && c <= '9';
}

static bool is_alnum(char c)
{
	return is_digit(c) || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z');
}

static bool is_hex(char c)
{
	return is_digit(c) || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F');
}

/* Four decimal octets 0-255 without leading zeros, or a beginning of that. */
static bool v1_v4_ok(struct h1_slice s, bool complete)
{
	unsigned groups = 1, digits = 0, val = 0;
	size_t i;

	for (i = 0; i < s.n; i++) {
		if (s.p[i] == '.') {
			if (digits == 0 || groups == 4)
				return false;
			groups++;
			digits = 0;
			val = 0;
			continue;
		}
		if (!is_digit(s.p[i]) || (digits == 1 && val == 0))
			return false;
		val = val * 10 + (unsigned)(s.p[i] - '0');
		digits++;
		if (val > 255)
			return false;
	}
	return !complete || (groups == 4 && digits > 0);
}

/*
 * A complete v6 text goes through inet_pton; a beginning of one is only
 * checked for its characters, runs of at most four hex digits, no ":::" and
 * at most one "::". That lets a few hopeless beginnings wait for more
 * bytes, never more than the 107 of a whole line.
 */
static bool v1_v6_ok(struct h1_slice s, bool complete)
{
	struct ipaddr a;
	unsigned run = 0, colons = 0, doubles = 0;
	size_t i;

	if (s.n > 45)
		return false;
	for (i = 0; i < s.n; i++) {
		if (s.p[i] == ':') {
			colons++;
			run = 0;
			doubles += i > 0 && s.p[i - 1] == ':';
			if (i > 1 && s.p[i - 1] == ':' && s.p[i - 2] == ':')
				return false;
		} else if (s.p[i] == '.') {
			run = 0; /* the dotted IPv4 tail of "::ffff:192.0.2.1" */
		} else if (!is_hex(s.p[i]) || ++run > 4) {
			return false;
		}
	}
	if (doubles > 1)
		return false;
	if (!complete)
		return true;
	return colons >= 2 && ipaddr_parse(s.p, s.n, &a) == 0;
}

/* Decimal 0-65535 without leading zeros, or a beginning of that. */
static bool port_ok(struct h1_slice s, bool complete, uint16_t *port)
{
	unsigned long v = 0;
	size_t i;

	if (s.n > 5 || (s.n > 1 && s.p[0] == '0') || (complete && s.n == 0))
		return false;
	for (i = 0; i < s.n; i++) {
		if (!is_digit(s.p[i]))
			return false;
		v = v * 10 + (unsigned long)(s.p[i] - '0');
	}
	if (v > 65535)
		return false;
	*port = (uint16_t)v;
	return true;
}

/* Field k of a v1 line; f[1] is complete and TCP4 or TCP6 when k >= 2. */
static bool v1_field_ok(const struct h1_slice *f, size_t k, bool complete)
{
	uint16_t port;

	switch (k) {
	case 0:
		return lit_ok(f[0], "PROXY", complete);
	case 1:
		return lit_ok(f[1], "TCP4", complete) || lit_ok(f[1], "TCP6", complete) ||
		       lit_ok(f[1], "UNKNOWN", complete);
	case 2:
	case 3:
		return f[1].p[3] == '4' ? v1_v4_ok(f[k], complete) : v1_v6_ok(f[k], complete);
	default:
		return port_ok(f[k], complete, &port);
	}
}

/*
 * After "PROXY UNKNOWN" the spec lets the sender put anything before the
 * CRLF and the receiver ignore it; moat ignores it only if it is printable
 * ASCII. rest is empty or starts with the space that ended "UNKNOWN".
 */
static int v1_unknown(const char *rest, size_t n, bool whole, struct proxyhdr *h)
{
	size_t i;

	for (i = 0; i < n; i++)
		if (rest[i] < 0x20 || rest[i] > 0x7e)
			return MOAT_EPROTO;
	h->has_src = false;
	return whole ? 0 : MOAT_EAGAIN;
}

/* The fields were checked one by one already; inet_pton has the last word
 * on the address all the same. */
static int v1_fill(const struct h1_slice *f, struct proxyhdr *h)
{
	if (ipaddr_parse(f[2].p, f[2].n, &h->src) != 0 || !port_ok(f[4], true, &h->src_port))
		return MOAT_EPROTO;
	h->has_src = true;
	return 0;
}

/*
 * s[0..n) is a whole line without its CRLF (whole), or all the bytes of a
 * line received so far (!whole: its last field may be cut short). Fields
 * are split at single spaces and each is checked as soon as it is known, so
 * a wrong beginning is refused at once.
 */
static int v1_line(const char *s, size_t n, bool whole, struct proxyhdr *h)
{
	struct h1_slice f[V1_FIELDS];
	size_t nf = 0, start = 0, i;

	for (i = 0; i <= n; i++) {
		if (i < n && s[i] != ' ')
			continue;
		if (nf == V1_FIELDS)
			return MOAT_EPROTO;
		f[nf].p = s + start;
		f[nf].n = i - start;
		if (!v1_field_ok(f, nf, whole || i < n))
			return MOAT_EPROTO;
		nf++;
		if (nf == 2 && lit_ok(f[1], "UNKNOWN", true))
			return v1_unknown(s + i, n - i, whole, h);
		start = i + 1;
	}
	if (!whole)
		return MOAT_EAGAIN;
	if (nf != V1_FIELDS)
		return MOAT_EPROTO;
	return v1_fill(f, h);
}

static int parse_v1(const uint8_t *buf, size_t n, struct proxyhdr *h)
{
	const char *s = (const char *)buf;
	size_t lim = n < PROXYHDR_V1_MAX ? n : PROXYHDR_V1_MAX, end;
	const char *lf = memchr(s, '\n', lim);
	int rc;

	if (lf != NULL) {
		end = (size_t)(lf - s);
		if (end == 0 || s[end - 1] != '\r')
			return MOAT_EPROTO;
		rc = v1_line(s, end - 1, true, h);
		if (rc == 0)
			h->len = end + 1;
		return rc;
	}
	if (n >= PROXYHDR_V1_MAX)
		return MOAT_EPROTO;
	/* a CR may only be the first half of the CRLF still to come */
	if (s[n - 1] == '\r')
		return v1_line(s, n - 1, true, h) == 0 ? MOAT_EAGAIN : MOAT_EPROTO;
	return v1_line(s, n, false, h);
}

int proxyhdr_parse(const uint8_t *buf, size_t n, struct proxyhdr *out)
{
	struct proxyhdr h;
	size_t k = n < sizeof(v2_sig) ? n : sizeof(v2_sig);
	int rc;

	memset(&h, 0, sizeof(h));
	if (n == 0)
		return MOAT_EAGAIN;
	if (memcmp(buf, v2_sig, k) == 0)
		rc = parse_v2(buf, n, &h);
	else if (buf[0] == 'P')
		rc = parse_v1(buf, n, &h);
	else
		rc = MOAT_EPROTO;
	if (rc == 0)
		*out = h;
	return rc;
}

/* ---- X-Forwarded-For and Forwarded ---------------------------------- */

/*
 * At most this many hops are examined per request. No real chain of
 * proxies a site trusts is that long; when a walk gets there, the client is
 * the last (trusted) address examined, as when a hop is not an address.
 */
#define MAX_HOPS 32
#define HOP_TEXT 64 /* longest for= value kept: "[v6]:port" with room */

struct walk {
	const struct cidr *trusted;
	size_t ntrusted;
	enum clientip_header which;
	struct ipaddr cur; /* the last address examined */
	unsigned hops;     /* hops examined so far */
	bool done;
};

static bool is_ows(char c)
{
	return c == ' ' || c == '\t';
}

static struct h1_slice trim(const char *p, size_t n)
{
	struct h1_slice s = { p, n };

	while (s.n > 0 && is_ows(s.p[0])) {
		s.p++;
		s.n--;
	}
	while (s.n > 0 && is_ows(s.p[s.n - 1]))
		s.n--;
	return s;
}

/*
 * The next comma-separated element of v from *pos, trimmed. With quotes, a
 * comma inside a quoted-string does not separate (Forwarded); an
 * unterminated quote runs to the end and makes that element malformed.
 * Returns false when the list is exhausted.
 */
static bool next_element(struct h1_slice v, size_t *pos, bool quotes, struct h1_slice *e)
{
	size_t i = *pos, end;
	bool inq = false;

	if (i > v.n)
		return false;
	for (; i < v.n; i++) {
		if (inq && v.p[i] == '\\')
			i++;
		else if (quotes && v.p[i] == '"')
			inq = !inq;
		else if (!inq && v.p[i] == ',')
			break;
	}
	end = i < v.n ? i : v.n;
	*e = trim(v.p + *pos, end - *pos);
	*pos = end + 1;
	return true;
}

/* A port after "addr:": 1-5 digits up to 65535, or with obf an obfuscated
 * "_x" port (RFC 7239 6.3). */
static bool hop_port_ok(const char *s, size_t n, bool obf)
{
	unsigned long v = 0;
	size_t i;

	if (obf && n >= 2 && s[0] == '_') {
		for (i = 1; i < n; i++)
			if (!is_alnum(s[i]) && s[i] != '.' && s[i] != '_' && s[i] != '-')
				return false;
		return true;
	}
	if (n == 0 || n > 5)
		return false;
	for (i = 0; i < n; i++) {
		if (!is_digit(s[i]))
			return false;
		v = v * 10 + (unsigned long)(s[i] - '0');
	}
	return v <= 65535;
}

/* "192.0.2.1", "192.0.2.1:80", "[2001:db8::1]" or "[2001:db8::1]:80". */
static int host_port(const char *s, size_t n, bool obf, struct ipaddr *a)
{
	const char *stop;
	size_t alen = n;

	if (n > 0 && s[0] == '[') {
		stop = memchr(s, ']', n);
		if (stop == NULL)
			return MOAT_EINVAL;
		alen = (size_t)(stop - s) + 1;
	} else {
		stop = memchr(s, ':', n);
		if (stop != NULL)
			alen = (size_t)(stop - s);
	}
	if (alen < n && (s[alen] != ':' || !hop_port_ok(s + alen + 1, n - alen - 1, obf)))
		return MOAT_EINVAL;
	return ipaddr_parse(s, alen, a);
}

/* An X-Forwarded-For hop: as host_port, or a bare IPv6 address (two or
 * more colons and no brackets: no port can be told apart then). */
static int xff_addr(struct h1_slice e, struct ipaddr *a)
{
	const char *colon = memchr(e.p, ':', e.n);

	if (e.n > 0 && e.p[0] != '[' && colon != NULL &&
	    memchr(colon + 1, ':', e.n - (size_t)(colon + 1 - e.p)) != NULL)
		return ipaddr_parse(e.p, e.n, a);
	return host_port(e.p, e.n, false, a);
}

/* RFC 9110 5.6.2 tchar */
static bool is_tchar(char c)
{
	return is_alnum(c) || (c != '\0' && strchr("!#$%&'*+-.^_`|~", c) != NULL);
}

struct cursor {
	const char *p;
	size_t n, i;
};

static void skip_ows(struct cursor *c)
{
	while (c->i < c->n && is_ows(c->p[c->i]))
		c->i++;
}

/* Append ch to buf[0..cap) unless buf is NULL (a value only checked). */
static bool put(char *buf, size_t cap, size_t *o, char ch)
{
	if (buf == NULL)
		return true;
	if (*o == cap)
		return false;
	buf[(*o)++] = ch;
	return true;
}

/* token / quoted-string at the cursor, unquoted into buf when not NULL. */
static int take_value(struct cursor *c, char *buf, size_t cap, size_t *len)
{
	size_t o = 0, start = c->i;
	char ch;

	if (c->i < c->n && c->p[c->i] == '"') {
		for (c->i++; c->i < c->n; c->i++) {
			ch = c->p[c->i];
			if (ch == '"')
				break;
			if (ch == '\\' && ++c->i == c->n)
				return MOAT_EINVAL;
			if (!put(buf, cap, &o, c->p[c->i]))
				return MOAT_EINVAL;
		}
		if (c->i == c->n)
			return MOAT_EINVAL; /* unterminated */
		c->i++;
	} else {
		while (c->i < c->n && is_tchar(c->p[c->i]))
			if (!put(buf, cap, &o, c->p[c->i++]))
				return MOAT_EINVAL;
		if (c->i == start)
			return MOAT_EINVAL;
	}
	*len = o;
	return 0;
}

/*
 * The for= value of one forwarded-element (pairs separated by ';', spaces
 * tolerated around them), unquoted into buf[0..cap). MOAT_EINVAL when the
 * element is malformed or has no for= or two.
 */
static int fwd_for(struct h1_slice e, char *buf, size_t cap, size_t *len)
{
	struct cursor c = { e.p, e.n, 0 };
	struct h1_slice name;
	bool found = false, is_for;
	size_t vlen;

	for (;;) {
		skip_ows(&c);
		if (c.i < c.n && c.p[c.i] != ';') {
			name.p = c.p + c.i;
			while (c.i < c.n && is_tchar(c.p[c.i]))
				c.i++;
			name.n = (size_t)(c.p + c.i - name.p);
			if (name.n == 0 || c.i == c.n || c.p[c.i] != '=')
				return MOAT_EINVAL;
			c.i++;
			is_for = h1_slice_ieq(name, "for");
			if ((is_for && found) ||
			    take_value(&c, is_for ? buf : NULL, cap, &vlen) != 0)
				return MOAT_EINVAL;
			if (is_for) {
				found = true;
				*len = vlen;
			}
			skip_ows(&c);
		}
		if (c.i == c.n)
			break;
		if (c.p[c.i] != ';')
			return MOAT_EINVAL;
		c.i++;
	}
	return found ? 0 : MOAT_EINVAL;
}

static int hop_addr(struct h1_slice e, enum clientip_header which, struct ipaddr *a)
{
	char buf[HOP_TEXT];
	size_t len = 0;

	if (which == CLIENTIP_XFF)
		return xff_addr(e, a);
	if (fwd_for(e, buf, sizeof(buf), &len) != 0)
		return MOAT_EINVAL;
	return host_port(buf, len, true, a);
}

/* One hop, right to left: an address the walk trusts lets it go on. */
static void step(struct walk *w, struct h1_slice e)
{
	struct ipaddr a;

	w->hops++;
	if (hop_addr(e, w->which, &a) != 0) {
		w->done = true;
		return;
	}
	w->cur = a;
	if (!cidr_list_contains(w->trusted, w->ntrusted, &a))
		w->done = true;
}

/*
 * One header instance. Quoted strings can only be told apart left to
 * right, so the elements are found that way into a ring that keeps the
 * last MAX_HOPS of them: the walk never needs more (it stops at MAX_HOPS).
 * Empty elements are ignored (RFC 9110 5.6.1).
 */
static void walk_value(struct walk *w, struct h1_slice v)
{
	struct h1_slice ring[MAX_HOPS], e;
	size_t count = 0, pos = 0, k;

	while (next_element(v, &pos, w->which == CLIENTIP_FORWARDED, &e)) {
		if (e.n == 0)
			continue;
		ring[count % MAX_HOPS] = e;
		count++;
	}
	for (k = count; k > 0 && !w->done; k--) {
		if (w->hops == MAX_HOPS) {
			w->done = true;
			break;
		}
		step(w, ring[(k - 1) % MAX_HOPS]);
	}
}

struct ipaddr clientip_resolve(const struct h1_msg *m, enum clientip_header which,
			       const struct cidr *trusted, size_t ntrusted,
			       const struct ipaddr *peer)
{
	const char *name = which == CLIENTIP_FORWARDED ? "forwarded" : "x-forwarded-for";
	struct walk w = { trusted, ntrusted, which, *peer, 0, false };
	unsigned i;

	if (!cidr_list_contains(trusted, ntrusted, peer))
		return *peer;
	for (i = m->nheaders; i > 0 && !w.done; i--)
		if (h1_slice_ieq(m->headers[i - 1].name, name))
			walk_value(&w, m->headers[i - 1].value);
	return w.cur;
}
