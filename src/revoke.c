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
#include "crlset.h"
#include "fsutil.h"
#include "log.h"
#include "util.h"
#include "x509util.h"

#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/x509v3.h>

#define CRL_FILE_MAX (16 * 1024 * 1024)

struct revlist {
	struct revlist *prev, *next; /* registry */
	int refs;                    /* under reg_lock */
	char *path;
	STACK_OF(X509) *issuers;
	pthread_rwlock_t lock;       /* guards cur */
	struct crlset *cur;
	struct stat st;              /* of the file last read (zeroed: missing) */
	bool missing_told;           /* "file is missing" already logged */
};

static pthread_mutex_t reg_lock = PTHREAD_MUTEX_INITIALIZER;
static struct revlist *reg_head;
static _Atomic unsigned epoch = 1;

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

/*
 * A full CRL: every certificate of its issuer, every reason. A delta CRL
 * only lists what changed since a base, and a partitioned one (scoped by
 * an issuing distribution point) only part of the issuer's certificates:
 * treating either as complete would drop the revocations it leaves out.
 * A CRL scoped to user certificates only is complete for client
 * certificates.
 */
static bool is_full_crl(X509_CRL *crl)
{
	ISSUING_DIST_POINT *idp;
	int crit = -1;
	bool full;

	if (X509_CRL_get_ext_by_NID(crl, NID_delta_crl, -1) >= 0)
		return false;
	idp = X509_CRL_get_ext_d2i(crl, NID_issuing_distribution_point, &crit, NULL);
	if (idp == NULL)
		return crit == -1; /* -1: absent; anything else: present but unreadable */
	full = idp->distpoint == NULL && idp->onlysomereasons == NULL && !idp->indirectCRL &&
	       !idp->onlyCA && !idp->onlyattr;
	ISSUING_DIST_POINT_free(idp);
	return full;
}

/*
 * Add one CRL to s (*used +1); *why on failure. A CRL no trusted CA signed
 * is an error when strict (the file is being opened for a configuration);
 * otherwise (a file that changed under a running configuration, maybe for
 * a newer one that trusts more CAs) it is reported and skipped.
 */
static int add_crl(struct crlset *s, X509_CRL *crl, STACK_OF(X509) *issuers, int idx,
		   const char *path, bool strict, int *used, char **why)
{
	X509 *ca = find_issuer(issuers, crl);
	time_t nu;

	if (!is_full_crl(crl)) {
		if (strict) {
			*why = xasprintf("CRL %d in %s is a delta or partitioned CRL (deltaCRLIndicator "
					 "or issuingDistributionPoint); give the CA's full CRL", idx, path);
			return MOAT_ETLS;
		}
		log_error("revocation list %s: CRL %d is a delta or partitioned CRL; ignored (give "
			  "the CA's full CRL)", path, idx);
		return 0;
	}
	if (ca == NULL && !strict) {
		log_error("revocation list %s: CRL %d is not signed by any client CA this "
			  "configuration trusts; ignored", path, idx);
		return 0;
	}
	if (ca == NULL) {
		*why = xasprintf("CRL %d in %s is not signed by any of the site's client CA "
				 "certificates; use the CRL published by that CA", idx, path);
		return MOAT_ETLS;
	}
	nu = x509_epoch(X509_CRL_get0_nextUpdate(crl));
	if (nu != 0 && nu < time(NULL)) {
		*why = xasprintf("CRL %d in %s is out of date (its nextUpdate has passed); get "
				 "a fresh one from the CA", idx, path);
		return MOAT_ETLS;
	}
	if (crlset_add(s, crl, ca) < 0) {
		*why = xasprintf("CRL %d in %s: cannot read its issuer", idx, path);
		return MOAT_ETLS;
	}
	(*used)++;
	return 0;
}

/* Read and check the whole file into a new, unfinished set. */
static struct crlset *load(const char *path, STACK_OF(X509) *issuers, bool strict, char **why)
{
	struct crlset *s = crlset_new();
	char *text = NULL;
	size_t len = 0;
	BIO *bio = NULL;
	X509_CRL *crl;
	unsigned long e;
	int count = 0, used = 0, rc;

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
		rc = add_crl(s, crl, issuers, count, path, strict, &used, why);
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
	if (used == 0) {
		*why = xasprintf("%s holds no full CRL signed by a client CA this configuration "
				 "trusts", path);
		goto fail;
	}
	ERR_clear_error();
	BIO_free(bio);
	free(text);
	return s;
fail:
	ERR_clear_error();
	BIO_free(bio);
	free(text);
	crlset_free(s);
	return NULL;
}

/* A reload must not take revocation back in time either: whatever a
 * running generation holds for the same CAs (from this file or another)
 * that is newer is carried into the new set. */
static void carry_live(const char *path, struct crlset *s, STACK_OF(X509) *issuers)
{
	const char *cn = NULL;
	char name[65] = "?";
	struct revlist *r;
	size_t kept = 0, n;

	pthread_mutex_lock(&reg_lock);
	for (r = reg_head; r != NULL; r = r->next) {
		pthread_rwlock_rdlock(&r->lock);
		n = crlset_carry(s, r->cur, issuers, &cn);
		/* cn points into r's set, which may go once the locks are let go */
		if (n > 0 && cn != NULL)
			snprintf(name, sizeof(name), "%s", cn);
		kept += n;
		pthread_rwlock_unlock(&r->lock);
	}
	pthread_mutex_unlock(&reg_lock);
	if (kept > 0)
		log_warn("revocation list %s: its CRL of \"%s\" is missing or older than the "
			 "one in force; the revocations in force stay", path, name);
}

struct revlist *revlist_open(const char *path, STACK_OF(X509) *issuers, char **why)
{
	struct revlist *r;
	struct crlset *s;
	struct stat st;
	int i;

	/* stat first: a change between stat and read is then seen again */
	if (stat(path, &st) < 0) {
		*why = xasprintf("cannot read the CRL file %s: %s", path, strerror(errno));
		return NULL;
	}
	s = load(path, issuers, true, why);
	if (s == NULL)
		return NULL;
	carry_live(path, s, issuers);
	crlset_finish(s);
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
	crlset_free(r->cur);
	pthread_rwlock_destroy(&r->lock);
	sk_X509_pop_free(r->issuers, X509_free);
	free(r->path);
	free(r);
}

bool revlist_has(struct revlist *r, unsigned long issuer, const unsigned char *serial,
		 size_t len, bool *stale)
{
	time_t nu;
	bool found;

	pthread_rwlock_rdlock(&r->lock);
	found = crlset_has(r->cur, issuer, serial, len);
	nu = crlset_next_update(r->cur);
	pthread_rwlock_unlock(&r->lock);
	*stale = nu != 0 && time(NULL) > nu;
	return found;
}

static bool same_file(const struct stat *a, const struct stat *b)
{
	return a->st_dev == b->st_dev && a->st_ino == b->st_ino && a->st_size == b->st_size &&
	       a->st_mtim.tv_sec == b->st_mtim.tv_sec && a->st_mtim.tv_nsec == b->st_mtim.tv_nsec &&
	       a->st_ctim.tv_sec == b->st_ctim.tv_sec && a->st_ctim.tv_nsec == b->st_ctim.tv_nsec;
}

/* One list: true when a new set was published. Only the control thread
 * replaces r->cur, so reading it here needs no lock. */
static bool refresh_one(struct revlist *r)
{
	struct crlset *s, *old;
	struct stat st;
	const char *cn = NULL;
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
	s = load(r->path, r->issuers, false, &why);
	if (s == NULL) {
		log_error("revocation list changed but cannot be used: %s; the last good list "
			  "stays in force", why);
		free(why);
		return false;
	}
	if (crlset_carry(s, r->cur, r->issuers, &cn) > 0)
		log_warn("revocation list %s: its CRL of \"%s\" is missing or older than the "
			 "one in force; the revocations in force stay", r->path, cn);
	crlset_finish(s);
	pthread_rwlock_wrlock(&r->lock);
	old = r->cur;
	r->cur = s;
	pthread_rwlock_unlock(&r->lock);
	log_info("revocation list %s reloaded: %zu revoked certificate%s", r->path,
		 crlset_count(s), crlset_count(s) == 1 ? "" : "s");
	crlset_free(old);
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
