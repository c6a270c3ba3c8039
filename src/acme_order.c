/*
 * acme_order.c - see acme_order.h.
 */
#include "acme_order.h"

#include <jansson.h>
#include <openssl/x509.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "acme.h"
#include "acme_chal.h"
#include "acme_csr.h"
#include "acme_dns.h"
#include "certstore.h"
#include "fsutil.h"
#include "jws.h"
#include "log.h"
#include "util.h"

#define ORDER_MAX (16 * 1024)
#define ORDER_STEPS 600          /* order state checks before giving up ... */
#define ORDER_MAX_S (30 * 60)    /* ... or this long: other sites wait meanwhile */
#define AUTHZ_WAIT_S (5 * 60)    /* a challenge's validation may take this long */
#define ORDER_RUNS 5              /* runs that may try to finish one order */
#define POLL_MIN_S 1
#define POLL_MAX_S 60

/* A string member of o, "" when absent. */
static const char *jstr(json_t *o, const char *k)
{
	const char *v = json_string_value(json_object_get(o, k));

	return v != NULL ? v : "";
}

/* Sleep s seconds unless stop turns true first; false when stopped. */
static bool nap(const struct acme_job *job, long long s)
{
	long long i;

	for (i = 0; i < s * 10; i++) {
		if (job->stop != NULL && atomic_load(job->stop))
			return false;
		usleep(100 * 1000);
	}
	return job->stop == NULL || !atomic_load(job->stop);
}

/* The CA's Retry-After while polling (RFC 8555 7.5.1), within bounds that
 * keep a confused CA from stalling or hammering the thread. */
static long long poll_delay(long long retry_after)
{
	long long s = retry_after >= 0 ? retry_after : POLL_MIN_S;

	return s < POLL_MIN_S ? POLL_MIN_S : s > POLL_MAX_S ? POLL_MAX_S : s;
}

bool acme_order_pending(const char *data, const char *host)
{
	char *path = certstore_path(data, host, "order.json");
	struct stat st;
	bool yes = stat(path, &st) == 0;

	free(path);
	return yes;
}

/* ---- the order files ----------------------------------------------------- */

static void drop_order(const struct acme_job *job)
{
	char *json = certstore_path(job->data, job->host, "order.json");
	char *key = certstore_path(job->data, job->host, "order.key");

	unlink(json);
	unlink(key);
	free(json);
	free(key);
}

/* The saved order for this host, if any: its URL (heap), key, and how
 * many runs have tried to finish it. */
static int load_order(const struct acme_job *job, char **url, EVP_PKEY **key,
		      unsigned *runs)
{
	char *json = certstore_path(job->data, job->host, "order.json");
	char *keyf = certstore_path(job->data, job->host, "order.key");
	char *text = NULL, *why = NULL;
	const char *u, *name, *dir;
	json_error_t je;
	json_t *o = NULL;
	size_t len;
	int rc = MOAT_ENOTFOUND;

	*url = NULL;
	*key = NULL;
	*runs = 0;
	if (!acme_order_pending(job->data, job->host) ||
	    fs_read_file(json, ORDER_MAX, &text, &len) != 0)
		goto out;
	o = json_loadb(text, len, 0, &je);
	u = json_string_value(json_object_get(o, "url"));
	name = json_string_value(json_object_get(o, "host"));
	dir = json_string_value(json_object_get(o, "directory"));
	if (u == NULL || name == NULL || strcmp(name, job->host) != 0)
		goto out;
	if (dir == NULL || strcmp(dir, job->directory) != 0) {
		/* placed with another CA (the directory changed): not ours to finish */
		log_info("acme: %s: dropping the order %s of another directory", job->host, u);
		drop_order(job);
		goto out;
	}
	*key = acme_key_load(keyf, &why);
	if (*key == NULL) {
		log_warn("acme: %s: the saved order's key is unusable (%s); placing a new order",
			 job->host, why);
		goto out;
	}
	*url = xstrdup(u);
	*runs = (unsigned)json_integer_value(json_object_get(o, "runs"));
	rc = 0;
out:
	free(why);
	free(text);
	json_decref(o);
	free(json);
	free(keyf);
	return rc;
}

static int save_order(const struct acme_job *job, const char *url, unsigned runs)
{
	char *path = certstore_path(job->data, job->host, "order.json");
	json_t *o = json_pack("{s:s,s:s,s:s,s:I,s:i}", "url", url, "host", job->host,
			      "directory", job->directory, "saved", (json_int_t)time(NULL),
			      "runs", (int)runs);
	char *text = json_dumps(o, JSON_INDENT(2) | JSON_SORT_KEYS);
	int rc = fs_write_atomic(path, text, strlen(text), 0600);

	free(text);
	json_decref(o);
	free(path);
	return rc;
}

/* ---- placing ----------------------------------------------------------------- */

static int place_order(struct acme_client *cl, const struct acme_job *job, char **url,
		       EVP_PKEY **key, char **err)
{
	char *dir = certstore_path(job->data, job->host, NULL);
	char *keyf = certstore_path(job->data, job->host, "order.key");
	struct httpc_resp r = {0};
	json_t *req, *j = NULL;
	char *payload = NULL;
	int rc = MOAT_EIO;

	*url = NULL;
	*key = acme_key_new();
	/* the key is on disk before the order exists: a resumed order can
	 * always be finalized */
	if (*key == NULL || fs_mkdir_private(dir) != 0 || acme_key_save(keyf, *key) != 0) {
		*err = xasprintf("cannot make the certificate key in %s", dir);
		goto out;
	}
	req = json_pack("{s:[{s:s,s:s}]}", "identifiers", "type", "dns", "value", job->host);
	if (job->replaces != NULL && cl->renewal_info != NULL)
		json_object_set_new(req, "replaces", json_string(job->replaces));
	payload = json_dumps(req, JSON_COMPACT);
	json_decref(req);
	if (acme_post(cl, cl->new_order, payload, &r, &j, err) != 0)
		goto out;
	if (r.location == NULL) {
		*err = xasprintf("%s gave no order URL (no Location)", cl->new_order);
		goto out;
	}
	if (save_order(job, r.location, 1) != 0) {
		*err = xstrdup("cannot save the order in the data directory");
		goto out;
	}
	*url = xstrdup(r.location);
	log_info("acme: %s: order placed %s", job->host, *url);
	rc = 0;
out:
	if (rc != 0) {
		EVP_PKEY_free(*key);
		*key = NULL;
	}
	json_decref(j);
	httpc_resp_free(&r);
	free(payload);
	free(dir);
	free(keyf);
	return rc;
}

/* ---- challenges ---------------------------------------------------------- */

/* The challenge types to try, best first. */
static size_t preference(const struct acme_job *job, bool wildcard, const char **out)
{
	const char *all[3];
	size_t n = 0, i, k = 0;

	if (wildcard || job->chal == CONF_CHAL_DNS) {
		all[n++] = "dns-01";
	} else if (job->chal == CONF_CHAL_HTTP) {
		all[n++] = "http-01";
	} else if (job->chal == CONF_CHAL_TLSALPN) {
		all[n++] = "tls-alpn-01";
	} else {
		if (job->https)
			all[n++] = "tls-alpn-01";
		if (job->http)
			all[n++] = "http-01";
		if (job->dns->provider != CONF_DNS_NONE)
			all[n++] = "dns-01";
	}
	/* a type that just failed goes last, so a retry tries another */
	for (i = 0; i < n; i++)
		if (job->avoid == NULL || strcmp(all[i], job->avoid) != 0)
			out[k++] = all[i];
	for (i = 0; i < n; i++)
		if (job->avoid != NULL && strcmp(all[i], job->avoid) == 0)
			out[k++] = all[i];
	return k;
}

static json_t *pick(json_t *authz, const char *const *pref, size_t npref)
{
	json_t *chs = json_object_get(authz, "challenges"), *c;
	size_t i, j;

	for (i = 0; i < npref; i++)
		json_array_foreach(chs, j, c)
			if (strcmp(jstr(c, "type"), pref[i]) == 0)
				return c;
	return NULL;
}

/* The challenge of authz, of a type moat would answer, that the CA has
 * started validating or has just found valid while the authorization is
 * still pending; NULL when none was started. */
static json_t *in_progress(json_t *authz, const char *const *pref, size_t npref)
{
	json_t *c;
	size_t i, k;

	json_array_foreach(json_object_get(authz, "challenges"), i, c) {
		if (strcmp(jstr(c, "status"), "processing") != 0 &&
		    strcmp(jstr(c, "status"), "valid") != 0)
			continue;
		for (k = 0; k < npref; k++)
			if (strcmp(jstr(c, "type"), pref[k]) == 0)
				return c;
	}
	return NULL;
}

struct published {
	char type[16];  /* a copy: the authorization it came from is replaced while polling */
	char *ident;   /* as the CA wrote it ("*.x" for wildcards) */
	char *token;
	char *value;   /* DNS-01 TXT value */
};

static int publish(const struct acme_job *job, struct acme_client *cl, json_t *ch,
		   struct published *p, char **err)
{
	const char *token = json_string_value(json_object_get(ch, "token"));
	char *ka = NULL;
	X509 *cert = NULL;
	EVP_PKEY *key = NULL;
	int rc = MOAT_EIO;

	if (token == NULL || strlen(token) > 256) {
		*err = xasprintf("the CA's %s challenge has no usable token", p->type);
		goto out;
	}
	p->token = xstrdup(token);
	ka = jws_key_authorization(token, cl->key);
	if (strcmp(p->type, "http-01") == 0) {
		rc = acme_chal_http_put(job->host, token, ka);
	} else if (strcmp(p->type, "tls-alpn-01") == 0) {
		rc = acme_alpn_cert(job->host, ka, &cert, &key);
		if (rc == 0)
			rc = acme_chal_alpn_put(job->host, cert, key);
	} else {
		p->value = acme_dns01_value(ka);
		rc = acme_dns_set(job->dns, job->ca_roots, p->ident, p->value, job->stop, err);
		if (rc == 0)
			rc = acme_dns_wait(job->dns, p->ident, p->value, job->stop, err);
	}
	if (rc != 0 && *err == NULL)
		*err = xasprintf("cannot publish the %s challenge", p->type);
out:
	if (ka != NULL)
		OPENSSL_cleanse(ka, strlen(ka));
	free(ka);
	return rc;
}

static void unpublish(const struct acme_job *job, struct published *p)
{
	char *err = NULL;

	if (p->token == NULL)
		goto out;
	if (strcmp(p->type, "http-01") == 0) {
		acme_chal_http_del(job->host, p->token);
	} else if (strcmp(p->type, "tls-alpn-01") == 0) {
		acme_chal_alpn_del(job->host);
	} else if (p->value != NULL &&
		   acme_dns_clear(job->dns, job->ca_roots, p->ident, p->value, NULL, &err) != 0) {
		log_warn("acme: %s: cannot remove the DNS-01 record: %s", job->host,
			 err != NULL ? err : "unknown error");
	}
out:
	free(err);
	free(p->ident);
	free(p->token);
	free(p->value);
}

static char *authz_error(json_t *authz)
{
	json_t *chs = json_object_get(authz, "challenges"), *c, *e;
	size_t i;

	json_array_foreach(chs, i, c) {
		e = json_object_get(c, "error");
		if (e != NULL)
			return xasprintf("%s failed: %s", jstr(c, "type"), jstr(e, "detail"));
	}
	return xstrdup("the authorization is invalid");
}

/* Fetch the authorization until it is no longer pending. */
static int wait_authz(struct acme_client *cl, const struct acme_job *job, const char *url,
		      json_t **authz, char **err)
{
	struct httpc_resp r = {0};
	const char *st;
	long long waited = 0, d;
	int rc;

	for (;;) {
		json_decref(*authz);
		*authz = NULL;
		rc = acme_post(cl, url, "", &r, authz, err);
		d = poll_delay(r.retry_after);
		httpc_resp_free(&r);
		if (rc != 0)
			return rc;
		st = jstr(*authz, "status");
		if (strcmp(st, "pending") != 0)
			return 0;
		if (waited >= AUTHZ_WAIT_S) {
			*err = xasprintf("the CA did not validate %s within %d s", job->host, AUTHZ_WAIT_S);
			return MOAT_EIO;
		}
		if (!nap(job, d)) {
			*err = xstrdup("stopped");
			return MOAT_EIO;
		}
		waited += d;
	}
}

/* The CA refused to start a challenge with a 400: some (pebble) show one
 * they are already validating as pending and refuse once it turned valid.
 * True (and *err cleared) when the challenge, fetched again, is no longer
 * pending; then the authorization tells how it went. */
static bool started_anyway(struct acme_client *cl, const struct acme_job *job,
			   const char *url, const char *type, char **err)
{
	struct httpc_resp r = {0};
	json_t *ch = NULL;
	char *why = NULL;
	bool yes = false;

	if (cl->status != 400)
		return false;
	if (acme_post(cl, url, "", &r, &ch, &why) == 0 &&
	    strcmp(jstr(ch, "status"), "pending") != 0) {
		log_info("acme: %s: the %s challenge was already %s (%s)", job->host, type,
			 jstr(ch, "status"), *err);
		free(*err);
		*err = NULL;
		yes = true;
	}
	free(why);
	json_decref(ch);
	httpc_resp_free(&r);
	return yes;
}

static int do_authz(struct acme_client *cl, const struct acme_job *job, const char *url,
		    char *chal, size_t cap, char **err)
{
	struct httpc_resp r = {0};
	struct published p = {0};
	const char *pref[3], *st, *ident;
	json_t *authz = NULL, *ch, *j = NULL;
	bool wildcard;
	size_t n;
	int rc = MOAT_EIO;

	if (acme_post(cl, url, "", &r, &authz, err) != 0)
		goto out;
	st = jstr(authz, "status");
	if (strcmp(st, "valid") == 0) {
		rc = 0;
		goto out;
	}
	if (strcmp(st, "pending") != 0) {
		*err = strcmp(st, "invalid") == 0 ? authz_error(authz) :
			xasprintf("authorization %s is %s", url, st);
		rc = MOAT_EPROTO;
		goto out;
	}
	wildcard = json_is_true(json_object_get(authz, "wildcard"));
	ident = json_string_value(json_object_get(json_object_get(authz, "identifier"), "value"));
	n = preference(job, wildcard, pref);
	/* a challenge the CA is already validating (moat was stopped while it
	 * did) is answered again rather than another one started */
	ch = in_progress(authz, pref, n);
	if (ch == NULL)
		ch = pick(authz, pref, n);
	if (ch == NULL || ident == NULL) {
		*err = xasprintf("the CA offers no challenge moat can answer for %s (wanted %s)",
				 job->host, n > 0 ? pref[0] : "none");
		goto out;
	}
	snprintf(p.type, sizeof(p.type), "%s", jstr(ch, "type"));
	p.ident = xasprintf("%s%s", wildcard ? "*." : "", ident);
	snprintf(chal, cap, "%s", p.type);
	if (publish(job, cl, ch, &p, err) != 0)
		goto out;
	httpc_resp_free(&r);
	/* RFC 8555 7.5.1: an empty object says "validate now". A challenge
	 * past pending must not be asked again; some CAs (pebble) still show
	 * one they are validating as pending, and refuse the request once it
	 * turned valid: the authorization, polled next, tells how it went. */
	if (strcmp(jstr(ch, "status"), "pending") == 0 &&
	    acme_post(cl, jstr(ch, "url"), "{}", &r, &j, err) != 0 &&
	    !started_anyway(cl, job, jstr(ch, "url"), p.type, err))
		goto out;
	if (wait_authz(cl, job, url, &authz, err) != 0)
		goto out;
	st = jstr(authz, "status");
	if (strcmp(st, "valid") != 0) {
		*err = authz_error(authz);
		rc = MOAT_EPROTO;
		goto out;
	}
	rc = 0;
out:
	unpublish(job, &p);
	json_decref(j);
	json_decref(authz);
	httpc_resp_free(&r);
	return rc;
}

/* ---- finishing --------------------------------------------------------------- */

static int finalize(struct acme_client *cl, const struct acme_job *job, json_t *order,
		    EVP_PKEY *key, char **err)
{
	const char *url = json_string_value(json_object_get(order, "finalize"));
	const char *names[1] = { job->host };
	struct httpc_resp r = {0};
	json_t *j = NULL;
	char *csr = acme_csr_b64url(key, names, 1), *payload;
	int rc;

	if (url == NULL || csr == NULL) {
		free(csr);
		*err = xstrdup(url == NULL ? "the order has no finalize URL" : "cannot make the CSR");
		return MOAT_EIO;
	}
	payload = xasprintf("{\"csr\":\"%s\"}", csr);
	rc = acme_post(cl, url, payload, &r, &j, err);
	json_decref(j);
	httpc_resp_free(&r);
	free(payload);
	free(csr);
	return rc;
}

static int download(struct acme_client *cl, const struct acme_job *job, json_t *order,
		    EVP_PKEY *key, char **err)
{
	const char *url = json_string_value(json_object_get(order, "certificate"));
	struct httpc_resp r = {0};
	json_t *j = NULL;
	char *why = NULL;
	int rc = MOAT_EIO;

	if (url == NULL) {
		*err = xstrdup("the valid order has no certificate URL");
		return MOAT_EIO;
	}
	if (acme_post(cl, url, "", &r, &j, err) != 0)
		goto out;
	if (acme_chain_check(r.body, r.len, key, &why) != 0) {
		*err = xasprintf("the CA's certificate chain is unusable: %s", why);
		goto out;
	}
	if (certstore_install(job->data, job->host, key, r.body, r.len) != 0) {
		*err = xstrdup("cannot install the certificate in the data directory");
		goto out;
	}
	rc = 0;
out:
	free(why);
	json_decref(j);
	httpc_resp_free(&r);
	return rc;
}

/* Take the order from wherever it stands to an installed certificate. */
static int advance(struct acme_client *cl, const struct acme_job *job, const char *url,
		   EVP_PKEY *key, char *chal, size_t cap, char **err)
{
	struct httpc_resp r = {0};
	json_t *order = NULL, *az;
	const char *st;
	long long d;
	size_t i;
	int step, rc = MOAT_EIO;
	time_t deadline = time(NULL) + ORDER_MAX_S;

	for (step = 0; step < ORDER_STEPS && time(NULL) < deadline; step++) {
		json_decref(order);
		order = NULL;
		httpc_resp_free(&r);
		rc = MOAT_EIO;
		if (acme_post(cl, url, "", &r, &order, err) != 0)
			goto out;
		st = jstr(order, "status");
		d = poll_delay(r.retry_after);
		if (strcmp(st, "pending") == 0) {
			json_array_foreach(json_object_get(order, "authorizations"), i, az) {
				rc = json_string_value(az) == NULL ? MOAT_EPROTO :
					do_authz(cl, job, json_string_value(az), chal, cap, err);
				if (rc != 0)
					goto out;
			}
		} else if (strcmp(st, "ready") == 0) {
			if (finalize(cl, job, order, key, err) != 0)
				goto out;
		} else if (strcmp(st, "processing") == 0) {
			if (!nap(job, d)) {
				*err = xstrdup("stopped");
				goto out;
			}
		} else if (strcmp(st, "valid") == 0) {
			rc = download(cl, job, order, key, err);
			goto out;
		} else {
			*err = xasprintf("the order is %s", st[0] != '\0' ? st : "unreadable");
			rc = MOAT_EPROTO;
			goto out;
		}
	}
	*err = xasprintf("the order did not complete within %d minutes", ORDER_MAX_S / 60);
	rc = MOAT_EIO;
out:
	json_decref(order);
	httpc_resp_free(&r);
	return rc;
}

int acme_order_run(struct acme_client *cl, const struct acme_job *job, bool *placed,
		   char *chal, size_t cap, char **err)
{
	EVP_PKEY *key = NULL;
	char *url = NULL;
	unsigned runs;
	int rc;

	*placed = false;
	*err = NULL;
	chal[0] = '\0';
	if (load_order(job, &url, &key, &runs) == 0 && runs >= ORDER_RUNS) {
		log_warn("acme: %s: giving up on order %s after %u attempts to finish it",
			 job->host, url, runs);
		drop_order(job);
		EVP_PKEY_free(key);
		free(url);
		key = NULL;
		url = NULL;
	}
	if (url != NULL) {
		log_info("acme: %s: resuming order %s", job->host, url);
		save_order(job, url, runs + 1);
	} else {
		/* counted before the request: a CA refusing orders is asked
		 * no more often than one that accepts them */
		*placed = true;
		if (place_order(cl, job, &url, &key, err) != 0)
			return MOAT_EIO;
	}
	rc = advance(cl, job, url, key, chal, cap, err);
	if (rc != 0 && *err == NULL)
		*err = xstrdup("the order failed");
	/* A finished order is done with; so is one the CA gave up on (an
	 * invalid order or authorization) or no longer has (404). Any other
	 * failure (a stop, the network, a 5xx, a malformed answer) leaves it
	 * to be resumed, at most ORDER_RUNS times. */
	if (rc == 0 || rc == MOAT_EPROTO || cl->status == 404)
		drop_order(job);
	EVP_PKEY_free(key);
	free(url);
	return rc == 0 ? 0 : MOAT_EIO;
}
