/*
 * forward.c - the upstream side of an exchange (see exchange.h): choosing an
 * upstream (round-robin, passive failure marks, retries), writing the request
 * and pumping its body, relaying the response head and body, the keep-alive
 * hand-back to the pool, and byte tunnels after 101.
 *
 * Backpressure: each side is read only while the other side's write queue
 * is under CONN_HIGH_WATER; the drained callbacks resume it. Nothing is
 * buffered beyond the fixed input buffers and those queues.
 * Thread: owning worker only.
 */
#include "exchange.h"
#include "conf.h"
#include "conn.h"
#include "guard.h"
#include "h1.h"
#include "headers.h"
#include "log.h"
#include "upstream.h"
#include "util.h"
#include "worker.h"

#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

#define FAIL_MARK_MS 10000  /* passive failure: skip an upstream this long */
#define RESP_HEAD_MAX 65536
#define MAX_RETRIES 2

static void up_connected(void *arg, int status);
static void up_input(void *arg);
static void up_drained(void *arg);
static void up_error(void *arg, int status);
static void up_timeout(void *arg);
static const struct up_cb up_cbs = {
	up_connected, up_input, up_drained, up_error, up_timeout,
};
static void start_upstream_io(struct exchange *x);
static void response_timers(struct exchange *x);

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

void forward_connect(struct exchange *x)
{
	struct conn *c = x->c;
	int i, err = 0;

	for (;;) {
		i = pick_upstream(x);
		if (i < 0) {
			proxy_fail(x, x->last_timeout ? 504 : 502, x->last_timeout ?
			     "the upstream did not answer in time" : "the upstream is not reachable");
			return;
		}
		x->tried |= 1ull << i;
		x->up = &x->site->up[i];
		x->u = up_acquire(c->w->pool, x->up, exchange_conf(c)->t.connect_ms, &up_cbs, x, &err);
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
		proxy_drop_upstream(x);
		forward_connect(x);
		return;
	}
	start_upstream_io(x);
}

static void start_upstream_io(struct exchange *x)
{
	struct conn *c = x->c;

	if (up_write(x->u, x->head, x->head_len) != 0) {
		proxy_fail(x, 502, "cannot write to the upstream");
		return;
	}
	up_set_timer(x->u, exchange_conf(c)->t.response_ms);
	up_start_reading(x->u);
	if (x->expect && !x->req_done) {
		static const char cont[] = "HTTP/1.1 100 Continue\r\n\r\n";

		conn_write(c, cont, sizeof(cont) - 1);
		x->expect = false;
	}
	forward_pump_request(x);
	/* also after the body: a client that leaves must be noticed at once */
	if (!c->closed)
		conn_want_read(c, true);
}

static bool body_too_big(const struct exchange *x, uint64_t n)
{
	uint64_t max = exchange_conf(x->c)->max_body_bytes;

	return max > 0 && n > max;
}

/*
 * How long the client may now take for more of its body: timeouts.idle
 * between bytes, and no longer than keeps it at limits.min_body_rate on
 * average once timeouts.body has passed (a slowloris body that trickles a
 * byte every few seconds is cut; a phone on a slow line is not). Time moat
 * itself held the body back, because the upstream was not taking it, does
 * not count. At least 1 ms: a client already behind times out at once.
 */
static uint64_t body_wait(struct exchange *x)
{
	const struct conf *cf = exchange_conf(x->c);
	uint64_t now = moat_now_ms(), due, wait = cf->t.idle_ms;

	if (x->body_paused_ms != 0) {
		x->body_start_ms += now - x->body_paused_ms;
		x->body_paused_ms = 0;
	}
	if (cf->min_body_rate == 0)
		return wait;
	due = x->body_start_ms + cf->t.body_ms + x->body_got * 1000 / cf->min_body_rate;
	if (due <= now)
		return 1;
	return due - now < wait ? due - now : wait;
}

/* Moves request body bytes from the client buffer to the upstream. */
void forward_pump_request(struct exchange *x)
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
			x->body_got += n;
			x->req_started = true;
			if (x->req_left == 0)
				x->req_done = true;
			continue;
		}
		if (h1_chunked_decode(&x->req_ch, c->in, c->in_len, &consumed, &out, &done, &why) != 0) {
			proxy_fail(x, 400, why ? why : "bad chunked body");
			return;
		}
		/* limits.body_size holds for chunked bodies too, as soon as a
		 * chunk-size line announces more than is left */
		x->req_body += out;
		if (body_too_big(x, x->req_body + x->req_ch.remaining)) {
			proxy_fail(x, 413, "the request body is larger than this site accepts");
			return;
		}
		if (out > 0)
			up_write_chunk(x->u, c->in, out);
		if (done)
			up_write_chunk(x->u, NULL, 0);
		x->req_started = true;
		x->bytes_in += consumed;
		x->body_got += consumed;
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
	 * Once the response has started, response_timers decides, except that
	 * an upstream not taking the body is always on its own timer.
	 */
	if (x->req_done) {
		/* keep reading: a client that goes away must be noticed even while
		 * the response is idle (pipelined bytes just wait in c->in) */
		if (x->resp_head_done) {
			response_timers(x);
		} else {
			conn_set_timer(c, 0);
			up_set_timer(x->u, exchange_conf(c)->t.response_ms);
		}
		conn_want_read(c, true);
		return;
	}
	if (c->peer_eof) {
		proxy_fail(x, 400, "the client closed the connection before the request body ended");
		return;
	}
	if (up_pending(x->u) >= CONN_HIGH_WATER) {
		if (x->body_paused_ms == 0)
			x->body_paused_ms = moat_now_ms();
		conn_set_timer(c, 0);
		up_set_timer(x->u, exchange_conf(c)->t.response_ms);
		conn_want_read(c, false);
	} else {
		if (x->resp_head_done)
			response_timers(x);
		else
			up_set_timer(x->u, 0);
		conn_set_timer(c, body_wait(x));
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
		forward_pump_request(x); /* resumes the client and moves the timers */
}

static void finish_exchange(struct exchange *x)
{
	struct conn *c = x->c;
	bool reusable = x->req_done && !x->resp_close && !x->up_dirty &&
			x->resp_framing != H1_BODY_UNTIL_CLOSE;
	bool keep = x->keep_client && x->req_done && !c->drain;
	bool linger = !x->req_done; /* the rest of the body may still come */

	up_release(x->u, reusable, exchange_conf(c)->t.upstream_idle_ms);
	x->u = NULL;
	proxy_log_exchange(x);
	c->x = NULL;
	proxy_free_exchange(x);
	if (!keep) {
		conn_close_after_write(c, linger);
		return;
	}
	c->state = CONN_IDLE;
	conn_release_input(c);
	conn_set_timer(c, exchange_conf(c)->t.idle_ms);
	conn_want_read(c, true);
}

/*
 * While the response streams, the timer runs for the side moat waits on:
 * the client's (timeouts.write, counted from the last time it took any of
 * it) while it does not read what is queued for it, else the upstream's
 * (timeouts.response). The upstream is not read while the client lags, so
 * that wait must not count against it.
 */
static void response_timers(struct exchange *x)
{
	struct conn *c = x->c;
	const struct conf *cf = exchange_conf(c);

	if (conn_pending(c) >= CONN_HIGH_WATER) {
		up_set_timer(x->u, 0);
		if (!c->write_wait)
			conn_wait_write(c);
	} else {
		up_set_timer(x->u, cf->t.response_ms);
		if (x->req_done)
			conn_set_timer(c, 0);
	}
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
				proxy_fail(x, 502, "bad response from the upstream");
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
		proxy_fail(x, 502, "truncated response");
		return false;
	}
	response_timers(x);
	return false;
}

/* Switch to a byte tunnel after 101 Switching Protocols. */
static void start_tunnel(struct exchange *x)
{
	struct conn *c = x->c;

	c->state = CONN_TUNNEL;
	x->req_done = true;
	conn_set_timer(c, 0);
	conn_probe_peer(c);
	up_set_timer(x->u, 0);
	proxy_log_exchange(x);
	if (x->u->in_len > 0) {
		conn_write(c, x->u->in, x->u->in_len);
		up_consume(x->u, x->u->in_len);
	}
	conn_want_read(c, true);
}

static void tunnel_from_upstream(struct exchange *x)
{
	struct conn *c = x->c;
	struct uconn *u = x->u;

	if (u->in_len > 0 && conn_pending(c) < CONN_HIGH_WATER) {
		conn_write(c, u->in, u->in_len);
		up_consume(u, u->in_len);
		/* after the client's half-close the idle timer bounds the
		 * tunnel; it counts from the last bytes, not from the EOF */
		if (c->peer_eof)
			conn_set_timer(c, exchange_conf(c)->t.idle_ms);
	}
	/* a tunnel has no timer, except while its client does not read */
	if (!c->peer_eof) {
		if (conn_pending(c) >= CONN_HIGH_WATER && !c->write_wait)
			conn_wait_write(c);
		else if (conn_pending(c) < CONN_HIGH_WATER && c->write_wait)
			conn_set_timer(c, 0);
	}
	if (u->eof && u->in_len == 0) {
		proxy_drop_upstream(x);
		conn_close_after_write(c, true);
		return;
	}
}

/* RFC 9110 9.2.2: only these may be sent again without the client asking */
static bool is_idempotent(enum h1_method m)
{
	return m == H1_M_GET || m == H1_M_HEAD || m == H1_M_OPTIONS || m == H1_M_TRACE ||
	       m == H1_M_PUT || m == H1_M_DELETE;
}

/* A pooled connection the upstream had already closed fails before any
 * answer; the request may be sent once more on a fresh connection, if it is
 * idempotent and no body byte went out. */
static bool can_retry(const struct exchange *x)
{
	return x->u != NULL && x->u->reused && !x->resp_head_done && !x->req_started &&
	       is_idempotent(x->m) && x->retries < MAX_RETRIES;
}

static void retry(struct exchange *x)
{
	x->retries++;
	proxy_drop_upstream(x);
	x->tried &= ~(1ull << (x->up - x->site->up));
	forward_connect(x);
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
		/* u->in may not exist yet (pooled connections hold none) */
		rc = u->in_len == 0 ? MOAT_EAGAIN :
		     h1_parse_response(u->in, u->in_len, RESP_HEAD_MAX, x->m, m);
		if (rc == MOAT_EAGAIN) {
			if (!u->eof)
				return false;
			if (u->in_len == 0 && can_retry(x)) {
				retry(x);
				return false;
			}
			log_warn("upstream %s closed the connection without a complete response",
				 x->up->hostport);
			proxy_fail(x, 502, "the upstream closed the connection");
			return false;
		}
		if (rc != 0) {
			log_warn("upstream %s: bad response: %s", x->up->hostport, m->why ? m->why : "?");
			proxy_fail(x, 502, "bad response from the upstream");
			return false;
		}
		if (m->status >= 200 || m->status == 101)
			break;
		/* 1xx interim responses: moat answered Expect itself; drop them. */
		up_consume(u, m->head_len);
	}
	if (m->status == 101 && (!x->upgrade || m->upgrade.n == 0)) {
		proxy_fail(x, 502, "the upstream switched protocols unasked");
		return false;
	}
	x->status = m->status;
	x->resp_framing = m->framing;
	x->resp_left = m->content_length;
	/* "Content-Length: 0": complete with the head; pump_response only
	 * finishes a length body when body bytes arrive. */
	x->resp_done = x->resp_framing == H1_BODY_LENGTH && x->resp_left == 0;
	x->resp_close = (m->flags & H1_F_CLOSE) != 0;
	if (m->status != 101 && x->resp_framing != H1_BODY_NONE &&
	    x->resp_framing != H1_BODY_LENGTH && !x->http10)
		x->rechunk = true;
	/* An HTTP/1.0 client gets a chunked or close-delimited body decoded
	 * and unframed (it cannot read chunks): only the close can end it.
	 * (Content-Length is always written by moat, see headers.c.) */
	x->keep_client = !x->client_close && !c->drain && x->req_done &&
			 (x->rechunk || x->resp_framing == H1_BODY_NONE ||
			  x->resp_framing == H1_BODY_LENGTH);
	/* an answer that gets its client banned is its last on this connection */
	if (guard_observe(x, m->status))
		x->keep_client = false;
	h1_chunked_init(&x->resp_ch);
	r.m = m;
	r.hsts_max_age = exchange_hsts(c, x->site);
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

static void relay_input(struct exchange *x)
{
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

/* What the upstream said goes to the client at once, as one write, rather
 * than when the loop has run every other ready event too: that waiting
 * would show in the response time. x may be gone after relay_input; the
 * connection stays valid until its close callback. */
static void up_input(void *arg)
{
	struct exchange *x = arg;
	struct conn *c = x->c;

	relay_input(x);
	conn_flush(c);
}

static void up_error(void *arg, int status)
{
	struct exchange *x = arg;

	if (x->c->state == CONN_TUNNEL) {
		proxy_drop_upstream(x);
		conn_close_after_write(x->c, true);
		return;
	}
	if (!x->resp_head_done && x->u->in_len == 0 && can_retry(x)) {
		retry(x);
		return;
	}
	log_warn("upstream %s: %s", x->up->hostport, uv_strerror(status));
	if (!x->resp_head_done)
		mark_down(x->up);
	proxy_fail(x, 502, "the upstream connection failed");
}

static void up_timeout(void *arg)
{
	struct exchange *x = arg;

	if (!x->u->connected) {
		log_warn("upstream %s: connect timed out", x->up->hostport);
		mark_down(x->up);
		x->last_timeout = true;
		proxy_drop_upstream(x);
		forward_connect(x);
		return;
	}
	log_warn("upstream %s: no response in time", x->up->hostport);
	if (!x->resp_head_done)
		mark_down(x->up);
	proxy_fail(x, 504, "the upstream did not answer in time");
}

/*
 * A chunked body is checked as far as it is buffered before any upstream is
 * contacted, and the upstream is not contacted before the first chunk-size
 * line is known to be valid: a request whose framing is broken from the
 * start never reaches an upstream. (Later chunks are checked as they stream;
 * a bad one aborts the upstream connection mid-body.)
 * Returns true when the upstream may be contacted.
 */
bool forward_precheck(struct exchange *x)
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
		proxy_fail(x, 400, why ? why : "bad chunked body");
		return false;
	}
	if (body_too_big(x, (uint64_t)out + probe.remaining)) {
		proxy_fail(x, 413, "the request body is larger than this site accepts");
		return false;
	}
	if (done || out > 0 || probe.remaining > 0) {
		x->await_chunk = false;
		return true;
	}
	if (c->peer_eof) {
		proxy_fail(x, 400, "the client closed the connection before the request body ended");
		return false;
	}
	conn_want_read(c, true);
	return false;
}

void forward_client_drained(struct exchange *x)
{
	struct conn *c = x->c;

	if (x->u == NULL)
		return;
	if (c->state == CONN_TUNNEL) {
		tunnel_from_upstream(x);
		return;
	}
	if (x->resp_head_done && !x->resp_done && pump_response(x))
		finish_exchange(x);
}

void forward_tunnel_input(struct exchange *x)
{
	struct conn *c = x->c;

	if (x->u == NULL)
		return;
	if (c->in_len > 0 && (up_pending(x->u) < CONN_HIGH_WATER || c->peer_eof)) {
		up_write(x->u, c->in, c->in_len);
		conn_consume(c, c->in_len);
	}
	if (c->peer_eof) {
		/* Pass the half-close on after the queued bytes; what the
		 * upstream still sends flows back until it closes too. */
		conn_want_read(c, false);
		up_shutdown(x->u);
		conn_set_timer(c, exchange_conf(c)->t.idle_ms);
		return;
	}
	conn_want_read(c, up_pending(x->u) < CONN_HIGH_WATER);
}
