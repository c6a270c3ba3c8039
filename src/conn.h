/*
 * conn.h - one client connection: the TLS stream (memory BIOs over a libuv
 * TCP handle), the plaintext input buffer, timeouts and the lifecycle.
 * HTTP semantics live in proxy.c; conn.c only moves bytes and calls
 * proxy_on_input() when plaintext arrived.
 *
 * Ownership: a conn is created by conn_accept() on its worker and freed in
 * its close callback; it holds a reference on the generation it started
 * with. Thread: call from the owning worker only.
 */
#ifndef MOAT_CONN_H
#define MOAT_CONN_H

#include <openssl/ssl.h>
#include <stdbool.h>
#include <stdint.h>
#include <uv.h>

#include "deadline.h"
#include "netaddr.h"
#include "tls13.h"
#include "tlsbio.h"

struct worker;
struct gen;
struct conf_site;
struct exchange;
struct client_id;

#define CONN_IN_CAP 65536        /* plaintext input (the buffer has a record of slack) */
#define CONN_HIGH_WATER (256 * 1024) /* pause the other side above this */
#define CONN_LOW_WATER (64 * 1024)   /* resume below this */
#define CONN_PT_STAGE 16384          /* TLS plaintext staged per record */

enum conn_state {
	CONN_PROXY = 0,     /* waiting for the PROXY protocol header */
	CONN_HANDSHAKE,     /* TLS handshake not finished */
	CONN_IDLE,          /* waiting for the first byte of a request */
	CONN_HEAD,          /* part of a request head received */
	CONN_BUSY,          /* an exchange is in flight (proxy.c) */
	CONN_TUNNEL,        /* after 101: bytes pass both ways */
	CONN_CLOSING,       /* flushing writes, then close */
};

struct conn {
	struct conn *prev, *next; /* worker list */
	struct worker *w;
	struct gen *gen;          /* refcount held */
	uv_tcp_t tcp;
	struct deadline timer;    /* the connection's one timeout */
	bool tls;                 /* came in on the https listener */
	SSL *ssl;                 /* OpenSSL's side: the handshake, and TLS 1.2 */
	struct tls13 *rec;        /* after a TLS 1.3 handshake: moat's record layer */
	struct tls13_secrets *sec; /* during the handshake, for the take-over */
	struct tlsio io;          /* what the BIO reads from and writes to */
	char *rx;                 /* unread ciphertext kept between reads (a WORKER_BUF buffer) */
	struct outbuf out;        /* bytes for the socket (TLS records or plain) */
	struct outbuf pt;         /* TLS: plaintext waiting to become one record */
	struct conn *dprev, *dnext; /* worker's list of connections to flush */
	bool dirty;               /* on that list */
	const struct conf_site *tls_site; /* chosen by the handshake */
	struct client_id *client;  /* certificate the client presented (owned), or NULL */
	bool cert_counted;         /* that certificate was valid on this connection once */
	enum conn_state state;
	bool reading;             /* uv_read_start is active */
	bool want_read;           /* proxy wants input (not paused by backpressure) */
	bool peer_eof;            /* client sent EOF / close_notify */
	bool close_after_write;
	bool linger;              /* close_after_write: discard input before closing */
	bool drain;               /* worker is stopping: close after this exchange */
	bool closed;              /* uv_close called */
	bool shutting;            /* uv_shutdown issued */
	bool doomed;              /* a write failed: closes on the next loop turn */
	bool delivering;          /* inside proxy_on_input (no nesting) */
	bool again;               /* deliver again once the current call returns */
	int handles;              /* open uv handles; freed at zero */
	uv_shutdown_t shutdown_req;
	char peer[64];            /* client address, printable */
	struct ipaddr addr;       /* client address: the TCP peer's, or a trusted PROXY header's */
	bool peer_trusted;        /* addr is in trusted_proxies: its forwarding headers count */
	bool counted;             /* counts against the connection caps (guard.c) */
	bool has_req_addr;        /* req_addr is set */
	struct ipaddr req_addr;   /* the client the last request spoke for (trusted proxy) */
	bool ban_closing;         /* closes after the answer that got its client banned */
	bool write_wait;          /* the timer waits for the client to take queued output */
	bool served;              /* a request head was complete on this connection once */
	size_t wq_mark;           /* bytes the client had not taken when the write timer was armed */
	char *in;                 /* plaintext input, CONN_IN_CAP bytes, from worker_buf_get */
	size_t in_len;
	struct exchange *x;       /* request in flight (exchange.h), owned by proxy.c/forward.c */
	uint64_t head_start_ms;   /* when the current head's first byte arrived */
};

/* Accept a connection on a listener; on failure the socket is closed.
 * proxy_protocol: the peer must be trusted and start with a PROXY header. */
void conn_accept(struct worker *w, uv_stream_t *server, bool tls, bool proxy_protocol);

/* Queue plaintext to the client (encrypted when TLS); data is copied.
 * Returns 0 or a negative code (connection already failing). */
int conn_write(struct conn *c, const void *data, size_t len);

/* Queue data as one chunk of the chunked coding ("0\r\n\r\n" when len is 0). */
int conn_write_chunk(struct conn *c, const void *data, size_t len);

/* Bytes queued towards the client and not yet written. */
size_t conn_pending(const struct conn *c);

/* Write what every connection of w queued this loop turn (worker.c calls
 * this before the loop polls). */
void conn_flush_all(struct worker *w);

/* Have the kernel probe an idle peer (TCP keepalive, after 60 s): for a
 * connection no timeout covers any more (a tunnel), so a peer that vanished
 * without a word is still noticed. Requests and idle keep-alive connections
 * have timeouts and do without the extra system calls. */
void conn_probe_peer(struct conn *c);

/* Write what c queued, now. May close c (on a write error), so call it
 * only from the top of an event callback, never while an exchange is held. */
void conn_flush(struct conn *c);

/* Pause or resume reading from the client (backpressure, buffer full). */
void conn_want_read(struct conn *c, bool on);

/* Free the (empty) input buffer while the connection waits: an idle
 * keep-alive connection then holds no input memory. It comes back on the
 * next read. */
void conn_release_input(struct conn *c);

/* Drop n bytes from the front of the input buffer. */
void conn_consume(struct conn *c, size_t n);

/*
 * Close once every queued byte is written (sends close_notify on TLS).
 * linger: the client may still be sending (an unread body, a request the
 * answer cut short), so shut down the write side and discard its input for
 * a while first: closing a socket with unread input resets the connection
 * and can destroy the answer before the client reads it. Without linger,
 * and with no unread input left, the socket is closed once written.
 */
void conn_close_after_write(struct conn *c, bool linger);

/* Close now, dropping anything queued. Idempotent. */
void conn_abort(struct conn *c);

/* Close now with a TCP reset: also what the kernel already holds for the
 * client is thrown away, so a client moat gives up on (it stopped reading,
 * it was banned) gets nothing more and costs no kernel memory afterwards.
 * Idempotent. */
void conn_reset(struct conn *c);

/* (Re)arm the connection timer; on expiry proxy_on_timeout() is called.
 * ms == 0 stops it. */
void conn_set_timer(struct conn *c, uint64_t ms);

/* The proxy waits for the client to take what is queued (a response or a
 * tunnel it does not read): the connection is reset once it took nothing
 * for timeouts.write; whatever it takes (the queue shrank) starts that
 * time again. */
void conn_wait_write(struct conn *c);

/* Negotiated protocol name ("TLSv1.3") or NULL for plain http. */
const char *conn_tls_version(const struct conn *c);

/* Close c at once if its client certificate was valid on it once (at the
 * handshake or a later request) and no longer counts (revoked, expired,
 * CRL out of date). One that never counted is only judged per request:
 * it may still fetch public paths. */
void conn_check_cert(struct conn *c);

/* Ask an idle connection to close (worker stopping); busy ones finish the
 * exchange first. */
void conn_drain(struct conn *c);

#endif
