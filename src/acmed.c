/*
 * acmed.c - see acmed.h.
 */
#include "acmed.h"

#include <errno.h>
#include <jansson.h>
#include <openssl/rand.h>
#include <openssl/sha.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <signal.h>
#include <sys/stat.h>
#include <unistd.h>

#include "acme.h"
#include "acme_csr.h"
#include "acme_order.h"
#include "castore.h"
#include "certstore.h"
#include "conf.h"
#include "fsutil.h"
#include "gen.h"
#include "log.h"
#include "tls.h"
#include "util.h"
#include "x509util.h"

#define ARI_RECHECK_S (6 * 3600)  /* ask for the renewal window again after */
#define WARN_EVERY_S 86400
#define BACKOFF_CAP_S (6 * 3600)
#define ACCOUNT_MAX (16 * 1024)

struct entry {
	char *host;
	struct certstore_state st;
	long long warned;     /* last "expires soon" warning */
	bool busy;            /* an order is running for it */
};

struct acmed {
	pthread_t thread;
	pthread_mutex_t mu;
	pthread_cond_t cv;
	_Atomic bool stop;
	bool started;
	struct gen *gen;      /* the configuration the thread works from */
	bool regen;           /* gen changed since the thread last looked */
	struct entry *e;      /* one per ACME site of gen */
	size_t n;
	long long placed[ACMED_ORDERS_PER_MIN]; /* when the last orders were placed (ring) */
	size_t nplaced;
	bool check_account;   /* the configured email differs from the account's */
	void (*changed)(void *arg);
	void *arg;
};

/* 1, 2, 5, 10, 20, 30 minutes, 1, 2, 4 and then 6 hours. */
static long long backoff_s(unsigned failures)
{
	static const long long steps[] = { 60, 120, 300, 600, 1200, 1800, 3600, 7200, 14400 };
	size_t i = failures == 0 ? 0 : failures - 1;

	return i < sizeof(steps) / sizeof(steps[0]) ? steps[i] : BACKOFF_CAP_S;
}

/* ---- the schedule -------------------------------------------------------- */

/* Whether st's certificate came through the configured directory (an
 * older state.json that does not say is taken as yes). */
static bool same_directory(const struct conf *c, const struct certstore_state *st)
{
	return st->directory[0] == '\0' || strcmp(st->directory, c->acme.directory) == 0;
}

/* When the certificate should be renewed, before retries and rate limits. */
static long long renewal_time(const struct conf *c, const struct certstore_state *st)
{
	long long third, own;

	/* a certificate from another CA than the configured one (staging,
	 * then production) is replaced now */
	if (st->not_after == 0 || !same_directory(c, st))
		return 0;
	third = st->not_after - (st->not_after - st->not_before) / 3;
	own = c->acme.renew_before_ms > 0 ?
		st->not_after - (long long)(c->acme.renew_before_ms / 1000) : third;
	if (st->renew_at == 0)
		return own;
	/* the CA's window (ARI) replaces the third-of-the-lifetime rule; an
	 * explicit renew_before still wins when it is earlier */
	if (c->acme.renew_before_ms > 0 && own < st->renew_at)
		return own;
	return st->renew_at;
}

/* When the entry next needs the thread: an order or a renewal-window check. */
static long long due(const struct conf *c, const struct entry *e)
{
	long long t = renewal_time(c, &e->st);

	if (e->st.ari_id[0] != '\0' && e->st.ari_check < t)
		t = e->st.ari_check;
	if (e->st.next_attempt > t)
		t = e->st.next_attempt;
	return t;
}

/* The time a new order may be placed without passing the limit. */
static long long order_slot(const struct acmed *a, long long now)
{
	long long oldest;

	if (a->nplaced < ACMED_ORDERS_PER_MIN)
		return now;
	oldest = a->placed[a->nplaced % ACMED_ORDERS_PER_MIN];
	return oldest + 60 > now ? oldest + 60 : now;
}

static void note_placed(struct acmed *a, long long now)
{
	a->placed[a->nplaced % ACMED_ORDERS_PER_MIN] = now;
	a->nplaced++;
}

/* ---- the account ----------------------------------------------------------- */

/* DATA/acme/accounts/HOST-HASH: one account per CA directory. */
static char *account_dir(const char *data, const char *directory)
{
	unsigned char md[SHA256_DIGEST_LENGTH];
	char host[64];
	const char *p = strstr(directory, "://");
	size_t i = 0;

	SHA256((const unsigned char *)directory, strlen(directory), md);
	p = p != NULL ? p + 3 : directory;
	for (; p[i] != '\0' && p[i] != '/' && i < sizeof(host) - 1; i++)
		host[i] = (p[i] == ':' || p[i] == '.' || p[i] == '-' ||
			   (p[i] >= '0' && p[i] <= '9') || (p[i] >= 'a' && p[i] <= 'z')) ? p[i] : '_';
	host[i] = '\0';
	return xasprintf("%s/acme/accounts/%s-%02x%02x%02x%02x", data, host, md[0], md[1], md[2],
			 md[3]);
}

static int save_account(const char *jsonf, const char *kid, const struct conf *c, char **err)
{
	json_t *o = json_pack("{s:s,s:s,s:s?}", "url", kid, "directory", c->acme.directory,
			      "email", c->acme.email);
	char *out = json_dumps(o, JSON_INDENT(2) | JSON_SORT_KEYS);
	int rc = 0;

	if (out == NULL || fs_write_atomic(jsonf, out, strlen(out), 0600) != 0) {
		*err = xasprintf("cannot save the account in %s", jsonf);
		rc = MOAT_EIO;
	}
	free(out);
	json_decref(o);
	return rc;
}

/* RFC 8555 7.3.2: a changed email is sent to the account itself. */
static int update_contact(struct acme_client *cl, const struct conf *c, char **err)
{
	struct httpc_resp r = {0};
	json_t *req = json_object(), *j = NULL;
	char *payload, *mailto = NULL;
	int rc;

	if (c->acme.email != NULL) {
		mailto = xasprintf("mailto:%s", c->acme.email);
		json_object_set_new(req, "contact", json_pack("[s]", mailto));
	} else {
		json_object_set_new(req, "contact", json_array());
	}
	payload = json_dumps(req, JSON_COMPACT);
	rc = acme_post(cl, cl->kid, payload, &r, &j, err);
	free(payload);
	free(mailto);
	json_decref(req);
	json_decref(j);
	httpc_resp_free(&r);
	return rc;
}

/* The CA forgot the account (a reset test CA, a deactivated account):
 * forget its URL, so the next attempt registers the key again. */
static void forget_account(const struct conf *c)
{
	char *dir = account_dir(c->data, c->acme.directory);
	char *jsonf = xasprintf("%s/account.json", dir);

	unlink(jsonf);
	free(jsonf);
	free(dir);
}

/* Load or create the account key and make sure the CA knows the account.
 * A key file that exists but cannot be read is an error, never replaced:
 * the account (and the CA's rate limits) belong to it. */
static int account(struct acme_client *cl, const struct conf *c, EVP_PKEY **key, char **err)
{
	char *dir = account_dir(c->data, c->acme.directory);
	char *keyf = xasprintf("%s/account.key", dir), *jsonf = xasprintf("%s/account.json", dir);
	char *text = NULL, *why = NULL;
	const char *kid = NULL, *email = NULL;
	bool exists = false;
	json_error_t je;
	json_t *o = NULL;
	size_t len;
	int rc = MOAT_EIO;

	if (x509_file_exists(keyf, &exists) != 0) {
		*err = xasprintf("cannot look at %s", keyf);
		goto out;
	}
	if (!exists) {
		*key = acme_key_new();
		if (*key == NULL || fs_mkdir_private(dir) != 0 || acme_key_save(keyf, *key) != 0) {
			*err = xasprintf("cannot make the account key in %s", dir);
			goto out;
		}
		log_info("acme: new account key in %s", keyf);
	} else {
		*key = acme_key_load(keyf, &why);
		if (*key == NULL) {
			*err = xasprintf("the account key is unusable: %s; fix or remove it (a new "
					 "one makes a new account)", why);
			goto out;
		}
		if (fs_read_file(jsonf, ACCOUNT_MAX, &text, &len) == 0) {
			o = json_loadb(text, len, 0, &je);
			kid = json_string_value(json_object_get(o, "url"));
			email = json_string_value(json_object_get(o, "email"));
		}
	}
	if (acme_account(cl, *key, kid, c->acme.email, err) != 0)
		goto out;
	if (kid == NULL) {
		if (save_account(jsonf, cl->kid, c, err) != 0)
			goto out;
		log_info("acme: account %s", cl->kid);
	} else if ((email == NULL) != (c->acme.email == NULL) ||
		   (email != NULL && strcmp(email, c->acme.email) != 0)) {
		/* a CA refusing the new address must not stop certificates:
		 * account.json keeps the old one, so it is tried again */
		if (update_contact(cl, c, &why) != 0) {
			log_warn("acme: account %s: the CA refused the contact %s: %s", cl->kid,
				 c->acme.email != NULL ? c->acme.email : "(none)", why);
			if (strstr(why, "accountDoesNotExist") != NULL)
				forget_account(c);
		} else if (save_account(jsonf, cl->kid, c, err) != 0) {
			goto out;
		} else {
			log_info("acme: account %s now has contact %s", cl->kid,
				 c->acme.email != NULL ? c->acme.email : "none");
		}
	}
	rc = 0;
out:
	free(why);
	free(text);
	json_decref(o);
	free(keyf);
	free(jsonf);
	free(dir);
	return rc;
}

/* Whether account.json was registered with another email than c has:
 * then the CA is contacted now rather than at the next renewal. */
static bool account_stale(const struct conf *c)
{
	char *dir = account_dir(c->data, c->acme.directory);
	char *jsonf = xasprintf("%s/account.json", dir), *text = NULL;
	const char *email;
	json_error_t je;
	json_t *o = NULL;
	bool stale = false;
	size_t len;
	struct stat sb;

	if (stat(jsonf, &sb) == 0 && fs_read_file(jsonf, ACCOUNT_MAX, &text, &len) == 0) {
		o = json_loadb(text, len, 0, &je);
		email = json_string_value(json_object_get(o, "email"));
		stale = (email == NULL) != (c->acme.email == NULL) ||
			(email != NULL && strcmp(email, c->acme.email) != 0);
	}
	json_decref(o);
	free(text);
	free(jsonf);
	free(dir);
	return stale;
}


/* Only the account: the contact update after an email change. */
static void visit_account(struct acmed *a, const struct conf *c)
{
	struct acme_client cl;
	EVP_PKEY *key = NULL;
	char *err = NULL;

	if (acme_client_open(&cl, c->acme.directory, c->acme.ca_roots, &a->stop, &err) != 0 ||
	    account(&cl, c, &key, &err) != 0)
		log_warn("acme: cannot update the account: %s; tried again at the next visit to "
			 "the CA", err != NULL ? err : "unknown error");
	EVP_PKEY_free(key);
	acme_client_free(&cl);
	free(err);
}

/* ---- one certificate ---------------------------------------------------- */

/* Ask the CA for the renewal window (ARI) and pick a time in it. */
static void check_ari(struct acme_client *cl, const char *host, struct certstore_state *st,
		      long long now)
{
	struct httpc_resp r = {0};
	json_t *j = NULL, *w;
	char *url, *err = NULL;
	long long s, e;
	uint32_t rnd;

	st->ari_check = now + ARI_RECHECK_S;
	if (cl->renewal_info == NULL || cl->renewal_info[0] == '\0' || st->ari_id[0] == '\0')
		return;
	url = xasprintf("%s%s%s", cl->renewal_info,
			cl->renewal_info[strlen(cl->renewal_info) - 1] == '/' ? "" : "/", st->ari_id);
	if (acme_get(cl, url, &r, &j, &err) != 0) {
		log_warn("acme: %s: renewal information unavailable: %s", host, err);
		goto out;
	}
	w = json_object_get(j, "suggestedWindow");
	if (acme_parse_time(json_string_value(json_object_get(w, "start")), &s) != 0 ||
	    acme_parse_time(json_string_value(json_object_get(w, "end")), &e) != 0 || e < s) {
		log_warn("acme: %s: the CA's renewal information has no usable window", host);
		goto out;
	}
	if (r.retry_after > 0)
		st->ari_check = now + (r.retry_after < 60 ? 60 : r.retry_after);
	if (s != st->ari_start || e != st->ari_end || st->renew_at == 0) {
		/* a random point spreads the CA's load (RFC 9773 4.2) */
		RAND_bytes((unsigned char *)&rnd, sizeof(rnd));
		st->ari_start = s;
		st->ari_end = e;
		st->renew_at = s + (e > s ? (long long)(rnd % (uint64_t)(e - s)) : 0);
	}
out:
	free(err);
	free(url);
	json_decref(j);
	httpc_resp_free(&r);
}

static void fail(struct entry *e, const struct acme_client *cl, const char *what, long long now)
{
	long long wait;

	e->st.failures++;
	wait = backoff_s(e->st.failures);
	if (cl->retry_after > wait)
		wait = cl->retry_after > 86400 ? 86400 : cl->retry_after;
	e->st.next_attempt = now + wait;
	snprintf(e->st.last_error, sizeof(e->st.last_error), "%s", what);
	log_error("acme: %s: failed: %s; next attempt in %lld s", e->host, what, wait);
}

static void note_installed(const struct conf *c, struct entry *e)
{
	struct certstore_state disk;
	char when[40];

	/* the new certificate's facts; the schedule is ours */
	certstore_load(c->data, e->host, &disk);
	e->st.not_before = disk.not_before;
	e->st.not_after = disk.not_after;
	memcpy(e->st.serial, disk.serial, sizeof(e->st.serial));
	memcpy(e->st.issuer, disk.issuer, sizeof(e->st.issuer));
	memcpy(e->st.ari_id, disk.ari_id, sizeof(e->st.ari_id));
	snprintf(e->st.directory, sizeof(e->st.directory), "%s", c->acme.directory);
	castore_iso8601((time_t)e->st.not_after, when, sizeof(when));
	log_info("acme: %s: certificate installed (%s), serial %s, expires %s, issued by %s",
		 e->host, e->st.challenge, e->st.serial, when, e->st.issuer);
	if (c->acme.renew_before_ms > 0 &&
	    (long long)(c->acme.renew_before_ms / 1000) >= e->st.not_after - e->st.not_before)
		log_warn("acme: %s: acme.renew_before is longer than the certificate's lifetime "
			 "(%lld days): every certificate is due again as soon as it is issued",
			 e->host, (e->st.not_after - e->st.not_before) / 86400);
}

/* Run on the ACME thread without the lock; e and c stay valid (the caller
 * holds the generation and works on a copy of the entry). Returns true
 * when a certificate was installed. Every outcome ends in state.json. */
static bool work(struct acmed *a, const struct conf *c, const struct conf_site *s,
		 struct entry *e, bool *placed)
{
	struct acme_client cl;
	struct acme_job job = {0};
	EVP_PKEY *key = NULL;
	char *err = NULL, chal[16];
	long long now = time(NULL);
	bool due_now, installed = false;

	*placed = false;
	due_now = e->st.not_after == 0 || now >= renewal_time(c, &e->st) ||
		acme_order_pending(c->data, e->host);
	if (acme_client_open(&cl, c->acme.directory, c->acme.ca_roots, &a->stop, &err) != 0 ||
	    account(&cl, c, &key, &err) != 0) {
		if (atomic_load(&a->stop))
			goto out;
		if (due_now) {
			fail(e, &cl, err != NULL ? err : "cannot reach the CA", now);
		} else {
			/* only the renewal-window check was due: the certificate
			 * is fine, ask again later */
			log_warn("acme: %s: cannot ask the CA for the renewal window: %s", e->host,
				 err != NULL ? err : "unknown error");
			e->st.ari_check = now + 3600;
		}
		goto save;
	}
	if (e->st.not_after != 0 && e->st.ari_check <= now && same_directory(c, &e->st)) {
		check_ari(&cl, e->host, &e->st, now);
		due_now = due_now || now >= renewal_time(c, &e->st);
	}
	if (!due_now)
		goto save;
	log_info("acme: %s: ordering a certificate from %s", e->host, c->acme.directory);
	job.data = c->data;
	job.directory = c->acme.directory;
	job.host = e->host;
	job.chal = s->chal;
	job.http = c->nhttp > 0;
	job.https = c->nhttps > 0;
	job.dns = &c->acme.dns;
	job.ca_roots = c->acme.ca_roots;
	job.avoid = e->st.failures > 0 && e->st.challenge[0] != '\0' ? e->st.challenge : NULL;
	/* RFC 9773 replaces names a certificate of this CA's; one from
	 * another directory is not the new CA's to know */
	job.replaces = e->st.ari_id[0] != '\0' && same_directory(c, &e->st) ? e->st.ari_id : NULL;
	job.stop = &a->stop;
	e->st.last_attempt = now;
	if (acme_order_run(&cl, &job, placed, chal, sizeof(chal), &err) != 0) {
		if (chal[0] != '\0')
			snprintf(e->st.challenge, sizeof(e->st.challenge), "%s", chal);
		if (err != NULL && strstr(err, "accountDoesNotExist") != NULL)
			forget_account(c);
		if (!atomic_load(&a->stop))
			fail(e, &cl, err, now);
		goto save;
	}
	snprintf(e->st.challenge, sizeof(e->st.challenge), "%s", chal);
	e->st.failures = 0;
	e->st.next_attempt = 0;
	e->st.last_error[0] = '\0';
	e->st.renew_at = e->st.ari_start = e->st.ari_end = e->st.ari_check = 0;
	installed = true;
	note_installed(c, e);
save:
	certstore_save(c->data, e->host, &e->st);
out:
	EVP_PKEY_free(key);
	acme_client_free(&cl);
	free(err);
	return installed;
}

/* ---- the thread ------------------------------------------------------------- */

static void free_entries(struct acmed *a)
{
	size_t i;

	for (i = 0; i < a->n; i++)
		free(a->e[i].host);
	free(a->e);
	a->e = NULL;
	a->n = 0;
}

/* Under the lock: entries for the ACME sites of a->gen, from disk. */
static void rebuild(struct acmed *a)
{
	const struct conf *c = a->gen->conf;
	struct entry *old = a->e;
	size_t nold = a->n, i, j;

	a->e = xcalloc(c->nsites + 1, sizeof(*a->e));
	a->n = 0;
	for (i = 0; i < c->nsites; i++) {
		struct entry *e;

		if (c->sites[i].tls != CONF_TLS_ACME)
			continue;
		e = &a->e[a->n++];
		e->host = xstrdup(c->sites[i].host);
		for (j = 0; j < nold; j++)
			if (strcmp(old[j].host, e->host) == 0)
				e->warned = old[j].warned;
		certstore_recover(c->data, e->host);
		certstore_load(c->data, e->host, &e->st);
	}
	for (j = 0; j < nold; j++)
		free(old[j].host);
	free(old);
	a->check_account = a->n > 0 && account_stale(c);
	a->regen = false;
}

static void warn_expiry(struct entry *e, long long now)
{
	long long left = e->st.not_after - now;

	if (e->st.not_after == 0 || left > ACMED_WARN_DAYS * 86400LL || now - e->warned < WARN_EVERY_S)
		return;
	e->warned = now;
	log_warn("acme: %s: the certificate expires in %lld days%s%s", e->host,
		 left > 0 ? left / 86400 : 0, e->st.last_error[0] != '\0' ? "; last renewal error: " : "",
		 e->st.last_error);
}

static const struct conf_site *site_of(const struct conf *c, const char *host)
{
	size_t i;

	for (i = 0; i < c->nsites; i++)
		if (strcmp(c->sites[i].host, host) == 0)
			return &c->sites[i];
	return NULL;
}

static void *run(void *arg)
{
	struct acmed *a = arg;
	sigset_t all;
	struct timespec ts;
	long long now, next, when;
	struct entry *pick, local;
	struct gen *g;
	bool placed, installed;
	size_t i;

	/* signals are the control thread's */
	sigfillset(&all);
	pthread_sigmask(SIG_BLOCK, &all, NULL);
	pthread_mutex_lock(&a->mu);
	while (!atomic_load(&a->stop)) {
		if (a->regen)
			rebuild(a);
		if (a->check_account) {
			/* an email change reaches the CA now, not at the next
			 * renewal; no certificate is ordered for it */
			a->check_account = false;
			g = gen_ref(a->gen);
			pthread_mutex_unlock(&a->mu);
			visit_account(a, g->conf);
			pthread_mutex_lock(&a->mu);
			gen_unref(g);
			continue;
		}
		now = time(NULL);
		next = now + 3600;
		pick = NULL;
		for (i = 0; i < a->n; i++) {
			warn_expiry(&a->e[i], now);
			when = due(a->gen->conf, &a->e[i]);
			if (when <= now)
				when = order_slot(a, now);
			if (when < next) {
				next = when;
				pick = &a->e[i];
			}
		}
		if (pick != NULL && next <= now) {
			/* the order runs on a copy: status reads the entries under
			 * the lock meanwhile; only this thread rebuilds them */
			local = *pick;
			g = gen_ref(a->gen);
			pick->busy = true;
			pthread_mutex_unlock(&a->mu);
			installed = work(a, g->conf, site_of(g->conf, local.host), &local, &placed);
			pthread_mutex_lock(&a->mu);
			pick->st = local.st;
			pick->busy = false;
			if (placed)
				note_placed(a, time(NULL));
			gen_unref(g);
			if (installed && a->changed != NULL)
				a->changed(a->arg);
			continue;
		}
		clock_gettime(CLOCK_MONOTONIC, &ts);
		ts.tv_sec += next - now;
		pthread_cond_timedwait(&a->cv, &a->mu, &ts);
	}
	pthread_mutex_unlock(&a->mu);
	return NULL;
}

struct acmed *acmed_start(struct gen *g, void (*changed)(void *arg), void *arg)
{
	struct acmed *a = xcalloc(1, sizeof(*a));
	pthread_condattr_t ca;

	pthread_mutex_init(&a->mu, NULL);
	pthread_condattr_init(&ca);
	pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
	pthread_cond_init(&a->cv, &ca);
	pthread_condattr_destroy(&ca);
	a->gen = gen_ref(g);
	a->changed = changed;
	a->arg = arg;
	rebuild(a);
	if (pthread_create(&a->thread, NULL, run, a) != 0) {
		log_error("acmed_start: cannot start the ACME thread: %s", strerror(errno));
		acmed_stop(a);
		return NULL;
	}
	a->started = true;
	return a;
}

void acmed_reconfigure(struct acmed *a, struct gen *g)
{
	if (a == NULL)
		return;
	pthread_mutex_lock(&a->mu);
	gen_ref(g);
	gen_unref(a->gen);
	a->gen = g;
	a->regen = true;
	/* entries are rebuilt by the thread when no order is running */
	pthread_cond_signal(&a->cv);
	pthread_mutex_unlock(&a->mu);
}

void acmed_prepare(const struct conf *c)
{
	size_t i;

	for (i = 0; i < c->nsites; i++)
		if (c->sites[i].tls == CONF_TLS_ACME)
			certstore_recover(c->data, c->sites[i].host);
}

void acmed_signal_stop(struct acmed *a)
{
	if (a == NULL)
		return;
	atomic_store(&a->stop, true);
	pthread_mutex_lock(&a->mu);
	pthread_cond_signal(&a->cv);
	pthread_mutex_unlock(&a->mu);
}

void acmed_stop(struct acmed *a)
{
	if (a == NULL)
		return;
	acmed_signal_stop(a);
	if (a->started)
		pthread_join(a->thread, NULL);
	free_entries(a);
	gen_unref(a->gen);
	pthread_cond_destroy(&a->cv);
	pthread_mutex_destroy(&a->mu);
	free(a);
}

/* ---- status ----------------------------------------------------------------- */

static void put_time(json_t *o, const char *k, long long t)
{
	char buf[40];

	if (t <= 0) {
		json_object_set_new(o, k, json_null());
		return;
	}
	castore_iso8601((time_t)t, buf, sizeof(buf));
	json_object_set_new(o, k, json_string(buf));
}

static const char *source_name(enum conf_tls t)
{
	return t == CONF_TLS_ACME ? "acme" : t == CONF_TLS_FILES ? "files" : "internal";
}

static void put_acme(json_t *o, const struct conf *c, const struct entry *e, long long now)
{
	const char *state;

	if (e->busy)
		state = "ordering";
	else if (e->st.not_after == 0)
		state = e->st.last_error[0] != '\0' ? "failing" : "waiting";
	else if (e->st.last_error[0] != '\0')
		state = "renewal failing";
	else
		state = "valid";
	json_object_set_new(o, "state", json_string(state));
	put_time(o, "next_renewal", e->st.not_after != 0 ? renewal_time(c, &e->st) : now);
	put_time(o, "next_attempt", e->st.next_attempt > now ? e->st.next_attempt : 0);
	put_time(o, "last_attempt", e->st.last_attempt);
	json_object_set_new(o, "failures", json_integer(e->st.failures));
	json_object_set_new(o, "last_error", e->st.last_error[0] != '\0' ?
			    json_string(e->st.last_error) : json_null());
	json_object_set_new(o, "challenge", e->st.challenge[0] != '\0' ?
			    json_string(e->st.challenge) : json_null());
	if (e->st.ari_end != 0) {
		put_time(o, "ari_window_start", e->st.ari_start);
		put_time(o, "ari_window_end", e->st.ari_end);
	}
}

json_t *acmed_status(struct acmed *a, struct gen *g)
{
	const struct conf *c = g->conf;
	json_t *list = json_array(), *o;
	long long now = time(NULL), nb, na;
	char issuer[256], *serial;
	size_t i, j;
	X509 *x;

	if (a != NULL)
		pthread_mutex_lock(&a->mu);
	for (i = 0; i < c->nsites; i++) {
		const struct conf_site *s = &c->sites[i];

		o = json_pack("{s:s,s:[s],s:s}", "site", s->host, "names", s->host, "source",
			      source_name(s->tls));
		x = tls_site_cert(g->tls, s);
		if (x != NULL && acme_cert_times(x, &nb, &na) == 0) {
			X509_NAME_oneline(X509_get_issuer_name(x), issuer, sizeof(issuer));
			serial = x509_serial_hex(X509_get0_serialNumber(x));
			json_object_set_new(o, "issuer", json_string(issuer));
			json_object_set_new(o, "serial", serial != NULL ? json_string(serial) : json_null());
			put_time(o, "not_after", na);
			json_object_set_new(o, "days_left", json_integer(na > now ? (na - now) / 86400 : 0));
			json_object_set_new(o, "expiring_soon",
					    json_boolean(na - now < ACMED_WARN_DAYS * 86400LL));
			free(serial);
		}
		for (j = 0; a != NULL && s->tls == CONF_TLS_ACME && j < a->n; j++)
			if (strcmp(a->e[j].host, s->host) == 0)
				put_acme(o, c, &a->e[j], now);
		if (s->tls == CONF_TLS_ACME) {
			json_object_set_new(o, "placeholder",
					    json_boolean(tls_site_is_placeholder(g->tls, s)));
			json_object_set_new(o, "order_in_progress",
					    json_boolean(acme_order_pending(c->data, s->host)));
		}
		json_array_append_new(list, o);
	}
	if (a != NULL)
		pthread_mutex_unlock(&a->mu);
	return list;
}
