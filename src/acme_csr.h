/*
 * acme_csr.h - the X.509 side of the ACME client: account and certificate
 * keys (ECDSA P-256), the CSR sent to finalize an order, the RFC 8737
 * TLS-ALPN-01 challenge certificate, the RFC 8555 DNS-01 TXT value, the
 * RFC 9773 renewal-information identifier, and a sanity check of a
 * downloaded chain.
 *
 * Ownership: keys, certificates and strings passed in are borrowed; returned
 * EVP_PKEY / X509 carry one reference for the caller, returned strings are
 * fresh heap strings; the caller frees both. Small allocations abort on OOM.
 * Thread: every function is safe from any thread (no shared state); the
 * file functions block, so call them from the control thread.
 */
#ifndef MOAT_ACME_CSR_H
#define MOAT_ACME_CSR_H

#include <stddef.h>

#include <openssl/evp.h>
#include <openssl/x509.h>

#define ACME_DNS_NAME_MAX 253 /* longest name a CSR or ALPN certificate takes */

/* A fresh ECDSA P-256 key, or NULL (logged). Caller frees. */
EVP_PKEY *acme_key_new(void);

/* Write key as PEM PKCS#8 to path atomically with mode 0600; the encoded
 * copy is wiped. Returns 0, MOAT_ETLS or MOAT_EIO (logged). */
int acme_key_save(const char *path, EVP_PKEY *key);

/*
 * Load the first private key of the PEM file path; it must be an
 * unencrypted ECDSA P-256 key. Returns the key (caller frees), or NULL with
 * *why set to a heap message naming the file and the reason (caller frees;
 * not logged, the caller decides how fatal it is).
 */
EVP_PKEY *acme_key_load(const char *path, char **why);

/*
 * A PKCS#10 CSR for key, signed with ECDSA-SHA256, as base64url of its DER
 * (the "csr" member of an RFC 8555 finalize request). Every one of the n
 * names becomes a dNSName in subjectAltName (wildcards such as
 * "*.example.org" included); the subject is CN=names[0] when that is at
 * most 64 bytes, else empty (and subjectAltName is then critical, RFC 5280
 * 4.2.1.6). Names must be 1..ACME_DNS_NAME_MAX printable ASCII bytes.
 * NULL on failure (logged); caller frees.
 */
char *acme_csr_b64url(EVP_PKEY *key, const char *const *names, size_t n);

/*
 * An RFC 8737 TLS-ALPN-01 certificate for name: a fresh P-256 key,
 * self-signed (ECDSA-SHA256), subject CN "moat tls-alpn-01" (not an
 * identifier), subjectAltName with the single dNSName name, the critical
 * id-pe-acmeIdentifier extension (1.3.6.1.5.5.7.1.31) whose value is the
 * DER OCTET STRING of SHA-256(key_authorization), valid from now - 1 hour
 * to now + 7 days, random serial. On success *cert and *key each hold one
 * reference for the caller; on failure both are NULL.
 * Returns 0, MOAT_EINVAL (bad name) or MOAT_ETLS (logged).
 */
int acme_alpn_cert(const char *name, const char *key_authorization, X509 **cert,
		   EVP_PKEY **key);

/* The DNS-01 TXT record value: base64url(SHA-256(key_authorization)).
 * NULL on failure (logged); caller frees. */
char *acme_dns01_value(const char *key_authorization);

/*
 * The RFC 9773 (ACME Renewal Information) certificate identifier of leaf:
 * base64url(AKI keyIdentifier) "." base64url(serial), the serial as the
 * content octets of its DER INTEGER (two's complement, so a leading 0x00
 * when the high bit is set). NULL when leaf has no Authority Key Identifier
 * keyIdentifier (not logged: the caller then skips ARI) or on failure
 * (logged). Caller frees.
 */
char *acme_ari_cert_id(X509 *leaf);

/* notBefore and notAfter of x in seconds since the epoch. Returns 0 or
 * MOAT_EINVAL when a time is unreadable (not logged). */
int acme_cert_times(X509 *x, long long *not_before, long long *not_after);

/*
 * Check a downloaded application/pem-certificate-chain pem[0..len): at least
 * one PEM block, every block a "CERTIFICATE" without headers whose body is
 * exactly one DER certificate, and the first (leaf) certificate's public key
 * equal to key. Text between blocks is ignored. Returns 0, or MOAT_EPROTO
 * with *why a heap message (caller frees; not logged).
 */
int acme_chain_check(const char *pem, size_t len, EVP_PKEY *key, char **why);

#endif
