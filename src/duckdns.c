/*
 * duckdns.c - see duckdns.h.
 */
#include "duckdns.h"

#include "httpc.h"
#include "util.h"

#include <arpa/inet.h>
#include <openssl/crypto.h>
#include <stdlib.h>
#include <string.h>

#define MAX_LINES 5 /* one more than any valid answer has, to tell "too many" */

static bool is_unreserved(unsigned char c)
{
	return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
	       c == '-' || c == '.' || c == '_' || c == '~';
}

/* Append s to out at *o, percent-encoded; keep is one more byte left as is
 * ('\0': none). out has room for 3 bytes per byte of s. */
static void put_escaped(char *out, size_t *o, const char *s, char keep)
{
	static const char hex[] = "0123456789ABCDEF";
	const unsigned char *p;

	for (p = (const unsigned char *)s; *p != '\0'; p++) {
		if (is_unreserved(*p) || (keep != '\0' && *p == (unsigned char)keep)) {
			out[(*o)++] = (char)*p;
			continue;
		}
		out[(*o)++] = '%';
		out[(*o)++] = hex[*p >> 4];
		out[(*o)++] = hex[*p & 15];
	}
}

static void put(char *out, size_t *o, const char *s)
{
	size_t n = strlen(s);

	memcpy(out + *o, s, n);
	*o += n;
}

char *duckdns_url(const char *url, const char *token, const char *domains,
		  enum duckdns_op op, const char *txt)
{
	char *out;
	size_t cap, o = 0;

	if (txt == NULL || op != DUCKDNS_TXT_SET)
		txt = "";
	/* every value can triple; the fixed parts are well under 128 bytes */
	cap = strlen(url) + 3 * (strlen(domains) + strlen(token) + strlen(txt)) + 128;
	out = xmalloc(cap);
	put(out, &o, url);
	put(out, &o, strchr(url, '?') != NULL ? "&domains=" : "?domains=");
	put_escaped(out, &o, domains, ',');
	put(out, &o, "&token=");
	put_escaped(out, &o, token, '\0');
	put(out, &o, "&verbose=true");
	switch (op) {
	case DUCKDNS_TXT_SET:
		put(out, &o, "&txt=");
		put_escaped(out, &o, txt, '\0');
		break;
	case DUCKDNS_TXT_CLEAR:
		put(out, &o, "&txt=removed&clear=true");
		break;
	case DUCKDNS_ADDRESS:
	default:
		put(out, &o, "&ip=");
		break;
	}
	out[o] = '\0';
	return out;
}

struct line {
	const char *p;
	size_t n;
};

static bool line_is(const struct line *l, const char *word)
{
	return l->n == strlen(word) && memcmp(l->p, word, l->n) == 0;
}

/* An empty line, or a printable IPv4/IPv6 address copied into out. */
static bool address_line(const struct line *l, char *out, size_t cap)
{
	unsigned char bin[16];

	out[0] = '\0';
	if (l->n == 0)
		return true;
	if (l->n >= cap)
		return false;
	memcpy(out, l->p, l->n);
	out[l->n] = '\0';
	if (inet_pton(AF_INET, out, bin) == 1 || inet_pton(AF_INET6, out, bin) == 1)
		return true;
	out[0] = '\0';
	return false;
}

static bool is_blank(char c)
{
	return c == ' ' || c == '\t' || c == '\r';
}

/* Split body into at most MAX_LINES trimmed lines, trailing empty lines
 * dropped. Returns the count, or MAX_LINES + 1 when there are more. */
static size_t split(const char *body, size_t len, struct line *l)
{
	size_t n = 0, i = 0, start, end;

	while (i < len) {
		start = i;
		while (i < len && body[i] != '\n')
			i++;
		end = i;
		if (i < len)
			i++; /* the '\n' */
		while (start < end && is_blank(body[start]))
			start++;
		while (end > start && is_blank(body[end - 1]))
			end--;
		if (n == MAX_LINES) {
			if (end > start)
				return MAX_LINES + 1;
			continue; /* only blank lines may follow */
		}
		l[n].p = body + start;
		l[n].n = end - start;
		n++;
	}
	while (n > 0 && l[n - 1].n == 0)
		n--;
	return n;
}

static int status_line(const struct line *l, struct duckdns_answer *a)
{
	if (line_is(l, "UPDATED")) {
		a->updated = true;
		return 0;
	}
	if (line_is(l, "NOCHANGE"))
		return 0;
	return MOAT_EPROTO;
}

int duckdns_parse(enum duckdns_op op, const char *body, size_t len,
		  struct duckdns_answer *a)
{
	struct line l[MAX_LINES];
	size_t n;

	memset(a, 0, sizeof(*a));
	if (len > DUCKDNS_MAX_ANSWER)
		return MOAT_ETOOBIG;
	if (memchr(body, '\0', len) != NULL)
		return MOAT_EPROTO;
	n = split(body, len, l);
	if (n == 0 || n > MAX_LINES)
		return MOAT_EPROTO;
	if (line_is(&l[0], "KO"))
		return n == 1 ? MOAT_EINVAL : MOAT_EPROTO;
	if (!line_is(&l[0], "OK"))
		return MOAT_EPROTO;
	if (op == DUCKDNS_ADDRESS) {
		if (n != 4 || !address_line(&l[1], a->ipv4, sizeof(a->ipv4)) ||
		    !address_line(&l[2], a->ipv6, sizeof(a->ipv6)) || status_line(&l[3], a) < 0) {
			memset(a, 0, sizeof(*a));
			return MOAT_EPROTO;
		}
		return 0;
	}
	/* TXT: "OK" alone (a terse answer), or the value and/or status lines */
	if (n == 1)
		return 0;
	if (n > 4 || status_line(&l[n - 1], a) < 0)
		return MOAT_EPROTO;
	return 0;
}

/* s percent-encoded, as a heap string. */
static char *escaped(const char *s)
{
	char *out = xmalloc(3 * strlen(s) + 1);
	size_t o = 0;

	put_escaped(out, &o, s, '\0');
	out[o] = '\0';
	return out;
}

/* Replace every occurrence of secret in *s (heap) with with. */
static void scrub(char **s, const char *secret, const char *with)
{
	size_t sn = strlen(secret), wn = strlen(with), o = 0, hits = 0;
	const char *p, *hit;
	char *out;

	if (*s == NULL || sn == 0 || strstr(*s, secret) == NULL)
		return;
	for (hit = strstr(*s, secret); hit != NULL; hit = strstr(hit + sn, secret))
		hits++;
	out = xmalloc(strlen(*s) + hits * wn + 1);
	p = *s;
	for (hit = strstr(p, secret); hit != NULL; hit = strstr(p, secret)) {
		memcpy(out + o, p, (size_t)(hit - p));
		o += (size_t)(hit - p);
		memcpy(out + o, with, wn);
		o += wn;
		p = hit + sn;
	}
	memcpy(out + o, p, strlen(p) + 1);
	OPENSSL_cleanse(*s, strlen(*s));
	free(*s);
	*s = out;
}

/* A short printable excerpt of an unexpected answer, for the message. */
static void excerpt(const char *body, size_t len, char *out, size_t cap)
{
	size_t i, o = 0;

	for (i = 0; i < len && o + 6 < cap; i++) {
		unsigned char c = (unsigned char)body[i];

		if (c == '\n') {
			out[o++] = '\\';
			out[o++] = 'n';
		} else if (c >= 0x20 && c < 0x7f && c != '"' && c != '\\') {
			out[o++] = (char)c;
		} else {
			out[o++] = '?';
		}
	}
	if (i < len) {
		memcpy(out + o, "...", 3);
		o += 3;
	}
	out[o] = '\0';
}

static const char *what(enum duckdns_op op)
{
	switch (op) {
	case DUCKDNS_TXT_SET:
		return "TXT update";
	case DUCKDNS_TXT_CLEAR:
		return "TXT removal";
	case DUCKDNS_ADDRESS:
	default:
		return "update";
	}
}

/* s with the request URL shortened to the endpoint and the token, raw or
 * escaped, replaced by "***" (heap; s is wiped and freed). For text that
 * comes from elsewhere: httpc's messages quote the URL, an answer might echo
 * the query. */
static char *hide_token(char *s, const char *full, const char *url, const char *token)
{
	char *esc = escaped(token);

	scrub(&s, full, url);
	scrub(&s, token, "***");
	scrub(&s, esc, "***");
	OPENSSL_cleanse(esc, strlen(esc));
	free(esc);
	return s;
}

int duckdns_call(const char *url, const char *ca_roots, const char *token,
		 const char *domains, enum duckdns_op op, const char *txt,
		 const _Atomic bool *stop, struct duckdns_answer *a, char **err)
{
	struct httpc_opts o;
	struct httpc_resp r;
	char *full, *why = NULL, *ex = NULL;
	char buf[128];
	int rc;

	memset(a, 0, sizeof(*a));
	*err = NULL;
	memset(&o, 0, sizeof(o));
	o.ca_roots = ca_roots;
	o.timeout_ms = DUCKDNS_TIMEOUT_MS;
	o.max_body = DUCKDNS_MAX_ANSWER;
	o.stop = stop;
	full = duckdns_url(url, token, domains, op, txt);
	rc = httpc_request(&o, "GET", full, NULL, NULL, 0, &r, &why);
	if (rc < 0) {
		why = hide_token(why != NULL ? why : xstrdup(moat_strerror(rc)), full, url, token);
		*err = xasprintf("DuckDNS %s of %s failed: %s", what(op), domains, why);
		rc = MOAT_EIO;
		goto out;
	}
	if (r.status != 200) {
		*err = xasprintf("DuckDNS answered HTTP %ld to the %s of %s", r.status, what(op),
				 domains);
		rc = MOAT_EIO;
		goto out;
	}
	rc = duckdns_parse(op, r.body, r.len, a);
	if (rc == MOAT_EINVAL) {
		*err = xasprintf("DuckDNS answered KO for %s (bad token or domain?)", domains);
		rc = MOAT_EIO;
	} else if (rc < 0) {
		/* the token goes before the cut, or a cut through it would
		 * leave a prefix no search finds */
		ex = hide_token(xstrndup(r.body, r.len), full, url, token);
		excerpt(ex, strlen(ex), buf, sizeof(buf));
		free(ex);
		ex = xstrdup(buf);
		*err = xasprintf("DuckDNS gave an unexpected answer to the %s of %s: \"%s\"",
				 what(op), domains, ex);
		rc = MOAT_EIO;
	}
out:
	free(ex);
	if (why != NULL) {
		OPENSSL_cleanse(why, strlen(why));
		free(why);
	}
	httpc_resp_free(&r);
	OPENSSL_cleanse(full, strlen(full));
	free(full);
	return rc;
}
