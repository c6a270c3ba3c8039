/*
 * guard.h - abuse control where it meets connections and requests: who the
 * client is (clientip.h), whether it may connect (bans, connection caps),
 * whether a request may pass (bans, rate limits), and what an upstream's
 * answer means for the site's ban rules. The shared tables live in
 * guard_ban.c and guard_limit.c; this module only applies a connection's
 * configuration snapshot to them.
 * Thread: the connection's worker.
 */
#ifndef MOAT_GUARD_H
#define MOAT_GUARD_H

#include <stdbool.h>
#include <stdint.h>

struct conn;
struct exchange;
struct h1_msg;

/* At accept (or once a PROXY header named the client): refuse a banned
 * client or one over a connection cap; the refusal is counted and logged
 * and the caller closes c without a word. Otherwise c counts against the
 * caps until guard_release. */
bool guard_admit(struct conn *c);

/* c closed: it no longer counts against the caps. Idempotent. */
void guard_release(struct conn *c);

/* Is c's client banned now, or, on a trusted proxy's connection, the client
 * its request in flight speaks for? A connection closing because it set
 * off the ban is left to finish its answer. For the workers' sweep after
 * the ban table changed. */
bool guard_conn_banned(const struct conn *c);

/*
 * For a request whose head m was just parsed and routed (x->site, x->path
 * set): fix x's client address (a trusted proxy's header), then refuse a
 * banned client (403) or one over a rate limit (429, *retry_after seconds
 * from now). Returns 0 when the request may go on, else the status to
 * answer with; x->deny names the reason either way it was refused.
 */
int guard_request(struct conn *c, struct exchange *x, const struct h1_msg *m,
		  uint32_t *retry_after);

/* The upstream answered x with status: count it against the site's ban
 * rules. Returns true when that banned the client (x's connection then
 * closes after this answer). */
bool guard_observe(struct exchange *x, int status);

#endif
