/*
 * crlset.h - a set of revoked certificates built from CRLs, remembering
 * for each issuing CA (by its key) how recent its CRL was, and the rule
 * that a set is only ever replaced in a way that un-revokes nothing: for
 * an issuer whose new CRL is missing or older than the one in force (a
 * restored backup, a replayed download, a file that lost a CRL), the
 * revocations in force are carried over.
 *
 * Ownership: crlset_new returns a set the caller frees with crlset_free.
 * Thread: building (add, carry, finish) by one thread; a finished set is
 * immutable and may be read from any thread.
 */
#ifndef MOAT_CRLSET_H
#define MOAT_CRLSET_H

#include <openssl/x509.h>
#include <stdbool.h>
#include <stddef.h>
#include <time.h>

#define CRLSET_SERIAL_MAX 32 /* RFC 5280 allows 20 octets; longer ones never match */

struct crlset;

struct crlset *crlset_new(void);

/* NULL is a no-op. */
void crlset_free(struct crlset *s);

/* Add the entries of crl, whose signature ca (a certificate of the trusted
 * set) has verified. Returns 0 or MOAT_ETLS. */
int crlset_add(struct crlset *s, X509_CRL *crl, X509 *ca);

/*
 * For every issuer among issuers whose CRL in old is newer than (or as new
 * as) the one in s, or missing from s: carry old's version and revocations
 * into s (a CA no longer among issuers takes its CRL along). Sets *carried
 * to the common name of one issuer whose newer CRL was kept (pointing into
 * old, valid while old lives), NULL if none. Returns how many were kept.
 */
size_t crlset_carry(struct crlset *s, const struct crlset *old, STACK_OF(X509) *issuers,
		    const char **carried);

/* Sort and deduplicate; call once, after the last add/carry. */
void crlset_finish(struct crlset *s);

/* Is (issuer name hash, serial content octets) revoked? */
bool crlset_has(const struct crlset *s, unsigned long issuer, const unsigned char *serial,
		size_t len);

/* Earliest nextUpdate of its CRLs (0: none): past it, the set can no
 * longer vouch for anything. */
time_t crlset_next_update(const struct crlset *s);

/* Number of revoked certificates. */
size_t crlset_count(const struct crlset *s);

#endif
