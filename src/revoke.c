/*
 * revoke.c - see revoke.h.
 *
 * Readers hold a list's read lock only for one binary search, and the
 * control thread holds the write lock only to swap a pointer, so a worker
 * never waits on file I/O. Changes are noticed by polling stat(2) rather
 * than inotify: it also sees a file replaced by rename (what `moat ca
 * revoke` does), a directory that was moved, and a file that came back
 * after being deleted, all with one code path.
 */
#include "revoke.h"
#include "fsutil.h"
#include "log.h"
#include "util.h"

#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/x509v3.h>

#define CRL_FILE_MAX (16 * 1024 * 1024)

struct rev_entry {
	unsigned long issuer;
	unsigned char len;
	unsigned char serial[REVOKE_SERIAL_MAX];
};

/* How recent one issuer's CRL is: by crlNumber, or thisUpdate without one. */
struct crl_ver {
	unsigned long issuer;
	bool has_number;
	uint64_t number;
	time_t this_update;
};

/* One loaded file: immutable once published. */
struct revset {
	struct rev_entry *e; /* sorted by cmp_entry */
	size_t n;
	time_t next_update;  /* earliest nextUpdate of its CRLs; 0: none */
	struct crl_ver *ver; /* one per issuer */
	size_t nver;
};

struct revlist {
	struct revlist *prev, *next; /* registry */
	int refs;                    /* under reg_lock */
	char *path;
	STACK_OF(X509) *issuers;
	pthread_rwlock_t lock;       /* guards cur */
	struct revset *cur;
	struct stat st;              /* of the file last read (zeroed: missing) */
	bool missing_told;           /* "file is missing" already logged */
};

static pthread_mutex_t reg_lock = PTHREAD_MUTEX_INITIALIZER;
static struct revlist *reg_head;
static _Atomic unsigned epoch = 1;

static int cmp_entry(const void *a, const void *b)
{
	const struct rev_entry *x = a, *y = b;

	if (x->issuer != y->issuer)
		return x->issuer < y->issuer ? -1 : 1;
	if (x->len != y->len)
		return x->len < y->len ? -1 : 1;
	return memcmp(x->serial, y->serial, x->len);
}

static time_t asn1_epoch(const ASN1_TIME *t)
{
	struct tm tm;

	if (t == NULL || ASN1_TIME_to_tm(t, &tm) != 1)
		return 0;
	return timegm(&tm);
}

static void revset_free(struct revset *s)
{
	if (s == NULL)
		return;
	free(s->ver);
	free(s->e);
	free(s);
}

static const struct crl_ver *find_ver(const struct revset *s, unsigned long issuer)
{
	size_t i;

	for (i = 0; i < s->nver; i++)
		if (s->ver[i].issuer == issuer)
			return &s->ver[i];
	return NULL;
}

static bool newer(const struct crl_ver *a, const struct crl_ver *b)
{
	if (a->has_number && b->has_number)
		return a->number > b->number;
	return a->this_update > b->this_update;
}

/* Remember the newest CRL per issuer. */
static void note_ver(struct revset *s, X509_CRL *crl, unsigned long issuer)
{
	ASN1_INTEGER *num = X509_CRL_get_ext_d2i(crl, NID_crl_number, NULL, NULL);
	struct crl_ver v = { .issuer = issuer };
	struct crl_ver *have;

	v.has_number = num != NULL && ASN1_INTEGER_get_uint64(&v.number, num) == 1;
	ASN1_INTEGER_free(num);
	v.this_update = asn1_epoch(X509_CRL_get0_lastUpdate(crl));
	have = (struct crl_ver *)find_ver(s, issuer);
	if (have != NULL) {
		if (newer(&v, have))
			*have = v;
		return;
	}
	s->ver = xrealloc(s->ver, (s->nver + 1) * sizeof(*s->ver));
	s->ver[s->nver++] = v;
}

/*
 * Would replacing old by s take the revocation state back in time? A CRL
 * older than the one in force (a backup restored, a replayed download) or
 * a file that lost an issuer's CRL would un-revoke certificates. NULL when
 * s may replace old, else why not (static string). need_all: every issuer
 * of old must be in s (the same generation's file; a reload may drop a CA).
 */
static const char *rolls_back(const struct revset *s, const struct revset *old, bool need_all)
{
	const struct crl_ver *nv;
	size_t i;

	for (i = 0; i < old->nver; i++) {
		nv = find_ver(s, old->ver[i].issuer);
		if (nv == NULL && !need_all)
			continue;
		if (nv == NULL)
			return "it lacks the CRL of an issuer the list in force has";
		if (newer(&old->ver[i], nv))
			return "it is older than the list in force (lower crlNumber or earlier "
			       "thisUpdate), and would un-revoke certificates";
	}
	return NULL;
}


static X509 *find_issuer(STACK_OF(X509) *issuers, X509_CRL *crl)
{
	int i;

	for (i = 0; i < sk_X509_num(issuers); i++) {
		X509 *ca = sk_X509_value(issuers, i);

		if (X509_NAME_cmp(X509_CRL_get_issuer(crl), X509_get_subject_name(ca)) == 0 &&
		    X509_CRL_verify(crl, X509_get0_pubkey(ca)) == 1)
			return ca;
	}
	return NULL;
}

/* Add one CRL's entries to s; *why on failure. */
static int add_crl(struct revset *s, X509_CRL *crl, STACK_OF(X509) *issuers, int idx,
		   const char *path, char **why)
{
	STACK_OF(X509_REVOKED) *rev = X509_CRL_get_REVOKED(crl);
	unsigned long issuer;
	time_t nu;
	int i, n = rev != NULL ? sk_X509_REVOKED_num(rev) : 0, ok = 0;

	if (find_issuer(issuers, crl) == NULL) {
		*why = xasprintf("CRL %d in %s is not signed by any of the site's client CA "
				 "certificates; use the CRL published by that CA", idx, path);
		return MOAT_ETLS;
	}
	nu = asn1_epoch(X509_CRL_get0_nextUpdate(crl));
	if (nu != 0 && nu < time(NULL)) {
		*why = xasprintf("CRL %d in %s is out of date (its nextUpdate has passed); get "
				 "a fresh one from the CA", idx, path);
		return MOAT_ETLS;
	}
	if (nu != 0 && (s->next_update == 0 || nu < s->next_update))
		s->next_update = nu;
	issuer = X509_NAME_hash_ex(X509_CRL_get_issuer(crl), NULL, NULL, &ok);
	if (ok != 1) {
		*why = xasprintf("CRL %d in %s: cannot hash its issuer name", idx, path);
		return MOAT_ETLS;
	}
	note_ver(s, crl, issuer);
	s->e = xrealloc(s->e, (s->n + (size_t)n + 1) * sizeof(*s->e));
	for (i = 0; i < n; i++) {
		const ASN1_INTEGER *sn = X509_REVOKED_get0_serialNumber(sk_X509_REVOKED_value(rev, i));
		int len = ASN1_STRING_length(sn);
		struct rev_entry *e = &s->e[s->n];

		/* Longer or negative serials cannot be presented by a
		 * certificate moat accepts (clientcert.c refuses them), so they
		 * need no entry; a negative one must not match its positive
		 * twin, which has the same content octets. */
		if (len <= 0 || len > REVOKE_SERIAL_MAX || ASN1_STRING_type(sn) == V_ASN1_NEG_INTEGER)
			continue;
		memset(e, 0, sizeof(*e));
		e->issuer = issuer;
		e->len = (unsigned char)len;
		memcpy(e->serial, ASN1_STRING_get0_data(sn), (size_t)len);
		s->n++;
	}
	return 0;
}

/* Read and check the whole file into a new set. */
static struct revset *load(const char *path, STACK_OF(X509) *issuers, char **why)
{
	struct revset *s = xcalloc(1, sizeof(*s));
	char *text = NULL;
	size_t len = 0;
	BIO *bio = NULL;
	X509_CRL *crl;
	unsigned long e;
	int count = 0, rc;

	*why = NULL;
	rc = fs_read_file(path, CRL_FILE_MAX, &text, &len);
	if (rc < 0) {
		*why = xasprintf("cannot read the CRL file %s: %s", path,
				 rc == MOAT_ETOOBIG ? "larger than 16 MiB" : strerror(errno));
		goto fail;
	}
	bio = BIO_new_mem_buf(text, (int)len);
	if (bio == NULL) {
		*why = xasprintf("%s: out of memory", path);
		goto fail;
	}
	ERR_clear_error();
	for (;;) {
		crl = PEM_read_bio_X509_CRL(bio, NULL, NULL, NULL);
		if (crl == NULL)
			break;
		count++;
		rc = add_crl(s, crl, issuers, count, path, why);
		X509_CRL_free(crl);
		if (rc < 0)
			goto fail;
	}
	e = ERR_peek_last_error();
	/* the end of the file reads as "no start line"; anything else is damage */
	if (count == 0 || (e != 0 && ERR_GET_REASON(e) != PEM_R_NO_START_LINE)) {
		*why = xasprintf("%s is not a PEM file of CRLs (\"-----BEGIN X509 CRL-----\")%s; "
				 "restore it or get a fresh one from the CA", path,
				 count > 0 ? " after its first entries" : "");
		goto fail;
	}
	ERR_clear_error();
	qsort(s->e, s->n, sizeof(*s->e), cmp_entry);
	BIO_free(bio);
	free(text);
	return s;
fail:
	ERR_clear_error();
	BIO_free(bio);
	free(text);
	revset_free(s);
	return NULL;
}

/* A reload must not take a list back in time either: compare with what a
 * running generation already holds for the same file. */
static const char *live_rolls_back(const char *path, const struct revset *s)
{
	const char *back = NULL;
	struct revlist *r;

	pthread_mutex_lock(&reg_lock);
	for (r = reg_head; r != NULL && back == NULL; r = r->next) {
		if (strcmp(r->path, path) != 0)
			continue;
		pthread_rwlock_rdlock(&r->lock);
		back = rolls_back(s, r->cur, false);
		pthread_rwlock_unlock(&r->lock);
	}
	pthread_mutex_unlock(&reg_lock);
	return back;
}

struct revlist *revlist_open(const char *path, STACK_OF(X509) *issuers, char **why)
{
	struct revlist *r;
	struct revset *s;
	struct stat st;
	const char *back;
	int i;

	/* stat first: a change between stat and read is then seen again */
	if (stat(path, &st) < 0) {
		*why = xasprintf("cannot read the CRL file %s: %s", path, strerror(errno));
		return NULL;
	}
	s = load(path, issuers, why);
	if (s == NULL)
		return NULL;
	back = live_rolls_back(path, s);
	if (back != NULL) {
		*why = xasprintf("CRL file %s: %s", path, back);
		revset_free(s);
		return NULL;
	}
	r = xcalloc(1, sizeof(*r));
	r->refs = 1;
	r->path = xstrdup(path);
	r->issuers = sk_X509_new_null();
	for (i = 0; r->issuers != NULL && i < sk_X509_num(issuers); i++) {
		X509 *x = sk_X509_value(issuers, i);

		if (X509_up_ref(x) == 1 && sk_X509_push(r->issuers, x) <= 0)
			X509_free(x);
	}
	pthread_rwlock_init(&r->lock, NULL);
	r->cur = s;
	r->st = st;
	pthread_mutex_lock(&reg_lock);
	r->next = reg_head;
	if (reg_head != NULL)
		reg_head->prev = r;
	reg_head = r;
	pthread_mutex_unlock(&reg_lock);
	return r;
}

void revlist_unref(struct revlist *r)
{
	bool last;

	if (r == NULL)
		return;
	pthread_mutex_lock(&reg_lock);
	last = --r->refs == 0;
	if (last) {
		if (r->prev != NULL)
			r->prev->next = r->next;
		else
			reg_head = r->next;
		if (r->next != NULL)
			r->next->prev = r->prev;
	}
	pthread_mutex_unlock(&reg_lock);
	if (!last)
		return;
	revset_free(r->cur);
	pthread_rwlock_destroy(&r->lock);
	sk_X509_pop_free(r->issuers, X509_free);
	free(r->path);
	free(r);
}

bool revlist_has(struct revlist *r, unsigned long issuer, const unsigned char *serial,
		 size_t len, bool *stale)
{
	struct rev_entry key;
	bool found;

	*stale = false;
	if (len == 0 || len > REVOKE_SERIAL_MAX)
		return true; /* cannot be looked up: never vouch for it */
	memset(&key, 0, sizeof(key));
	key.issuer = issuer;
	key.len = (unsigned char)len;
	memcpy(key.serial, serial, len);
	pthread_rwlock_rdlock(&r->lock);
	found = bsearch(&key, r->cur->e, r->cur->n, sizeof(key), cmp_entry) != NULL;
	*stale = r->cur->next_update != 0 && time(NULL) > r->cur->next_update;
	pthread_rwlock_unlock(&r->lock);
	return found;
}

static bool same_file(const struct stat *a, const struct stat *b)
{
	return a->st_dev == b->st_dev && a->st_ino == b->st_ino && a->st_size == b->st_size &&
	       a->st_mtim.tv_sec == b->st_mtim.tv_sec && a->st_mtim.tv_nsec == b->st_mtim.tv_nsec &&
	       a->st_ctim.tv_sec == b->st_ctim.tv_sec && a->st_ctim.tv_nsec == b->st_ctim.tv_nsec;
}

/* One list: true when a new set was published. */
static bool refresh_one(struct revlist *r)
{
	struct revset *s, *old;
	struct stat st;
	const char *back;
	char *why = NULL;

	if (stat(r->path, &st) < 0) {
		if (!r->missing_told)
			log_error("revocation list %s: %s; the last list read stays in force until "
				  "the file is back", r->path, strerror(errno));
		r->missing_told = true;
		memset(&r->st, 0, sizeof(r->st));
		return false;
	}
	if (same_file(&st, &r->st))
		return false;
	r->missing_told = false;
	r->st = st;
	s = load(r->path, r->issuers, &why);
	if (s == NULL) {
		log_error("revocation list changed but cannot be used: %s; the last good list "
			  "stays in force", why);
		free(why);
		return false;
	}
	/* only this thread replaces r->cur: reading it needs no lock */
	back = rolls_back(s, r->cur, true);
	if (back != NULL) {
		log_error("revocation list %s changed but is refused: %s; the last good list "
			  "stays in force", r->path, back);
		revset_free(s);
		return false;
	}
	pthread_rwlock_wrlock(&r->lock);
	old = r->cur;
	r->cur = s;
	pthread_rwlock_unlock(&r->lock);
	log_info("revocation list %s reloaded: %zu revoked certificate%s", r->path, s->n,
		 s->n == 1 ? "" : "s");
	revset_free(old);
	return true;
}

int revoke_refresh(void)
{
	struct revlist **all = NULL, *r;
	size_t n = 0, i;
	int changed = 0;

	pthread_mutex_lock(&reg_lock);
	for (r = reg_head; r != NULL; r = r->next)
		n++;
	if (n > 0)
		all = xcalloc(n, sizeof(*all));
	n = 0;
	for (r = reg_head; r != NULL; r = r->next) {
		r->refs++;
		all[n++] = r;
	}
	pthread_mutex_unlock(&reg_lock);
	for (i = 0; i < n; i++) {
		if (refresh_one(all[i]))
			changed++;
		revlist_unref(all[i]);
	}
	free(all);
	if (changed > 0)
		atomic_fetch_add(&epoch, 1);
	return changed;
}

unsigned revoke_epoch(void)
{
	return atomic_load(&epoch);
}
