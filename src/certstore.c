/*
 * certstore.c - see certstore.h.
 */
#include "certstore.h"

#include <errno.h>
#include <jansson.h>
#include <openssl/pem.h>
#include <openssl/x509.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "acme_csr.h"
#include "fsutil.h"
#include "log.h"
#include "util.h"
#include "x509util.h"

#define STATE_MAX (64 * 1024)

char *certstore_path(const char *data, const char *host, const char *file)
{
	const char *rest = host;
	const char *star = "";

	if (host[0] == '*') {
		star = "_wildcard";
		rest = host + 1;
	}
	if (file == NULL)
		return xasprintf("%s/certs/%s%s", data, star, rest);
	return xasprintf("%s/certs/%s%s/%s", data, star, rest, file);
}

static bool exists(const char *path)
{
	struct stat st;

	return stat(path, &st) == 0;
}

bool certstore_has_cert(const char *data, const char *host)
{
	char *c = certstore_path(data, host, "cert.pem");
	char *k = certstore_path(data, host, "key.pem");
	bool yes = exists(c) && exists(k);

	free(c);
	free(k);
	return yes;
}

enum pair { PAIR_MATCH, PAIR_MISMATCH, PAIR_UNREADABLE };

/* Whether the certificate in cert_file was issued for the key in key_file;
 * UNREADABLE when either cannot be read now (which may pass). */
static enum pair pair_check(const char *cert_file, const char *key_file)
{
	X509 *x = NULL;
	EVP_PKEY *k = NULL;
	enum pair p = PAIR_UNREADABLE;

	if (x509_load_cert(cert_file, &x) == 0 && x509_load_key(key_file, &k) == 0)
		p = X509_check_private_key(x, k) == 1 ? PAIR_MATCH : PAIR_MISMATCH;
	X509_free(x);
	EVP_PKEY_free(k);
	return p;
}

static bool pair_matches(const char *cert_file, const char *key_file)
{
	return pair_check(cert_file, key_file) == PAIR_MATCH;
}

/*
 * An install writes key.pem.next and cert.pem.next, then renames the key,
 * then the certificate. Whatever step a crash interrupted, the files left
 * say how far it got: finish when the new pair is whole, else drop it.
 */
int certstore_recover(const char *data, const char *host)
{
	char *cert = certstore_path(data, host, "cert.pem");
	char *key = certstore_path(data, host, "key.pem");
	char *cnext = certstore_path(data, host, "cert.pem.next");
	char *knext = certstore_path(data, host, "key.pem.next");
	int rc = 0;

	if (exists(cnext) && exists(knext) && pair_matches(cnext, knext)) {
		rc = fs_rename_durable(knext, key);
		if (rc == 0)
			rc = fs_rename_durable(cnext, cert);
	} else if (exists(cnext) && !exists(knext) && pair_matches(cnext, key)) {
		rc = fs_rename_durable(cnext, cert);
	} else {
		unlink(cnext);
		unlink(knext);
	}
	if (rc == 0 && exists(cert) && exists(key) && pair_check(cert, key) == PAIR_MISMATCH) {
		log_error("certstore_recover: %s does not match %s; removing both, a new certificate will be ordered", cert, key);
		unlink(cert);
		unlink(key);
	}
	free(cert);
	free(key);
	free(cnext);
	free(knext);
	return rc;
}

int certstore_install(const char *data, const char *host, EVP_PKEY *key,
		      const char *chain, size_t len)
{
	char *dir = certstore_path(data, host, NULL);
	char *cert = certstore_path(data, host, "cert.pem");
	char *keyf = certstore_path(data, host, "key.pem");
	char *cnext = certstore_path(data, host, "cert.pem.next");
	char *knext = certstore_path(data, host, "key.pem.next");
	int rc;

	rc = fs_mkdir_private(dir);
	if (rc == 0)
		rc = x509_write_key(knext, key);
	if (rc == 0)
		rc = fs_write_atomic(cnext, chain, len, 0644);
	if (rc == 0)
		rc = fs_rename_durable(knext, keyf);
	if (rc == 0)
		rc = fs_rename_durable(cnext, cert);
	if (rc != 0) {
		log_error("certstore_install: %s: the new certificate was not installed; the "
			  "current one keeps serving", host);
		certstore_recover(data, host);
		rc = MOAT_EIO;
	}
	free(dir);
	free(cert);
	free(keyf);
	free(cnext);
	free(knext);
	return rc;
}

/* The facts of cert.pem that status and the schedule need; none unless
 * it and key.pem are a pair tls.c can serve. */
static int cert_facts(const char *data, const char *host, struct certstore_state *st)
{
	char *path = certstore_path(data, host, "cert.pem");
	char *key = certstore_path(data, host, "key.pem");
	X509 *x = NULL;
	char *serial = NULL, *ari = NULL;
	int rc = 0;

	st->not_before = st->not_after = 0;
	st->serial[0] = st->issuer[0] = st->ari_id[0] = '\0';
	if (!exists(path) || !exists(key))
		goto out;
	if (!pair_matches(path, key)) {
		rc = MOAT_EIO;
		goto out;
	}
	if (x509_load_cert(path, &x) != 0) {
		rc = MOAT_EIO;
		goto out;
	}
	acme_cert_times(x, &st->not_before, &st->not_after);
	serial = x509_serial_hex(X509_get0_serialNumber(x));
	snprintf(st->serial, sizeof(st->serial), "%s", serial != NULL ? serial : "");
	X509_NAME_oneline(X509_get_issuer_name(x), st->issuer, sizeof(st->issuer));
	ari = acme_ari_cert_id(x);
	snprintf(st->ari_id, sizeof(st->ari_id), "%s", ari != NULL ? ari : "");
out:
	free(serial);
	free(ari);
	X509_free(x);
	free(path);
	free(key);
	return rc;
}

static long long num(json_t *o, const char *k)
{
	json_t *v = json_object_get(o, k);

	return json_is_integer(v) ? (long long)json_integer_value(v) : 0;
}

static void str(json_t *o, const char *k, char *dst, size_t cap)
{
	const char *v = json_string_value(json_object_get(o, k));

	snprintf(dst, cap, "%s", v != NULL ? v : "");
}

int certstore_load(const char *data, const char *host, struct certstore_state *st)
{
	char *path = certstore_path(data, host, "state.json");
	json_error_t je;
	json_t *o = NULL;
	char *text = NULL;
	size_t len;
	int rc = 0;

	memset(st, 0, sizeof(*st));
	if (exists(path)) {
		if (fs_read_file(path, STATE_MAX, &text, &len) != 0)
			rc = MOAT_EIO;
		else
			o = json_loadb(text, len, 0, &je);
		if (rc == 0 && !json_is_object(o)) {
			/* never torn (atomic writes): someone edited it; start over */
			log_warn("certstore_load: %s is not a JSON object; its schedule is reset", path);
		} else if (o != NULL) {
			st->ari_start = num(o, "ari_start");
			st->ari_end = num(o, "ari_end");
			st->ari_check = num(o, "ari_check");
			st->renew_at = num(o, "renew_at");
			st->last_attempt = num(o, "last_attempt");
			st->next_attempt = num(o, "next_attempt");
			st->failures = (unsigned)num(o, "failures");
			str(o, "last_error", st->last_error, sizeof(st->last_error));
			str(o, "challenge", st->challenge, sizeof(st->challenge));
			str(o, "directory", st->directory, sizeof(st->directory));
		}
	}
	if (cert_facts(data, host, st) != 0)
		rc = MOAT_EIO;
	json_decref(o);
	free(text);
	free(path);
	return rc;
}

int certstore_save(const char *data, const char *host, const struct certstore_state *st)
{
	char *dir = certstore_path(data, host, NULL);
	char *path = certstore_path(data, host, "state.json");
	json_t *o = json_pack("{s:I,s:I,s:I,s:I,s:I,s:I,s:i,s:s,s:s,s:s}",
			      "ari_start", (json_int_t)st->ari_start,
			      "ari_end", (json_int_t)st->ari_end,
			      "ari_check", (json_int_t)st->ari_check,
			      "renew_at", (json_int_t)st->renew_at,
			      "last_attempt", (json_int_t)st->last_attempt,
			      "next_attempt", (json_int_t)st->next_attempt,
			      "failures", (int)st->failures,
			      "last_error", st->last_error,
			      "challenge", st->challenge,
			      "directory", st->directory);
	char *text = o != NULL ? json_dumps(o, JSON_INDENT(2) | JSON_SORT_KEYS) : NULL;
	int rc = MOAT_EIO;

	if (text != NULL && fs_mkdir_private(dir) == 0)
		rc = fs_write_atomic(path, text, strlen(text), 0600);
	free(text);
	json_decref(o);
	free(path);
	free(dir);
	return rc;
}
