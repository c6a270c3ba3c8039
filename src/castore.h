/*
 * castore.h - the on-disk formats of the client CA (ca.c): index.json and
 * crl.pem. These two files are the contract with the running daemon, which
 * reads crl.pem; docs/client-ca.md describes both. This module only encodes,
 * decodes and validates; when and in which order files are written is ca.c's
 * business.
 *
 * Ownership: castore_index and castore_crl own their arrays; free them with
 * castore_index_free / castore_crl_free (NULL-safe, idempotent).
 * Thread: no shared state; blocking file I/O (CLI commands only).
 */
#ifndef MOAT_CASTORE_H
#define MOAT_CASTORE_H

#include "ca.h"

#include <stdbool.h>
#include <stddef.h>
#include <time.h>

#include <openssl/evp.h>
#include <openssl/x509.h>

#define CASTORE_INDEX_MAX (16u << 20) /* ~60,000 certificates */

struct castore_index {
	struct ca_entry *e; /* stored status: CA_ACTIVE or CA_REVOKED */
	size_t n, cap;
	long crl_number;    /* number of the last CRL written */
};

/* One revoked entry of a CRL. */
struct castore_revoked {
	char serial[CA_SERIAL_HEX_MAX + 1];
	time_t when;
};

struct castore_crl {
	long number;                /* crlNumber, 0 when absent */
	struct castore_revoked *r;
	size_t n;
};

/*
 * Load and validate index.json. Anything malformed (JSON syntax, version,
 * a field of the wrong type, a bad name, serial, time or hash, a duplicate
 * serial) is MOAT_EINVAL, logged with the path, what is wrong and how to
 * restore; the file is never reset. MOAT_EIO/MOAT_ETOOBIG for read errors.
 * On success *idx is filled (caller frees with castore_index_free).
 */
int castore_index_load(const char *path, struct castore_index *idx);

/* Write idx to path atomically, mode 0600. Returns 0 or MOAT_EIO. */
int castore_index_save(const char *path, const struct castore_index *idx);

/* Append a zeroed entry and return it (valid until the next append). */
struct ca_entry *castore_index_add(struct castore_index *idx);

/* Fill e for the freshly issued x named name (status active): serial,
 * SHA-256 of the DER, validity. Returns 0 or MOAT_ETLS (logged). */
int castore_entry_from_cert(struct ca_entry *e, const char *name, X509 *x);

/* Index of the entry with this (normalized) serial, or -1. */
long castore_index_find(const struct castore_index *idx, const char *serial);

void castore_index_free(struct castore_index *idx);

/*
 * Build, sign (SHA-256 with ca_key) and write atomically (0644) a v2 CRL:
 * issuer = ca's subject, lastUpdate = now, nextUpdate = ca's notAfter,
 * crlNumber = number, authorityKeyIdentifier = ca's SKI, one entry for every
 * revoked index entry and every entry of extra (serials revoked by an
 * earlier CRL that the index does not know). Returns 0, MOAT_ETLS or
 * MOAT_EIO (logged).
 */
int castore_crl_write(const char *path, X509 *ca, EVP_PKEY *ca_key, long number,
		      const struct castore_index *idx,
		      const struct castore_revoked *extra, size_t nextra);

/*
 * Read crl.pem and check it is a CRL issued and signed by ca. Returns 0 and
 * fills *crl (caller frees with castore_crl_free), or *why (static text) and
 * a negative code when the file is missing, unreadable, or not ca's; nothing
 * is logged, since a bad CRL is derived data the caller can rewrite.
 */
int castore_crl_read(const char *path, X509 *ca, struct castore_crl *crl,
		     const char **why);

void castore_crl_free(struct castore_crl *crl);

/*
 * Bring idx into agreement with crl.pem's content without ever un-revoking
 * anything: a serial the CRL revokes becomes revoked in idx (a revoke that
 * crashed between writing the CRL and the index) and *idx_dirty is set; a
 * serial idx does not know is appended to *extra (heap array of *nextra,
 * caller frees) so later CRLs keep it; an idx revocation the CRL lacks, or
 * a CRL number older than idx's, sets *crl_stale (the CRL must be
 * rewritten). A newer CRL number is adopted by idx.
 */
void castore_reconcile(struct castore_index *idx, const struct castore_crl *crl,
		       struct castore_revoked **extra, size_t *nextra, bool *crl_stale,
		       bool *idx_dirty);

/* Normalize a hex serial ("0a1b", "A1B") to uppercase whole bytes ("0A1B").
 * Returns 0, or MOAT_EINVAL when it is not 1-40 hex digits (not logged). */
int castore_serial_norm(const char *in, char out[CA_SERIAL_HEX_MAX + 1]);

/* Why name cannot be a certificate name (static text), or NULL when it
 * can: 1-64 characters of [A-Za-z0-9._@-], not starting with '.' or '-'. */
const char *castore_name_problem(const char *name);

/* Code points in s, or -1 when s is not valid UTF-8 or holds a control
 * character (used for the CA's CN). */
long castore_utf8_chars(const char *s);

/* "YYYY-MM-DDTHH:MM:SSZ" into buf (at least 21 bytes). */
void castore_iso8601(time_t t, char *buf, size_t size);

#endif
