/*
 * clientcert.c - see clientcert.h.
 *
 * Chain building uses X509_V_FLAG_PARTIAL_CHAIN: the operator names the CA
 * whose certificates they accept, which may be an intermediate; the chain
 * then ends there. Times are left out of the handshake-time verification
 * (X509_V_FLAG_NO_CHECK_TIME) and checked per request from the chain's
 * narrowest validity window instead, so a long-lived connection cannot
 * outlive its certificate.
 */
#include "clientcert.h"
#include "conf.h"
#include "fsutil.h"
#include "revoke.h"
#include "util.h"
#include "x509util.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/x509v3.h>

#define CA_FILE_MAX (1024 * 1024)
#define CHAIN_MAX 4           /* leaf and up to three CAs above it */
#define NAME_MAX_BYTES 64     /* ub-common-name */
#define SUBJECT_MAX 1024

struct client_trust {
	X509_STORE *store;
	STACK_OF(X509) *cas;
	struct revlist *rev;   /* NULL: no CRL */
};

/* What revocation is looked up by, per certificate of the chain below its
 * trust anchor. */
struct rev_key {
	unsigned long issuer;
	unsigned char len;
	unsigned char serial[REVOKE_SERIAL_MAX];
};

struct client_id {
	enum client_status base; /* from the handshake: OK, UNTRUSTED or WRONG_USAGE */
	time_t not_before;       /* latest notBefore of the chain */
	time_t not_after;        /* earliest notAfter of the chain */
	struct rev_key keys[CHAIN_MAX];
	size_t nkeys;
	char name[NAME_MAX_BYTES + 1];
	char fingerprint[2 * 32 + 1];
	char serial[2 * REVOKE_SERIAL_MAX + 1];
	char *subject;
};

static void hex(const unsigned char *b, size_t n, char *out, bool upper)
{
	const char *digits = upper ? "0123456789ABCDEF" : "0123456789abcdef";
	size_t i;

	for (i = 0; i < n; i++) {
		out[2 * i] = digits[b[i] >> 4];
		out[2 * i + 1] = digits[b[i] & 15];
	}
	out[2 * n] = '\0';
}

/* ---- trust ---------------------------------------------------------------- */

/* Every certificate in the file, each a CA that is valid now. */
static STACK_OF(X509) *load_cas(const char *path, char **why)
{
	STACK_OF(X509) *cas = sk_X509_new_null();
	char *text = NULL;
	size_t len = 0;
	BIO *bio = NULL;
	X509 *x;
	char cn[256];
	unsigned long e;
	int rc;

	rc = cas != NULL ? fs_read_file(path, CA_FILE_MAX, &text, &len) : MOAT_ENOMEM;
	if (rc < 0) {
		*why = xasprintf("cannot read the client CA file %s: %s", path,
				 rc == MOAT_ETOOBIG ? "larger than 1 MiB" : strerror(errno));
		goto fail;
	}
	bio = BIO_new_mem_buf(text, (int)len);
	ERR_clear_error();
	for (;;) {
		x = bio != NULL ? PEM_read_bio_X509(bio, NULL, NULL, NULL) : NULL;
		if (x == NULL)
			break;
		if (sk_X509_push(cas, x) <= 0) {
			X509_free(x);
			break;
		}
		X509_NAME_oneline(X509_get_subject_name(x), cn, sizeof(cn));
		if (X509_check_ca(x) < 1) {
			*why = xasprintf("%s holds \"%s\", which is not a CA certificate; client_ca "
					 "must name the CA that issues client certificates, not a "
					 "client's own certificate", path, cn);
			goto fail;
		}
		if (X509_cmp_time(X509_get0_notAfter(x), NULL) <= 0) {
			*why = xasprintf("the client CA \"%s\" in %s has expired; renew the CA and "
					 "reissue its client certificates", cn, path);
			goto fail;
		}
	}
	e = ERR_peek_last_error();
	if (sk_X509_num(cas) > 0 && e != 0 && ERR_GET_REASON(e) != PEM_R_NO_START_LINE) {
		*why = xasprintf("%s: a damaged PEM block after the first %d certificate(s); "
				 "restore the file", path, sk_X509_num(cas));
		goto fail;
	}
	if (sk_X509_num(cas) == 0) {
		*why = xasprintf("%s holds no PEM certificate (\"-----BEGIN CERTIFICATE-----\"); "
				 "client_ca must be the CA certificate in PEM form", path);
		goto fail;
	}
	ERR_clear_error();
	BIO_free(bio);
	free(text);
	return cas;
fail:
	ERR_clear_error();
	BIO_free(bio);
	free(text);
	sk_X509_pop_free(cas, X509_free);
	return NULL;
}

struct client_trust *client_trust_new(const struct conf_site *s, char **why)
{
	struct client_trust *t = xcalloc(1, sizeof(*t));
	char *inner = NULL;
	int i;

	*why = NULL;
	t->cas = load_cas(s->client_ca, why);
	if (t->cas == NULL)
		goto fail;
	t->store = X509_STORE_new();
	if (t->store == NULL) {
		*why = xstrdup("cannot create a certificate store");
		goto fail;
	}
	for (i = 0; i < sk_X509_num(t->cas); i++) {
		if (X509_STORE_add_cert(t->store, sk_X509_value(t->cas, i)) != 1) {
			*why = xasprintf("%s: cannot use certificate %d as a trust anchor",
					 s->client_ca, i + 1);
			goto fail;
		}
	}
	ERR_clear_error();
	if (s->crl_file != NULL) {
		t->rev = revlist_open(s->crl_file, t->cas, &inner);
		if (t->rev == NULL) {
			*why = inner;
			goto fail;
		}
	}
	return t;
fail:
	ERR_clear_error();
	client_trust_free(t);
	return NULL;
}

void client_trust_free(struct client_trust *t)
{
	if (t == NULL)
		return;
	revlist_unref(t->rev);
	X509_STORE_free(t->store);
	sk_X509_pop_free(t->cas, X509_free);
	free(t);
}

/* OpenSSL's verdict is not used: client_id_new judges the certificate, and
 * a client without a valid one still completes the handshake so that it
 * can be told why in HTTP (403), not with an alert. */
static int accept_any(X509_STORE_CTX *ctx, void *arg)
{
	return 1;
}

int client_trust_setup(const struct client_trust *t, SSL_CTX *ctx)
{
	int i;

	for (i = 0; i < sk_X509_num(t->cas); i++)
		if (SSL_CTX_add_client_CA(ctx, sk_X509_value(t->cas, i)) != 1)
			return MOAT_ETLS;
	SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER, NULL);
	SSL_CTX_set_cert_verify_callback(ctx, accept_any, NULL);
	return 0;
}

/* ---- identity ------------------------------------------------------------- */

static void take_name(struct client_id *id, X509 *leaf)
{
	X509_NAME *subj = X509_get_subject_name(leaf);
	int i = X509_NAME_get_index_by_NID(subj, NID_commonName, -1);
	unsigned char *utf8 = NULL;
	int n, k;

	if (i < 0)
		return;
	n = ASN1_STRING_to_UTF8(&utf8, X509_NAME_ENTRY_get_data(X509_NAME_get_entry(subj, i)));
	if (n < 0)
		return;
	for (k = 0; k < n && k < NAME_MAX_BYTES; k++)
		id->name[k] = utf8[k] < 0x20 || utf8[k] == 0x7f ? '?' : (char)utf8[k];
	id->name[k] = '\0';
	OPENSSL_free(utf8);
}

/* RFC 4514 with everything outside printable ASCII escaped: safe in a
 * header, or left out. */
static void take_subject(struct client_id *id, X509 *leaf)
{
	BIO *bio = BIO_new(BIO_s_mem());
	char *p = NULL;
	long n, i;

	if (bio == NULL)
		return;
	if (X509_NAME_print_ex(bio, X509_get_subject_name(leaf), 0, XN_FLAG_RFC2253) < 0)
		goto out;
	n = BIO_get_mem_data(bio, &p);
	if (n <= 0 || n > SUBJECT_MAX)
		goto out;
	for (i = 0; i < n; i++)
		if (p[i] < 0x20 || p[i] > 0x7e)
			goto out;
	id->subject = xstrndup(p, (size_t)n);
out:
	BIO_free(bio);
}

static bool has_client_eku(X509 *leaf)
{
	return (X509_get_extension_flags(leaf) & EXFLAG_XKUSAGE) != 0 &&
	       (X509_get_extended_key_usage(leaf) & XKU_SSL_CLIENT) != 0;
}

/* Time window and revocation keys of a verified chain. */
static bool take_chain(struct client_id *id, STACK_OF(X509) *chain)
{
	int n = sk_X509_num(chain), i, ok = 0;

	for (i = 0; i < n; i++) {
		X509 *x = sk_X509_value(chain, i);
		time_t nb = x509_epoch(X509_get0_notBefore(x));
		time_t na = x509_epoch(X509_get0_notAfter(x));

		if (i == 0 || nb > id->not_before)
			id->not_before = nb;
		if (i == 0 || na < id->not_after)
			id->not_after = na;
	}
	/* the last certificate is the trust anchor: nothing above it revokes it */
	for (i = 0; i + 1 < n; i++) {
		X509 *x = sk_X509_value(chain, i);
		const ASN1_INTEGER *sn = X509_get0_serialNumber(x);
		int len = ASN1_STRING_length(sn);
		struct rev_key *k = &id->keys[id->nkeys];

		/* RFC 5280 serials are positive; a negative one would share its
		 * content octets, and so its revocation entry, with a positive twin */
		if (id->nkeys == CHAIN_MAX || len <= 0 || len > REVOKE_SERIAL_MAX ||
		    ASN1_STRING_type(sn) == V_ASN1_NEG_INTEGER)
			return false;
		k->issuer = X509_NAME_hash_ex(X509_get_issuer_name(x), NULL, NULL, &ok);
		if (ok != 1)
			return false;
		k->len = (unsigned char)len;
		memcpy(k->serial, ASN1_STRING_get0_data(sn), (size_t)len);
		id->nkeys++;
	}
	return true;
}

static enum client_status verify(struct client_id *id, X509 *leaf, STACK_OF(X509) *untrusted,
				 const struct client_trust *t)
{
	X509_STORE_CTX *sc = X509_STORE_CTX_new();
	X509_VERIFY_PARAM *vp;
	enum client_status st = CLIENT_UNTRUSTED;

	if (sc == NULL || X509_STORE_CTX_init(sc, t->store, leaf, untrusted) != 1)
		goto out;
	X509_STORE_CTX_set_purpose(sc, X509_PURPOSE_SSL_CLIENT);
	vp = X509_STORE_CTX_get0_param(sc);
	X509_VERIFY_PARAM_set_flags(vp, X509_V_FLAG_NO_CHECK_TIME | X509_V_FLAG_PARTIAL_CHAIN);
	X509_VERIFY_PARAM_set_depth(vp, CHAIN_MAX - 1);
	if (X509_verify_cert(sc) != 1) {
		if (X509_STORE_CTX_get_error(sc) == X509_V_ERR_INVALID_PURPOSE)
			st = CLIENT_WRONG_USAGE;
		goto out;
	}
	/* A certificate without any EKU passes the purpose check; moat wants
	 * the issuer to have said "client authentication" explicitly. */
	if (!has_client_eku(leaf)) {
		st = CLIENT_WRONG_USAGE;
		goto out;
	}
	if (take_chain(id, X509_STORE_CTX_get0_chain(sc)))
		st = CLIENT_OK;
out:
	X509_STORE_CTX_free(sc);
	ERR_clear_error();
	return st;
}

struct client_id *client_id_new(SSL *ssl, const struct client_trust *t)
{
	X509 *leaf = SSL_get0_peer_certificate(ssl);
	const ASN1_INTEGER *sn;
	unsigned char md[EVP_MAX_MD_SIZE];
	unsigned int mdlen = 0;
	struct client_id *id;
	int len;

	if (leaf == NULL)
		return NULL;
	id = xcalloc(1, sizeof(*id));
	if (X509_digest(leaf, EVP_sha256(), md, &mdlen) == 1 && mdlen == 32)
		hex(md, mdlen, id->fingerprint, false);
	sn = X509_get0_serialNumber(leaf);
	len = ASN1_STRING_length(sn);
	if (len > 0 && len <= REVOKE_SERIAL_MAX)
		hex(ASN1_STRING_get0_data(sn), (size_t)len, id->serial, true);
	take_name(id, leaf);
	take_subject(id, leaf);
	id->base = t != NULL && id->fingerprint[0] != '\0' ?
		   verify(id, leaf, SSL_get_peer_cert_chain(ssl), t) : CLIENT_UNTRUSTED;
	ERR_clear_error();
	return id;
}

void client_id_free(struct client_id *id)
{
	if (id == NULL)
		return;
	free(id->subject);
	free(id);
}

enum client_status client_id_status(struct client_id *id, const struct client_trust *t)
{
	time_t now;
	bool stale = false, any_stale = false;
	size_t i;

	if (id == NULL)
		return CLIENT_NONE;
	if (id->base != CLIENT_OK)
		return id->base;
	now = time(NULL);
	if (now < id->not_before)
		return CLIENT_NOT_YET_VALID;
	if (now > id->not_after)
		return CLIENT_EXPIRED;
	if (t->rev == NULL)
		return CLIENT_OK;
	for (i = 0; i < id->nkeys; i++) {
		if (revlist_has(t->rev, id->keys[i].issuer, id->keys[i].serial, id->keys[i].len,
				&stale))
			return CLIENT_REVOKED;
		any_stale = any_stale || stale;
	}
	return any_stale ? CLIENT_CRL_STALE : CLIENT_OK;
}

bool client_id_verified(const struct client_id *id)
{
	return id != NULL && id->base == CLIENT_OK;
}

bool client_id_lapsed(struct client_id *id, const struct client_trust *t)
{
	enum client_status st = client_id_status(id, t);

	return st == CLIENT_EXPIRED || st == CLIENT_REVOKED || st == CLIENT_CRL_STALE;
}

const char *client_id_name(const struct client_id *id)
{
	return id->name;
}

const char *client_id_subject(const struct client_id *id)
{
	return id->subject;
}

const char *client_id_fingerprint(const struct client_id *id)
{
	return id->fingerprint;
}

const char *client_id_serial(const struct client_id *id)
{
	return id->serial;
}

const char *client_status_name(enum client_status s)
{
	switch (s) {
	case CLIENT_OK: return "ok";
	case CLIENT_NONE: return "no-cert";
	case CLIENT_UNTRUSTED: return "untrusted";
	case CLIENT_WRONG_USAGE: return "wrong-usage";
	case CLIENT_NOT_YET_VALID: return "not-yet-valid";
	case CLIENT_EXPIRED: return "expired";
	case CLIENT_REVOKED: return "revoked";
	case CLIENT_CRL_STALE: return "crl-stale";
	}
	return "untrusted";
}
