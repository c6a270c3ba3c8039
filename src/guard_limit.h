/*
 * guard_limit.h - request rate limits (a token bucket per client key and
 * rule) and connection caps (open connections per client address and in
 * total), shared by every worker: a client has one budget whichever worker
 * its connections land on. Also the denial counters `moat status` shows.
 *
 * Both tables are sharded (a mutex per shard) and bounded: a full shard
 * first drops buckets that have refilled (they carry no information), then
 * its least recently used one. Rules are named by a 64-bit id derived from
 * the site, the rule and its rate (limit_rule_id), so a reload that keeps a
 * rule keeps its clients' budgets.
 * Thread: any thread, after limits_init (control thread, before workers).
 */
#ifndef MOAT_GUARD_LIMIT_H
#define MOAT_GUARD_LIMIT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "netaddr.h"

/* A rate as configured: "20/s burst 40". */
struct rate {
	uint32_t count;        /* count tokens come back ... */
	uint32_t period_ms;    /* ... every period_ms milliseconds */
	uint32_t burst;        /* bucket size (>= 1) */
};

enum deny_reason {
	DENY_RATE = 0,  /* 429: over a rate limit */
	DENY_BAN,       /* connection closed or request refused: banned */
	DENY_CONNCAP,   /* connection closed: too many open */
	DENY_TIMEOUT,   /* a slow client missed a deadline */
	DENY_N
};

/* "rate", "ban", "conn-cap", "timeout". */
const char *deny_name(enum deny_reason r);

/* Count a denial (moat status). */
void deny_count(enum deny_reason r);
uint64_t deny_total(enum deny_reason r);

/* Set up empty tables holding at most max_clients entries each. */
void limits_init(size_t max_clients);
void limits_shutdown(void);

/* An id for a rule: site name, rule text and rate hashed together. */
uint64_t limit_rule_id(const char *site, const char *rule, const struct rate *r);

/*
 * Take one token from key's bucket for rule id at monotonic time now_ms.
 * Returns 0 when the request may pass; otherwise the whole seconds (>= 1)
 * until a token is back, for Retry-After.
 */
uint32_t limit_take(uint64_t id, const struct rate *r, const struct cidr *key, uint64_t now_ms);

/* Give back the token limit_take took (another rule refused the request). */
void limit_refund(uint64_t id, const struct rate *r, const struct cidr *key);

/* Clients refused by a rate limit in the last window_ms: up to max entries
 * into out (most refusals first); returns how many. */
struct limited_client {
	struct cidr key;
	uint64_t refused;      /* refusals in the window */
	uint64_t last_ms;      /* monotonic time of the last one */
};
size_t limit_limited(struct limited_client *out, size_t max, uint64_t now_ms, uint64_t window_ms);

/* Connection caps. conncap_open counts a new connection from a (the
 * caller passes the client key's address: an IPv6 /64 with the host bits
 * cleared) and returns 0, or MOAT_ENOMEM without counting it
 * when a already has per_client open (per_client 0: no cap for a) or the
 * process has total open. Every successful open is paired with one
 * conncap_close. */
int conncap_open(const struct ipaddr *a, uint32_t per_client, uint32_t total);
void conncap_close(const struct ipaddr *a);

/* Open connections in total, and the addresses with the most. */
uint64_t conncap_total(void);
struct conn_count {
	struct ipaddr addr;
	uint32_t n;
};
size_t conncap_top(struct conn_count *out, size_t max);

#endif
