/*
 * acme.h - the RFC 8555 protocol: the directory, nonces, signed requests
 * (JWS, jws.h), the account, and the problem documents a CA answers with.
 * What to order and when is acme_order.c's and acmed.c's business.
 *
 * Ownership: a struct acme_client is owned by one thread (the ACME thread)
 * and borrows the account key it is given until acme_client_free.
 * Thread: that one thread; every call blocks on the network.
 */
#ifndef MOAT_ACME_H
#define MOAT_ACME_H

#include <jansson.h>
#include <openssl/evp.h>
#include <stdatomic.h>
#include <stdbool.h>

#include "httpc.h"

struct acme_client {
	char *directory;      /* URL */
	struct httpc_opts http;
	char *new_nonce, *new_account, *new_order, *renewal_info; /* from the directory */
	char *nonce;          /* the next Replay-Nonce to use, or NULL */
	EVP_PKEY *key;        /* account key (borrowed) */
	char *kid;            /* account URL once known */
	long long retry_after; /* seconds the CA asked to wait in its last failure, -1: none */
	long status;           /* HTTP status of the last failed request, 0: none */
};

/* Fetch the directory. ca_roots, stop: as httpc.h. Returns 0 or MOAT_EIO
 * with *err (heap). cl must be released with acme_client_free either way. */
int acme_client_open(struct acme_client *cl, const char *directory, const char *ca_roots,
		     const _Atomic bool *stop, char **err);

void acme_client_free(struct acme_client *cl);

/*
 * Make sure the account for key exists (RFC 8555 7.3): kid known -> use it;
 * else newAccount (which finds an existing account for the same key).
 * email NULL: no contact. Sets cl->key and cl->kid. Returns 0 or MOAT_EIO.
 */
int acme_account(struct acme_client *cl, EVP_PKEY *key, const char *kid, const char *email,
		 char **err);

/*
 * A signed POST (payload "" is POST-as-GET). Retries a rejected nonce
 * (badNonce) up to five times with the fresh nonce the CA sent. On an HTTP
 * status < 400 returns 0 with r filled and *json the parsed body when it
 * is JSON (else NULL; caller json_decref). On a problem document returns
 * MOAT_EIO with *err "TYPE: DETAIL" and cl->retry_after / cl->status set.
 * r must be released with httpc_resp_free in both cases.
 */
int acme_post(struct acme_client *cl, const char *url, const char *payload,
	      struct httpc_resp *r, json_t **json, char **err);

/* An unsigned GET (renewalInfo). Same conventions as acme_post. */
int acme_get(struct acme_client *cl, const char *url, struct httpc_resp *r, json_t **json,
	     char **err);

/* RFC 3339 "2026-11-22T07:35:26Z" (fractions and offsets allowed) -> epoch
 * seconds; MOAT_EINVAL when unreadable. */
int acme_parse_time(const char *s, long long *out);

#endif
