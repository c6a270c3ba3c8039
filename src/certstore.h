/*
 * certstore.h - ACME certificates on disk (docs/internals/acme.md):
 *
 *   DATA/certs/NAME/cert.pem    the chain being served
 *   DATA/certs/NAME/key.pem     its key (0600)
 *   DATA/certs/NAME/state.json  renewal schedule, failures, last error
 *   DATA/certs/NAME/order.json  the order in progress (URL), while there is one
 *   DATA/certs/NAME/order.key   the key that order's certificate will have (0600)
 *
 * NAME is the site's name with a leading "*" written "_wildcard". Every
 * file is replaced atomically (fsutil.h); a new pair is installed as
 * key.pem.next + cert.pem.next and then renamed, and certstore_recover
 * finishes or undoes an install a crash cut short, so the served pair
 * always matches.
 * Thread: any (no shared state); blocking file I/O (ACME thread, control
 * thread at start and on renewal).
 */
#ifndef MOAT_CERTSTORE_H
#define MOAT_CERTSTORE_H

#include <openssl/evp.h>
#include <stdbool.h>
#include <stddef.h>

#define CERTSTORE_ERR_MAX 512

struct certstore_state {
	long long not_before, not_after; /* of cert.pem; 0 when there is none */
	char serial[80];                  /* hex */
	char issuer[256];                 /* one-line issuer name */
	char ari_id[256];                 /* ACME Renewal Information id, "" when none */
	long long ari_start, ari_end;     /* the CA's suggested window, 0 when none */
	long long ari_check;              /* when to ask the CA again */
	long long renew_at;               /* chosen renewal time, 0: not chosen yet */
	long long last_attempt;           /* last order attempt (success or not) */
	long long next_attempt;           /* after a failure: not before this */
	unsigned failures;                /* in a row */
	char last_error[CERTSTORE_ERR_MAX]; /* "" after a success */
	char challenge[16];               /* the challenge type last used */
	char directory[256];              /* the ACME directory that issued cert.pem
					   * (at most CONFACME_URL_MAX) */
};

/* DATA/certs/NAME[/file]: heap strings. file may be NULL. */
char *certstore_path(const char *data, const char *host, const char *file);

/* Finish or undo an install interrupted by a crash. Returns 0 or MOAT_EIO. */
int certstore_recover(const char *data, const char *host);

/* Install key and chain (PEM) as the served pair. Returns 0 or MOAT_EIO
 * (logged); the old pair keeps serving on failure. */
int certstore_install(const char *data, const char *host, EVP_PKEY *key,
		      const char *chain, size_t len);

/* Whether cert.pem and key.pem exist. */
bool certstore_has_cert(const char *data, const char *host);

/* Read state.json (missing: zeroed state) and the facts of cert.pem
 * (validity, serial, issuer, ARI id) into st. Returns 0, or MOAT_EIO when
 * a file exists but cannot be read (st then holds what could be read). */
int certstore_load(const char *data, const char *host, struct certstore_state *st);

/* Write state.json atomically. Returns 0 or MOAT_EIO. */
int certstore_save(const char *data, const char *host, const struct certstore_state *st);

#endif
