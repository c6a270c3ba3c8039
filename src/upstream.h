/*
 * upstream.h - connections to upstream servers and the per-worker
 * keep-alive pool they return to.
 *
 * A struct uconn is owned by one exchange while in use (callbacks go to it)
 * and by the pool while idle. Idle connections are watched: any byte or EOF
 * from an idle upstream closes it, as does the idle timeout.
 * Thread: owning worker only.
 */
#ifndef MOAT_UPSTREAM_H
#define MOAT_UPSTREAM_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <uv.h>

#include "deadline.h"

struct conf_upstream;
struct pool;
struct worker;

#define UCONN_IN_CAP 65536

struct up_cb {
	void (*connected)(void *arg, int status); /* status 0 or a uv error */
	void (*input)(void *arg);                 /* new bytes in u->in, or u->eof */
	void (*drained)(void *arg);               /* write queue below CONN_LOW_WATER */
	void (*error)(void *arg, int status);     /* read/write failure: connection is dead */
	void (*timeout)(void *arg);
};

struct uconn {
	uv_tcp_t tcp;
	uv_connect_t creq;
	struct deadline timer;
	uv_shutdown_t sreq;
	struct pool *pool;
	char *key;                 /* "host:port", pool key */
	const struct up_cb *cb;    /* NULL while idle in the pool */
	void *arg;
	char *in;
	size_t in_len;
	bool connected;
	bool reused;               /* came from the pool */
	bool reading;
	bool eof;
	bool shut;                 /* up_shutdown issued */
	bool closed;
	int handles;
	struct uconn *prev, *next; /* pool idle list */
};

/*
 * Get a connection to u: an idle pooled one (u->connected, u->reused set;
 * no callback) or a new one whose cb->connected fires within connect_ms.
 * Returns the connection, or NULL with *err set when the socket could not
 * even be created.
 */
struct uconn *up_acquire(struct pool *p, const struct conf_upstream *u, uint32_t connect_ms,
			 const struct up_cb *cb, void *arg, int *err);

/* Write bytes: at once when the socket takes them, else copied and queued.
 * Returns 0 or a negative code. */
int up_write(struct uconn *u, const void *data, size_t len);
/* Queue data as one chunk of the chunked coding ("0\r\n\r\n" when len is 0). */
int up_write_chunk(struct uconn *u, const void *data, size_t len);
size_t up_pending(const struct uconn *u);
/* Start reading a connection the exchange has written its request to.
 * Reading then stays on until u->in is full (cb->input runs whenever bytes
 * arrive, so callers check their own backpressure) or the upstream ends. */
void up_start_reading(struct uconn *u);
void up_consume(struct uconn *u, size_t n);
void up_set_timer(struct uconn *u, uint64_t ms);

/* Half-close: send FIN once every queued byte is written; reading goes on.
 * Idempotent. The connection is not reusable afterwards. */
void up_shutdown(struct uconn *u);

/* Give the connection back: into the pool when reusable (idle_ms lifetime),
 * else closed. The caller must not touch u afterwards. */
void up_release(struct uconn *u, bool reusable, uint32_t idle_ms);

#endif
