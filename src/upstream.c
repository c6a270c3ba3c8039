/*
 * upstream.c - see upstream.h.
 */
#include "upstream.h"
#include "conf.h"
#include "conn.h"
#include "log.h"
#include "proxy.h"
#include "util.h"
#include "worker.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define POOL_MAX_IDLE 1024

struct pool {
	struct worker *w;
	struct uconn *idle;   /* most recently used first */
	struct uconn *tail;
	size_t nidle;
	size_t live;          /* every uconn not yet freed */
	bool closing;
};

struct uwreq {
	uv_write_t req;
	struct uconn *u;
	char data[];
};

static void pool_maybe_free(struct pool *p)
{
	if (p->closing && p->live == 0)
		free(p);
}

static void on_closed(uv_handle_t *h)
{
	struct uconn *u = h->data;
	struct pool *p = u->pool;

	if (--u->handles > 0)
		return;
	worker_buf_put(p->w, u->in);
	free(u->key);
	free(u);
	p->live--;
	pool_maybe_free(p);
}

static void unlink_idle(struct uconn *u)
{
	struct pool *p = u->pool;

	if (u->prev != NULL)
		u->prev->next = u->next;
	else
		p->idle = u->next;
	if (u->next != NULL)
		u->next->prev = u->prev;
	else
		p->tail = u->prev;
	u->prev = u->next = NULL;
	p->nidle--;
}

static void up_close(struct uconn *u)
{
	if (u->closed)
		return;
	u->closed = true;
	u->cb = NULL;
	uv_close(deadline_handle(&u->timer), on_closed);
	uv_close((uv_handle_t *)&u->tcp, on_closed);
}

struct pool *pool_new(struct worker *w)
{
	struct pool *p = xcalloc(1, sizeof(*p));

	p->w = w;
	return p;
}

void pool_close(struct pool *p)
{
	if (p == NULL)
		return;
	p->closing = true;
	while (p->idle != NULL) {
		struct uconn *u = p->idle;

		unlink_idle(u);
		up_close(u);
	}
	pool_maybe_free(p);
}

static void on_timer(void *arg)
{
	struct uconn *u = arg;

	if (u->cb == NULL) { /* idle lifetime over */
		unlink_idle(u);
		up_close(u);
		return;
	}
	u->cb->timeout(u->arg);
}

void up_set_timer(struct uconn *u, uint64_t ms)
{
	if (u->closed)
		return;
	if (ms == 0)
		deadline_clear(&u->timer);
	else
		deadline_set(&u->timer, ms);
}

static void on_shutdown(uv_shutdown_t *req, int status)
{
	/* nothing to do: a failure shows up as a read error or EOF */
}

void up_shutdown(struct uconn *u)
{
	if (u->closed || u->shut || !u->connected)
		return;
	u->shut = true;
	u->sreq.data = u;
	uv_shutdown(&u->sreq, (uv_stream_t *)&u->tcp, on_shutdown);
}

static void on_alloc(uv_handle_t *h, size_t hint, uv_buf_t *buf)
{
	struct uconn *u = h->data;

	/* idle: anything it says is a reason to close, read into scratch */
	if (u->cb == NULL) {
		*buf = uv_buf_init(u->pool->w->rbuf, WORKER_RBUF);
		return;
	}
	if (u->in == NULL)
		u->in = worker_buf_get(u->pool->w);
	*buf = uv_buf_init(u->in + u->in_len, (unsigned)(UCONN_IN_CAP - u->in_len));
}

static void on_read(uv_stream_t *s, ssize_t nread, const uv_buf_t *buf);

/* Reading stays armed whether or not the exchange wants input now (bytes
 * wait in u->in, whose size bounds them), and while idle in the pool (any
 * byte then closes the connection): toggling it around every exchange
 * would cost epoll calls each time. */
static void update_reading(struct uconn *u)
{
	bool want = !u->closed && u->connected && !u->eof &&
		    (u->cb == NULL || u->in_len < UCONN_IN_CAP);

	if (want == u->reading)
		return;
	u->reading = want;
	if (!want) {
		uv_read_stop((uv_stream_t *)&u->tcp);
		return;
	}
	uv_read_start((uv_stream_t *)&u->tcp, on_alloc, on_read);
}

static void on_read(uv_stream_t *s, ssize_t nread, const uv_buf_t *buf)
{
	struct uconn *u = s->data;

	if (u->closed || nread == 0)
		return;
	if (u->cb == NULL) { /* idle upstream spoke or closed: drop it */
		unlink_idle(u);
		up_close(u);
		return;
	}
	if (nread < 0) {
		if (nread != UV_EOF) {
			u->cb->error(u->arg, (int)nread);
			return;
		}
		u->eof = true;
		update_reading(u);
	} else {
		u->in_len += (size_t)nread;
		if (u->in_len >= UCONN_IN_CAP)
			update_reading(u);
	}
	u->cb->input(u->arg);
}

void up_start_reading(struct uconn *u)
{
	update_reading(u);
}

void up_consume(struct uconn *u, size_t n)
{
	if (n >= u->in_len) {
		u->in_len = 0;
	} else {
		memmove(u->in, u->in + n, u->in_len - n);
		u->in_len -= n;
	}
	if (u->cb != NULL && !u->reading)
		update_reading(u);
}

static void on_write(uv_write_t *req, int status)
{
	struct uwreq *wr = (struct uwreq *)req;
	struct uconn *u = wr->u;

	free(wr);
	if (u->closed || u->cb == NULL)
		return;
	if (status < 0) {
		u->cb->error(u->arg, status);
		return;
	}
	if (up_pending(u) < CONN_LOW_WATER)
		u->cb->drained(u->arg);
}

/*
 * Writes the pieces at once when the socket takes them (no copy); what it
 * does not take is copied into a write request and queued behind.
 */
static int write_framed(struct uconn *u, const void *data, size_t len, bool chunk)
{
	char prefix[24];
	uv_buf_t parts[3];
	struct uwreq *wr;
	size_t nparts = 0, total = 0, skip, k, n;
	uv_buf_t b;
	int rc = 0;

	if (u->closed)
		return MOAT_EIO;
	if (len == 0 && !chunk)
		return 0;
	if (chunk)
		parts[nparts++] = uv_buf_init(prefix, (unsigned)snprintf(prefix, sizeof(prefix),
									"%zx\r\n", len));
	if (len > 0)
		parts[nparts++] = uv_buf_init((char *)data, (unsigned)len);
	if (chunk)
		parts[nparts++] = uv_buf_init("\r\n", 2);
	for (k = 0; k < nparts; k++)
		total += parts[k].len;
	if (up_pending(u) == 0)
		rc = uv_try_write((uv_stream_t *)&u->tcp, parts, (unsigned)nparts);
	/* A failure (a pooled connection the upstream had reset) is left to
	 * uv_write, which reports it through on_write -> cb->error, where the
	 * exchange may retry on a fresh connection. */
	skip = rc > 0 ? (size_t)rc : 0;
	if (skip == total)
		return 0;
	wr = xmalloc(sizeof(*wr) + total - skip);
	wr->u = u;
	n = 0;
	for (k = 0; k < nparts; k++) {
		size_t from = skip < parts[k].len ? skip : parts[k].len;

		skip -= from;
		memcpy(wr->data + n, parts[k].base + from, parts[k].len - from);
		n += parts[k].len - from;
	}
	b = uv_buf_init(wr->data, (unsigned)n);
	rc = uv_write(&wr->req, (uv_stream_t *)&u->tcp, &b, 1, on_write);
	if (rc < 0) {
		free(wr);
		return MOAT_EIO;
	}
	return 0;
}

int up_write(struct uconn *u, const void *data, size_t len)
{
	return write_framed(u, data, len, false);
}

int up_write_chunk(struct uconn *u, const void *data, size_t len)
{
	return write_framed(u, data, len, true);
}

size_t up_pending(const struct uconn *u)
{
	return uv_stream_get_write_queue_size((const uv_stream_t *)&u->tcp);
}

static void on_connect(uv_connect_t *req, int status)
{
	struct uconn *u = req->data;

	if (u->closed)
		return;
	deadline_clear(&u->timer);
	if (status == 0) {
		u->connected = true;
		uv_tcp_nodelay(&u->tcp, 1);
		uv_tcp_keepalive(&u->tcp, 1, 60);
	}
	if (u->cb != NULL)
		u->cb->connected(u->arg, status);
}

struct uconn *up_acquire(struct pool *p, const struct conf_upstream *cu, uint32_t connect_ms,
			 const struct up_cb *cb, void *arg, int *err)
{
	struct uconn *u;
	int rc;

	for (u = p->idle; u != NULL; u = u->next) {
		if (strcmp(u->key, cu->hostport) == 0) {
			unlink_idle(u);
			deadline_clear(&u->timer);
			u->cb = cb;
			u->arg = arg;
			u->reused = true;
			update_reading(u);
			return u;
		}
	}
	u = xcalloc(1, sizeof(*u));
	u->pool = p;
	u->key = xstrdup(cu->hostport);
	u->cb = cb;
	u->arg = arg;
	u->handles = 2;
	u->tcp.data = u;
	u->creq.data = u;
	p->live++;
	uv_tcp_init(&p->w->loop, &u->tcp);
	deadline_init(&u->timer, &p->w->loop, on_timer, u);
	rc = uv_tcp_connect(&u->creq, &u->tcp, (const struct sockaddr *)&cu->addr.sa, on_connect);
	if (rc < 0) {
		*err = rc;
		up_close(u);
		return NULL;
	}
	deadline_set(&u->timer, connect_ms);
	return u;
}

void up_release(struct uconn *u, bool reusable, uint32_t idle_ms)
{
	struct pool *p = u->pool;

	if (u->closed)
		return;
	if (!reusable || !u->connected || u->eof || u->shut || u->in_len > 0 || p->closing ||
	    up_pending(u) > 0) {
		up_close(u);
		return;
	}
	u->cb = NULL;
	u->arg = NULL;
	u->reused = false;
	/* an idle connection holds no input memory (on_alloc brings it back) */
	worker_buf_put(p->w, u->in);
	u->in = NULL;
	if (p->nidle >= POOL_MAX_IDLE) {
		struct uconn *old = p->tail;

		unlink_idle(old);
		up_close(old);
	}
	u->next = p->idle;
	u->prev = NULL;
	if (p->idle != NULL)
		p->idle->prev = u;
	else
		p->tail = u;
	p->idle = u;
	p->nidle++;
	/* Watch the idle connection: data or EOF from it means it is unusable. */
	update_reading(u);
	deadline_set(&u->timer, idle_ms);
}
