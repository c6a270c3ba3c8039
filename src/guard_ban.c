/*
 * guard_ban.c - see guard_ban.h.
 *
 * The ban table is a chained hash under one reader-writer lock plus a list
 * in the order bans were made, whose head is the one to evict when the
 * table is full.
 *
 * Readers (every accepted connection, every request) must not pay for the
 * lock when the client is not banned, which is nearly always: even a shared
 * pthread rwlock costs ~150 ns and bounces its cache line between the
 * workers. So a lookup first reads `live` (no bans at all) and then one bit
 * of a filter, a bitmap of the hashes of the banned keys; only a set bit
 * (a ban, or another key sharing its bit) goes on to the locked lookup.
 * The filter is exact for what it says "no" to: a bit is set under the
 * write lock before the new ban is visible to anyone (and before bans_add
 * returns), and is cleared only by a rebuild, which computes the bitmap of
 * the remaining bans and stores it word by word. A rebuild only clears bits
 * and every remaining ban's bit is set in each word it stores, so a reader
 * between two stores never sees a remaining ban's bit cleared. Evicting a
 * ban leaves its bit set (it would cost a rebuild per ban once the table is
 * full); a stale bit only sends that key the slow way.
 *
 * Expiry runs every second but should cost nothing until a ban is due:
 * `next_until` is the earliest end in the table, or earlier (an eviction or
 * a replacement leaves it as it was; a removal recomputes it along with the
 * filter), so the walk is skipped until then. The walk
 * itself looks under the shared lock, so the workers go on while it looks;
 * only when something ended does it take the lock exclusively, for as long
 * as unlinking those bans takes (the list it found stays valid when nothing
 * changed in between, which `gen` tells; otherwise it walks again).
 *
 * The failure counters are separate: sharded, each shard a chained hash with
 * a least-recently-used list, each entry a ring of the last `after`
 * failure times of one client under one rule.
 */
#include "guard_ban.h"
#include "log.h"
#include "util.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define FILTER_BITS 65536
#define FILTER_WORDS (FILTER_BITS / 64)
#define EXPIRY_LOG_MAX 10   /* ended bans named one by one; the rest are counted */

struct bnode {
	struct ban b;
	uint64_t h;                   /* cidr_hash(&b.key, T.seed) */
	struct bnode *hnext;          /* hash chain */
	struct bnode *older, *newer;  /* order of making */
};

static struct {
	pthread_rwlock_t lock;
	struct bnode **slot;
	size_t nslots;                /* power of two */
	size_t cap, n;
	struct bnode *oldest, *newest;
	uint64_t gen;                 /* bumped by every insert and unlink */
	uint64_t seed;
	void (*notify)(void *);
	void *arg;
} T;

static atomic_size_t live;        /* T.n, readable without the lock */
static _Atomic uint64_t filter[FILTER_WORDS];
static _Atomic int64_t next_until = INT64_MAX; /* no ban ends before this */
static atomic_uint epoch;
static _Atomic uint64_t evicted;

static size_t slot_of(uint64_t h)
{
	return (size_t)(h & (T.nslots - 1));
}

/* The slot index takes the low bits of the hash, the filter the high ones. */
static size_t fbit_of(uint64_t h)
{
	return (size_t)(h >> 48);
}

static bool filter_has(uint64_t h)
{
	size_t bit = fbit_of(h);
	uint64_t w = atomic_load_explicit(&filter[bit / 64], memory_order_acquire);

	return (w >> (bit % 64)) & 1;
}

/* Write lock held. */
static void filter_set(uint64_t h)
{
	size_t bit = fbit_of(h);

	atomic_fetch_or_explicit(&filter[bit / 64], (uint64_t)1 << (bit % 64),
				 memory_order_release);
}

/* Publish a bitmap that holds the bit of every ban in the table; write lock
 * held (which also keeps puts from setting bits meanwhile). */
static void filter_store(const uint64_t *bits)
{
	size_t i;

	for (i = 0; i < FILTER_WORDS; i++)
		if (atomic_load_explicit(&filter[i], memory_order_relaxed) != bits[i])
			atomic_store_explicit(&filter[i], bits[i], memory_order_release);
}

static void filter_clear(void)
{
	size_t i;

	for (i = 0; i < FILTER_WORDS; i++)
		atomic_store(&filter[i], 0);
}

/* Write lock held; the lock-free readers are bans_expire's first test. */
static void lower_next_until(int64_t until)
{
	if (until < atomic_load(&next_until))
		atomic_store(&next_until, until);
}

static bool same_key(const struct cidr *a, const struct cidr *b)
{
	return a->bits == b->bits && ipaddr_equal(&a->a, &b->a);
}

void bans_init(size_t cap, void (*notify)(void *arg), void *arg)
{
	size_t ns = 64;

	while (ns < cap && ns < ((size_t)1 << 20))
		ns <<= 1;
	pthread_rwlock_init(&T.lock, NULL);
	T.slot = xcalloc(ns, sizeof(*T.slot));
	T.nslots = ns;
	T.cap = cap > 0 ? cap : 1;
	T.n = 0;
	T.oldest = T.newest = NULL;
	T.gen = 0;
	T.seed = (uint64_t)moat_now_ms() * 0x9e3779b97f4a7c15ull ^ (uint64_t)(uintptr_t)&T;
	T.notify = notify;
	T.arg = arg;
	atomic_store(&live, 0);
	filter_clear();
	atomic_store(&next_until, INT64_MAX);
}

void bans_shutdown(void)
{
	struct bnode *b, *next;

	for (b = T.oldest; b != NULL; b = next) {
		next = b->newer;
		free(b);
	}
	free(T.slot);
	T.slot = NULL;
	T.oldest = T.newest = NULL;
	T.n = 0;
	atomic_store(&live, 0);
	filter_clear();
	atomic_store(&next_until, INT64_MAX);
	pthread_rwlock_destroy(&T.lock);
}

static struct bnode *find(const struct cidr *k, uint64_t h, struct bnode ***link)
{
	struct bnode **l = &T.slot[slot_of(h)];

	while (*l != NULL && !same_key(&(*l)->b.key, k))
		l = &(*l)->hnext;
	if (link != NULL)
		*link = l;
	return *l;
}

/* Unlink b (found through its chain link l) and free it. Write lock held.
 * Its filter bit stays set and next_until may now be early: both only cost
 * time, and the callers that care rebuild them. */
static void drop(struct bnode *b, struct bnode **l)
{
	*l = b->hnext;
	if (b->older != NULL)
		b->older->newer = b->newer;
	else
		T.oldest = b->newer;
	if (b->newer != NULL)
		b->newer->older = b->older;
	else
		T.newest = b->older;
	T.n--;
	T.gen++;
	atomic_store(&live, T.n);
	free(b);
}

static void drop_node(struct bnode *b)
{
	struct bnode **l;

	find(&b->b.key, b->h, &l);
	drop(b, l);
}

/* Insert or replace; write lock held. */
static void put(const struct ban *b)
{
	uint64_t h = cidr_hash(&b->key, T.seed);
	struct bnode **l, *old = find(&b->key, h, &l), *nb;
	char text[NETADDR_TEXT];

	if (old != NULL)
		drop(old, l);
	if (T.n >= T.cap && T.oldest != NULL) {
		log_warn("ban table full (%zu bans): the oldest ban, on %s (%s), was dropped to make "
			 "room; raise limits.bans to keep more", T.cap,
			 cidr_format(&T.oldest->b.key, text, sizeof(text)), T.oldest->b.reason);
		atomic_fetch_add(&evicted, 1);
		drop_node(T.oldest);
	}
	nb = xcalloc(1, sizeof(*nb));
	nb->b = *b;
	nb->b.reason[BAN_REASON_MAX - 1] = '\0';
	nb->h = h;
	/* the bit first: a reader that finds it clear must not be racing a
	 * ban that bans_add has already reported made */
	filter_set(h);
	lower_next_until(b->until);
	l = &T.slot[slot_of(h)];
	nb->hnext = *l;
	*l = nb;
	nb->older = T.newest;
	if (T.newest != NULL)
		T.newest->newer = nb;
	else
		T.oldest = nb;
	T.newest = nb;
	T.n++;
	T.gen++;
	atomic_store(&live, T.n);
}

/* Rebuild the filter and next_until from the bans in the table, so that
 * removed bans stop costing lookups and walks. Write lock held. */
static void refilter(void)
{
	uint64_t bits[FILTER_WORDS] = { 0 };
	int64_t next = INT64_MAX;
	struct bnode *b;
	size_t bit;

	for (b = T.oldest; b != NULL; b = b->newer) {
		bit = fbit_of(b->h);
		bits[bit / 64] |= (uint64_t)1 << (bit % 64);
		if (b->b.until < next)
			next = b->b.until;
	}
	filter_store(bits);
	atomic_store(&next_until, next);
}

static void changed(void)
{
	atomic_fetch_add(&epoch, 1);
	if (T.notify != NULL)
		T.notify(T.arg);
}

int bans_add(const struct ban *b)
{
	if (b->until <= b->since)
		return MOAT_EINVAL;
	pthread_rwlock_wrlock(&T.lock);
	put(b);
	pthread_rwlock_unlock(&T.lock);
	changed();
	return 0;
}

void bans_load(const struct ban *b, size_t n, int64_t now)
{
	size_t i;

	pthread_rwlock_wrlock(&T.lock);
	for (i = 0; i < n; i++)
		if (b[i].until > now && b[i].until > b[i].since)
			put(&b[i]);
	pthread_rwlock_unlock(&T.lock);
	atomic_fetch_add(&epoch, 1);
}

int bans_remove(const struct cidr *key)
{
	struct bnode **l, *b;
	int rc = MOAT_ENOTFOUND;

	pthread_rwlock_wrlock(&T.lock);
	b = find(key, cidr_hash(key, T.seed), &l);
	if (b != NULL) {
		drop(b, l);
		refilter();
		rc = 0;
	}
	pthread_rwlock_unlock(&T.lock);
	if (rc == 0)
		changed();
	return rc;
}

bool bans_get(const struct ipaddr *a, int64_t now, struct ban *out)
{
	struct cidr k;
	struct bnode *b;
	uint64_t h;
	bool hit = false;

	if (atomic_load_explicit(&live, memory_order_relaxed) == 0)
		return false;
	k = ipaddr_key(a);
	h = cidr_hash(&k, T.seed);
	if (!filter_has(h))
		return false;
	pthread_rwlock_rdlock(&T.lock);
	b = find(&k, h, NULL);
	if (b != NULL && b->b.until > now) {
		hit = true;
		if (out != NULL)
			*out = b->b;
	}
	pthread_rwlock_unlock(&T.lock);
	return hit;
}

bool bans_active(const struct ipaddr *a, int64_t now)
{
	return bans_get(a, now, NULL);
}

bool bans_active_now(const struct ipaddr *a)
{
	/* the clock is read only when there is a ban to compare it with */
	if (atomic_load_explicit(&live, memory_order_relaxed) == 0)
		return false;
	return bans_get(a, (int64_t)time(NULL), NULL);
}

struct ban *bans_list(int64_t now, size_t *n)
{
	struct ban *out;
	struct bnode *b;
	size_t k = 0;

	pthread_rwlock_rdlock(&T.lock);
	out = xcalloc(T.n + 1, sizeof(*out));
	for (b = T.oldest; b != NULL; b = b->newer)
		if (b->b.until > now)
			out[k++] = b->b;
	pthread_rwlock_unlock(&T.lock);
	*n = k;
	return out;
}

/* Keep the first few ended bans for the log, which is written after the
 * lock is released. */
static void note_ended(const struct bnode *b, size_t gone, struct ban *said)
{
	if (gone < EXPIRY_LOG_MAX)
		said[gone] = b->b;
}

/* Drop every ban that ended by now, then rebuild; write lock held. The walk
 * of last resort, for when the table changed between the two passes of
 * bans_expire. */
static size_t sweep(int64_t now, struct ban *said)
{
	struct bnode *b, *next;
	size_t gone = 0;

	for (b = T.oldest; b != NULL; b = next) {
		next = b->newer;
		if (b->b.until > now)
			continue;
		note_ended(b, gone++, said);
		drop_node(b);
	}
	refilter();
	return gone;
}

size_t bans_expire(int64_t now)
{
	struct ban said[EXPIRY_LOG_MAX];
	uint64_t bits[FILTER_WORDS];
	struct bnode *b, **ended = NULL;
	char text[NETADDR_TEXT];
	int64_t next = INT64_MAX;
	size_t nended = 0, gone = 0, i, bit;
	uint64_t gen;

	if (atomic_load(&live) == 0 || atomic_load(&next_until) > now)
		return 0;

	/* First pass, shared: what ended, and the filter and earliest end of
	 * what stays. */
	memset(bits, 0, sizeof(bits));
	pthread_rwlock_rdlock(&T.lock);
	gen = T.gen;
	for (b = T.oldest; b != NULL; b = b->newer) {
		if (b->b.until <= now) {
			if (ended == NULL)
				ended = xmalloc(T.n * sizeof(*ended));
			ended[nended++] = b;
			continue;
		}
		bit = fbit_of(b->h);
		bits[bit / 64] |= (uint64_t)1 << (bit % 64);
		if (b->b.until < next)
			next = b->b.until;
	}
	/* Nothing ended: next_until was early (a ban went before its end).
	 * Only writers, which the shared lock holds off, change it otherwise,
	 * so it can be corrected here without the exclusive lock. */
	if (nended == 0)
		atomic_store(&next_until, next);
	pthread_rwlock_unlock(&T.lock);
	if (nended == 0)
		return 0;

	/* Second pass, exclusive: unlink what ended. */
	pthread_rwlock_wrlock(&T.lock);
	if (T.gen == gen) {
		for (i = 0; i < nended; i++) {
			note_ended(ended[i], gone++, said);
			drop_node(ended[i]);
		}
		filter_store(bits);
		atomic_store(&next_until, next);
	} else {
		gone = sweep(now, said);
	}
	pthread_rwlock_unlock(&T.lock);
	free(ended);

	/* An ended ban is not a change to save or to sweep connections for:
	 * no epoch, no notify. The file keeps it until the next real change;
	 * loading skips it. */
	for (i = 0; i < gone && i < EXPIRY_LOG_MAX; i++)
		log_info("ban on %s ended (%s)", cidr_format(&said[i].key, text, sizeof(text)),
			 said[i].reason);
	if (gone > EXPIRY_LOG_MAX)
		log_info("... and %zu more bans ended", gone - EXPIRY_LOG_MAX);
	return gone;
}

unsigned bans_epoch(void)
{
	return atomic_load(&epoch);
}

uint64_t bans_evicted(void)
{
	return atomic_load(&evicted);
}

/* ---- failure counters ------------------------------------------------ */

#define SHARDS 16
#define SHARD_CAP (BAN_STRIKES_CAP / SHARDS)
#define SHARD_SLOTS 1024

struct strike {
	uint64_t id;
	struct cidr key;
	struct strike *hnext;
	struct strike *lru_prev, *lru_next; /* most recently used first */
	uint32_t after;        /* ring size */
	uint32_t n, head;      /* failures held; index of the oldest */
	uint64_t t[];          /* failure times, ms */
};

struct sshard {
	pthread_mutex_t mu;
	struct strike *slot[SHARD_SLOTS];
	struct strike *mru, *lru;
	size_t n;
};

static struct sshard S[SHARDS];
static pthread_once_t s_once = PTHREAD_ONCE_INIT;
static uint64_t s_seed;

static void s_init(void)
{
	size_t i;

	for (i = 0; i < SHARDS; i++)
		pthread_mutex_init(&S[i].mu, NULL);
	s_seed = moat_now_ms() * 0xbf58476d1ce4e5b9ull + 1;
}

static void lru_unlink(struct sshard *sh, struct strike *e)
{
	if (e->lru_prev != NULL)
		e->lru_prev->lru_next = e->lru_next;
	else
		sh->mru = e->lru_next;
	if (e->lru_next != NULL)
		e->lru_next->lru_prev = e->lru_prev;
	else
		sh->lru = e->lru_prev;
	e->lru_prev = e->lru_next = NULL;
}

static void lru_front(struct sshard *sh, struct strike *e)
{
	e->lru_next = sh->mru;
	if (sh->mru != NULL)
		sh->mru->lru_prev = e;
	else
		sh->lru = e;
	sh->mru = e;
}

static struct strike **s_link(struct sshard *sh, uint64_t h, uint64_t id, const struct cidr *key)
{
	struct strike **l = &sh->slot[(h >> 8) % SHARD_SLOTS];

	while (*l != NULL && !((*l)->id == id && same_key(&(*l)->key, key)))
		l = &(*l)->hnext;
	return l;
}

static void s_forget(struct sshard *sh, struct strike *e, uint64_t h)
{
	struct strike **l = s_link(sh, h, e->id, &e->key);

	*l = e->hnext;
	lru_unlink(sh, e);
	sh->n--;
	free(e);
}

bool ban_strike(uint64_t id, uint32_t after, uint64_t window_ms, const struct cidr *key,
		uint64_t now_ms)
{
	uint64_t h;
	struct sshard *sh;
	struct strike **l, *e;
	bool fire = false;

	if (after == 0 || after > BAN_AFTER_MAX)
		return false;
	pthread_once(&s_once, s_init);
	h = cidr_hash(key, s_seed ^ id);
	sh = &S[h % SHARDS];
	pthread_mutex_lock(&sh->mu);
	l = s_link(sh, h, id, key);
	e = *l;
	if (e != NULL && e->after != after) { /* the rule changed on reload */
		s_forget(sh, e, h);
		e = NULL;
	}
	if (e == NULL) {
		if (sh->n >= SHARD_CAP && sh->lru != NULL)
			s_forget(sh, sh->lru, cidr_hash(&sh->lru->key, s_seed ^ sh->lru->id));
		e = xcalloc(1, sizeof(*e) + after * sizeof(e->t[0]));
		e->id = id;
		e->key = *key;
		e->after = after;
		l = s_link(sh, h, id, key);
		e->hnext = *l;
		*l = e;
		sh->n++;
	} else {
		lru_unlink(sh, e);
	}
	lru_front(sh, e);
	/* forget failures that left the window */
	while (e->n > 0 && now_ms - e->t[e->head] >= window_ms) {
		e->head = (e->head + 1) % e->after;
		e->n--;
	}
	if (e->n == e->after) { /* full ring: the oldest makes room */
		e->head = (e->head + 1) % e->after;
		e->n--;
	}
	e->t[(e->head + e->n) % e->after] = now_ms;
	e->n++;
	if (e->n >= e->after) {
		fire = true;
		s_forget(sh, e, h);
	}
	pthread_mutex_unlock(&sh->mu);
	return fire;
}
