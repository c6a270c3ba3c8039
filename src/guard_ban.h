/*
 * guard_ban.h - the ban table: which client keys (an IPv4 address, an IPv6
 * /64; netaddr.h) may not connect, until when and why, and the failure
 * counters of the sites' ban rules that fill it.
 *
 * One table per process, shared by every worker and the control thread,
 * and kept across reloads. Lookups of a client that is not banned are
 * lock-free (a bitmap of the banned keys' hashes answers "no"); the rest,
 * a banned client or one sharing its bit, take a shared lock. Changes are
 * rare (a rule firing, the admin socket, expiry) and take it exclusively.
 * The table holds at most the capacity given to bans_init: a new ban past
 * it evicts the ban that started first, and says so in the log.
 * Every change made by bans_add and bans_remove bumps bans_epoch() and
 * calls the notify hook, which the daemon uses to write the file
 * (banfile.h) and to have the workers close the live connections of newly
 * banned clients. Expiry does neither: an ended ban closes no connection,
 * and the file may keep it until the next change because loading skips it.
 * Thread: every function is safe from any thread, except bans_init and
 * bans_shutdown (control thread, while no worker runs).
 */
#ifndef MOAT_GUARD_BAN_H
#define MOAT_GUARD_BAN_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "netaddr.h"

#define BAN_REASON_MAX 160
#define BANS_DEFAULT_CAP 100000

struct ban {
	struct cidr key;       /* ipaddr_key() of the banned address */
	int64_t since;         /* unix seconds */
	int64_t until;         /* unix seconds; the ban ends then */
	char reason[BAN_REASON_MAX]; /* "site a.example: POST /login answered 401 5 times in 10m" */
};

/* Set up the empty table for at most cap bans; notify (may be NULL) is
 * called with arg after every bans_add and bans_remove that changed the
 * table, from the thread that made it. */
void bans_init(size_t cap, void (*notify)(void *arg), void *arg);

/* Free the table. */
void bans_shutdown(void);

/* Add or replace the ban on b->key (a longer or shorter one replaces the
 * old). Returns 0, or MOAT_EINVAL when b->until is not after b->since.
 * Once it returns, every lookup that follows it (in any thread that has
 * synchronised with this one) sees the ban. */
int bans_add(const struct ban *b);

/* Add many at once (loading the file at start); expired ones are skipped.
 * Does not call notify. */
void bans_load(const struct ban *b, size_t n, int64_t now);

/* Lift the ban on key. Returns 0, or MOAT_ENOTFOUND. Walks the table
 * under the exclusive lock to rebuild the lookup bitmap: meant for the
 * admin, not for a hot path. */
int bans_remove(const struct cidr *key);

/* Is a banned at unix time now? The fast path of every accepted connection
 * and every request: no lock when the table is empty or a is not banned. */
bool bans_active(const struct ipaddr *a, int64_t now);

/* bans_active at the current time; with an empty table it costs one atomic
 * load and never reads the clock (every accept and request asks). */
bool bans_active_now(const struct ipaddr *a);

/* The ban on a's key, when one is active: copied to *out. */
bool bans_get(const struct ipaddr *a, int64_t now, struct ban *out);

/* Active bans, oldest first, as a heap array (caller frees); *n is set. */
struct ban *bans_list(int64_t now, size_t *n);

/* Drop the bans that ended by now. Returns how many went. Cheap until the
 * earliest ban is due; the search holds the lock shared, and only dropping
 * what it found takes it exclusively. The first few ended bans are logged
 * by name, the rest as a count, after the lock is released. Does not bump
 * bans_epoch() or call notify (see above). The daemon calls it once a
 * second from the control thread. */
size_t bans_expire(int64_t now);

/* Changes so far (adds, removals, loads; not expiry); a worker that saw
 * another value sweeps its connections, the daemon writes the file. */
unsigned bans_epoch(void);

/* Bans evicted because the table was full, since start. */
uint64_t bans_evicted(void);

/*
 * The failure counters of ban rules ("after: 5 in 10m"): record one failure
 * of key under rule id at monotonic now_ms. Returns true when it is the
 * after-th failure within window_ms; the counter then starts again. At
 * most BAN_STRIKES_CAP clients are followed; past that the one left alone
 * longest is forgotten.
 */
#define BAN_STRIKES_CAP 65536
#define BAN_AFTER_MAX 100
bool ban_strike(uint64_t id, uint32_t after, uint64_t window_ms, const struct cidr *key,
		uint64_t now_ms);

#endif
