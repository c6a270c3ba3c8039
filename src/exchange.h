/*
 * exchange.h - one request/response on a client connection, shared by the
 * two halves of the proxy: proxy.c (the client side: parsing, routing,
 * moat's own answers) and forward.c (the upstream side). Internal to those
 * two files.
 *
 * Ownership: created by proxy.c when a head is parsed, stored in c->x, and
 * freed by whoever finishes it (forward.c after the response, proxy.c for
 * its own answers and when the connection closes). Every function below
 * that can answer, fail or finish may have freed x when it returns (a
 * close can run proxy_on_close at once): callers return without touching
 * x again. Owning worker only.
 */
#ifndef MOAT_EXCHANGE_H
#define MOAT_EXCHANGE_H

#include <stdbool.h>
#include <stdint.h>

#include "conf.h"
#include "conn.h"
#include "gen.h"
#include "h1.h"
#include "netaddr.h"

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
	const char *access;      /* the client policy's decision (guard_access.h) or NULL */
	struct ipaddr client;    /* who the request is from (guard.c) */
	char client_txt[NETADDR_TEXT]; /* its text when a trusted proxy named it, else "" */
	const char *deny;        /* abuse control's refusal (deny_name) or NULL */
	uint64_t body_start_ms;  /* when the request body began (min_body_rate) */
	uint64_t body_got;       /* request body bytes taken from the client */
	uint64_t body_paused_ms; /* since when moat holds the body back (upstream full), or 0 */
	bool logged;
};

static inline const struct conf *exchange_conf(const struct conn *c)
{
	return c->gen->conf;
}

/* max-age of the HSTS header for a response on c, 0 for none. */
static inline uint32_t exchange_hsts(const struct conn *c, const struct conf_site *site)
{
	if (!c->tls || site == NULL || !site->hsts)
		return 0;
	return site->hsts_max_age;
}

/* proxy.c */

/* Write the access log line for x (once). */
void proxy_log_exchange(struct exchange *x);
/* Free x and the strings it owns; its upstream must already be released
 * or dropped, and c->x cleared by the caller. */
void proxy_free_exchange(struct exchange *x);
/* Close x's upstream connection, if any (never reused). */
void proxy_drop_upstream(struct exchange *x);
/* A response moat writes itself; with close the connection closes after
 * it, otherwise x (when it is c->x) is freed and the connection goes on
 * with the next request. The caller must not touch x afterwards. */
void proxy_respond(struct conn *c, struct exchange *x, int status, const char *body,
		   const char *extra, bool close);
/* As proxy_respond, with the body's media type. */
void proxy_respond_ct(struct conn *c, struct exchange *x, int status, const char *ctype,
		      const char *body, const char *extra, bool close);
/* An error: answered with status before any response byte went out,
 * otherwise the connection is closed (x freed at once). Drops the upstream.
 * The caller must not touch x afterwards. */
void proxy_fail(struct exchange *x, int status, const char *why);

/* forward.c */

/* Pick an upstream and connect (or reuse a pooled connection), then write
 * the request; answers 502/504 when no upstream can be reached. */
void forward_connect(struct exchange *x);
/* Chunked bodies: true once the buffered start of the body is valid and the
 * upstream may be contacted; false while more input is needed or after it
 * answered 400/413 itself (then x must not be touched). */
bool forward_precheck(struct exchange *x);
/* Move request body bytes from the client buffer to the upstream. */
void forward_pump_request(struct exchange *x);
/* The client's write queue drained: resume the response or the tunnel. */
void forward_client_drained(struct exchange *x);
/* Client bytes (or EOF) on an upgraded connection. */
void forward_tunnel_input(struct exchange *x);

#endif
