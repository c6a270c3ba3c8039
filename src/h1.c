/*
 * h1.c - strict HTTP/1.1 head parser and chunked decoder; see h1.h and
 * docs/internals/h1.md for the rules and why each one exists.
 *
 * The head parser is stateless: it re-parses from the first byte on every
 * call, which max_head bounds, so there is no state a slow client can use to
 * make us keep more than the bytes it sent. Every slice points into the
 * caller's buffer.
 */
#include "h1.h"

#include <string.h>

#include "uri.h"
#include "util.h"

/* RFC 9112 2.2: ignore "at least one" empty line before a request line. */
#define MAX_LEADING_EMPTY 4
#define MAX_METHOD 32
/* A canonical host is at most 253 bytes; IP literals are bounded by this too. */
#define HOST_BUF 320

/* RFC 9110 5.6.2: tchar, as a table (header names are scanned per byte) */
static bool is_tchar(unsigned char c)
{
	static const unsigned char t[256] = {
		['!'] = 1, ['#'] = 1, ['$'] = 1, ['%'] = 1, ['&'] = 1, ['\''] = 1, ['*'] = 1,
		['+'] = 1, ['-'] = 1, ['.'] = 1, ['^'] = 1, ['_'] = 1, ['`'] = 1, ['|'] = 1,
		['~'] = 1,
		['0'] = 1, ['1'] = 1, ['2'] = 1, ['3'] = 1, ['4'] = 1, ['5'] = 1, ['6'] = 1,
		['7'] = 1, ['8'] = 1, ['9'] = 1,
		['A'] = 1, ['B'] = 1, ['C'] = 1, ['D'] = 1, ['E'] = 1, ['F'] = 1, ['G'] = 1,
		['H'] = 1, ['I'] = 1, ['J'] = 1, ['K'] = 1, ['L'] = 1, ['M'] = 1, ['N'] = 1,
		['O'] = 1, ['P'] = 1, ['Q'] = 1, ['R'] = 1, ['S'] = 1, ['T'] = 1, ['U'] = 1,
		['V'] = 1, ['W'] = 1, ['X'] = 1, ['Y'] = 1, ['Z'] = 1,
		['a'] = 1, ['b'] = 1, ['c'] = 1, ['d'] = 1, ['e'] = 1, ['f'] = 1, ['g'] = 1,
		['h'] = 1, ['i'] = 1, ['j'] = 1, ['k'] = 1, ['l'] = 1, ['m'] = 1, ['n'] = 1,
		['o'] = 1, ['p'] = 1, ['q'] = 1, ['r'] = 1, ['s'] = 1, ['t'] = 1, ['u'] = 1,
		['v'] = 1, ['w'] = 1, ['x'] = 1, ['y'] = 1, ['z'] = 1,
	};

	return t[c] != 0;
}

static bool is_digit(unsigned char c)
{
	return c >= '0' && c <= '9';
}

static bool is_ows(unsigned char c)
{
	return c == ' ' || c == '\t';
}

/* field-vchar / SP / HTAB (RFC 9110 5.5), also used for the reason phrase. */
static bool is_value_byte(unsigned char c)
{
	return c == '\t' || (c >= 0x20 && c != 0x7f);
}

static unsigned char lower(unsigned char c)
{
	return (c >= 'A' && c <= 'Z') ? (unsigned char)(c + 32) : c;
}

/* Record why a rule was broken and return its code. */
static int fail(const char **why, const char *reason, int rc)
{
	*why = reason;
	return rc;
}

static struct h1_slice trim(struct h1_slice s)
{
	while (s.n > 0 && is_ows((unsigned char)s.p[0])) {
		s.p++;
		s.n--;
	}
	while (s.n > 0 && is_ows((unsigned char)s.p[s.n - 1]))
		s.n--;
	return s;
}

static bool slice_ieq(struct h1_slice a, struct h1_slice b)
{
	size_t i;

	if (a.n != b.n)
		return false;
	for (i = 0; i < a.n; i++) {
		if (lower((unsigned char)a.p[i]) != lower((unsigned char)b.p[i]))
			return false;
	}
	return true;
}

bool h1_slice_ieq_n(struct h1_slice s, const char *lower_name, size_t n)
{
	return slice_ieq(s, (struct h1_slice){ lower_name, n });
}

/*
 * Next comma-separated element of *list, trimmed of OWS; empty elements are
 * skipped (used for Connection, which RFC 9110 5.6.1 lets be sloppy).
 */
static bool next_element(struct h1_slice *list, struct h1_slice *elem)
{
	while (list->n > 0) {
		const char *comma = memchr(list->p, ',', list->n);
		size_t n = comma ? (size_t)(comma - list->p) : list->n;

		elem->p = list->p;
		elem->n = n;
		list->p += comma ? n + 1 : n;
		list->n -= comma ? n + 1 : n;
		*elem = trim(*elem);
		if (elem->n > 0)
			return true;
	}
	return false;
}

/*
 * Take one CRLF-terminated line starting at *pos, looking no further than lim.
 * Every byte is checked even when the line is incomplete, so a client that
 * sends a bare LF, bare CR, NUL or another control is refused at once. This is
 * the one place that enforces the byte rules of field values and the reason
 * phrase (HTAB, SP, VCHAR, obs-text): nothing else can reach them.
 * Returns 0 with *line set (without CRLF), MOAT_EAGAIN, or MOAT_EPROTO.
 */
static int take_line(const char *b, size_t lim, size_t *pos, struct h1_slice *line,
		     const char **why)
{
	/* 1 for every byte that needs a closer look: controls (CR, LF, NUL
	 * and the rest, but not HTAB) and DEL */
	static const unsigned char special[256] = {
		[0] = 1, [1] = 1, [2] = 1, [3] = 1, [4] = 1, [5] = 1, [6] = 1, [7] = 1,
		[8] = 1, [10] = 1, [11] = 1, [12] = 1, [13] = 1, [14] = 1, [15] = 1,
		[16] = 1, [17] = 1, [18] = 1, [19] = 1, [20] = 1, [21] = 1, [22] = 1, [23] = 1,
		[24] = 1, [25] = 1, [26] = 1, [27] = 1, [28] = 1, [29] = 1, [30] = 1, [31] = 1,
		[127] = 1,
	};
	size_t i;

	for (i = *pos; i < lim; i++) {
		unsigned char c = (unsigned char)b[i];

		if (!special[c])
			continue;
		if (c == '\r') {
			if (i + 1 == lim)
				return MOAT_EAGAIN;
			if (b[i + 1] != '\n')
				return fail(why, "bare CR", MOAT_EPROTO);
			line->p = b + *pos;
			line->n = i - *pos;
			*pos = i + 2;
			return 0;
		}
		if (c == '\n')
			return fail(why, "bare LF", MOAT_EPROTO);
		if (c == '\0')
			return fail(why, "NUL byte in head", MOAT_EPROTO);
		if ((c < 0x20 && c != '\t') || c == 0x7f)
			return fail(why, "control byte in head", MOAT_EPROTO);
	}
	return MOAT_EAGAIN;
}

/*
 * HTTP-version = "HTTP/" DIGIT "." DIGIT. Only 1.0 and 1.1 are spoken; a
 * well-formed other version gets 505, anything else is garbage (400).
 */
static int parse_version(struct h1_slice v, int *minor, const char **why)
{
	if (v.n == 8 && memcmp(v.p, "HTTP/1.", 7) == 0 && (v.p[7] == '0' || v.p[7] == '1')) {
		*minor = v.p[7] - '0';
		return 0;
	}
	if (v.n == 8 && memcmp(v.p, "HTTP/", 5) == 0 && is_digit((unsigned char)v.p[5]) &&
	    v.p[6] == '.' && is_digit((unsigned char)v.p[7]))
		return fail(why, "unsupported HTTP version", MOAT_EVERSION);
	return fail(why, "malformed HTTP version", MOAT_EPROTO);
}

static enum h1_method method_id(struct h1_slice s)
{
	static const struct {
		const char *name;
		enum h1_method m;
	} tab[] = {
		{ "GET", H1_M_GET },         { "HEAD", H1_M_HEAD },   { "POST", H1_M_POST },
		{ "PUT", H1_M_PUT },         { "DELETE", H1_M_DELETE }, { "OPTIONS", H1_M_OPTIONS },
		{ "PATCH", H1_M_PATCH },     { "TRACE", H1_M_TRACE }, { "CONNECT", H1_M_CONNECT },
	};
	size_t i;

	/* Methods are case-sensitive (RFC 9110 9.1): "get" is not GET. */
	for (i = 0; i < sizeof(tab) / sizeof(tab[0]); i++) {
		if (strlen(tab[i].name) == s.n && memcmp(tab[i].name, s.p, s.n) == 0)
			return tab[i].m;
	}
	return H1_M_OTHER;
}

static bool has_iprefix(struct h1_slice s, const char *lower_prefix)
{
	size_t n = strlen(lower_prefix);

	return s.n >= n && h1_slice_ieq((struct h1_slice){ s.p, n }, lower_prefix);
}

/* Split the request-target into its form; sets path, authority and flags. */
static int parse_target(struct h1_msg *m)
{
	struct h1_slice t = m->target;
	size_t skip, k;

	if (t.p[0] == '/') {
		m->path = t;
		return 0;
	}
	if (t.n == 1 && t.p[0] == '*') {
		if (m->m != H1_M_OPTIONS)
			return fail(&m->why, "asterisk-form without OPTIONS", MOAT_EPROTO);
		m->flags |= H1_F_ASTERISK_FORM;
		m->path = t;
		return 0;
	}
	if (has_iprefix(t, "http://"))
		skip = 7;
	else if (has_iprefix(t, "https://"))
		skip = 8;
	else
		return fail(&m->why, "bad request-target form", MOAT_EPROTO);
	for (k = skip; k < t.n && t.p[k] != '/' && t.p[k] != '?'; k++)
		;
	m->authority = (struct h1_slice){ t.p + skip, k - skip };
	if (m->authority.n == 0)
		return fail(&m->why, "empty authority in absolute-form", MOAT_EPROTO);
	if (memchr(m->authority.p, '@', m->authority.n) != NULL)
		return fail(&m->why, "userinfo in absolute-form", MOAT_EPROTO);
	/*
	 * "http://h?q" is legal but has no path byte for m->path to point at;
	 * nobody sends it, and refusing it keeps "path starts with /" true.
	 */
	if (k < t.n && t.p[k] == '?')
		return fail(&m->why, "absolute-form with query but no path", MOAT_EPROTO);
	if (k == t.n)
		m->path = (struct h1_slice){ "/", 1 };
	else
		m->path = (struct h1_slice){ t.p + k, t.n - k };
	m->flags |= H1_F_ABSOLUTE_FORM;
	return 0;
}

/* request-line = method SP request-target SP HTTP-version */
static int parse_request_line(struct h1_slice line, struct h1_msg *m)
{
	const char *p = line.p;
	size_t i = 0, t, j;
	int rc;

	while (i < line.n && is_tchar((unsigned char)p[i]))
		i++;
	if (i == 0 || i == line.n || p[i] != ' ')
		return fail(&m->why, "malformed method", MOAT_EPROTO);
	if (i > MAX_METHOD)
		return fail(&m->why, "method too long", MOAT_EPROTO);
	m->method = (struct h1_slice){ p, i };
	t = i + 1;
	for (j = t; j < line.n && p[j] != ' '; j++) {
		unsigned char c = (unsigned char)p[j];

		if (c < 0x21 || c > 0x7e)
			return fail(&m->why, "bad byte in request-target", MOAT_EPROTO);
		if (c == '#')
			return fail(&m->why, "fragment in request-target", MOAT_EPROTO);
	}
	if (j == t)
		return fail(&m->why, "empty request-target", MOAT_EPROTO);
	if (j == line.n)
		return fail(&m->why, "missing HTTP version", MOAT_EPROTO);
	m->target = (struct h1_slice){ p + t, j - t };
	rc = parse_version((struct h1_slice){ p + j + 1, line.n - j - 1 }, &m->minor, &m->why);
	if (rc < 0)
		return rc;
	m->m = method_id(m->method);
	if (m->m == H1_M_CONNECT)
		return fail(&m->why, "CONNECT not supported", MOAT_EUNSUP);
	return parse_target(m);
}

/* status-line = HTTP-version SP status-code SP [ reason-phrase ] */
static int parse_status_line(struct h1_slice line, struct h1_msg *m)
{
	const char *p = line.p;
	int rc;

	if (line.n < 12 || p[8] != ' ') {
		/* Still tell a well-formed other version (HTTP/2.0) from garbage. */
		rc = parse_version((struct h1_slice){ p, line.n < 8 ? line.n : 8 }, &m->minor, &m->why);
		if (rc == 0 || line.n < 8) {
			m->why = "malformed status line";
			rc = MOAT_EPROTO;
		}
		return rc;
	}
	rc = parse_version((struct h1_slice){ p, 8 }, &m->minor, &m->why);
	if (rc < 0)
		return rc;
	if (!is_digit((unsigned char)p[9]) || !is_digit((unsigned char)p[10]) ||
	    !is_digit((unsigned char)p[11]) || p[9] == '0')
		return fail(&m->why, "malformed status code", MOAT_EPROTO);
	m->status = (p[9] - '0') * 100 + (p[10] - '0') * 10 + (p[11] - '0');
	if (line.n == 12)
		return 0;
	if (p[12] != ' ')
		return fail(&m->why, "malformed status line", MOAT_EPROTO);
	/* take_line already refused the controls reason-phrase excludes. */
	m->reason = (struct h1_slice){ p + 13, line.n - 13 };
	return 0;
}

/* What the header lines told us, for the checks that need all of them. */
struct seen {
	unsigned host, cl, te, upgrade;
	bool conn_close, conn_keepalive, conn_upgrade;
	bool expect_continue, expect_other;
	int te_rc;          /* 0 = chunked, MOAT_EUNSUP = coding we do not do */
	const char *te_why;
};

/*
 * Content-Length = 1*DIGIT. Lists ("5, 5"), signs, hex and tabs are refused
 * rather than reconciled: two parsers reading one value two ways is how
 * requests get smuggled. 18 digits always fit in a uint64_t.
 */
static int parse_cl(struct h1_slice raw, struct h1_slice v, uint64_t *out, const char **why)
{
	uint64_t n = 0;
	size_t i;

	if (memchr(raw.p, '\t', raw.n) != NULL)
		return fail(why, "HTAB in Content-Length", MOAT_EPROTO);
	if (v.n == 0 || v.n > 18)
		return fail(why, "bad Content-Length length", MOAT_EPROTO);
	for (i = 0; i < v.n; i++) {
		if (!is_digit((unsigned char)v.p[i]))
			return fail(why, "Content-Length is not digits", MOAT_EPROTO);
		n = n * 10 + (uint64_t)(v.p[i] - '0');
	}
	*out = n;
	return 0;
}

static bool is_known_coding(struct h1_slice e)
{
	static const char *const known[] = {
		"chunked", "gzip", "x-gzip", "deflate", "compress", "x-compress",
	};
	size_t i;

	for (i = 0; i < sizeof(known) / sizeof(known[0]); i++) {
		if (h1_slice_ieq(e, known[i]))
			return true;
	}
	return false;
}

/*
 * Transfer-Encoding syntax: a list of tokens separated by "," and SP, no
 * empty elements. HTAB and bytes like 0xa0 are refused because other parsers
 * strip them and would see "chunked" where we see something else.
 */
static int te_syntax(struct h1_slice raw, struct h1_slice v, const char **why)
{
	unsigned char prev = ','; /* as if the list began after a comma */
	bool gap = false;
	size_t i;

	if (memchr(raw.p, '\t', raw.n) != NULL)
		return fail(why, "HTAB in Transfer-Encoding", MOAT_EPROTO);
	for (i = 0; i < v.n; i++) {
		unsigned char c = (unsigned char)v.p[i];

		if (c == ' ') {
			gap = true;
			continue;
		}
		if (!is_tchar(c) && c != ',')
			return fail(why, "bad byte in Transfer-Encoding", MOAT_EPROTO);
		/* ",," is an empty element; "a b" is two tokens with no comma. */
		if (c == ',' ? prev == ',' : (gap && prev != ','))
			return fail(why, "empty or malformed Transfer-Encoding element", MOAT_EPROTO);
		prev = c;
		gap = false;
	}
	if (prev == ',')
		return fail(why, "empty or malformed Transfer-Encoding element", MOAT_EPROTO);
	return 0;
}

/*
 * Transfer-Encoding meaning, once te_syntax passed. Returns 0 for exactly
 * "chunked", MOAT_EUNSUP for codings we do not implement, MOAT_EPROTO when
 * chunked is there but not once and last, or when only known codings are
 * listed without chunked: RFC 9112 6.3 says such a request cannot be framed,
 * and that outranks "unknown coding" ("chunked, identity" is a 400).
 */
static int te_classify(struct h1_slice v, const char **why)
{
	struct h1_slice list = v, e;
	unsigned nchunked = 0;
	bool unknown = false, chunked_last = false;

	if (h1_slice_ieq(v, "chunked"))
		return 0;
	while (next_element(&list, &e)) {
		chunked_last = h1_slice_ieq(e, "chunked");
		if (chunked_last)
			nchunked++;
		if (!is_known_coding(e))
			unknown = true;
	}
	if (nchunked > 0 && (nchunked != 1 || !chunked_last))
		return fail(why, "chunked is not the final transfer coding", MOAT_EPROTO);
	if (unknown)
		return fail(why, "unknown transfer coding", MOAT_EUNSUP);
	if (nchunked == 0)
		return fail(why, "chunked is not the final transfer coding", MOAT_EPROTO);
	return fail(why, "transfer coding other than chunked", MOAT_EUNSUP);
}

static void note_connection(struct h1_msg *m, struct h1_slice v, struct seen *s)
{
	struct h1_slice e;

	while (next_element(&v, &e)) {
		if (h1_slice_ieq(e, "keep-alive")) {
			s->conn_keepalive = true;
			continue;
		}
		if (h1_slice_ieq(e, "upgrade")) {
			s->conn_upgrade = true;
			continue;
		}
		if (h1_slice_ieq(e, "close"))
			s->conn_close = true;
		/* names a field that is not hop-by-hop anyway */
		m->conn_names = true;
	}
}

/* Per-field semantics; everything that can be refused early is refused here. */
static int note_field(struct h1_msg *m, struct seen *s, struct h1_slice name,
		      struct h1_slice raw, struct h1_slice v, bool is_req)
{
	int rc = 0;

	if (h1_slice_ieq(name, "host")) {
		if (is_req && ++s->host > 1)
			return fail(&m->why, "duplicate Host", MOAT_EPROTO);
		m->host = v;
	} else if (h1_slice_ieq(name, "content-length")) {
		if (++s->cl > 1)
			return fail(&m->why, "duplicate Content-Length", MOAT_EPROTO);
		rc = parse_cl(raw, v, &m->content_length, &m->why);
	} else if (h1_slice_ieq(name, "transfer-encoding")) {
		if (++s->te > 1)
			return fail(&m->why, "duplicate Transfer-Encoding", MOAT_EPROTO);
		if (m->minor == 0)
			return fail(&m->why, "Transfer-Encoding on HTTP/1.0", MOAT_EPROTO);
		rc = te_syntax(raw, v, &m->why);
		if (rc < 0)
			return rc;
		rc = te_classify(v, &s->te_why);
		if (rc == MOAT_EUNSUP || (rc < 0 && !is_req)) {
			/*
			 * Report 501 only if nothing else makes it a 400. A
			 * response we cannot frame is one we cannot relay,
			 * whatever the reason (and only if it has a body).
			 */
			if (rc != MOAT_EUNSUP)
				s->te_why = "transfer coding other than chunked";
			s->te_rc = MOAT_EUNSUP;
			rc = 0;
		} else if (rc < 0) {
			m->why = s->te_why;
		}
	} else if (h1_slice_ieq(name, "connection")) {
		note_connection(m, v, s);
	} else if (h1_slice_ieq(name, "upgrade")) {
		/* Two Upgrade fields would leave it unclear what we tunnel to. */
		if (++s->upgrade > 1)
			return fail(&m->why, "duplicate Upgrade", MOAT_EPROTO);
		m->upgrade = v;
	} else if (is_req && h1_slice_ieq(name, "expect")) {
		if (h1_slice_ieq(v, "100-continue"))
			s->expect_continue = true;
		else
			s->expect_other = true;
	}
	if (rc == 0 && s->te > 0 && s->cl > 0)
		return fail(&m->why, "Transfer-Encoding with Content-Length", MOAT_EPROTO);
	return rc;
}

/* field-line = field-name ":" OWS field-value OWS */
static int parse_field(struct h1_slice line, struct h1_msg *m, struct seen *s, bool is_req)
{
	const char *p = line.p;
	struct h1_slice raw, v;
	size_t i = 0;

	if (is_ows((unsigned char)p[0]))
		return fail(&m->why, "obs-fold or leading whitespace", MOAT_EPROTO);
	while (i < line.n && is_tchar((unsigned char)p[i]))
		i++;
	if (i == line.n || p[i] != ':') {
		bool ws_colon;

		/* Name the rule request smugglers probe for ("Name : v"). */
		while (i < line.n && is_ows((unsigned char)p[i]))
			i++;
		ws_colon = i < line.n && p[i] == ':' && is_ows((unsigned char)p[i - 1]);
		return fail(&m->why, ws_colon ? "whitespace before colon" : "malformed header name",
			    MOAT_EPROTO);
	}
	if (i == 0)
		return fail(&m->why, "empty header name", MOAT_EPROTO);
	/* take_line already refused every byte a field value may not hold. */
	raw = (struct h1_slice){ p + i + 1, line.n - i - 1 };
	v = trim(raw);
	if (m->nheaders == H1_MAX_HEADERS)
		return fail(&m->why, "too many headers", MOAT_ETOOBIG);
	m->headers[m->nheaders].name = (struct h1_slice){ p, (size_t)(raw.p - 1 - p) };
	m->headers[m->nheaders].value = v;
	m->nheaders++;
	return note_field(m, s, m->headers[m->nheaders - 1].name, raw, v, is_req);
}

/* Host rules (RFC 9112 3.2): one Host, and it must agree with the target. */
static int check_host(struct h1_msg *m, const struct seen *s)
{
	char host[HOST_BUF], auth[HOST_BUF];
	int hport = 0, aport = 0;

	if (m->minor == 1 && s->host == 0)
		return fail(&m->why, "missing Host", MOAT_EPROTO);
	if (s->host == 1 && uri_canon_host(m->host.p, m->host.n, host, sizeof(host), &hport) < 0)
		return fail(&m->why, "bad Host", MOAT_EPROTO);
	if (!(m->flags & H1_F_ABSOLUTE_FORM))
		return 0;
	if (uri_canon_host(m->authority.p, m->authority.n, auth, sizeof(auth), &aport) < 0)
		return fail(&m->why, "bad authority in absolute-form", MOAT_EPROTO);
	if (s->host == 1 && (hport != aport || strcmp(host, auth) != 0))
		return fail(&m->why, "absolute-form authority differs from Host", MOAT_EPROTO);
	return 0;
}

static int finish_request(struct h1_msg *m, const struct seen *s)
{
	int rc;

	rc = check_host(m, s);
	if (rc < 0)
		goto out;
	if (s->te_rc < 0) {
		m->why = s->te_why;
		rc = s->te_rc;
		goto out;
	}
	if (s->te > 0)
		m->framing = H1_BODY_CHUNKED;
	else if (s->cl > 0)
		m->framing = H1_BODY_LENGTH;
	if (s->conn_close || (m->minor == 0 && !s->conn_keepalive))
		m->flags |= H1_F_CLOSE;
	if (s->conn_upgrade && s->upgrade > 0)
		m->flags |= H1_F_UPGRADE;
	/* RFC 9110 10.1.1: 100-continue in an HTTP/1.0 request is ignored. */
	if (s->expect_continue && m->minor == 1)
		m->flags |= H1_F_EXPECT_CONTINUE;
	if (s->expect_other)
		m->flags |= H1_F_EXPECT_OTHER;
out:
	return rc;
}

/* Response framing, RFC 9112 6.3 in order. */
static int finish_response(struct h1_msg *m, const struct seen *s, enum h1_method req_method)
{
	int rc = 0;

	if (s->conn_close || (m->minor == 0 && !s->conn_keepalive))
		m->flags |= H1_F_CLOSE;
	if (m->status == 101)
		m->flags |= H1_F_UPGRADE;
	if (req_method == H1_M_HEAD || m->status < 200 || m->status == 204 || m->status == 304) {
		/* No body follows, so a coding we do not implement is harmless. */
		m->framing = H1_BODY_NONE;
	} else if (s->te > 0) {
		if (s->te_rc < 0) {
			m->why = s->te_why;
			rc = s->te_rc;
			goto out;
		}
		m->framing = H1_BODY_CHUNKED;
	} else if (s->cl > 0) {
		m->framing = H1_BODY_LENGTH;
	} else {
		m->framing = H1_BODY_UNTIL_CLOSE;
		m->flags |= H1_F_CLOSE;
	}
out:
	return rc;
}

static int parse_head(const char *buf, size_t len, size_t max_head, bool is_req,
		      enum h1_method req_method, struct h1_msg *m)
{
	struct seen s;
	struct h1_slice line;
	size_t lim = len < max_head ? len : max_head;
	size_t pos = 0;
	unsigned nempty = 0;
	bool have_start = false;
	int rc;

	memset(m, 0, offsetof(struct h1_msg, headers));
	memset(&s, 0, sizeof(s));
	for (;;) {
		rc = take_line(buf, lim, &pos, &line, &m->why);
		if (rc == MOAT_EAGAIN) {
			/* Bytes past max_head are never looked at. */
			if (len >= max_head) {
				m->why = "head too large";
				rc = MOAT_ETOOBIG;
			} else {
				m->why = "head incomplete";
			}
			goto out;
		}
		if (rc < 0)
			goto out;
		if (!have_start && line.n == 0) {
			if (!is_req || ++nempty > MAX_LEADING_EMPTY) {
				rc = fail(&m->why, "empty line before start line", MOAT_EPROTO);
				goto out;
			}
			continue;
		}
		if (!have_start) {
			have_start = true;
			if (is_req)
				rc = parse_request_line(line, m);
			else
				rc = parse_status_line(line, m);
			if (rc < 0)
				goto out;
			continue;
		}
		if (line.n == 0)
			break;
		rc = parse_field(line, m, &s, is_req);
		if (rc < 0)
			goto out;
	}
	m->head_len = pos;
	if (is_req)
		rc = finish_request(m, &s);
	else
		rc = finish_response(m, &s, req_method);
out:
	return rc;
}

int h1_parse_request(const char *buf, size_t len, size_t max_head, struct h1_msg *m)
{
	return parse_head(buf, len, max_head, true, H1_M_OTHER, m);
}

int h1_parse_response(const char *buf, size_t len, size_t max_head,
		      enum h1_method req_method, struct h1_msg *m)
{
	return parse_head(buf, len, max_head, false, req_method, m);
}

bool h1_is_hop_by_hop(const struct h1_msg *m, struct h1_slice name)
{
	static const struct h1_slice fixed[] = {
		{ "connection", 10 }, { "keep-alive", 10 }, { "proxy-connection", 16 },
		{ "te", 2 }, { "trailer", 7 }, { "transfer-encoding", 17 }, { "upgrade", 7 },
		{ "proxy-authenticate", 18 }, { "proxy-authorization", 19 },
	};
	struct h1_slice list, e;
	size_t i;
	unsigned h;

	for (i = 0; i < sizeof(fixed) / sizeof(fixed[0]); i++) {
		if (name.n == fixed[i].n && slice_ieq(name, fixed[i]))
			return true;
	}
	for (h = 0; h < m->nheaders && m->conn_names; h++) {
		if (!h1_slice_ieq(m->headers[h].name, "connection"))
			continue;
		list = m->headers[h].value;
		while (next_element(&list, &e)) {
			if (slice_ieq(e, name))
				return true;
		}
	}
	return false;
}

/*
 * Chunked decoder. One state per position in the grammar (RFC 9112 7.1) so
 * that input split anywhere, even one byte per call, decodes the same way.
 */
enum {
	C_SIZE = 0,      /* chunk-size hex digits */
	C_SIZE_WS,       /* BWS after the size: only ";" may follow */
	C_EXT_PRE_NAME,  /* after ";" */
	C_EXT_NAME,
	C_EXT_POST_NAME, /* BWS after a name: "=" or ";" */
	C_EXT_PRE_VAL,   /* after "=" */
	C_EXT_TOKEN,
	C_EXT_QSTR,
	C_EXT_QPAIR,
	C_EXT_POST_QSTR,
	C_EXT_POST_VAL,  /* BWS after a value: only ";" may follow */
	C_SIZE_LF,       /* the last state of the size line */
	C_DATA,
	C_DATA_CR,
	C_DATA_LF,
	C_TR_START,      /* start of a trailer line, or the final CRLF */
	C_TR_NAME,
	C_TR_VALUE,
	C_TR_LF,
	C_END_LF,
	C_DONE,
	C_ERROR,
};

void h1_chunked_init(struct h1_chunked *c)
{
	memset(c, 0, sizeof(*c));
	c->state = C_SIZE;
}

static bool is_qdtext(unsigned char ch)
{
	return ch == '\t' || ch == ' ' || ch == 0x21 || (ch >= 0x23 && ch <= 0x5b) ||
	       (ch >= 0x5d && ch <= 0x7e) || ch >= 0x80;
}

static bool expects_lf(int state)
{
	return state == C_SIZE_LF || state == C_DATA_LF || state == C_TR_LF || state == C_END_LF;
}

/* Extension syntax; the extension itself is dropped. */
static int ext_byte(struct h1_chunked *c, unsigned char ch)
{
	int next = -1;

	switch (c->state) {
	case C_SIZE_WS:
	case C_EXT_POST_VAL:
		if (is_ows(ch))
			next = c->state;
		else if (ch == ';')
			next = C_EXT_PRE_NAME;
		break;
	case C_EXT_PRE_NAME:
		if (is_ows(ch))
			next = C_EXT_PRE_NAME;
		else if (is_tchar(ch))
			next = C_EXT_NAME;
		break;
	case C_EXT_NAME:
	case C_EXT_POST_NAME:
		if (c->state == C_EXT_NAME && is_tchar(ch))
			next = C_EXT_NAME;
		else if (is_ows(ch))
			next = C_EXT_POST_NAME;
		else if (ch == '=')
			next = C_EXT_PRE_VAL;
		else if (ch == ';')
			next = C_EXT_PRE_NAME;
		else if (c->state == C_EXT_NAME && ch == '\r')
			next = C_SIZE_LF;
		break;
	case C_EXT_PRE_VAL:
		if (is_ows(ch))
			next = C_EXT_PRE_VAL;
		else if (ch == '"')
			next = C_EXT_QSTR;
		else if (is_tchar(ch))
			next = C_EXT_TOKEN;
		break;
	case C_EXT_TOKEN:
	case C_EXT_POST_QSTR:
		if (c->state == C_EXT_TOKEN && is_tchar(ch))
			next = C_EXT_TOKEN;
		else if (is_ows(ch))
			next = C_EXT_POST_VAL;
		else if (ch == ';')
			next = C_EXT_PRE_NAME;
		else if (ch == '\r')
			next = C_SIZE_LF;
		break;
	case C_EXT_QSTR:
		if (ch == '"')
			next = C_EXT_POST_QSTR;
		else if (ch == '\\')
			next = C_EXT_QPAIR;
		else if (is_qdtext(ch))
			next = C_EXT_QSTR;
		break;
	case C_EXT_QPAIR:
		if (is_value_byte(ch))
			next = C_EXT_QSTR;
		break;
	default:
		break;
	}
	if (next < 0)
		return MOAT_EPROTO;
	c->state = next;
	return 0;
}

/* One byte of everything but chunk data. */
static int chunk_byte(struct h1_chunked *c, unsigned char ch, const char **why)
{
	int v;

	if (ch == '\n' && !expects_lf(c->state))
		return fail(why, "bare LF in chunked body", MOAT_EPROTO);
	if (c->state < C_SIZE_LF && ch != '\r' && ++c->line_bytes > H1_MAX_CHUNK_LINE)
		return fail(why, "chunk size line too long", MOAT_EPROTO);
	if (c->state >= C_TR_START && c->state <= C_END_LF &&
	    ++c->trailer_bytes > H1_MAX_TRAILER_BYTES)
		return fail(why, "trailer section too large", MOAT_EPROTO);
	switch (c->state) {
	case C_SIZE:
		v = uri_hex_value(ch);
		if (v >= 0) {
			/* 16 hex digits fill a uint64_t exactly: no overflow. */
			if (++c->digits > 16)
				return fail(why, "chunk size longer than 16 hex digits", MOAT_EPROTO);
			c->remaining = (c->remaining << 4) | (uint64_t)v;
			return 0;
		}
		if (c->digits == 0)
			return fail(why, "chunk size is not hex", MOAT_EPROTO);
		if (ch == '\r')
			c->state = C_SIZE_LF;
		else if (ch == ';')
			c->state = C_EXT_PRE_NAME;
		else if (is_ows(ch))
			c->state = C_SIZE_WS;
		else
			return fail(why, "bad byte after chunk size", MOAT_EPROTO);
		return 0;
	case C_SIZE_LF:
		if (ch != '\n')
			return fail(why, "bare CR in chunk size line", MOAT_EPROTO);
		c->digits = 0;
		c->line_bytes = 0;
		c->state = c->remaining == 0 ? C_TR_START : C_DATA;
		return 0;
	case C_DATA_CR:
		if (ch != '\r')
			return fail(why, "chunk data not followed by CRLF", MOAT_EPROTO);
		c->state = C_DATA_LF;
		return 0;
	case C_DATA_LF:
		if (ch != '\n')
			return fail(why, "chunk data not followed by CRLF", MOAT_EPROTO);
		c->state = C_SIZE;
		return 0;
	case C_TR_START:
		if (ch == '\r')
			c->state = C_END_LF;
		else if (is_tchar(ch))
			c->state = C_TR_NAME;
		else
			return fail(why, is_ows(ch) ? "obs-fold in trailer" : "malformed trailer name",
				    MOAT_EPROTO);
		return 0;
	case C_TR_NAME:
		if (ch == ':')
			c->state = C_TR_VALUE;
		else if (!is_tchar(ch))
			return fail(why, is_ows(ch) ? "whitespace before colon in trailer" :
						      "malformed trailer name", MOAT_EPROTO);
		return 0;
	case C_TR_VALUE:
		if (ch == '\r')
			c->state = C_TR_LF;
		else if (!is_value_byte(ch))
			return fail(why, "bad byte in trailer value", MOAT_EPROTO);
		return 0;
	case C_TR_LF:
	case C_END_LF:
		if (ch != '\n')
			return fail(why, "bare CR in trailer section", MOAT_EPROTO);
		c->state = c->state == C_TR_LF ? C_TR_START : C_DONE;
		return 0;
	default:
		break;
	}
	if (ext_byte(c, ch) < 0)
		return fail(why, "malformed chunk extension", MOAT_EPROTO);
	return 0;
}

int h1_chunked_decode(struct h1_chunked *c, char *buf, size_t len,
		      size_t *consumed, size_t *out, bool *done, const char **why)
{
	const char *reason = NULL;
	size_t i = 0, o = 0, n;
	int rc = 0;

	if (c->state == C_ERROR) {
		reason = "chunked decoder already failed";
		rc = MOAT_EPROTO;
		goto out;
	}
	while (i < len && c->state != C_DONE) {
		if (c->state == C_DATA) {
			n = len - i;
			if (n > c->remaining)
				n = (size_t)c->remaining;
			/* o <= i always, so the data only ever moves left. */
			memmove(buf + o, buf + i, n);
			o += n;
			i += n;
			c->remaining -= n;
			if (c->remaining == 0)
				c->state = C_DATA_CR;
			continue;
		}
		rc = chunk_byte(c, (unsigned char)buf[i], &reason);
		if (rc < 0) {
			c->state = C_ERROR;
			goto out;
		}
		i++;
	}
out:
	*consumed = i;
	*out = o;
	*done = c->state == C_DONE;
	if (why != NULL)
		*why = reason;
	return rc;
}
