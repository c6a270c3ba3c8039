/*
 * worker.h - worker threads: one libuv loop each, with its own SO_REUSEPORT
 * listening sockets, its own connections and its own upstream pool.
 *
 * The control thread (cli_run.c) starts, reloads and stops workers; workers
 * never block on each other. A worker learns of a new generation or a stop
 * request through its uv_async handle.
 * Thread: workers_* from the control thread only; worker_* from the owning
 * worker only.
 */
#ifndef MOAT_WORKER_H
#define MOAT_WORKER_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <uv.h>

#include "h1.h"

struct gen;
struct conf;
struct conn;
struct pool;

#define WORKER_RBUF 65536
/* Size of every buffer worker_buf_get hands out: 64 KiB of input (CONN_IN_CAP,
 * UCONN_IN_CAP) and the slack for one more TLS record, so that moat's TLS 1.3
 * layer can always open a whole record while the input is below 64 KiB. */
#define WORKER_BUF (65536 + 16384 + 256 + 5)
#define WORKER_BUF_CACHE 16   /* free buffers a worker keeps for reuse */

struct listener {
	uv_tcp_t tcp;
	struct worker *w;
	int fd;
	bool tls;
	bool proxy_protocol;  /* connections start with a PROXY header */
	bool closed;
};

struct worker {
	unsigned id;
	uv_loop_t loop;
	uv_thread_t thread;
	uv_async_t wake;
	struct gen *gen;                /* for new connections; owned ref */
	struct gen *_Atomic next_gen;   /* handed over by the control thread */
	atomic_bool stop_requested;
	atomic_bool stop_now;
	bool stopping;
	int start_rc;                   /* result of opening listeners */
	uv_sem_t started;
	struct listener *listeners;
	size_t nlisteners;
	struct conn *conns;             /* intrusive list of live client connections */
	atomic_size_t nconns;           /* read by workers_conns from the control thread */
	struct pool *pool;
	uv_timer_t drain_timer;
	uv_timer_t cert_timer;          /* re-judges client certificates of open connections */
	bool drain_timer_on;
	struct conn *dirty;             /* connections with output to flush (conn.c) */
	uv_prepare_t flush;             /* flushes them before the loop polls */
	char *bufs[WORKER_BUF_CACHE];   /* free WORKER_BUF buffers */
	size_t nbufs;
	unsigned rev_epoch;             /* revoke_epoch() its connections were checked at */
	unsigned ban_epoch;             /* bans_epoch() its connections were checked at */
	struct h1_msg msg;              /* parse scratch, used synchronously */
	char rbuf[WORKER_RBUF];         /* read scratch for TLS records */
};

/* Create the listening sockets for g and start g->conf->workers threads.
 * Returns 0 once every worker listens, or a negative code after logging
 * which address could not be bound and why. Takes a reference on g.
 * Each worker signals stopped (an async handle on the control loop) when
 * its loop has ended. */
int workers_start(struct gen *g, uv_async_t *stopped);

/* True when every worker's loop has ended (workers_join won't block). */
bool workers_all_stopped(void);

/* Returns MOAT_ECONFIG (logged) when c's listen addresses or worker count
 * differ from the running ones: those need a restart. Else 0. */
int workers_check_reload(const struct conf *c);

/* Hand a new generation to every worker (each takes its own reference).
 * Returns MOAT_ECONFIG (nothing changed) when workers_check_reload refuses
 * g's configuration. */
int workers_reload(struct gen *g);

/* Wake every worker to look at shared state that changed (a revocation
 * list: connections whose certificate is now revoked are closed). */
void workers_poke(void);

/* Ask every worker to stop: gracefully (in-flight requests may finish
 * within timeouts.drain), or at once when now is set. Returns at once. */
void workers_stop(bool now);

/* Open client connections per worker: up to max counts into out; returns
 * how many workers there are (at most max). For `moat status`. */
size_t workers_conns(uint64_t *out, size_t max);

/* Wait for every worker thread to end and free the workers. */
void workers_join(void);

/* A WORKER_BUF-byte buffer, reused from the worker's cache when one is
 * free (a connection's input buffer comes and goes with each request; the
 * cache keeps that off malloc). Caller returns it with worker_buf_put. */
char *worker_buf_get(struct worker *w);

/* Give a buffer from worker_buf_get back; NULL is a no-op. */
void worker_buf_put(struct worker *w, char *buf);

/* Connection bookkeeping, called by conn.c from the owning worker. */
void worker_conn_add(struct worker *w, struct conn *c);
void worker_conn_remove(struct worker *w, struct conn *c);

#endif
