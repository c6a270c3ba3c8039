/*
 * headers.c - see headers.h.
 */
#include "headers.h"
#include "util.h"

#include <stdlib.h>
#include <string.h>

/* A string builder; sizes come from bounded inputs, so it only grows by
 * what the caller appends. */
struct sb {
	char *p;
	size_t n, cap;
};

static void sb_need(struct sb *s, size_t more)
{
	if (s->n + more + 1 <= s->cap)
		return;
	while (s->n + more + 1 > s->cap)
		s->cap = s->cap ? s->cap * 2 : 512;
	s->p = xrealloc(s->p, s->cap);
}

static void sb_put(struct sb *s, const char *p, size_t n)
{
	sb_need(s, n);
	if (n > 0)
		memcpy(s->p + s->n, p, n);
	s->n += n;
	s->p[s->n] = '\0';
}

static void sb_str(struct sb *s, const char *p)
{
	sb_put(s, p, strlen(p));
}

/* Decimal, without printf: heads are built on every exchange. */
static void sb_u64(struct sb *s, uint64_t v)
{
	char digits[20];
	size_t n = sizeof(digits);

	do {
		digits[--n] = (char)('0' + v % 10);
		v /= 10;
	} while (v != 0);
	sb_put(s, digits + n, sizeof(digits) - n);
}

/* name, value, CRLF */
static void sb_line(struct sb *s, const char *name, const char *value)
{
	sb_str(s, name);
	sb_str(s, value);
	sb_put(s, "\r\n", 2);
}

static void sb_line_u64(struct sb *s, const char *name, uint64_t v)
{
	sb_str(s, name);
	sb_u64(s, v);
	sb_put(s, "\r\n", 2);
}

static void sb_header(struct sb *s, const struct h1_header *h)
{
	sb_need(s, h->name.n + h->value.n + 4);
	sb_put(s, h->name.p, h->name.n);
	sb_put(s, ": ", 2);
	sb_put(s, h->value.p, h->value.n);
	sb_put(s, "\r\n", 2);
}

/* Headers the client may not set: moat writes its own versions, and an
 * upstream must never mistake a client's claim for moat's. */
/* Case-insensitive, and '_' counts as '-': CGI-style servers (PHP, WSGI)
 * map both spellings to one variable, so "X_Forwarded_For" must go too. */
static bool name_is(struct h1_slice name, const char *lower)
{
	size_t i;

	for (i = 0; i < name.n; i++) {
		char c = name.p[i];

		if (lower[i] == '\0')
			return false;
		if (c >= 'A' && c <= 'Z')
			c = (char)(c - 'A' + 'a');
		if (c == '_')
			c = '-';
		if (c != lower[i])
			return false;
	}
	return lower[i] == '\0';
}

static bool is_forwarding(struct h1_slice name)
{
	return name_is(name, "host") || name_is(name, "x-forwarded-for") ||
	       name_is(name, "x-forwarded-proto") || name_is(name, "x-forwarded-host") ||
	       name_is(name, "x-forwarded-port") || name_is(name, "forwarded") ||
	       name_is(name, "x-real-ip") || name_is(name, "expect");
}

/* Only moat says who a client certificate belongs to: any header an
 * upstream might read as such (X-Client-Cert, X-Client-Cert-Subject, ...,
 * also spelled with underscores, see name_is) is dropped when a client
 * sends it. */
static bool is_client_cert(struct h1_slice name)
{
	static const char prefix[] = "x-client-cert";
	const size_t n = sizeof(prefix) - 1;

	return name.n >= n && name_is((struct h1_slice){ name.p, n }, prefix);
}

char *hdr_upstream_request(const struct upstream_req *r, size_t *len)
{
	const struct h1_msg *m = r->m;
	const char *proto = r->tls ? "https" : "http";
	bool v6 = strchr(r->peer, ':') != NULL;
	struct sb s = {0};
	unsigned i;

	sb_need(&s, m->head_len + 256);
	sb_put(&s, m->method.p, m->method.n);
	sb_put(&s, " ", 1);
	sb_str(&s, r->path);
	sb_str(&s, " HTTP/1.1\r\n");
	sb_line(&s, "Host: ", r->host);
	for (i = 0; i < m->nheaders; i++) {
		const struct h1_header *h = &m->headers[i];

		/* framing is moat's: written below from what the parser decided */
		if (h1_slice_ieq(h->name, "content-length") || h1_is_hop_by_hop(m, h->name) ||
		    is_forwarding(h->name) || is_client_cert(h->name))
			continue;
		sb_header(&s, h);
	}
	sb_line(&s, "X-Forwarded-For: ", r->peer);
	sb_line(&s, "X-Forwarded-Proto: ", proto);
	sb_line(&s, "X-Forwarded-Host: ", r->host);
	/* RFC 7239: an IPv6 address is bracketed, and then quoted */
	sb_str(&s, v6 ? "Forwarded: for=\"[" : "Forwarded: for=");
	sb_str(&s, r->peer);
	sb_str(&s, v6 ? "]\";proto=" : ";proto=");
	sb_str(&s, proto);
	sb_str(&s, ";host=\"");
	sb_str(&s, r->host);
	sb_str(&s, "\"\r\n");
	if (r->cert_subject != NULL)
		sb_line(&s, "X-Client-Cert-Subject: ", r->cert_subject);
	if (r->cert_fingerprint != NULL)
		sb_line(&s, "X-Client-Cert-Fingerprint: ", r->cert_fingerprint);
	if (m->framing == H1_BODY_CHUNKED)
		sb_str(&s, "Transfer-Encoding: chunked\r\n");
	else if (m->framing == H1_BODY_LENGTH)
		sb_line_u64(&s, "Content-Length: ", m->content_length);
	if (r->upgrade) {
		sb_str(&s, "Connection: upgrade\r\nUpgrade: ");
		sb_put(&s, m->upgrade.p, m->upgrade.n);
		sb_str(&s, "\r\n");
	}
	sb_str(&s, "\r\n");
	*len = s.n;
	return s.p;
}

char *hdr_client_response(const struct client_resp *r, size_t *len)
{
	const struct h1_msg *m = r->m;
	const struct h1_header *cl = NULL;
	bool has_hsts = false;
	struct sb s = {0};
	unsigned i;

	sb_need(&s, m->head_len + 256);
	sb_str(&s, "HTTP/1.1 ");
	sb_u64(&s, (uint64_t)m->status);
	sb_put(&s, " ", 1);
	if (m->reason.n > 0)
		sb_put(&s, m->reason.p, m->reason.n);
	else
		sb_str(&s, hdr_reason(m->status));
	sb_str(&s, "\r\n");
	for (i = 0; i < m->nheaders; i++) {
		const struct h1_header *h = &m->headers[i];

		/* Content-Length is framing, written below; a Connection header
		 * naming it must not strip the client's only way to find the
		 * end of the body. */
		if (h1_slice_ieq(h->name, "content-length")) {
			if (cl == NULL)
				cl = h;
			continue;
		}
		if (h1_is_hop_by_hop(m, h->name))
			continue;
		if (h1_slice_ieq(h->name, "strict-transport-security"))
			has_hsts = true;
		sb_header(&s, h);
	}
	/* 1xx and 204 never carry one (RFC 9110 8.6); HEAD and 304 keep the
	 * upstream's, which describes the representation, not this message. */
	if (m->framing == H1_BODY_LENGTH)
		sb_line_u64(&s, "Content-Length: ", m->content_length);
	else if (cl != NULL && m->status >= 200 && m->status != 204)
		sb_header(&s, cl);
	if (r->hsts_max_age > 0 && !has_hsts)
		sb_line_u64(&s, "Strict-Transport-Security: max-age=", r->hsts_max_age);
	if (m->status == 101) {
		sb_str(&s, "Connection: upgrade\r\nUpgrade: ");
		sb_put(&s, m->upgrade.p, m->upgrade.n);
		sb_str(&s, "\r\n");
	} else {
		if (r->chunked)
			sb_str(&s, "Transfer-Encoding: chunked\r\n");
		if (r->close)
			sb_str(&s, "Connection: close\r\n");
		else if (r->keepalive_10)
			sb_str(&s, "Connection: keep-alive\r\n");
	}
	sb_str(&s, "\r\n");
	*len = s.n;
	return s.p;
}

char *hdr_simple(int status, const char *ctype, const char *body, const char *extra,
		 bool close, uint32_t hsts_max_age, bool head_only, size_t *len)
{
	size_t blen = body != NULL ? strlen(body) : 0;
	struct sb s = {0};

	sb_str(&s, "HTTP/1.1 ");
	sb_u64(&s, (uint64_t)status);
	sb_put(&s, " ", 1);
	sb_line(&s, hdr_reason(status), "");
	sb_str(&s, "Server: moat\r\n");
	if (blen > 0 || !head_only)
		sb_line(&s, "Content-Type: ", ctype);
	sb_line_u64(&s, "Content-Length: ", blen);
	if (hsts_max_age > 0)
		sb_line_u64(&s, "Strict-Transport-Security: max-age=", hsts_max_age);
	if (extra != NULL)
		sb_str(&s, extra);
	if (close)
		sb_str(&s, "Connection: close\r\n");
	sb_str(&s, "\r\n");
	if (!head_only && blen > 0)
		sb_put(&s, body, blen);
	*len = s.n;
	return s.p;
}

const char *hdr_reason(int status)
{
	switch (status) {
	case 100: return "Continue";
	case 101: return "Switching Protocols";
	case 200: return "OK";
	case 201: return "Created";
	case 204: return "No Content";
	case 206: return "Partial Content";
	case 301: return "Moved Permanently";
	case 302: return "Found";
	case 304: return "Not Modified";
	case 307: return "Temporary Redirect";
	case 308: return "Permanent Redirect";
	case 400: return "Bad Request";
	case 401: return "Unauthorized";
	case 403: return "Forbidden";
	case 404: return "Not Found";
	case 405: return "Method Not Allowed";
	case 408: return "Request Timeout";
	case 413: return "Content Too Large";
	case 417: return "Expectation Failed";
	case 421: return "Misdirected Request";
	case 429: return "Too Many Requests";
	case 431: return "Request Header Fields Too Large";
	case 500: return "Internal Server Error";
	case 501: return "Not Implemented";
	case 502: return "Bad Gateway";
	case 503: return "Service Unavailable";
	case 504: return "Gateway Timeout";
	case 505: return "HTTP Version Not Supported";
	default: return "Unknown";
	}
}
