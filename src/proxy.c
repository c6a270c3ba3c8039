/*
 * proxy.c - see proxy.h; the client side of an exchange (exchange.h), with
 * forward.c for the upstream side. The life of one request:
 *
 *   head parsed -> routed -> upstream acquired (pool or connect, next
 *   upstream on failure) -> head written -> body pumped (re-chunked when
 *   chunked) -> response head parsed and relayed -> body pumped -> upstream
 *   back to the pool -> access log -> next request on the connection.
 *
 * Backpressure: each side is read only while the other side's write queue
 * is under CONN_HIGH_WATER; the drained callbacks resume it. Nothing is
 * buffered beyond the fixed input buffers and those queues.
 */
#include "proxy.h"
#include "exchange.h"
#include "acme_chal.h"
#include "clientcert.h"
#include "conf.h"
#include "conn.h"
#include "gen.h"
#include "guard.h"
#include "guard_access.h"
#include "guard_limit.h"
#include "h1.h"
#include "headers.h"
#include "log.h"
#include "tls.h"
#include "upstream.h"
#include "uri.h"
#include "util.h"
#include "worker.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char WELCOME[] =
	"<!doctype html>\n<html><head><meta charset=\"utf-8\"><title>moat is running</title></head>\n"
	"<body style=\"font-family:sans-serif;max-width:40em;margin:3em auto\">\n"
	"<h1>moat is running</h1>\n"
	"<p>This page comes from moat's built-in demo: HTTPS with a certificate from moat's own "
	"internal CA.</p>\n"
	"<p>Next: write a <code>moat.yaml</code> with your app as a site "
	"(<code>to: http://127.0.0.1:PORT</code>), check it with <code>moat check -c moat.yaml</code> "
	"and start it with <code>moat run -c moat.yaml</code>.</p>\n"
	"</body></html>\n";

void proxy_log_exchange(struct exchange *x)
{
	struct conn *c = x->c;
	struct access_rec r = {
		.client = x->client_txt[0] ? x->client_txt : c->peer,
		.host = x->host[0] ? x->host : NULL,
		.method = x->method,
		.method_len = x->method ? strlen(x->method) : 0,
		.path = x->path,
		.path_len = x->path ? strlen(x->path) : 0,
		.status = x->status,
		.bytes_in = x->bytes_in,
		.bytes_out = x->bytes_out,
		.start_ms = x->start_ms,
		.upstream = x->up ? x->up->hostport : NULL,
		.tls = conn_tls_version(c),
		.access = x->access,
		/* only a name the site's CA issued: anyone can write any name
		 * into a self-made certificate */
		.cert = x->access != NULL && client_id_verified(c->client) ?
			client_id_name(c->client) : NULL,
		.deny = x->deny,
	};

	if (x->logged)
		return;
	x->logged = true;
	log_access(&r);
}

void proxy_free_exchange(struct exchange *x)
{
	free(x->head);
	free(x->method);
	free(x->path);
	free(x);
}

/* Ends the exchange without an upstream to keep. */
void proxy_drop_upstream(struct exchange *x)
{
	if (x->u != NULL) {
		up_release(x->u, false, 0);
		x->u = NULL;
	}
}

void proxy_respond(struct conn *c, struct exchange *x, int status, const char *body,
		   const char *extra, bool close)
{
	proxy_respond_ct(c, x, status, status == 200 ? "text/html; charset=utf-8" :
			 "text/plain; charset=utf-8", body, extra, close);
}

void proxy_respond_ct(struct conn *c, struct exchange *x, int status, const char *ctype,
		      const char *body, const char *extra, bool close)
{
	const struct conf_site *site = x ? x->site : c->tls_site;
	bool head_only = x != NULL && x->m == H1_M_HEAD;
	size_t len;
	char *msg;

	if (c->drain)
		close = true;
	msg = hdr_simple(status, ctype, body, extra, close, exchange_hsts(c, site), head_only, &len);
	conn_write(c, msg, len);
	free(msg);
	if (x != NULL) {
		x->status = status;
		x->bytes_out += len;
		proxy_log_exchange(x);
	}
	if (close) {
		conn_close_after_write(c, true);
		return;
	}
	/* Answered without an upstream and the input is at the next request
	 * (the caller consumed this one): go on with the connection. */
	if (x != NULL && c->x == x) {
		c->x = NULL;
		proxy_free_exchange(x);
	}
	c->state = CONN_IDLE;
	conn_release_input(c);
	conn_set_timer(c, exchange_conf(c)->t.idle_ms);
	conn_want_read(c, true);
}

/* An error before any response byte went out: answer and close. Once the
 * response has started, the only honest signal left is closing. */
void proxy_fail(struct exchange *x, int status, const char *why)
{
	struct conn *c = x->c;
	char body[256];

	proxy_drop_upstream(x);
	if (x->resp_head_done) {
		x->status = x->status ? x->status : status;
		proxy_log_exchange(x);
		conn_abort(c);
		return;
	}
	snprintf(body, sizeof(body), "%s: %s\n", hdr_reason(status), why);
	proxy_respond(c, x, status, body, NULL, true);
}

void proxy_on_client_drained(struct conn *c)
{
	struct exchange *x = c->x;

	if (x == NULL && (c->state == CONN_IDLE || c->state == CONN_HEAD) && !c->want_read) {
		conn_want_read(c, true); /* read_head paused for this */
		return;
	}
	if (x != NULL)
		forward_client_drained(x);
}

static int status_for(int rc)
{
	switch (rc) {
	case MOAT_EUNSUP: return 501;
	case MOAT_EVERSION: return 505;
	case MOAT_ETOOBIG: return 431;
	default: return 400;
	}
}

static void redirect(struct conn *c, struct exchange *x, const char *host)
{
	const struct conf *cf = exchange_conf(c);
	char port[16] = "";
	char *location, *extra, *body;
	int p = 0;

	/* sin_port and sin6_port share their offset */
	if (cf->nhttps > 0)
		p = ntohs(((const struct sockaddr_in *)&cf->https[0].sa)->sin_port);
	if (p != 0 && p != 443)
		snprintf(port, sizeof(port), ":%d", p);
	/* bounded by the head limit, like the path it carries */
	location = xasprintf("https://%s%s%s", host, port, x->path);
	extra = xasprintf("Location: %s\r\n", location);
	body = xasprintf("%s\n", location);
	proxy_respond(c, x, 308, body, extra, x->req_framing != H1_BODY_NONE || x->client_close);
	free(location);
	free(extra);
	free(body);
}

/*
 * Does an Upgrade value offer h2c, however spelled ("h2c", "H2C/1",
 * "\"h2c\"", "foo h2c;q=1")? Such a request goes upstream as a plain
 * request: after a 101 every later request on the connection would be
 * HTTP/2 inside the tunnel, where moat can judge none of them (the "h2c
 * smuggling" that lets a client past a proxy's rules, here the public
 * paths of a client-certificate gate). No other protocol's name contains
 * "h2c", so a plain search is both simplest and strictest.
 */
static bool offers_h2c(struct h1_slice v)
{
	size_t i;

	for (i = 0; i + 3 <= v.n; i++)
		if (h1_slice_ieq((struct h1_slice){ v.p + i, 3 }, "h2c"))
			return true;
	return false;
}

/* The site's client policy; false when the request was denied (answered). */
static bool check_access(struct conn *c, struct exchange *x, struct h1_msg *m,
			 struct upstream_req *ur)
{
	const struct client_trust *t = tls_site_trust(c->gen->tls, x->site);
	const char *ctype;
	struct access a;
	char *body;

	a = guard_access(x->site, t, c->client, x->method, strlen(x->method), x->path,
			 strlen(x->path));
	x->access = a.name;
	if (a.allow) {
		if (a.identified) {
			c->cert_counted = true;
			ur->cert_subject = client_id_subject(c->client);
			ur->cert_fingerprint = client_id_fingerprint(c->client);
		}
		return true;
	}
	body = guard_access_body(&a, m, x->host, &ctype);
	conn_consume(c, m->head_len);
	proxy_respond_ct(c, x, 403, ctype, body, "Vary: Accept\r\nCache-Control: no-store\r\n",
			 x->req_framing != H1_BODY_NONE || x->client_close);
	free(body);
	return false;
}

/* Bans and rate limits; false when the request was refused (answered). */
static bool check_guard(struct conn *c, struct exchange *x, struct h1_msg *m)
{
	uint32_t retry = 0;
	char extra[64];
	int status = guard_request(c, x, m, &retry);

	if (status == 0)
		return true;
	conn_consume(c, m->head_len);
	if (status == 403) {
		/* Banned: nothing more from this client on this connection. A
		 * trusted proxy's connection stays for the other clients it
		 * carries. */
		proxy_respond(c, x, 403, "Forbidden: this address is banned for now\n", NULL,
			      !c->peer_trusted || x->req_framing != H1_BODY_NONE || x->client_close);
		return false;
	}
	snprintf(extra, sizeof(extra), "Retry-After: %u\r\n", retry);
	proxy_respond(c, x, 429, "Too Many Requests: slow down and retry later\n", extra,
		      x->req_framing != H1_BODY_NONE || x->client_close);
	return false;
}

/*
 * An ACME CA validating an HTTP-01 challenge (RFC 8555 8.3): a GET or HEAD
 * of ACME_CHAL_PREFIX <token> for a (host, token) the ACME thread
 * published is answered with the key authorization, on either listener.
 * It comes before rate limits and bans, redirects and the client policy,
 * since the CA's validators follow none of them (and a redirect to https
 * would fail for a name whose certificate is what is being obtained); the
 * answer is a public value. Any other path, or an unknown token, goes the
 * normal way. False when the request is not such a validation.
 */
static bool answer_challenge(struct conn *c, struct exchange *x, struct h1_msg *m,
			     const char *host)
{
	char ka[ACME_CHAL_KEYAUTH_MAX + 1];
	const char *token;

	if (x->m != H1_M_GET && x->m != H1_M_HEAD)
		return false;
	token = acme_chal_http_token(x->path);
	if (token == NULL || !acme_chal_http_get(host, token, ka, sizeof(ka)))
		return false;
	conn_consume(c, m->head_len);
	x->req_done = true;
	proxy_respond_ct(c, x, 200, "text/plain", ka, "Cache-Control: no-store\r\n",
			 m->framing != H1_BODY_NONE || x->client_close || x->http10);
	return true;
}

/* Everything decided from the head, before any upstream is involved. */
static void start_exchange(struct conn *c, struct h1_msg *m)
{
	const struct conf *cf = exchange_conf(c);
	struct exchange *x = xcalloc(1, sizeof(*x));
	struct upstream_req ur = {0};
	char host[256], hostport[272];
	int port = 0;
	char *path;

	c->x = x;
	c->served = true;
	x->c = c;
	x->start_ms = c->head_start_ms;
	x->m = m->m;
	x->method = xstrndup(m->method.p, m->method.n);
	x->path = xstrndup(m->path.p, m->path.n);
	x->bytes_in = m->head_len;
	x->http10 = m->minor == 0;
	x->client_close = (m->flags & H1_F_CLOSE) != 0;
	/* RFC 9110 7.8: Upgrade is ignored in an HTTP/1.0 request */
	x->upgrade = (m->flags & H1_F_UPGRADE) != 0 && m->minor == 1 && !offers_h2c(m->upgrade);
	x->expect = (m->flags & H1_F_EXPECT_CONTINUE) != 0;
	x->req_framing = m->framing;
	x->req_left = m->content_length;
	x->req_done = m->framing == H1_BODY_NONE ||
		      (m->framing == H1_BODY_LENGTH && m->content_length == 0);
	h1_chunked_init(&x->req_ch);
	c->state = CONN_BUSY;
	conn_set_timer(c, 0);

	if (m->host.n == 0 || uri_canon_host(m->host.p, m->host.n, host, sizeof(host), &port) != 0) {
		proxy_respond(c, x, 400, "Bad Request: a valid Host header is required\n", NULL, true);
		return;
	}
	snprintf(x->host, sizeof(x->host), "%s", host);
	x->site = conf_find_site(cf, host);
	if (x->site == NULL || (c->tls && x->site != c->tls_site)) {
		proxy_respond(c, x, 421, "Misdirected Request: this connection does not serve that host\n",
			NULL, true);
		return;
	}
	if (m->flags & H1_F_ASTERISK_FORM) {
		path = xstrdup("*");
	} else {
		size_t plen;

		path = xmalloc(m->path.n + 1);
		if (uri_normalize_target(m->path.p, m->path.n, path, m->path.n + 1, &plen) != 0) {
			free(path);
			proxy_respond(c, x, 400, "Bad Request: the path is ambiguous or malformed\n", NULL, true);
			return;
		}
	}
	free(x->path);
	x->path = path;
	if (answer_challenge(c, x, m, host))
		return;
	if (!check_guard(c, x, m))
		return;
	if (!c->tls && x->site->redirect) {
		conn_consume(c, m->head_len);
		redirect(c, x, host);
		return;
	}
	if (!check_access(c, x, m, &ur))
		return;
	if (m->flags & H1_F_EXPECT_OTHER) {
		proxy_respond(c, x, 417, "Expectation Failed: only 100-continue is supported\n", NULL, true);
		return;
	}
	if (cf->max_body_bytes > 0 && m->framing == H1_BODY_LENGTH &&
	    m->content_length > cf->max_body_bytes) {
		proxy_respond(c, x, 413, "Content Too Large\n", NULL, true);
		return;
	}
	if (x->site->welcome) {
		conn_consume(c, m->head_len);
		x->req_done = true;
		proxy_respond(c, x, 200, WELCOME, NULL,
			m->framing != H1_BODY_NONE || x->client_close || x->http10);
		return;
	}
	if (port != 0)
		snprintf(hostport, sizeof(hostport), "%s:%d", host, port);
	else
		snprintf(hostport, sizeof(hostport), "%s", host);
	ur.m = m;
	ur.path = x->path;
	ur.host = hostport;
	ur.peer = x->client_txt[0] ? x->client_txt : c->peer;
	ur.tls = c->tls;
	ur.upgrade = x->upgrade;
	x->head = hdr_upstream_request(&ur, &x->head_len);
	conn_consume(c, m->head_len);
	conn_want_read(c, false);
	if (!x->req_done) {
		x->body_start_ms = moat_now_ms();
		conn_set_timer(c, cf->t.idle_ms);
	}
	if (x->req_framing == H1_BODY_CHUNKED) {
		x->await_chunk = true;
		if (x->expect) {
			/* the client waits for this before it sends the first chunk */
			static const char cont[] = "HTTP/1.1 100 Continue\r\n\r\n";

			conn_write(c, cont, sizeof(cont) - 1);
			x->expect = false;
		}
		if (!forward_precheck(x))
			return;
	}
	forward_connect(x);
}

static void read_head(struct conn *c)
{
	const struct conf *cf = exchange_conf(c);
	struct h1_msg *m = &c->w->msg;
	size_t max = cf->max_header_bytes < CONN_IN_CAP ? cf->max_header_bytes : CONN_IN_CAP;
	struct exchange *x;
	char body[200];
	int rc;

	if (c->in_len == 0) {
		if (c->peer_eof)
			conn_abort(c);
		else
			conn_release_input(c);
		return;
	}
	/* Answers moat writes itself (redirects, the welcome page) have no
	 * upstream to pace them: a client that pipelines requests and never
	 * reads would grow the write queue without bound. The next request
	 * waits until the client has read (proxy_on_client_drained). */
	if (conn_pending(c) >= CONN_HIGH_WATER) {
		conn_want_read(c, false);
		return;
	}
	if (c->state == CONN_IDLE) {
		c->state = CONN_HEAD;
		c->head_start_ms = moat_now_ms();
		/* the first head shares the deadline armed at accept with the
		 * TLS handshake (and a PROXY header): spending it on a slow
		 * handshake buys no second one for a slow head */
		if (c->served)
			conn_set_timer(c, cf->t.header_ms);
	}
	rc = h1_parse_request(c->in, c->in_len, max, m);
	if (rc == MOAT_EAGAIN) {
		if (c->peer_eof)
			conn_abort(c);
		return;
	}
	if (rc == 0) {
		start_exchange(c, m);
		return;
	}
	/* A malformed head: answer, never forward, and close. */
	x = xcalloc(1, sizeof(*x));
	x->c = c;
	x->start_ms = c->head_start_ms;
	x->bytes_in = c->in_len;
	c->x = x;
	c->state = CONN_BUSY;
	snprintf(body, sizeof(body), "%s: %s\n", hdr_reason(status_for(rc)), m->why ? m->why : "malformed request");
	proxy_respond(c, x, status_for(rc), body, NULL, true);
}

void proxy_on_input(struct conn *c)
{
	struct exchange *x = c->x;

	switch (c->state) {
	case CONN_IDLE:
	case CONN_HEAD:
		read_head(c);
		break;
	case CONN_BUSY:
		if (x == NULL || c->close_after_write)
			break;
		if (x->await_chunk) {
			if (forward_precheck(x))
				forward_connect(x);
		} else if (!x->req_done) {
			forward_pump_request(x);
		} else if (c->peer_eof) {
			/* the client left before its response was complete */
			conn_abort(c);
		}
		break;
	case CONN_TUNNEL:
		if (x != NULL)
			forward_tunnel_input(x);
		break;
	default:
		break;
	}
}

/* A connection that never got as far as a request: one line with no request. */
/* A deadline ended a connection outside a request's own log line (a
 * handshake or PROXY header that never finished, a tunnel whose client
 * stopped reading): a line of its own. */
static void log_timeout(struct conn *c)
{
	struct access_rec r = {
		.client = c->peer,
		.start_ms = c->head_start_ms,
		.tls = c->state == CONN_HANDSHAKE ? "handshake" : conn_tls_version(c),
		.deny = deny_name(DENY_TIMEOUT),
	};

	deny_count(DENY_TIMEOUT);
	log_access(&r);
}

/* The client took nothing of what is queued for it for timeouts.write
 * (conn.c re-arms the timer while it takes something): drop it, and what
 * the kernel still holds for it. */
static void write_timeout(struct conn *c)
{
	struct exchange *x = c->x;

	if (x != NULL && !x->logged) {
		x->deny = deny_name(DENY_TIMEOUT);
		deny_count(DENY_TIMEOUT);
		proxy_log_exchange(x);
	} else {
		log_timeout(c);
	}
	conn_reset(c);
}

void proxy_on_timeout(struct conn *c)
{
	struct exchange *x = c->x;

	if (c->write_wait && (c->state == CONN_BUSY || c->state == CONN_TUNNEL)) {
		write_timeout(c);
		return;
	}
	switch (c->state) {
	case CONN_HEAD:
		x = xcalloc(1, sizeof(*x));
		x->c = c;
		x->start_ms = c->head_start_ms;
		x->deny = deny_name(DENY_TIMEOUT);
		deny_count(DENY_TIMEOUT);
		c->x = x;
		c->state = CONN_BUSY;
		proxy_respond(c, x, 408, "Request Timeout: the request head did not arrive in time\n",
			NULL, true);
		break;
	case CONN_BUSY:
		if (x != NULL && !x->req_done) {
			x->deny = deny_name(DENY_TIMEOUT);
			deny_count(DENY_TIMEOUT);
			proxy_fail(x, 408, "the request body did not arrive in time");
			break;
		}
		conn_abort(c);
		break;
	case CONN_PROXY:
	case CONN_HANDSHAKE:
		log_timeout(c);
		conn_abort(c);
		break;
	default:
		conn_abort(c);
		break;
	}
}

void proxy_on_close(struct conn *c)
{
	struct exchange *x = c->x;

	if (x == NULL)
		return;
	proxy_drop_upstream(x);
	if (!x->logged) {
		if (!x->resp_head_done)
			x->status = 499; /* the client went away first */
		proxy_log_exchange(x);
	}
	c->x = NULL;
	proxy_free_exchange(x);
}
