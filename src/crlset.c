/*
 * crlset.c - see crlset.h.
 *
 * An issuer is identified by the SHA-256 of its public key, not by its
 * name: a CA re-created under the same name (new key, crlNumber starting
 * over) is a different issuer whose CRLs are not compared with the old
 * one's. Entries are keyed by the issuer's name hash and serial, which is
 * what a client certificate carries; two CAs sharing a name may then
 * revoke each other's serials, which only ever denies too much.
 */
#include "crlset.h"
#include "util.h"
#include "x509util.h"

#include <stdlib.h>
#include <string.h>

#include <openssl/evp.h>
#include <openssl/x509v3.h>

struct rev_entry {
	unsigned long issuer;
	unsigned char len;
	unsigned char serial[CRLSET_SERIAL_MAX];
};

/* How recent one issuer's CRL is: by crlNumber, or thisUpdate without one. */
struct crl_ver {
	unsigned char key[32];  /* SHA-256 of the issuer's public key */
	unsigned long issuer;   /* its name hash, as in the entries */
	ASN1_INTEGER *number;   /* NULL: the CRL has none */
	time_t this_update;
	time_t next_update;     /* 0: none */
	char cn[65];            /* for messages */
};

struct crlset {
	struct rev_entry *e;
	size_t n, cap;
	struct crl_ver *ver;
	size_t nver;
	time_t next_update;     /* earliest of the versions in force (crlset_finish) */
};

static int cmp_entry(const void *a, const void *b)
{
	const struct rev_entry *x = a, *y = b;

	if (x->issuer != y->issuer)
		return x->issuer < y->issuer ? -1 : 1;
	if (x->len != y->len)
		return x->len < y->len ? -1 : 1;
	return memcmp(x->serial, y->serial, x->len);
}

struct crlset *crlset_new(void)
{
	return xcalloc(1, sizeof(struct crlset));
}

void crlset_free(struct crlset *s)
{
	size_t i;

	if (s == NULL)
		return;
	for (i = 0; i < s->nver; i++)
		ASN1_INTEGER_free(s->ver[i].number);
	free(s->ver);
	free(s->e);
	free(s);
}

static void push_entry(struct crlset *s, const struct rev_entry *e)
{
	if (s->n == s->cap) {
		s->cap = s->cap ? s->cap * 2 : 64;
		s->e = xrealloc(s->e, s->cap * sizeof(*s->e));
	}
	s->e[s->n++] = *e;
}

/* -1, 0, 1: is a older than, as new as, newer than b? */
static int cmp_ver(const struct crl_ver *a, const struct crl_ver *b)
{
	int c;

	if (a->number != NULL && b->number != NULL) {
		c = ASN1_INTEGER_cmp(a->number, b->number);
		if (c != 0)
			return c < 0 ? -1 : 1;
	}
	if (a->this_update != b->this_update)
		return a->this_update < b->this_update ? -1 : 1;
	return 0;
}

static struct crl_ver *find_ver(const struct crlset *s, const unsigned char key[32])
{
	size_t i;

	for (i = 0; i < s->nver; i++)
		if (memcmp(s->ver[i].key, key, 32) == 0)
			return &s->ver[i];
	return NULL;
}

/* Make v (copied) the version of its issuer in s if it is newer. */
static void note_ver(struct crlset *s, const struct crl_ver *v)
{
	struct crl_ver *have = find_ver(s, v->key);

	if (have != NULL && cmp_ver(v, have) <= 0)
		return;
	if (have == NULL) {
		s->ver = xrealloc(s->ver, (s->nver + 1) * sizeof(*s->ver));
		have = &s->ver[s->nver++];
	} else {
		ASN1_INTEGER_free(have->number);
	}
	*have = *v;
	have->number = v->number != NULL ? ASN1_INTEGER_dup(v->number) : NULL;
}

static bool key_of(X509 *ca, unsigned char key[32])
{
	unsigned int len = 0;

	return X509_pubkey_digest(ca, EVP_sha256(), key, &len) == 1 && len == 32;
}

int crlset_add(struct crlset *s, X509_CRL *crl, X509 *ca)
{
	STACK_OF(X509_REVOKED) *rev = X509_CRL_get_REVOKED(crl);
	struct crl_ver v;
	struct rev_entry e;
	time_t nu = x509_epoch(X509_CRL_get0_nextUpdate(crl));
	int i, n = rev != NULL ? sk_X509_REVOKED_num(rev) : 0, ok = 0;

	memset(&v, 0, sizeof(v));
	v.issuer = X509_NAME_hash_ex(X509_CRL_get_issuer(crl), NULL, NULL, &ok);
	if (ok != 1 || !key_of(ca, v.key))
		return MOAT_ETLS;
	v.number = X509_CRL_get_ext_d2i(crl, NID_crl_number, NULL, NULL);
	v.this_update = x509_epoch(X509_CRL_get0_lastUpdate(crl));
	v.next_update = nu;
	X509_NAME_get_text_by_NID(X509_get_subject_name(ca), NID_commonName, v.cn, sizeof(v.cn));
	note_ver(s, &v);
	ASN1_INTEGER_free(v.number);
	for (i = 0; i < n; i++) {
		const ASN1_INTEGER *sn = X509_REVOKED_get0_serialNumber(sk_X509_REVOKED_value(rev, i));
		int len = ASN1_STRING_length(sn);

		/* Longer or negative serials cannot be presented by a
		 * certificate moat accepts (clientcert.c refuses them), so they
		 * need no entry; a negative one must not match its positive
		 * twin, which has the same content octets. */
		if (len <= 0 || len > CRLSET_SERIAL_MAX || ASN1_STRING_type(sn) == V_ASN1_NEG_INTEGER)
			continue;
		memset(&e, 0, sizeof(e));
		e.issuer = v.issuer;
		e.len = (unsigned char)len;
		memcpy(e.serial, ASN1_STRING_get0_data(sn), (size_t)len);
		push_entry(s, &e);
	}
	return 0;
}

static bool trusted(const unsigned char key[32], STACK_OF(X509) *issuers)
{
	unsigned char k[32];
	int i;

	for (i = 0; i < sk_X509_num(issuers); i++)
		if (key_of(sk_X509_value(issuers, i), k) && memcmp(k, key, 32) == 0)
			return true;
	return false;
}

size_t crlset_carry(struct crlset *s, const struct crlset *old, STACK_OF(X509) *issuers,
		    const char **carried)
{
	const struct crl_ver *ov;
	struct crl_ver *nv;
	size_t i, k, count = 0;

	*carried = NULL;
	for (i = 0; i < old->nver; i++) {
		ov = &old->ver[i];
		nv = find_ver(s, ov->key);
		/* a CA that left the configuration takes its CRL along */
		if (!trusted(ov->key, issuers) || (nv != NULL && cmp_ver(nv, ov) > 0))
			continue;
		/* missing, older or the same: keep every revocation in force
		 * (the same version twice may differ only in what it lost) */
		if (nv == NULL || cmp_ver(nv, ov) < 0) {
			count++;
			*carried = ov->cn;
		}
		note_ver(s, ov);
		for (k = 0; k < old->n; k++)
			if (old->e[k].issuer == ov->issuer)
				push_entry(s, &old->e[k]);
	}
	return count;
}

void crlset_finish(struct crlset *s)
{
	size_t i, o = 0;

	/* only the CRLs in force say how long the set may vouch: a replaced
	 * or dropped CRL's nextUpdate no longer counts */
	s->next_update = 0;
	for (i = 0; i < s->nver; i++)
		if (s->ver[i].next_update != 0 &&
		    (s->next_update == 0 || s->ver[i].next_update < s->next_update))
			s->next_update = s->ver[i].next_update;
	if (s->n == 0)
		return;
	qsort(s->e, s->n, sizeof(*s->e), cmp_entry);
	for (i = 0; i < s->n; i++)
		if (o == 0 || cmp_entry(&s->e[o - 1], &s->e[i]) != 0)
			s->e[o++] = s->e[i];
	s->n = o;
}

bool crlset_has(const struct crlset *s, unsigned long issuer, const unsigned char *serial,
		size_t len)
{
	struct rev_entry key;

	if (len == 0 || len > CRLSET_SERIAL_MAX)
		return true; /* cannot be looked up: never vouch for it */
	if (s->n == 0)
		return false;
	memset(&key, 0, sizeof(key));
	key.issuer = issuer;
	key.len = (unsigned char)len;
	memcpy(key.serial, serial, len);
	return bsearch(&key, s->e, s->n, sizeof(key), cmp_entry) != NULL;
}

time_t crlset_next_update(const struct crlset *s)
{
	return s->next_update;
}

size_t crlset_count(const struct crlset *s)
{
	return s->n;
}
