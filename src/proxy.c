/*
 * proxy.c - see proxy.h. The life of one request ("exchange"):
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
#include "conf.h"
#include "conn.h"
#include "gen.h"
#include "h1.h"
#include "headers.h"
#include "log.h"
#include "upstream.h"
#include "uri.h"
#include "util.h"
#include "worker.h"

#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define FAIL_MARK_MS 10000  /* passive failure: skip an upstream this long */
#define RESP_HEAD_MAX 65536
#define MAX_RETRIES 2

struct exchange {
	struct conn *c;
	struct uconn *u;
	const struct conf_site *site;
	const struct conf_upstream *up;
	uint64_t tried;          /* bit i: site->up[i] tried */
	int retries;
	bool last_timeout;       /* last upstream failure was a timeout */
	char *head;              /* upstream request head (kept for a retry) */
	size_t head_len;
	enum h1_method m;
	bool http10;
	bool client_close;
	bool upgrade;
	bool expect;
	bool req_done;
	bool req_started;        /* body bytes went upstream: no retry */
	bool await_chunk;        /* chunked: first size line not checked yet */
	enum h1_framing req_framing;
	uint64_t req_left;
	uint64_t req_body;       /* chunked: decoded body bytes so far */
	struct h1_chunked req_ch;
	bool resp_head_done;
	bool resp_done;
	bool resp_close;         /* upstream said close, or body ends at close */
	bool up_dirty;           /* upstream sent more than the response */
	enum h1_framing resp_framing;
	uint64_t resp_left;
	struct h1_chunked resp_ch;
	bool rechunk;
	bool keep_client;
	int status;
	char *method;
	char *path;
	char host[260];
	uint64_t start_ms;
	uint64_t bytes_in;
	uint64_t bytes_out;
	bool logged;
};

static void up_connected(void *arg, int status);
static void up_input(void *arg);
static void up_drained(void *arg);
static void up_error(void *arg, int status);
static void up_timeout(void *arg);
static const struct up_cb up_cbs = {
	up_connected, up_input, up_drained, up_error, up_timeout,
};

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

static const struct conf *conf_of(const struct conn *c)
{
	return c->gen->conf;
}

static uint32_t hsts_of(const struct conn *c, const struct conf_site *site)
{
	if (c->ssl == NULL || site == NULL || !site->hsts)
		return 0;
	return site->hsts_max_age;
}

static void log_exchange(struct exchange *x)
{
	struct conn *c = x->c;
	struct access_rec r = {
		.client = c->peer,
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
	};

	if (x->logged)
		return;
	x->logged = true;
	log_access(&r);
}

static void free_exchange(struct exchange *x)
{
	free(x->head);
	free(x->method);
	free(x->path);
	free(x);
}

/* Ends the exchange without an upstream to keep. */
static void drop_upstream(struct exchange *x)
{
	if (x->u != NULL) {
		up_release(x->u, false, 0);
		x->u = NULL;
	}
}

/* A response moat writes itself. Closes the connection when close is set
 * (always for errors that leave the input in an unknown state). */
static void respond(struct conn *c, struct exchange *x, int status, const char *body,
		    const char *extra, bool close)
{
	const struct conf_site *site = x ? x->site : c->tls_site;
	bool head_only = x != NULL && x->m == H1_M_HEAD;
	size_t len;
	char *msg;

	if (c->drain)
		close = true;
	msg = hdr_simple(status, status == 200 ? "text/html; charset=utf-8" : "text/plain; charset=utf-8",
			 body, extra, close, hsts_of(c, site), head_only, &len);
	conn_write(c, msg, len);
	free(msg);
	if (x != NULL) {
		x->status = status;
		x->bytes_out += len;
		log_exchange(x);
	}
	if (close) {
		conn_close_after_write(c);
		return;
	}
	/* Answered without an upstream and the input is at the next request
	 * (the caller consumed this one): go on with the connection. */
	if (x != NULL && c->x == x) {
		c->x = NULL;
		free_exchange(x);
	}
	c->state = CONN_IDLE;
	conn_set_timer(c, conf_of(c)->t.idle_ms);
	conn_want_read(c, true);
}

/* An error before any response byte went out: answer and close. Once the
 * response has started, the only honest signal left is closing. */
static void fail(struct exchange *x, int status, const char *why)
{
	struct conn *c = x->c;
	char body[256];

	drop_upstream(x);
	if (x->resp_head_done) {
		x->status = x->status ? x->status : status;
		log_exchange(x);
		conn_abort(c);
		return;
	}
	snprintf(body, sizeof(body), "%s: %s\n", hdr_reason(status), why);
	respond(c, x, status, body, NULL, true);
}

static void mark_down(const struct conf_upstream *up)
{
	atomic_store((_Atomic uint64_t *)&up->down_until_ms, moat_now_ms() + FAIL_MARK_MS);
}

/* Round-robin over the site's upstreams, skipping those marked down unless
 * every untried one is. Returns the index or -1 when all were tried. */
static int pick_upstream(struct exchange *x)
{
	struct conf_site *site = (struct conf_site *)x->site;
	unsigned start = atomic_fetch_add(&site->rr, 1);
	uint64_t now = moat_now_ms();
	int fallback = -1;
	size_t k;

	for (k = 0; k < site->nup; k++) {
		size_t i = (start + k) % site->nup;

		if (x->tried & (1ull << i))
			continue;
		if (atomic_load(&site->up[i].down_until_ms) <= now)
			return (int)i;
		if (fallback < 0)
			fallback = (int)i;
	}
	return fallback;
}

static void start_upstream_io(struct exchange *x);
static bool chunked_precheck(struct exchange *x);

static void connect_next(struct exchange *x)
{
	struct conn *c = x->c;
	int i, err = 0;

	for (;;) {
		i = pick_upstream(x);
		if (i < 0) {
			fail(x, x->last_timeout ? 504 : 502, x->last_timeout ?
			     "the upstream did not answer in time" : "the upstream is not reachable");
			return;
		}
		x->tried |= 1ull << i;
		x->up = &x->site->up[i];
		x->u = up_acquire(c->w->pool, x->up, conf_of(c)->t.connect_ms, &up_cbs, x, &err);
		if (x->u != NULL)
			break;
		log_warn("upstream %s: %s", x->up->hostport, uv_strerror(err));
		mark_down(x->up);
	}
	if (x->u->connected)
		start_upstream_io(x);
}

static void up_connected(void *arg, int status)
{
	struct exchange *x = arg;

	if (status != 0) {
		log_warn("upstream %s: connect failed: %s", x->up->hostport, uv_strerror(status));
		mark_down(x->up);
		x->last_timeout = false;
		drop_upstream(x);
		connect_next(x);
		return;
	}
	start_upstream_io(x);
}

static void pump_request(struct exchange *x);

static void start_upstream_io(struct exchange *x)
{
	struct conn *c = x->c;

	if (up_write(x->u, x->head, x->head_len) != 0) {
		fail(x, 502, "cannot write to the upstream");
		return;
	}
	up_set_timer(x->u, conf_of(c)->t.response_ms);
	up_want_read(x->u, true);
	if (x->expect && !x->req_done) {
		static const char cont[] = "HTTP/1.1 100 Continue\r\n\r\n";

		conn_write(c, cont, sizeof(cont) - 1);
		x->expect = false;
	}
	pump_request(x);
	/* also after the body: a client that leaves must be noticed at once */
	if (!c->closed)
		conn_want_read(c, true);
}

static bool body_too_big(const struct exchange *x, uint64_t n)
{
	uint64_t max = conf_of(x->c)->max_body_bytes;

	return max > 0 && n > max;
}

/* Moves request body bytes from the client buffer to the upstream. */
static void pump_request(struct exchange *x)
{
	struct conn *c = x->c;
	const char *why = NULL;
	size_t consumed, out, n;
	bool done = false;

	if (x->req_done || x->u == NULL || !x->u->connected)
		return;
	while (c->in_len > 0 && up_pending(x->u) < CONN_HIGH_WATER && !x->req_done) {
		if (x->req_framing == H1_BODY_LENGTH) {
			n = c->in_len < x->req_left ? c->in_len : (size_t)x->req_left;
			up_write(x->u, c->in, n);
			conn_consume(c, n);
			x->req_left -= n;
			x->bytes_in += n;
			x->req_started = true;
			if (x->req_left == 0)
				x->req_done = true;
			continue;
		}
		if (h1_chunked_decode(&x->req_ch, c->in, c->in_len, &consumed, &out, &done, &why) != 0) {
			fail(x, 400, why ? why : "bad chunked body");
			return;
		}
		/* limits.body_size holds for chunked bodies too, as soon as a
		 * chunk-size line announces more than is left */
		x->req_body += out;
		if (body_too_big(x, x->req_body + x->req_ch.remaining)) {
			fail(x, 413, "the request body is larger than this site accepts");
			return;
		}
		if (out > 0)
			up_write_chunk(x->u, c->in, out);
		if (done)
			up_write_chunk(x->u, NULL, 0);
		x->req_started = true;
		x->bytes_in += consumed;
		conn_consume(c, consumed);
		if (done)
			x->req_done = true;
		if (consumed == 0)
			break;
	}
	/*
	 * One timer runs for whoever is awaited: the client's while it owes
	 * body bytes, the upstream's (timeouts.response) while it has to take
	 * the body or answer. The response wait counts from the end of the
	 * request, so an upload longer than timeouts.response is not cut.
	 * Once the response has started, pump_response owns the upstream timer.
	 */
	if (x->req_done) {
		/* keep reading: a client that goes away must be noticed even while
		 * the response is idle (pipelined bytes just wait in c->in) */
		conn_set_timer(c, 0);
		if (!x->resp_head_done)
			up_set_timer(x->u, conf_of(c)->t.response_ms);
		conn_want_read(c, true);
		return;
	}
	if (c->peer_eof) {
		fail(x, 400, "the client closed the connection before the request body ended");
		return;
	}
	if (up_pending(x->u) >= CONN_HIGH_WATER) {
		conn_set_timer(c, 0);
		if (!x->resp_head_done)
			up_set_timer(x->u, conf_of(c)->t.response_ms);
		conn_want_read(c, false);
	} else {
		if (!x->resp_head_done)
			up_set_timer(x->u, 0);
		conn_set_timer(c, conf_of(c)->t.idle_ms);
		conn_want_read(c, true);
	}
}

static void up_drained(void *arg)
{
	struct exchange *x = arg;
	struct conn *c = x->c;

	if (c->state == CONN_TUNNEL)
		conn_want_read(c, true);
	else if (!x->req_done)
		pump_request(x); /* resumes the client and moves the timers */
}

static void finish_exchange(struct exchange *x)
{
	struct conn *c = x->c;
	bool reusable = x->req_done && !x->resp_close && !x->up_dirty &&
			x->resp_framing != H1_BODY_UNTIL_CLOSE;
	bool keep = x->keep_client && x->req_done && !c->drain;

	up_release(x->u, reusable, conf_of(c)->t.upstream_idle_ms);
	x->u = NULL;
	log_exchange(x);
	c->x = NULL;
	free_exchange(x);
	if (!keep) {
		conn_close_after_write(c);
		return;
	}
	c->state = CONN_IDLE;
	conn_set_timer(c, conf_of(c)->t.idle_ms);
	conn_want_read(c, true);
}

/* Relays response body bytes; true when the response is complete. */
static bool pump_response(struct exchange *x)
{
	struct conn *c = x->c;
	struct uconn *u = x->u;
	const char *why = NULL;
	size_t consumed, out, n;
	bool done = false;

	while (u->in_len > 0 && conn_pending(c) < CONN_HIGH_WATER && !x->resp_done) {
		switch (x->resp_framing) {
		case H1_BODY_NONE:
			x->up_dirty = true;
			up_consume(u, u->in_len);
			break;
		case H1_BODY_LENGTH:
			n = u->in_len < x->resp_left ? u->in_len : (size_t)x->resp_left;
			conn_write(c, u->in, n);
			x->bytes_out += n;
			x->resp_left -= n;
			up_consume(u, n);
			if (x->resp_left == 0)
				x->resp_done = true;
			break;
		case H1_BODY_CHUNKED:
			if (h1_chunked_decode(&x->resp_ch, u->in, u->in_len, &consumed, &out, &done,
					      &why) != 0) {
				log_warn("upstream %s: bad chunked response: %s", x->up->hostport,
					 why ? why : "?");
				fail(x, 502, "bad response from the upstream");
				return false;
			}
			if (out > 0) {
				if (x->rechunk)
					conn_write_chunk(c, u->in, out);
				else
					conn_write(c, u->in, out);
				x->bytes_out += out;
			}
			up_consume(u, consumed);
			if (done) {
				if (x->rechunk)
					conn_write_chunk(c, NULL, 0);
				x->resp_done = true;
			}
			if (consumed == 0)
				goto stop;
			break;
		case H1_BODY_UNTIL_CLOSE:
			if (x->rechunk)
				conn_write_chunk(c, u->in, u->in_len);
			else
				conn_write(c, u->in, u->in_len);
			x->bytes_out += u->in_len;
			up_consume(u, u->in_len);
			break;
		}
		if (c->closed)
			return false;
	}
stop:
	if (x->resp_done) {
		if (u->in_len > 0)
			x->up_dirty = true;
		return true;
	}
	if (x->resp_framing == H1_BODY_NONE) {
		x->resp_done = true;
		return true;
	}
	if (u->eof && u->in_len == 0) {
		if (x->resp_framing == H1_BODY_UNTIL_CLOSE) {
			if (x->rechunk)
				conn_write_chunk(c, NULL, 0);
			x->resp_done = true;
			return true;
		}
		log_warn("upstream %s closed the connection before the response ended",
			 x->up->hostport);
		fail(x, 502, "truncated response");
		return false;
	}
	up_want_read(u, conn_pending(c) < CONN_HIGH_WATER);
	up_set_timer(u, conf_of(c)->t.response_ms);
	return false;
}

/* Switch to a byte tunnel after 101 Switching Protocols. */
static void start_tunnel(struct exchange *x)
{
	struct conn *c = x->c;

	c->state = CONN_TUNNEL;
	x->req_done = true;
	conn_set_timer(c, 0);
	up_set_timer(x->u, 0);
	log_exchange(x);
	if (x->u->in_len > 0) {
		conn_write(c, x->u->in, x->u->in_len);
		up_consume(x->u, x->u->in_len);
	}
	up_want_read(x->u, true);
	conn_want_read(c, true);
}

static void tunnel_from_upstream(struct exchange *x)
{
	struct conn *c = x->c;
	struct uconn *u = x->u;

	if (u->in_len > 0 && conn_pending(c) < CONN_HIGH_WATER) {
		conn_write(c, u->in, u->in_len);
		up_consume(u, u->in_len);
	}
	if (u->eof && u->in_len == 0) {
		drop_upstream(x);
		conn_close_after_write(c);
		return;
	}
	up_want_read(u, conn_pending(c) < CONN_HIGH_WATER);
}

static bool can_retry(const struct exchange *x)
{
	return x->u != NULL && x->u->reused && !x->resp_head_done && !x->req_started &&
	       x->retries < MAX_RETRIES;
}

static void retry(struct exchange *x)
{
	x->retries++;
	drop_upstream(x);
	x->tried &= ~(1ull << (x->up - x->site->up));
	connect_next(x);
}

/* Parses the response head; returns false when it is not complete yet or
 * the exchange failed. */
static bool response_head(struct exchange *x)
{
	struct conn *c = x->c;
	struct uconn *u = x->u;
	struct h1_msg *m = &c->w->msg;
	struct client_resp r = {0};
	size_t len;
	char *head;
	int rc;

	for (;;) {
		rc = h1_parse_response(u->in, u->in_len, RESP_HEAD_MAX, x->m, m);
		if (rc == MOAT_EAGAIN) {
			if (!u->eof)
				return false;
			if (u->in_len == 0 && can_retry(x)) {
				retry(x);
				return false;
			}
			log_warn("upstream %s closed the connection without a complete response",
				 x->up->hostport);
			fail(x, 502, "the upstream closed the connection");
			return false;
		}
		if (rc != 0) {
			log_warn("upstream %s: bad response: %s", x->up->hostport, m->why ? m->why : "?");
			fail(x, 502, "bad response from the upstream");
			return false;
		}
		if (m->status >= 200 || m->status == 101)
			break;
		/* 1xx interim responses: moat answered Expect itself; drop them. */
		up_consume(u, m->head_len);
	}
	if (m->status == 101 && (!x->upgrade || m->upgrade.n == 0)) {
		fail(x, 502, "the upstream switched protocols unasked");
		return false;
	}
	x->status = m->status;
	x->resp_framing = m->framing;
	x->resp_left = m->content_length;
	x->resp_close = (m->flags & H1_F_CLOSE) != 0;
	if (m->status != 101 && x->resp_framing != H1_BODY_NONE &&
	    x->resp_framing != H1_BODY_LENGTH && !x->http10)
		x->rechunk = true;
	/* An HTTP/1.0 client gets a chunked or close-delimited body decoded
	 * and unframed (it cannot read chunks): only the close can end it. */
	x->keep_client = !x->client_close && !c->drain && x->req_done &&
			 (x->rechunk || x->resp_framing == H1_BODY_NONE ||
			  x->resp_framing == H1_BODY_LENGTH);
	h1_chunked_init(&x->resp_ch);
	r.m = m;
	r.hsts_max_age = hsts_of(c, x->site);
	r.chunked = x->rechunk;
	r.close = !x->keep_client;
	r.keepalive_10 = x->http10 && x->keep_client;
	head = hdr_client_response(&r, &len);
	conn_write(c, head, len);
	free(head);
	x->bytes_out += len;
	up_consume(u, m->head_len);
	x->resp_head_done = true;
	free(x->head);
	x->head = NULL;
	if (m->status == 101) {
		start_tunnel(x);
		return false;
	}
	return !c->closed;
}

static void up_input(void *arg)
{
	struct exchange *x = arg;
	struct conn *c = x->c;

	if (c->state == CONN_TUNNEL) {
		tunnel_from_upstream(x);
		return;
	}
	if (!x->resp_head_done && !response_head(x))
		return;
	if (pump_response(x))
		finish_exchange(x);
}

static void up_error(void *arg, int status)
{
	struct exchange *x = arg;

	if (x->c->state == CONN_TUNNEL) {
		drop_upstream(x);
		conn_close_after_write(x->c);
		return;
	}
	if (!x->resp_head_done && x->u->in_len == 0 && can_retry(x)) {
		retry(x);
		return;
	}
	log_warn("upstream %s: %s", x->up->hostport, uv_strerror(status));
	if (!x->resp_head_done)
		mark_down(x->up);
	fail(x, 502, "the upstream connection failed");
}

static void up_timeout(void *arg)
{
	struct exchange *x = arg;

	if (!x->u->connected) {
		log_warn("upstream %s: connect timed out", x->up->hostport);
		mark_down(x->up);
		x->last_timeout = true;
		drop_upstream(x);
		connect_next(x);
		return;
	}
	log_warn("upstream %s: no response in time", x->up->hostport);
	if (!x->resp_head_done)
		mark_down(x->up);
	fail(x, 504, "the upstream did not answer in time");
}

void proxy_on_client_drained(struct conn *c)
{
	struct exchange *x = c->x;

	if (x == NULL && (c->state == CONN_IDLE || c->state == CONN_HEAD) && !c->want_read) {
		conn_want_read(c, true); /* read_head paused for this */
		return;
	}
	if (x == NULL || x->u == NULL)
		return;
	if (c->state == CONN_TUNNEL) {
		tunnel_from_upstream(x);
		return;
	}
	if (x->resp_head_done && !x->resp_done && pump_response(x))
		finish_exchange(x);
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
	const struct conf *cf = conf_of(c);
	char extra[600], body[600], port[16] = "";
	int p = 0;

	if (cf->nhttps > 0)
		p = ntohs(((const struct sockaddr_in *)&cf->https[0].sa)->sin_port);
	if (p != 0 && p != 443)
		snprintf(port, sizeof(port), ":%d", p);
	snprintf(body, sizeof(body), "https://%s%s%s", host, port, x->path);
	if (strlen(body) > 500) {
		respond(c, x, 414, "URI Too Long\n", NULL, true);
		return;
	}
	snprintf(extra, sizeof(extra), "Location: %s\r\n", body);
	strcat(body, "\n");
	respond(c, x, 308, body, extra, x->req_framing != H1_BODY_NONE || x->client_close);
}

/* Everything decided from the head, before any upstream is involved. */
static void start_exchange(struct conn *c, struct h1_msg *m)
{
	const struct conf *cf = conf_of(c);
	struct exchange *x = xcalloc(1, sizeof(*x));
	struct upstream_req ur = {0};
	char host[256], hostport[272];
	int port = 0;
	char *path;

	c->x = x;
	x->c = c;
	x->start_ms = c->head_start_ms;
	x->m = m->m;
	x->method = xstrndup(m->method.p, m->method.n);
	x->path = xstrndup(m->path.p, m->path.n);
	x->bytes_in = m->head_len;
	x->http10 = m->minor == 0;
	x->client_close = (m->flags & H1_F_CLOSE) != 0;
	x->upgrade = (m->flags & H1_F_UPGRADE) != 0;
	x->expect = (m->flags & H1_F_EXPECT_CONTINUE) != 0;
	x->req_framing = m->framing;
	x->req_left = m->content_length;
	x->req_done = m->framing == H1_BODY_NONE ||
		      (m->framing == H1_BODY_LENGTH && m->content_length == 0);
	h1_chunked_init(&x->req_ch);
	c->state = CONN_BUSY;
	conn_set_timer(c, 0);

	if (m->host.n == 0 || uri_canon_host(m->host.p, m->host.n, host, sizeof(host), &port) != 0) {
		respond(c, x, 400, "Bad Request: a valid Host header is required\n", NULL, true);
		return;
	}
	snprintf(x->host, sizeof(x->host), "%s", host);
	x->site = conf_find_site(cf, host);
	if (x->site == NULL || (c->ssl != NULL && x->site != c->tls_site)) {
		respond(c, x, 421, "Misdirected Request: this connection does not serve that host\n",
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
			respond(c, x, 400, "Bad Request: the path is ambiguous or malformed\n", NULL, true);
			return;
		}
	}
	free(x->path);
	x->path = path;
	if (c->ssl == NULL && x->site->redirect) {
		conn_consume(c, m->head_len);
		redirect(c, x, host);
		return;
	}
	if (m->flags & H1_F_EXPECT_OTHER) {
		respond(c, x, 417, "Expectation Failed: only 100-continue is supported\n", NULL, true);
		return;
	}
	if (cf->max_body_bytes > 0 && m->framing == H1_BODY_LENGTH &&
	    m->content_length > cf->max_body_bytes) {
		respond(c, x, 413, "Content Too Large\n", NULL, true);
		return;
	}
	if (x->site->welcome) {
		conn_consume(c, m->head_len);
		x->req_done = true;
		respond(c, x, 200, WELCOME, NULL,
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
	ur.peer = c->peer;
	ur.tls = c->ssl != NULL;
	ur.upgrade = x->upgrade;
	x->head = hdr_upstream_request(&ur, &x->head_len);
	conn_consume(c, m->head_len);
	conn_want_read(c, false);
	if (!x->req_done)
		conn_set_timer(c, cf->t.idle_ms);
	if (x->req_framing == H1_BODY_CHUNKED) {
		x->await_chunk = true;
		if (x->expect) {
			/* the client waits for this before it sends the first chunk */
			static const char cont[] = "HTTP/1.1 100 Continue\r\n\r\n";

			conn_write(c, cont, sizeof(cont) - 1);
			x->expect = false;
		}
		if (!chunked_precheck(x))
			return;
	}
	connect_next(x);
}

/*
 * A chunked body is checked as far as it is buffered before any upstream is
 * contacted, and the upstream is not contacted before the first chunk-size
 * line is known to be valid: a request whose framing is broken from the
 * start never reaches an upstream. (Later chunks are checked as they stream;
 * a bad one aborts the upstream connection mid-body.)
 * Returns true when the upstream may be contacted.
 */
static bool chunked_precheck(struct exchange *x)
{
	struct conn *c = x->c;
	struct h1_chunked probe = x->req_ch;
	char *copy = c->w->rbuf; /* free here: TLS reads are consumed synchronously */
	size_t consumed, out, len = c->in_len < WORKER_RBUF ? c->in_len : WORKER_RBUF;
	const char *why = NULL;
	bool done = false;

	if (len > 0)
		memcpy(copy, c->in, len);
	if (h1_chunked_decode(&probe, copy, len, &consumed, &out, &done, &why) != 0) {
		fail(x, 400, why ? why : "bad chunked body");
		return false;
	}
	if (body_too_big(x, (uint64_t)out + probe.remaining)) {
		fail(x, 413, "the request body is larger than this site accepts");
		return false;
	}
	if (done || out > 0 || probe.remaining > 0) {
		x->await_chunk = false;
		return true;
	}
	if (c->peer_eof) {
		fail(x, 400, "the client closed the connection before the request body ended");
		return false;
	}
	conn_want_read(c, true);
	return false;
}

static void read_head(struct conn *c)
{
	const struct conf *cf = conf_of(c);
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
	respond(c, x, status_for(rc), body, NULL, true);
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
			if (chunked_precheck(x))
				connect_next(x);
		} else if (!x->req_done) {
			pump_request(x);
		} else if (c->peer_eof) {
			/* the client left before its response was complete */
			conn_abort(c);
		}
		break;
	case CONN_TUNNEL:
		if (x == NULL || x->u == NULL)
			break;
		if (c->in_len > 0 && (up_pending(x->u) < CONN_HIGH_WATER || c->peer_eof)) {
			up_write(x->u, c->in, c->in_len);
			conn_consume(c, c->in_len);
		}
		if (c->peer_eof) {
			/* Pass the half-close on after the queued bytes; what the
			 * upstream still sends flows back until it closes too. */
			up_shutdown(x->u);
			conn_set_timer(c, conf_of(c)->t.idle_ms);
			break;
		}
		conn_want_read(c, up_pending(x->u) < CONN_HIGH_WATER);
		break;
	default:
		break;
	}
}

void proxy_on_timeout(struct conn *c)
{
	struct exchange *x = c->x;

	switch (c->state) {
	case CONN_HEAD:
		x = xcalloc(1, sizeof(*x));
		x->c = c;
		x->start_ms = c->head_start_ms;
		c->x = x;
		c->state = CONN_BUSY;
		respond(c, x, 408, "Request Timeout: the request head did not arrive in time\n",
			NULL, true);
		break;
	case CONN_BUSY:
		if (x != NULL && !x->req_done) {
			fail(x, 408, "the request body did not arrive in time");
			break;
		}
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
	drop_upstream(x);
	if (!x->logged) {
		if (!x->resp_head_done)
			x->status = 499; /* the client went away first */
		log_exchange(x);
	}
	c->x = NULL;
	free_exchange(x);
}
