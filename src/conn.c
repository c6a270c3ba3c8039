/*
 * conn.c - see conn.h.
 *
 * TLS runs over tlsbio: SSL_read takes ciphertext straight from the span
 * the socket delivered and turns it into plaintext in c->in; SSL_write
 * appends records to c->out. Everything written to a client in one loop
 * turn (head, body, alerts) leaves in one write when the worker is about to
 * poll (conn_flush_all), usually at once and without a copy. Memory stays
 * bounded because the socket is read only while c->in has room and no
 * ciphertext is left over, and the proxy pauses its producers while
 * conn_pending is above CONN_HIGH_WATER.
 *
 * Closing is graceful by default ("lingering close"): flush what is queued,
 * send close_notify, shut down the write side, then discard input for a
 * short while before closing, so a client that is still sending does not
 * receive a reset that would destroy the response it is about to read.
 */
#include "conn.h"
#include "clientcert.h"
#include "clientip.h"
#include "conf.h"
#include "gen.h"
#include "guard.h"
#include "log.h"
#include "proxy.h"
#include "tls.h"
#include "tlsbio.h"
#include "util.h"
#include "worker.h"

#include <arpa/inet.h>
#include <linux/sockios.h>
#include <openssl/err.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>

#define LINGER_MS 2000

/* A write the socket did not take at once: it owns the buffer it sends. */
struct wreq {
	uv_write_t req;
	struct conn *c;
	char *base;
};

static void on_read(uv_stream_t *s, ssize_t nread, const uv_buf_t *buf);
static void update_reading(struct conn *c);
static bool tls_has_more(const struct conn *c);
static void deliver(struct conn *c);
static void flush(struct conn *c);
static void fail_later(struct conn *c);
static void proxy_header(struct conn *c);
static size_t unsent(struct conn *c);

static void undirty(struct conn *c)
{
	if (!c->dirty)
		return;
	if (c->dprev != NULL)
		c->dprev->dnext = c->dnext;
	else
		c->w->dirty = c->dnext;
	if (c->dnext != NULL)
		c->dnext->dprev = c->dprev;
	c->dprev = c->dnext = NULL;
	c->dirty = false;
}

/* Output is written when the worker is about to poll (conn_flush_all), so
 * everything one loop turn produced for a client leaves in one write. */
static void mark_dirty(struct conn *c)
{
	if (c->dirty || (c->out.len == 0 && c->pt.len == 0))
		return;
	c->dirty = true;
	c->dprev = NULL;
	c->dnext = c->w->dirty;
	if (c->dnext != NULL)
		c->dnext->dprev = c;
	c->w->dirty = c;
}

/* Two handles (tcp, timer) must be closed before the memory can go. */
static void on_handle_closed(uv_handle_t *h)
{
	struct conn *c = h->data;

	if (--c->handles > 0)
		return;
	undirty(c);
	guard_release(c);
	worker_conn_remove(c->w, c);
	SSL_free(c->ssl);
	tls13_free(c->rec);
	client_id_free(c->client);
	if (c->sec != NULL) {
		OPENSSL_cleanse(c->sec, sizeof(*c->sec));
		free(c->sec);
	}
	worker_buf_put(c->w, c->in);
	worker_buf_put(c->w, c->rx);
	outbuf_free(&c->out);
	outbuf_free(&c->pt);
	gen_unref(c->gen);
	free(c);
}

/* Records for len bytes of plaintext go to c->out. A failure closes the
 * connection on the next loop turn. */
static void encrypt(struct conn *c, const void *data, size_t len)
{
	int n;

	if (c->rec != NULL) {
		if (tls13_seal(c->rec, TLS13_APPDATA, data, len, &c->out) != 0)
			fail_later(c);
		return;
	}
	ERR_clear_error(); /* SSL_get_error-style checks need an empty queue */
	n = SSL_write(c->ssl, data, (int)len);
	if (n <= 0 || (size_t)n != len) {
		ERR_clear_error();
		fail_later(c);
	}
}

/* Encrypts the staged plaintext: one SSL_write, so one record, for what
 * the proxy wrote in pieces (a response head and a small body). */
static void seal(struct conn *c)
{
	if (c->pt.len == 0)
		return;
	encrypt(c, c->pt.p, c->pt.len);
	c->pt.len = 0;
}

void conn_reset(struct conn *c)
{
	if (c->closed)
		return;
	c->closed = true;
	undirty(c);
	proxy_on_close(c);
	uv_close(deadline_handle(&c->timer), on_handle_closed);
	/* a reset throws away what the kernel still holds for the client;
	 * a shutdown in progress rules it out (then the plain close) */
	if (c->shutting || uv_tcp_close_reset(&c->tcp, on_handle_closed) != 0)
		uv_close((uv_handle_t *)&c->tcp, on_handle_closed);
}

void conn_abort(struct conn *c)
{
	uv_buf_t b;

	if (c->closed)
		return;
	if (!c->doomed)
		seal(c);
	b = uv_buf_init(c->out.p, (unsigned)c->out.len);
	c->closed = true;
	undirty(c);
	/* What was written before the abort goes out as far as the socket
	 * takes it now, as if it had been written at once (a response head
	 * ahead of a failure tells the client more than nothing). */
	if (c->out.len > 0 && uv_stream_get_write_queue_size((uv_stream_t *)&c->tcp) == 0)
		uv_try_write((uv_stream_t *)&c->tcp, &b, 1);
	proxy_on_close(c);
	uv_close(deadline_handle(&c->timer), on_handle_closed);
	uv_close((uv_handle_t *)&c->tcp, on_handle_closed);
}

static void on_timer(void *arg)
{
	struct conn *c = arg;

	if (c->state == CONN_CLOSING || c->doomed) {
		conn_abort(c);
		return;
	}
	/* What the client has not taken shrank since the write timer was
	 * armed: it is reading, however slowly. */
	if (c->write_wait && unsent(c) < c->wq_mark) {
		conn_wait_write(c);
		return;
	}
	proxy_on_timeout(c);
}

/*
 * A write that fails closes the connection from the next loop iteration,
 * not from inside conn_write: its callers (proxy.c, forward.c) still hold
 * the exchange and may touch it after the call returns.
 */
static void fail_later(struct conn *c)
{
	if (c->closed || c->doomed)
		return;
	c->doomed = true;
	deadline_set(&c->timer, 0);
}

void conn_set_timer(struct conn *c, uint64_t ms)
{
	if (c->closed || c->doomed)
		return;
	c->write_wait = false;
	if (ms == 0)
		deadline_clear(&c->timer);
	else
		deadline_set(&c->timer, ms);
}

/* What to do once queued output shrank: finish a close, or let the proxy
 * produce more. */
static void after_progress(struct conn *c, size_t before)
{
	if (c->closed)
		return;
	if (c->close_after_write) {
		if (conn_pending(c) == 0)
			conn_close_after_write(c, c->linger);
		return;
	}
	if (before >= CONN_LOW_WATER && conn_pending(c) < CONN_LOW_WATER)
		proxy_on_client_drained(c);
}

static void on_write(uv_write_t *req, int status)
{
	struct wreq *wr = (struct wreq *)req;
	struct conn *c = wr->c;

	free(wr->base);
	free(wr);
	if (c->closed)
		return;
	if (status < 0) {
		conn_abort(c);
		return;
	}
	/* the client took something: it has timeouts.write again */
	if (c->write_wait && !c->close_after_write)
		conn_wait_write(c);
	after_progress(c, CONN_LOW_WATER);
}

/*
 * Bytes queued for the client that it has not acknowledged: moat's queue
 * and the kernel's send queue. The kernel's counts because a slow reader
 * drains it long before the socket turns writable again (Linux waits for a
 * good part of the send buffer to be free), so moat's own queue can stand
 * still for seconds while the client reads steadily.
 */
static size_t unsent(struct conn *c)
{
	uv_os_fd_t fd;
	int outq = 0;

	if (uv_fileno((uv_handle_t *)&c->tcp, &fd) != 0 || ioctl(fd, SIOCOUTQ, &outq) != 0 ||
	    outq < 0)
		outq = 0;
	return conn_pending(c) + (size_t)outq;
}

void conn_wait_write(struct conn *c)
{
	if (c->closed || c->doomed)
		return;
	deadline_set(&c->timer, c->gen->conf->t.write_ms);
	c->write_wait = true;
	c->wq_mark = unsent(c);
}

/*
 * Hands c->out to the socket: written at once when the socket takes it
 * (no copy, no request), else the rest is queued and the buffer goes with
 * the write request. Called only where aborting c is safe (the worker's
 * flush, or right before an abort).
 */
static void flush(struct conn *c)
{
	size_t before = conn_pending(c);
	uv_buf_t b;
	struct wreq *wr;
	int n = 0;

	undirty(c);
	if (c->closed)
		return;
	seal(c);
	if (c->out.len == 0)
		return;
	b = uv_buf_init(c->out.p, (unsigned)c->out.len);
	if (uv_stream_get_write_queue_size((uv_stream_t *)&c->tcp) == 0) {
		n = uv_try_write((uv_stream_t *)&c->tcp, &b, 1);
		if (n < 0 && n != UV_EAGAIN) {
			conn_abort(c);
			return;
		}
		if (n < 0)
			n = 0;
	}
	if ((size_t)n == c->out.len) {
		c->out.len = 0;
		/* the last answer is out: a waiting connection keeps no storage */
		if (c->state == CONN_IDLE) {
			outbuf_free(&c->out);
			outbuf_free(&c->pt);
		}
	} else {
		wr = xmalloc(sizeof(*wr));
		wr->c = c;
		wr->base = c->out.p;
		b = uv_buf_init(c->out.p + n, (unsigned)(c->out.len - (size_t)n));
		c->out.p = NULL;
		c->out.len = c->out.cap = 0;
		if (uv_write(&wr->req, (uv_stream_t *)&c->tcp, &b, 1, on_write) < 0) {
			free(wr->base);
			free(wr);
			conn_abort(c);
			return;
		}
	}
	after_progress(c, before);
}

void conn_probe_peer(struct conn *c)
{
	if (!c->closed)
		uv_tcp_keepalive(&c->tcp, 1, 60);
}

void conn_flush(struct conn *c)
{
	if (c->dirty)
		flush(c);
}

void conn_flush_all(struct worker *w)
{
	while (w->dirty != NULL)
		flush(w->dirty);
}

int conn_write(struct conn *c, const void *data, size_t len)
{
	if (c->closed || c->close_after_write || c->doomed)
		return MOAT_EIO;
	if (len == 0)
		return 0;
	if (!c->tls) {
		outbuf_append(&c->out, data, len);
	} else {
		/* small writes wait in c->pt and become one record; a full
		 * record's worth goes through at once */
		if (c->pt.len + len > CONN_PT_STAGE)
			seal(c);
		if (len >= CONN_PT_STAGE)
			encrypt(c, data, len);
		else
			outbuf_append(&c->pt, data, len);
		if (c->doomed)
			return MOAT_ETLS;
	}
	mark_dirty(c);
	return 0;
}

int conn_write_chunk(struct conn *c, const void *data, size_t len)
{
	char *tmp = xmalloc(len + 32);
	size_t n;
	int rc;

	/* One buffer, so TLS puts framing and data in one record. */
	n = (size_t)snprintf(tmp, 24, "%zx\r\n", len);
	if (len > 0)
		memcpy(tmp + n, data, len);
	n += len;
	memcpy(tmp + n, "\r\n", 2);
	n += 2;
	rc = conn_write(c, tmp, n);
	free(tmp);
	return rc;
}

size_t conn_pending(const struct conn *c)
{
	return uv_stream_get_write_queue_size((const uv_stream_t *)&c->tcp) + c->out.len +
	       c->pt.len;
}

static void linger_alloc(uv_handle_t *h, size_t hint, uv_buf_t *buf)
{
	struct conn *c = h->data;

	*buf = uv_buf_init(c->w->rbuf, WORKER_RBUF);
}

static void linger_read(uv_stream_t *s, ssize_t nread, const uv_buf_t *buf)
{
	struct conn *c = s->data;

	if (nread < 0)
		conn_abort(c);
}

static void on_shutdown(uv_shutdown_t *req, int status)
{
	struct conn *c = req->data;

	if (c->closed)
		return;
	if (status < 0 || c->peer_eof) {
		conn_abort(c);
		return;
	}
	uv_read_stop((uv_stream_t *)&c->tcp);
	if (uv_read_start((uv_stream_t *)&c->tcp, linger_alloc, linger_read) < 0) {
		conn_abort(c);
		return;
	}
	deadline_set(&c->timer, LINGER_MS);
}

void conn_close_after_write(struct conn *c, bool linger)
{
	if (c->closed)
		return;
	if (!c->close_after_write) {
		c->close_after_write = true;
		/* unread bytes of any kind, even part of a record, would make
		 * the close a reset */
		c->linger = linger || c->in_len > 0 || c->io.rlen > 0 ||
			    (c->ssl != NULL && SSL_has_pending(c->ssl));
		c->state = CONN_CLOSING;
		uv_read_stop((uv_stream_t *)&c->tcp);
		c->reading = false;
		deadline_set(&c->timer, LINGER_MS * 5);
		if (c->rec != NULL) {
			static const unsigned char close_notify[2] = { 1, TLS13_A_CLOSE_NOTIFY };

			seal(c); /* close_notify goes after the data */
			tls13_seal(c->rec, TLS13_ALERT, close_notify, sizeof(close_notify), &c->out);
			mark_dirty(c);
		} else if (c->ssl != NULL && SSL_is_init_finished(c->ssl)) {
			seal(c);
			SSL_shutdown(c->ssl);
			ERR_clear_error();
			mark_dirty(c);
		}
	}
	if (conn_pending(c) > 0 || c->shutting)
		return;
	if (!c->linger) {
		conn_abort(c); /* everything is with the kernel, which sends it */
		return;
	}
	c->shutting = true;
	c->shutdown_req.data = c;
	if (uv_shutdown(&c->shutdown_req, (uv_stream_t *)&c->tcp, on_shutdown) < 0)
		conn_abort(c);
}

static void on_alloc(uv_handle_t *h, size_t hint, uv_buf_t *buf)
{
	struct conn *c = h->data;

	if (c->tls && c->state != CONN_PROXY) {
		/* the start of a record waits in c->rx: read the rest behind it */
		if (c->rx != NULL) {
			if (c->io.rp != c->rx) {
				memmove(c->rx, c->io.rp, c->io.rlen);
				c->io.rp = c->rx;
			}
			*buf = uv_buf_init(c->rx + c->io.rlen, (unsigned)(WORKER_BUF - c->io.rlen));
			return;
		}
		*buf = uv_buf_init(c->w->rbuf, WORKER_RBUF);
		return;
	}
	if (c->in == NULL)
		c->in = worker_buf_get(c->w);
	*buf = uv_buf_init(c->in + c->in_len, (unsigned)(CONN_IN_CAP - c->in_len));
}

/*
 * Ciphertext not decrypted yet (c->in is full, the proxy paused, or only
 * part of a record came) may still sit in the worker's read scratch, which
 * the next read anywhere on this worker overwrites: it moves to a buffer of
 * the connection's own. While a decryptable leftover waits, the socket is
 * not read, which bounds it to one read.
 */
static void keep_leftover(struct conn *c)
{
	if (c->io.rlen == 0) {
		worker_buf_put(c->w, c->rx);
		c->rx = NULL;
		return;
	}
	if (c->io.rp >= c->w->rbuf && c->io.rp < c->w->rbuf + WORKER_RBUF) {
		if (c->rx == NULL)
			c->rx = worker_buf_get(c->w);
		memcpy(c->rx, c->io.rp, c->io.rlen);
		c->io.rp = c->rx;
	}
}

/*
 * After a TLS 1.3 handshake, moat's record layer carries the connection and
 * OpenSSL's SSL object goes (tls13.h). mark is where this call's output
 * began in c->out: what follows is the flight that completed the
 * handshake.
 */
static void take_over(struct conn *c, size_t mark)
{
	const char *flight = c->out.len > mark ? c->out.p + mark : NULL;
	struct tls13 *t = tls13_take_over(c->ssl, c->sec, flight, c->out.len - mark);

	tls_capture_secrets(c->ssl, NULL);
	OPENSSL_cleanse(c->sec, sizeof(*c->sec));
	free(c->sec);
	c->sec = NULL;
	if (t == NULL)
		return;
	SSL_free(c->ssl);
	c->ssl = NULL;
	c->rec = t;
}

/* Runs the handshake on what arrived; false when the connection was
 * aborted or, after a TLS-ALPN-01 handshake, is closing. */
static bool handshake(struct conn *c)
{
	size_t mark = c->out.len;
	int n, err;

	/* SSL_get_error reads this thread's error queue: anything left there
	 * (by another connection on this worker) would turn WANT_READ into a
	 * fatal error for this one. */
	ERR_clear_error();
	n = SSL_do_handshake(c->ssl);
	if (n != 1) {
		err = SSL_get_error(c->ssl, n);
		if (err == SSL_ERROR_WANT_READ) {
			mark_dirty(c);
			return true;
		}
		ERR_clear_error();
		conn_abort(c); /* sends the alert OpenSSL queued */
		return false;
	}
	/* An ACME CA validating a TLS-ALPN-01 challenge: the handshake is the
	 * whole exchange (RFC 8737 3). OpenSSL still carries the connection,
	 * so close_notify follows the last flight, then the close. */
	if (tls_is_acme_challenge(c->ssl, c->peer)) {
		conn_close_after_write(c, true);
		return false;
	}
	c->tls_site = tls_site_of(c->ssl);
	/* judged now, while OpenSSL still holds the certificate */
	c->client = tls_client_id(c->gen->tls, c->tls_site, c->ssl);
	c->cert_counted = c->client != NULL &&
		client_id_status(c->client, tls_site_trust(c->gen->tls, c->tls_site)) == CLIENT_OK;
	c->state = CONN_IDLE;
	take_over(c, mark);
	return true;
}

/* A broken record or message: tell the client why, then close. */
static bool rec_fatal(struct conn *c, unsigned char alert)
{
	unsigned char a[2] = { 2, alert };

	seal(c); /* what the proxy wrote goes before the alert */
	tls13_seal(c->rec, TLS13_ALERT, a, sizeof(a), &c->out);
	conn_abort(c);
	return false;
}

/* Opens whole records into c->in while there is room for them. */
static bool rec_fill(struct conn *c)
{
	unsigned char type, alert;
	size_t size, n;

	/* below CONN_IN_CAP a whole record always fits (WORKER_BUF's slack) */
	while (!c->peer_eof && c->in_len < CONN_IN_CAP) {
		size = tls13_record_size(c->io.rp, c->io.rlen);
		if (size == 0)
			break;
		if (tls13_open(c->rec, c->io.rp, size, c->in + c->in_len, &type, &n, &alert) != 0)
			return rec_fatal(c, alert);
		c->io.rp += size;
		c->io.rlen -= size;
		if (type == TLS13_APPDATA) {
			c->in_len += n;
		} else if (type == TLS13_HANDSHAKE) {
			if (tls13_post_handshake(c->rec, (unsigned char *)c->in + c->in_len, n,
						 &alert) != 0)
				return rec_fatal(c, alert);
		} else if (n != 2) {
			return rec_fatal(c, TLS13_A_DECODE_ERROR);
		} else if (c->in[c->in_len + 1] == TLS13_A_CLOSE_NOTIFY) {
			c->peer_eof = true;
			c->io.rlen = 0; /* what follows it is ignored */
		} else if (c->in[c->in_len + 1] != 90) { /* user_canceled is a warning */
			conn_abort(c); /* the client's fatal alert: nothing to answer */
			return false;
		}
	}
	return true;
}

/* Pulls plaintext out of the TLS layer into c->in while there is room.
 * Returns false when the connection was aborted. */
static bool tls_fill(struct conn *c)
{
	int n, err;

	if (c->state == CONN_HANDSHAKE && !handshake(c))
		return false;
	if (c->state == CONN_HANDSHAKE) {
		keep_leftover(c);
		return true;
	}
	if (c->in == NULL)
		c->in = worker_buf_get(c->w);
	if (c->rec != NULL) {
		if (!rec_fill(c))
			return false;
		keep_leftover(c);
		return true;
	}
	ERR_clear_error();
	while (c->in_len < CONN_IN_CAP && !c->peer_eof) {
		n = SSL_read(c->ssl, c->in + c->in_len, (int)(CONN_IN_CAP - c->in_len));
		if (n > 0) {
			c->in_len += (size_t)n;
			continue;
		}
		err = SSL_get_error(c->ssl, n);
		if (err == SSL_ERROR_WANT_READ)
			break;
		if (err == SSL_ERROR_ZERO_RETURN) {
			c->peer_eof = true;
			c->io.rlen = 0; /* what follows close_notify is ignored */
			break;
		}
		ERR_clear_error();
		conn_abort(c);
		return false;
	}
	mark_dirty(c); /* alerts, tickets, key updates */
	keep_leftover(c);
	return true;
}

/* Input is waiting that the TLS layer could turn into plaintext (a whole
 * record, for moat's record layer); the socket is not read meanwhile. */
static bool tls_has_more(const struct conn *c)
{
	if (c->peer_eof)
		return false; /* nothing after the end is read */
	if (c->rec != NULL)
		return tls13_record_size(c->io.rp, c->io.rlen) > 0;
	return c->ssl != NULL && (c->io.rlen > 0 || SSL_pending(c->ssl) > 0);
}

/* ... and c->in has room for it now. */
static bool can_fill(const struct conn *c)
{
	return c->in_len < CONN_IN_CAP && tls_has_more(c);
}

/* Hands input to the proxy. Re-entrant calls (the proxy resuming reads
 * while it runs) only set a flag, so proxy_on_input never nests. */
static void deliver(struct conn *c)
{
	size_t before;
	enum conn_state st;

	if (c->delivering) {
		c->again = true;
		return;
	}
	c->delivering = true;
	do {
		c->again = false;
		if (c->tls && !tls_fill(c))
			break;
		if (c->state == CONN_HANDSHAKE)
			break;
		before = c->in_len;
		st = c->state;
		proxy_on_input(c);
		if (c->closed)
			break;
		/* Going round again only helps when the proxy used input or moved
		 * on. A proxy that asks for more input while what it has is
		 * incomplete (a partial chunk-size line) would otherwise be handed
		 * the same bytes forever, spinning the worker. */
		if (c->in_len == before && c->state == st)
			c->again = false;
		if (c->want_read && can_fill(c))
			c->again = true;
	} while (c->again && !c->closed && c->state != CONN_CLOSING);
	c->delivering = false;
	if (!c->closed)
		update_reading(c);
}

static void on_read(uv_stream_t *s, ssize_t nread, const uv_buf_t *buf)
{
	struct conn *c = s->data;

	if (c->closed || nread == 0)
		return;
	if (nread < 0) {
		if (nread != UV_EOF) {
			conn_abort(c);
			return;
		}
		c->peer_eof = true;
		uv_read_stop(s);
		c->reading = false;
		if (c->state == CONN_PROXY) {
			proxy_header(c); /* a header cut short: closes */
			return;
		}
		if (c->state == CONN_HANDSHAKE) {
			/* no handshake can finish without the client's next
			 * flight: nothing to wait for until the deadline */
			conn_abort(c);
			return;
		}
		deliver(c);
		return;
	}
	if (c->state == CONN_PROXY) {
		c->in_len += (size_t)nread;
		proxy_header(c);
		if (!c->closed)
			conn_flush(c);
		return;
	}
	if (c->tls) {
		if (c->rx != NULL && buf->base == c->rx + c->io.rlen) {
			c->io.rlen += (size_t)nread; /* the rest of a record */
		} else {
			c->io.rp = buf->base;
			c->io.rlen = (size_t)nread;
		}
	} else {
		c->in_len += (size_t)nread;
	}
	deliver(c);
	/* What the handshake's last step wrote (the session ticket) waits for
	 * the response when a request is already in flight: one write, not two.
	 * Otherwise it goes now, with any answer and alert (see also up_input
	 * in forward.c). */
	if (!c->closed && c->state != CONN_BUSY)
		mark_dirty(c);
	conn_flush(c);
}

static void update_reading(struct conn *c)
{
	/* A paused connection keeps its socket armed until bytes actually
	 * arrive (then they wait in c->in and reading stops): pausing and
	 * resuming around every exchange would cost epoll calls each time. */
	bool want = !c->closed && !c->peer_eof && c->state != CONN_CLOSING &&
		    (c->state == CONN_HANDSHAKE || c->state == CONN_PROXY ||
		     (c->in_len < CONN_IN_CAP && !tls_has_more(c) &&
		      (c->want_read || c->in_len == 0)));

	if (want == c->reading)
		return;
	if (want) {
		if (uv_read_start((uv_stream_t *)&c->tcp, on_alloc, on_read) < 0) {
			conn_abort(c);
			return;
		}
	} else {
		uv_read_stop((uv_stream_t *)&c->tcp);
	}
	c->reading = want;
}

void conn_want_read(struct conn *c, bool on)
{
	if (c->closed)
		return;
	c->want_read = on;
	if (on && (c->in_len > 0 || tls_has_more(c) || c->peer_eof)) {
		deliver(c);
		return;
	}
	if (!c->delivering)
		update_reading(c);
}

void conn_release_input(struct conn *c)
{
	if (c->in_len != 0)
		return;
	worker_buf_put(c->w, c->in);
	c->in = NULL;
	/* an idle connection keeps no output storage either */
	if (c->out.len == 0)
		outbuf_free(&c->out);
	if (c->pt.len == 0)
		outbuf_free(&c->pt);
}

void conn_consume(struct conn *c, size_t n)
{
	if (n >= c->in_len) {
		c->in_len = 0;
		return;
	}
	memmove(c->in, c->in + n, c->in_len - n);
	c->in_len -= n;
}

const char *conn_tls_version(const struct conn *c)
{
	if (c->rec != NULL)
		return "TLSv1.3";
	return c->ssl != NULL ? SSL_get_version(c->ssl) : NULL;
}

void conn_drain(struct conn *c)
{
	c->drain = true;
	if (c->state == CONN_HANDSHAKE || c->state == CONN_PROXY) {
		conn_abort(c);
	} else if (c->state == CONN_IDLE && c->in_len == 0) {
		/* the last answer may still be on its way out */
		if (conn_pending(c) > 0)
			conn_close_after_write(c, false);
		else
			conn_abort(c);
	}
}

/* The TCP peer's address (v4-mapped clients of a dual-stack listener are
 * IPv4 clients); false when it cannot be read. */
static bool peer_addr(struct conn *c)
{
	struct sockaddr_storage ss;
	int len = sizeof(ss);

	strcpy(c->peer, "unknown"); /* RFC 7239 for= of an unknown peer */
	if (uv_tcp_getpeername(&c->tcp, (struct sockaddr *)&ss, &len) != 0 ||
	    ipaddr_from_sockaddr((struct sockaddr *)&ss, &c->addr) != 0)
		return false;
	ipaddr_format(&c->addr, c->peer, sizeof(c->peer));
	return true;
}

/* The rest of the start, once the client's address is known: admission,
 * then TLS or HTTP. False when c was closed. */
static bool start(struct conn *c)
{
	BIO *bio;

	if (!guard_admit(c)) {
		conn_abort(c);
		return false;
	}
	c->state = CONN_IDLE;
	if (!c->tls)
		return true;
	c->ssl = tls_sites_new_ssl(c->gen->tls);
	c->io.out = &c->out;
	bio = c->ssl != NULL ? tlsbio_new(&c->io) : NULL;
	if (bio == NULL) {
		log_tls_error("tls: cannot create a connection");
		conn_abort(c);
		return false;
	}
	SSL_set_bio(c->ssl, bio, bio);
	c->sec = xcalloc(1, sizeof(*c->sec));
	tls_capture_secrets(c->ssl, c->sec);
	c->state = CONN_HANDSHAKE;
	return true;
}

/*
 * A PROXY header opens the connection (the listener has proxy_protocol: on,
 * and its peer is trusted): it names the client, who is then admitted as if
 * it had connected itself. What follows the header is the TLS or HTTP
 * stream, handed on as if just read.
 */
static void proxy_header(struct conn *c)
{
	struct proxyhdr h;
	size_t rest;
	int rc = proxyhdr_parse((const uint8_t *)c->in, c->in_len, &h);

	if (rc == MOAT_EAGAIN && !c->peer_eof)
		return;
	if (rc != 0) {
		log_warn("closing the connection from %s: it did not start with a valid PROXY "
			 "protocol header (listener has proxy_protocol: true)", c->peer);
		conn_abort(c);
		return;
	}
	if (h.has_src) {
		c->addr = h.src;
		ipaddr_format(&c->addr, c->peer, sizeof(c->peer));
		c->peer_trusted = cidr_list_contains(c->gen->conf->trusted, c->gen->conf->ntrusted,
						     &c->addr);
	}
	if (!start(c))
		return;
	rest = c->in_len - h.len;
	if (c->tls) {
		if (rest > 0) {
			c->rx = worker_buf_get(c->w);
			memcpy(c->rx, c->in + h.len, rest);
			c->io.rp = c->rx;
			c->io.rlen = rest;
		}
		c->in_len = 0;
	} else {
		conn_consume(c, h.len);
	}
	if (rest > 0 || c->peer_eof)
		deliver(c);
	else
		update_reading(c);
}

void conn_accept(struct worker *w, uv_stream_t *server, bool tls, bool proxy_protocol)
{
	struct conn *c = xcalloc(1, sizeof(*c));
	const struct conf *cf = w->gen->conf;

	c->w = w;
	c->gen = gen_ref(w->gen);
	c->handles = 2;
	c->tcp.data = c;
	uv_tcp_init(&w->loop, &c->tcp);
	deadline_init(&c->timer, &w->loop, on_timer, c);
	worker_conn_add(w, c);
	if (uv_accept(server, (uv_stream_t *)&c->tcp) != 0) {
		c->closed = true;
		uv_close(deadline_handle(&c->timer), on_handle_closed);
		uv_close((uv_handle_t *)&c->tcp, on_handle_closed);
		return;
	}
	uv_tcp_nodelay(&c->tcp, 1);
	c->tls = tls;
	c->want_read = true;
	if (!peer_addr(c)) {
		conn_abort(c);
		return;
	}
	c->peer_trusted = cidr_list_contains(cf->trusted, cf->ntrusted, &c->addr);
	c->head_start_ms = moat_now_ms();
	if (proxy_protocol) {
		/* a PROXY header says who the client is: only a trusted peer
		 * may say it */
		if (!c->peer_trusted) {
			log_warn("closing the connection from %s: PROXY protocol is accepted only "
				 "from trusted_proxies", c->peer);
			conn_abort(c);
			return;
		}
		c->state = CONN_PROXY;
	} else if (!start(c)) {
		return;
	}
	conn_set_timer(c, c->gen->conf->t.header_ms);
	update_reading(c);
}

void conn_check_cert(struct conn *c)
{
	const struct client_trust *t;
	enum client_status st;

	if (c->client == NULL || !c->cert_counted || c->closed)
		return;
	t = tls_site_trust(c->gen->tls, c->tls_site);
	if (!client_id_lapsed(c->client, t))
		return;
	st = client_id_status(c->client, t);
	log_info("closing the connection from %s: its client certificate \"%s\" (serial %s) "
		 "no longer counts (%s)", c->peer, client_id_name(c->client),
		 client_id_serial(c->client), client_status_name(st));
	conn_abort(c);
}
