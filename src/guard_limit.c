/*
 * guard_limit.c - see guard_limit.h.
 *
 * Buckets are refilled lazily from the time of the last take, so an idle
 * bucket costs nothing. The level is counted in units of 1/(period_ms *
 * 1000) token, in which every millisecond adds exactly count * 1000 units:
 * no rounding, so a client that asks every millisecond under "1/m" still
 * gets its token back each minute (thousandths of a token lost a fraction
 * on every call and never refilled at all for such a client). Each shard is
 * a chained hash with a least-recently-used list: when a shard is full the
 * bucket left alone longest goes, and it has refilled by then unless the
 * table is far too small for the traffic (then a client gets a fresh
 * budget early, which is the safe direction for a home server's users).
 */
#include "guard_limit.h"
#include "util.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

#define SHARDS 64
#define SLOTS 2048          /* hash slots per shard */

static _Atomic uint64_t denied[DENY_N];

const char *deny_name(enum deny_reason r)
{
	static const char *const names[DENY_N] = { "rate", "ban", "conn-cap", "timeout" };

	return (unsigned)r < DENY_N ? names[r] : "unknown";
}

void deny_count(enum deny_reason r)
{
	if ((unsigned)r < DENY_N)
		atomic_fetch_add_explicit(&denied[r], 1, memory_order_relaxed);
}

uint64_t deny_total(enum deny_reason r)
{
	return (unsigned)r < DENY_N ? atomic_load(&denied[r]) : 0;
}

/* ---- rate limits ----------------------------------------------------- */

struct bucket {
	uint64_t id;
	struct cidr key;
	struct bucket *hnext;
	struct bucket *prev, *next; /* LRU: most recently used first */
	uint64_t level;             /* units of 1/(period_ms * 1000) token */
	uint64_t at_ms;             /* when level was computed */
	uint64_t refused;           /* refusals since refused_from */
	uint64_t refused_from;
	uint64_t last_refused_ms;
};

struct bshard {
	pthread_mutex_t mu;
	struct bucket *slot[SLOTS];
	struct bucket *mru, *lru;
	size_t n;
};

static struct bshard *B;
static size_t shard_cap;
static uint64_t seed;

/* ---- connection counts ----------------------------------------------- */

struct ccount {
	struct ipaddr a;
	uint32_t n;
	struct ccount *hnext;
};

struct cshard {
	pthread_mutex_t mu;
	struct ccount *slot[SLOTS];
};

static struct cshard *C;
static _Atomic uint64_t open_total;

void limits_init(size_t max_clients)
{
	size_t i;

	B = xcalloc(SHARDS, sizeof(*B));
	C = xcalloc(SHARDS, sizeof(*C));
	for (i = 0; i < SHARDS; i++) {
		pthread_mutex_init(&B[i].mu, NULL);
		pthread_mutex_init(&C[i].mu, NULL);
	}
	shard_cap = max_clients / SHARDS > 0 ? max_clients / SHARDS : 1;
	seed = moat_now_ms() * 0x94d049bb133111ebull ^ (uint64_t)(uintptr_t)&B;
	atomic_store(&open_total, 0);
}

void limits_shutdown(void)
{
	size_t i, j;

	if (B == NULL)
		return;
	for (i = 0; i < SHARDS; i++) {
		struct bucket *b, *bn;

		for (b = B[i].mru; b != NULL; b = bn) {
			bn = b->next;
			free(b);
		}
		for (j = 0; j < SLOTS; j++) {
			struct ccount *c, *cn;

			for (c = C[i].slot[j]; c != NULL; c = cn) {
				cn = c->hnext;
				free(c);
			}
		}
		pthread_mutex_destroy(&B[i].mu);
		pthread_mutex_destroy(&C[i].mu);
	}
	free(B);
	free(C);
	B = NULL;
	C = NULL;
}

/* FNV-1a over the texts, then the rate: stable across runs and reloads. */
uint64_t limit_rule_id(const char *site, const char *rule, const struct rate *r)
{
	uint64_t h = 0xcbf29ce484222325ull;
	const char *parts[2] = { site, rule };
	size_t i;
	const unsigned char *p;

	for (i = 0; i < 2; i++) {
		for (p = (const unsigned char *)(parts[i] ? parts[i] : ""); *p; p++)
			h = (h ^ *p) * 0x100000001b3ull;
		h = (h ^ 0xff) * 0x100000001b3ull;
	}
	h ^= ((uint64_t)r->count << 32) ^ r->period_ms;
	h *= 0x100000001b3ull;
	h ^= r->burst;
	return h * 0x9e3779b97f4a7c15ull;
}

static bool same_key(const struct cidr *a, const struct cidr *b)
{
	return a->bits == b->bits && ipaddr_equal(&a->a, &b->a);
}

static void lru_unlink(struct bshard *sh, struct bucket *b)
{
	if (b->prev != NULL)
		b->prev->next = b->next;
	else
		sh->mru = b->next;
	if (b->next != NULL)
		b->next->prev = b->prev;
	else
		sh->lru = b->prev;
	b->prev = b->next = NULL;
}

static void lru_front(struct bshard *sh, struct bucket *b)
{
	b->next = sh->mru;
	if (sh->mru != NULL)
		sh->mru->prev = b;
	else
		sh->lru = b;
	sh->mru = b;
}

static struct bucket **blink(struct bshard *sh, uint64_t h, uint64_t id, const struct cidr *k)
{
	struct bucket **l = &sh->slot[(h >> 6) % SLOTS];

	while (*l != NULL && !((*l)->id == id && same_key(&(*l)->key, k)))
		l = &(*l)->hnext;
	return l;
}

static void evict_lru(struct bshard *sh)
{
	struct bucket *b = sh->lru, **l;
	uint64_t h;

	h = cidr_hash(&b->key, seed ^ b->id);
	l = blink(sh, h, b->id, &b->key);
	*l = b->hnext;
	lru_unlink(sh, b);
	sh->n--;
	free(b);
}

/* One token in a bucket's units, and the bucket's size. At most 1e6 *
 * 86.4e6 * 1000 (burst, a day, the scale): far below 2^64. */
static uint64_t token(const struct rate *r)
{
	return (uint64_t)r->period_ms * 1000;
}

static uint64_t refill(const struct rate *r, const struct bucket *b, uint64_t now_ms)
{
	uint64_t full = (uint64_t)r->burst * token(r), per_ms = (uint64_t)r->count * 1000;

	if (now_ms <= b->at_ms)
		return b->level;
	/* past the time to fill it from empty: full (keeps the product small) */
	if (now_ms - b->at_ms >= full / per_ms + 1)
		return full;
	return b->level + (now_ms - b->at_ms) * per_ms >= full ? full :
	       b->level + (now_ms - b->at_ms) * per_ms;
}

uint32_t limit_take(uint64_t id, const struct rate *r, const struct cidr *key, uint64_t now_ms)
{
	uint64_t h = cidr_hash(key, seed ^ id), need, wait_ms;
	struct bshard *sh = &B[h % SHARDS];
	struct bucket **l, *b;
	uint32_t retry = 0;

	pthread_mutex_lock(&sh->mu);
	l = blink(sh, h, id, key);
	b = *l;
	if (b == NULL) {
		if (sh->n >= shard_cap && sh->lru != NULL) {
			evict_lru(sh);
			l = blink(sh, h, id, key);
		}
		b = xcalloc(1, sizeof(*b));
		b->id = id;
		b->key = *key;
		b->level = (uint64_t)r->burst * token(r);
		b->at_ms = now_ms;
		b->hnext = *l;
		*l = b;
		sh->n++;
	} else {
		lru_unlink(sh, b);
	}
	lru_front(sh, b);
	b->level = refill(r, b, now_ms);
	b->at_ms = now_ms > b->at_ms ? now_ms : b->at_ms;
	if (b->level >= token(r)) {
		b->level -= token(r);
	} else {
		need = token(r) - b->level;
		wait_ms = (need + (uint64_t)r->count * 1000 - 1) / ((uint64_t)r->count * 1000);
		retry = (uint32_t)((wait_ms + 999) / 1000);
		if (retry == 0)
			retry = 1;
		if (b->refused == 0 || now_ms - b->last_refused_ms > 600000)
			b->refused_from = now_ms;
		b->refused++;
		b->last_refused_ms = now_ms;
	}
	pthread_mutex_unlock(&sh->mu);
	return retry;
}

void limit_refund(uint64_t id, const struct rate *r, const struct cidr *key)
{
	uint64_t h = cidr_hash(key, seed ^ id), full = (uint64_t)r->burst * token(r);
	struct bshard *sh = &B[h % SHARDS];
	struct bucket *b;

	pthread_mutex_lock(&sh->mu);
	b = *blink(sh, h, id, key);
	if (b != NULL)
		b->level = b->level + token(r) >= full ? full : b->level + token(r);
	pthread_mutex_unlock(&sh->mu);
}

static void add_limited(struct limited_client *out, size_t max, size_t *n,
			const struct bucket *b)
{
	size_t i, j;

	/* merge rules: one line per client */
	for (i = 0; i < *n; i++) {
		if (same_key(&out[i].key, &b->key)) {
			out[i].refused += b->refused;
			if (b->last_refused_ms > out[i].last_ms)
				out[i].last_ms = b->last_refused_ms;
			return;
		}
	}
	if (*n < max) {
		out[(*n)++] = (struct limited_client){ b->key, b->refused, b->last_refused_ms };
		return;
	}
	/* full: replace the entry with the fewest refusals if this has more */
	for (j = 0, i = 1; i < *n; i++)
		if (out[i].refused < out[j].refused)
			j = i;
	if (b->refused > out[j].refused)
		out[j] = (struct limited_client){ b->key, b->refused, b->last_refused_ms };
}

static int by_refused(const void *a, const void *b)
{
	const struct limited_client *x = a, *y = b;

	return x->refused < y->refused ? 1 : x->refused > y->refused ? -1 : 0;
}

size_t limit_limited(struct limited_client *out, size_t max, uint64_t now_ms, uint64_t window_ms)
{
	size_t i, n = 0;
	struct bucket *b;

	if (max == 0)
		return 0;
	for (i = 0; i < SHARDS; i++) {
		pthread_mutex_lock(&B[i].mu);
		for (b = B[i].mru; b != NULL; b = b->next)
			if (b->refused > 0 && now_ms - b->last_refused_ms <= window_ms)
				add_limited(out, max, &n, b);
		pthread_mutex_unlock(&B[i].mu);
	}
	qsort(out, n, sizeof(*out), by_refused);
	return n;
}

/* ---- connection caps ------------------------------------------------- */

static struct cshard *cshard_of(const struct ipaddr *a, uint64_t *h)
{
	struct cidr k = { *a, 128 };

	*h = cidr_hash(&k, seed);
	return &C[*h % SHARDS];
}

/* The link to a's entry (or where it would go); the shard's lock held. */
static struct ccount **clink(struct cshard *sh, uint64_t h, const struct ipaddr *a)
{
	struct ccount **l = &sh->slot[(h >> 6) % SLOTS];

	while (*l != NULL && !ipaddr_equal(&(*l)->a, a))
		l = &(*l)->hnext;
	return l;
}

int conncap_open(const struct ipaddr *a, uint32_t per_client, uint32_t total)
{
	uint64_t h;
	struct cshard *sh = cshard_of(a, &h);
	struct ccount **l, *e;
	int rc = 0;

	if (atomic_fetch_add(&open_total, 1) >= total && total > 0) {
		atomic_fetch_sub(&open_total, 1);
		return MOAT_ENOMEM;
	}
	pthread_mutex_lock(&sh->mu);
	l = clink(sh, h, a);
	e = *l;
	if (e == NULL) {
		e = xcalloc(1, sizeof(*e));
		e->a = *a;
		*l = e;
	}
	if (per_client > 0 && e->n >= per_client)
		rc = MOAT_ENOMEM;
	else
		e->n++;
	pthread_mutex_unlock(&sh->mu);
	if (rc != 0)
		atomic_fetch_sub(&open_total, 1);
	return rc;
}

void conncap_close(const struct ipaddr *a)
{
	uint64_t h;
	struct cshard *sh = cshard_of(a, &h);
	struct ccount **l, *e;

	pthread_mutex_lock(&sh->mu);
	l = clink(sh, h, a);
	e = *l;
	if (e != NULL && e->n > 0 && --e->n == 0) {
		*l = e->hnext;
		free(e);
	}
	pthread_mutex_unlock(&sh->mu);
	atomic_fetch_sub(&open_total, 1);
}

uint64_t conncap_total(void)
{
	return atomic_load(&open_total);
}

static int by_count(const void *a, const void *b)
{
	const struct conn_count *x = a, *y = b;

	return x->n < y->n ? 1 : x->n > y->n ? -1 : 0;
}

size_t conncap_top(struct conn_count *out, size_t max)
{
	size_t i, j, k, m, n = 0;
	struct ccount *e;

	if (max == 0)
		return 0;
	for (i = 0; i < SHARDS; i++) {
		pthread_mutex_lock(&C[i].mu);
		for (j = 0; j < SLOTS; j++) {
			for (e = C[i].slot[j]; e != NULL; e = e->hnext) {
				if (n < max) {
					out[n++] = (struct conn_count){ e->a, e->n };
					continue;
				}
				/* full: the entry with the fewest gives way */
				for (m = 0, k = 1; k < n; k++)
					if (out[k].n < out[m].n)
						m = k;
				if (e->n > out[m].n)
					out[m] = (struct conn_count){ e->a, e->n };
			}
		}
		pthread_mutex_unlock(&C[i].mu);
	}
	qsort(out, n, sizeof(*out), by_count);
	return n;
}
