/*
 * httpc.c - see httpc.h.
 *
 * One easy handle per request: requests are rare (an ACME order is a few
 * dozen, DDNS one every few minutes), so connection reuse is not worth the
 * shared state between threads.
 */
#include "httpc.h"

#include <curl/curl.h>
#include <openssl/pem.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "log.h"
#include "netaddr.h"
#include "util.h"

#define DEFAULT_TIMEOUT_MS 30000L
#define CONNECT_TIMEOUT_MS 10000L
#define DEFAULT_MAX_BODY (1u << 20)
#define MAX_HEADER_VALUE 2048

struct xfer {
	const struct httpc_opts *o;
	struct httpc_resp *r;
	size_t cap;
	size_t max;
	bool too_big;
};

int httpc_global_init(void)
{
	if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK) {
		log_error("httpc_global_init: libcurl failed to initialise");
		return MOAT_EIO;
	}
	return 0;
}

/* 127.0.0.0/8 (held v4-mapped, so a /104) and ::1 */
static const struct cidr loopback[] = {
	{ .a = { .b = { 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff, 127, 0, 0, 0 } }, .bits = 104 },
	{ .a = { .b = { 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1 } }, .bits = 128 },
};

static bool host_is_loopback(const char *host)
{
	struct ipaddr ip;
	size_t n = strlen(host);

	if (strcasecmp(host, "localhost") == 0)
		return true;
	if (n > 2 && host[0] == '[' && host[n - 1] == ']') {
		host++;
		n -= 2;
	}
	return ipaddr_parse(host, n, &ip) == 0 &&
	       cidr_list_contains(loopback, sizeof(loopback) / sizeof(loopback[0]), &ip);
}

int httpc_url_ok(const char *url, char **why)
{
	CURLU *u = curl_url();
	char *scheme = NULL, *host = NULL;
	int rc = MOAT_EINVAL;

	*why = NULL;
	if (curl_url_set(u, CURLUPART_URL, url, 0) != CURLUE_OK ||
	    curl_url_get(u, CURLUPART_SCHEME, &scheme, 0) != CURLUE_OK ||
	    curl_url_get(u, CURLUPART_HOST, &host, 0) != CURLUE_OK) {
		*why = xstrdup("not a URL; expected something like https://host/path");
		goto out;
	}
	if (strcmp(scheme, "https") == 0) {
		rc = 0;
	} else if (strcmp(scheme, "http") == 0 && host_is_loopback(host)) {
		rc = 0;
	} else if (strcmp(scheme, "http") == 0) {
		*why = xstrdup("plain http is allowed only to a loopback address; use https://");
	} else {
		*why = xasprintf("scheme %s is not supported; use https://", scheme);
	}
out:
	curl_free(scheme);
	curl_free(host);
	curl_url_cleanup(u);
	return rc;
}

static size_t on_body(char *p, size_t size, size_t n, void *arg)
{
	struct xfer *x = arg;
	struct httpc_resp *r = x->r;
	size_t len = size * n, cap;

	if (r->len + len > x->max) {
		x->too_big = true;
		return 0;
	}
	if (r->len + len + 1 > x->cap) {
		cap = x->cap == 0 ? 4096 : x->cap;
		while (cap < r->len + len + 1)
			cap *= 2;
		r->body = xrealloc(r->body, cap);
		x->cap = cap;
	}
	memcpy(r->body + r->len, p, len);
	r->len += len;
	r->body[r->len] = '\0';
	return len;
}

/* The value of a header line "Name: value\r\n" when its name is name. */
static char *header_value(const char *line, size_t n, const char *name)
{
	size_t nl = strlen(name);
	const char *v, *end = line + n;

	if (n <= nl || strncasecmp(line, name, nl) != 0 || line[nl] != ':')
		return NULL;
	v = line + nl + 1;
	while (v < end && (*v == ' ' || *v == '\t'))
		v++;
	while (end > v && (end[-1] == '\r' || end[-1] == '\n' || end[-1] == ' ' || end[-1] == '\t'))
		end--;
	if ((size_t)(end - v) > MAX_HEADER_VALUE)
		return NULL;
	return xstrndup(v, (size_t)(end - v));
}

static void set_once(char **dst, char *v)
{
	if (v == NULL)
		return;
	free(*dst);
	*dst = v;
}

/* Link: <url>;rel="up" (RFC 8288); other relations are ignored. */
static void take_link_up(struct httpc_resp *r, const char *v)
{
	const char *lt = strchr(v, '<'), *gt = lt != NULL ? strchr(lt, '>') : NULL;

	if (gt == NULL || (strstr(gt, "rel=\"up\"") == NULL && strstr(gt, "rel=up") == NULL))
		return;
	set_once(&r->link_up, xstrndup(lt + 1, (size_t)(gt - lt - 1)));
}

static void take_retry_after(struct httpc_resp *r, const char *v)
{
	char *end;
	long long s;
	time_t t;

	s = strtoll(v, &end, 10);
	if (end != v && *end == '\0' && s >= 0) {
		r->retry_after = s;
		return;
	}
	t = curl_getdate(v, NULL);
	if (t >= 0)
		r->retry_after = t > time(NULL) ? (long long)(t - time(NULL)) : 0;
}

static size_t on_header(char *p, size_t size, size_t n, void *arg)
{
	struct xfer *x = arg;
	struct httpc_resp *r = x->r;
	size_t len = size * n;
	char *v;

	/* a new response (after 100 Continue) starts over */
	if (len > 5 && strncmp(p, "HTTP/", 5) == 0) {
		free(r->location);
		free(r->nonce);
		free(r->link_up);
		free(r->content_type);
		r->location = r->nonce = r->link_up = r->content_type = NULL;
		r->retry_after = -1;
		return len;
	}
	set_once(&r->location, header_value(p, len, "Location"));
	set_once(&r->nonce, header_value(p, len, "Replay-Nonce"));
	set_once(&r->content_type, header_value(p, len, "Content-Type"));
	v = header_value(p, len, "Link");
	if (v != NULL)
		take_link_up(r, v);
	free(v);
	v = header_value(p, len, "Retry-After");
	if (v != NULL)
		take_retry_after(r, v);
	free(v);
	return len;
}

static int on_progress(void *arg, curl_off_t dt, curl_off_t dn, curl_off_t ut, curl_off_t un)
{
	const struct xfer *x = arg;

	return x->o->stop != NULL && atomic_load(x->o->stop) ? 1 : 0;
}

/* Adds the extra roots to the verification store of curl's TLS context. */
static CURLcode on_ssl_ctx(CURL *curl, void *sslctx, void *arg)
{
	const char *file = arg;
	X509_STORE *st = SSL_CTX_get_cert_store(sslctx);
	BIO *b = BIO_new_file(file, "r");
	X509 *x;
	int n = 0;

	if (b == NULL)
		return CURLE_SSL_CACERT_BADFILE;
	while ((x = PEM_read_bio_X509(b, NULL, NULL, NULL)) != NULL) {
		X509_STORE_add_cert(st, x);
		X509_free(x);
		n++;
	}
	BIO_free(b);
	return n > 0 ? CURLE_OK : CURLE_SSL_CACERT_BADFILE;
}

int httpc_request(const struct httpc_opts *o, const char *method, const char *url,
		  const char *ctype, const void *body, size_t len, struct httpc_resp *r,
		  char **err)
{
	char errbuf[CURL_ERROR_SIZE] = "";
	struct curl_slist *hdrs = NULL;
	struct xfer x;
	char *ct = NULL, *why = NULL, *shown;
	CURLcode cc;
	CURL *h;
	int rc = MOAT_EIO;

	memset(r, 0, sizeof(*r));
	r->retry_after = -1;
	*err = NULL;
	/* messages name the URL without its query, which may carry a token */
	shown = xstrndup(url, strcspn(url, "?#"));
	memset(&x, 0, sizeof(x));
	x.o = o;
	x.r = r;
	x.max = o->max_body != 0 ? o->max_body : DEFAULT_MAX_BODY;
	if (httpc_url_ok(url, &why) < 0) {
		*err = xasprintf("%s: %s", shown, why);
		free(why);
		free(shown);
		return MOAT_EIO;
	}
	h = curl_easy_init();
	if (h == NULL) {
		*err = xstrdup("libcurl cannot start a request");
		free(shown);
		return MOAT_EIO;
	}
	curl_easy_setopt(h, CURLOPT_URL, url);
	curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L);
	curl_easy_setopt(h, CURLOPT_PROTOCOLS_STR, "https,http");
	curl_easy_setopt(h, CURLOPT_FOLLOWLOCATION, 0L);
	curl_easy_setopt(h, CURLOPT_USERAGENT, "moat/" MOAT_VERSION);
	curl_easy_setopt(h, CURLOPT_TIMEOUT_MS, o->timeout_ms > 0 ? o->timeout_ms : DEFAULT_TIMEOUT_MS);
	curl_easy_setopt(h, CURLOPT_CONNECTTIMEOUT_MS, CONNECT_TIMEOUT_MS);
	curl_easy_setopt(h, CURLOPT_ERRORBUFFER, errbuf);
	curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, on_body);
	curl_easy_setopt(h, CURLOPT_WRITEDATA, &x);
	curl_easy_setopt(h, CURLOPT_HEADERFUNCTION, on_header);
	curl_easy_setopt(h, CURLOPT_HEADERDATA, &x);
	curl_easy_setopt(h, CURLOPT_XFERINFOFUNCTION, on_progress);
	curl_easy_setopt(h, CURLOPT_XFERINFODATA, &x);
	curl_easy_setopt(h, CURLOPT_NOPROGRESS, 0L);
	if (o->ca_roots != NULL) {
		curl_easy_setopt(h, CURLOPT_CA_CACHE_TIMEOUT, 0L);
		curl_easy_setopt(h, CURLOPT_SSL_CTX_FUNCTION, on_ssl_ctx);
		curl_easy_setopt(h, CURLOPT_SSL_CTX_DATA, (void *)o->ca_roots);
	}
	if (strcmp(method, "HEAD") == 0) {
		curl_easy_setopt(h, CURLOPT_NOBODY, 1L);
	} else if (strcmp(method, "POST") == 0) {
		curl_easy_setopt(h, CURLOPT_POST, 1L);
		curl_easy_setopt(h, CURLOPT_POSTFIELDS, body != NULL ? body : "");
		curl_easy_setopt(h, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)len);
		ct = xasprintf("Content-Type: %s", ctype != NULL ? ctype : "application/octet-stream");
		hdrs = curl_slist_append(hdrs, ct);
		/* no "Expect: 100-continue" round trip for small bodies */
		hdrs = curl_slist_append(hdrs, "Expect:");
		curl_easy_setopt(h, CURLOPT_HTTPHEADER, hdrs);
	}
	cc = curl_easy_perform(h);
	if (cc != CURLE_OK) {
		if (x.too_big)
			*err = xasprintf("%s %s: the answer is larger than %zu bytes", method, shown, x.max);
		else if (cc == CURLE_ABORTED_BY_CALLBACK)
			*err = xasprintf("%s %s: stopped", method, shown);
		else
			*err = xasprintf("%s %s: %s", method, shown,
					 errbuf[0] != '\0' ? errbuf : curl_easy_strerror(cc));
		goto out;
	}
	curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &r->status);
	if (r->body == NULL) {
		r->body = xstrdup("");
		r->len = 0;
	}
	rc = 0;
out:
	curl_slist_free_all(hdrs);
	free(ct);
	curl_easy_cleanup(h);
	free(shown);
	return rc;
}

void httpc_resp_free(struct httpc_resp *r)
{
	free(r->body);
	free(r->content_type);
	free(r->location);
	free(r->nonce);
	free(r->link_up);
	memset(r, 0, sizeof(*r));
	r->retry_after = -1;
}
