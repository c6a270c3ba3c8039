/*
 * httpc.h - moat's outgoing HTTP requests (ACME, DuckDNS), on libcurl.
 *
 * Every request has a deadline, a cap on the answer's size, and may be
 * cut short by a stop flag; TLS is verified against the system roots plus
 * an optional PEM file of extra roots. Plain http:// is allowed only to a
 * loopback address (local test servers), so a token never crosses a
 * network in clear.
 * Thread: any thread; requests block that thread (ACME and DDNS threads).
 */
#ifndef MOAT_HTTPC_H
#define MOAT_HTTPC_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>

struct httpc_opts {
	const char *ca_roots;      /* extra trusted roots (PEM file) or NULL */
	long timeout_ms;           /* whole request; 0: 30 s */
	size_t max_body;           /* answers longer than this fail; 0: 1 MiB */
	const _Atomic bool *stop;  /* when it turns true, the request fails soon; may be NULL */
};

struct httpc_resp {
	long status;
	char *body;          /* NUL-terminated, never NULL after success */
	size_t len;
	char *content_type;  /* or NULL */
	char *location;      /* Location or NULL */
	char *nonce;         /* Replay-Nonce or NULL */
	char *link_up;       /* the target of Link: <...>;rel="up", or NULL */
	long long retry_after; /* seconds from now; -1 when absent or unreadable */
};

/* Once per process before any thread starts requests. Returns 0 or
 * MOAT_EIO (logged). */
int httpc_global_init(void);

/* 0 when url may be used (https://, or http:// to a loopback address);
 * else MOAT_EINVAL and *why says why (heap, caller frees). */
int httpc_url_ok(const char *url, char **why);

/*
 * One request: method "GET", "HEAD" or "POST"; for POST, body[0..len) sent
 * with content type ctype. On success returns 0 with r filled (any HTTP
 * status counts as success; check r->status). On failure (no answer,
 * timeout, TLS, too big, stopped) returns MOAT_EIO and *err says what
 * happened (heap, caller frees). r is zeroed first and must be released
 * with httpc_resp_free in both cases.
 */
int httpc_request(const struct httpc_opts *o, const char *method, const char *url,
		  const char *ctype, const void *body, size_t len, struct httpc_resp *r,
		  char **err);

/* Frees what r holds and zeroes it. */
void httpc_resp_free(struct httpc_resp *r);

#endif
