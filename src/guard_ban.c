/*
 * guard_ban.c - see guard_ban.h.
 *
 * The ban table is a chained hash under one reader-writer lock plus a list
 * in the order bans were made, whose head is the one to evict when the
 * table is full. Readers (every accepted connection) skip the lock while
 * the table is empty, which it is on most machines most of the time.
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

struct bnode {
	struct ban b;
	struct bnode *hnext;          /* hash chain */
	struct bnode *older, *newer;  /* order of making */
};

static struct {
	pthread_rwlock_t lock;
	struct bnode **slot;
	size_t nslots;                /* power of two */
	size_t cap, n;
	struct bnode *oldest, *newest;
	uint64_t seed;
	void (*notify)(void *);
	void *arg;
} T;

static atomic_size_t live;        /* T.n, readable without the lock */
static atomic_uint epoch;
static _Atomic uint64_t evicted;

static size_t slot_of(const struct cidr *k)
{
	return (size_t)(cidr_hash(k, T.seed) & (T.nslots - 1));
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
	T.seed = (uint64_t)moat_now_ms() * 0x9e3779b97f4a7c15ull ^ (uint64_t)(uintptr_t)&T;
	T.notify = notify;
	T.arg = arg;
	atomic_store(&live, 0);
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
	pthread_rwlock_destroy(&T.lock);
}

static struct bnode *find(const struct cidr *k, struct bnode ***link)
{
	struct bnode **l = &T.slot[slot_of(k)];

	while (*l != NULL && !same_key(&(*l)->b.key, k))
		l = &(*l)->hnext;
	if (link != NULL)
		*link = l;
	return *l;
}

/* Unlink b (found through its chain link l) and free it. Write lock held. */
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
	atomic_store(&live, T.n);
	free(b);
}

static void drop_node(struct bnode *b)
{
	struct bnode **l;

	find(&b->b.key, &l);
	drop(b, l);
}

/* Insert or replace; write lock held. */
static void put(const struct ban *b)
{
	struct bnode **l, *old = find(&b->key, &l), *nb;
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
	l = &T.slot[slot_of(&b->key)];
	nb->hnext = *l;
	*l = nb;
	nb->older = T.newest;
	if (T.newest != NULL)
		T.newest->newer = nb;
	else
		T.oldest = nb;
	T.newest = nb;
	T.n++;
	atomic_store(&live, T.n);
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
	b = find(key, &l);
	if (b != NULL) {
		drop(b, l);
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
	bool hit = false;

	if (atomic_load_explicit(&live, memory_order_relaxed) == 0)
		return false;
	k = ipaddr_key(a);
	pthread_rwlock_rdlock(&T.lock);
	b = find(&k, NULL);
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

size_t bans_expire(int64_t now)
{
	struct bnode *b, *next;
	char text[NETADDR_TEXT];
	size_t gone = 0;

	if (atomic_load(&live) == 0)
		return 0;
	pthread_rwlock_wrlock(&T.lock);
	for (b = T.oldest; b != NULL; b = next) {
		next = b->newer;
		if (b->b.until > now)
			continue;
		log_info("ban on %s ended (%s)", cidr_format(&b->b.key, text, sizeof(text)),
			 b->b.reason);
		drop_node(b);
		gone++;
	}
	pthread_rwlock_unlock(&T.lock);
	if (gone > 0)
		changed();
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
