/*
 * proxy.h - HTTP semantics on top of conn.c: parse requests, route them to a
 * site, answer redirects and errors, forward to upstreams from the worker's
 * pool, stream bodies both ways with backpressure, and tunnel upgrades.
 * Thread: owning worker only.
 */
#ifndef MOAT_PROXY_H
#define MOAT_PROXY_H

#include <stdbool.h>

struct conn;
struct worker;

/* New plaintext is in c->in (or the client sent EOF: c->peer_eof). */
void proxy_on_input(struct conn *c);

/* The client's write queue fell below CONN_LOW_WATER. */
void proxy_on_client_drained(struct conn *c);

/* The connection timer fired. */
void proxy_on_timeout(struct conn *c);

/* The client connection is closing: release the exchange (closes or
 * returns its upstream), write the access log line if one is owed. */
void proxy_on_close(struct conn *c);

/* Per-worker upstream pool. */
struct pool *pool_new(struct worker *w);
/* Close every idle upstream connection; the pool frees itself when the
 * last one is closed (idempotent). */
void pool_close(struct pool *p);

#endif
