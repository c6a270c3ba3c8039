/*
 * x509util.h - the certificate plumbing moat's two CAs share: the internal
 * server CA (pki.c) and the client CA (ca.c). Keys, certificates and PEM
 * files, nothing about policy (lifetimes, names, where files live).
 *
 * Ownership: functions returning an EVP_PKEY or X509 hand the caller one
 * reference (free with EVP_PKEY_free / X509_free). Arguments are borrowed.
 * Every PEM buffer that held a key is wiped with OPENSSL_cleanse before it
 * is freed. Errors are logged here, with the OpenSSL reason, and the OpenSSL
 * error queue is cleared afterwards.
 * Thread: every function is safe from any thread (no shared state), but the
 * file functions block: call them from the control thread or a CLI command.
 */
#ifndef MOAT_X509UTIL_H
#define MOAT_X509UTIL_H

#include <stdbool.h>
#include <stddef.h>
#include <time.h>

#include <openssl/evp.h>
#include <openssl/x509.h>

#define X509_CLOCK_SKEW (5 * 60) /* notBefore backdating, seconds */
#define X509_PEM_MAX (64 * 1024) /* no PEM file of ours comes close */
#define X509_CN_MAX 64           /* ub-common-name (RFC 5280) */
#define X509_DAY 86400

/*
 * Log "fn: <formatted message> (OpenSSL: <newest reason>)" as an error, then
 * clear the OpenSSL error queue so a stale entry is never attributed to a
 * later, unrelated failure.
 */
void x509_error(const char *fn, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));

/* "YYYY-MM-DD HH:MM:SS UTC" into buf (at least 24 bytes). */
void x509_format_time(time_t t, char *buf, size_t size);

/* ASN1_TIME -> time_t (UTC). Returns 0 or -1 when unreadable (not logged). */
int x509_asn1_to_time(const ASN1_TIME *at, time_t *out);

/* The same as a value: 0 when at is NULL (an absent nextUpdate, say) or
 * unreadable. */
time_t x509_epoch(const ASN1_TIME *at);

/* Sets *exists; only a definite ENOENT counts as absent, any other stat
 * failure returns MOAT_EIO (logged with the path). */
int x509_file_exists(const char *path, bool *exists);

/*
 * Read the first unencrypted private key (x509_load_key) or certificate
 * (x509_load_cert) of a PEM file of at most X509_PEM_MAX bytes. *out gets a
 * new reference on success and NULL otherwise. Returns 0, MOAT_EIO /
 * MOAT_ETOOBIG (read failure, logged), or MOAT_ETLS when the file does not
 * parse: that reason is left on the OpenSSL error queue and NOT logged, so
 * the caller decides whether it is fatal and what to tell the user.
 * An encrypted key is a parse failure (no passphrase prompt, ever).
 */
int x509_load_key(const char *path, EVP_PKEY **out);
int x509_load_cert(const char *path, X509 **out);

/* Write key as PEM PKCS#8 to path atomically, mode 0600; the encoded copy
 * is wiped. Returns 0, MOAT_ETLS or MOAT_EIO (logged). */
int x509_write_key(const char *path, EVP_PKEY *key);

/* Write cert, then issuer when not NULL (a chain as a TLS peer sends it), as
 * PEM to path atomically, mode 0644. Returns 0, MOAT_ETLS or MOAT_EIO. */
int x509_write_certs(const char *path, X509 *cert, X509 *issuer);

/* A fresh ECDSA P-256 key, or NULL (logged). Caller frees. */
EVP_PKEY *x509_new_key(void);

/*
 * Give x a random 128-bit serial: top bit cleared so the DER INTEGER is
 * positive without a padding byte, lowest bit set so it is never zero
 * (RFC 5280 4.1.2.2). Returns 0 or MOAT_ETLS (logged).
 */
int x509_set_serial(X509 *x);

/* Add extension nid with an openssl.cnf-style value ("critical,CA:FALSE");
 * issuer supplies the authority key id. Returns 0 or MOAT_ETLS (logged). */
int x509_add_ext(X509 *x, X509 *issuer, int nid, const char *value);

/* A v3 certificate for key with the given validity and a random serial;
 * subject, issuer and extensions are the caller's. NULL on failure (logged).
 * Caller frees. */
X509 *x509_new_cert(EVP_PKEY *key, time_t not_before, time_t not_after);

/*
 * A self-signed root for key: subject O=moat, CN=cn (at most X509_CN_MAX
 * characters, UTF-8), valid from now - X509_CLOCK_SKEW for days days,
 * basicConstraints critical CA:TRUE pathlen:0, keyUsage critical
 * keyCertSign+cRLSign, SKI, signed with ECDSA-SHA256. NULL on failure
 * (logged). Caller frees.
 */
X509 *x509_new_ca(EVP_PKEY *key, const char *cn, int days);

/*
 * A client certificate for key signed by ca/ca_key: subject CN=cn (UTF-8,
 * at most X509_CN_MAX characters), valid from now - X509_CLOCK_SKEW for
 * days days, basicConstraints critical CA:FALSE, keyUsage critical
 * digitalSignature, extendedKeyUsage clientAuth, SKI, AKI keyid. Shared by
 * every CA of moat that admits clients. NULL on failure (logged); caller
 * frees.
 */
X509 *x509_new_client(EVP_PKEY *key, const char *cn, X509 *ca, EVP_PKEY *ca_key, int days);

/* The serial of x in uppercase hex, whole bytes, as `openssl x509 -serial`
 * prints it ("0A1B..."); heap string, caller frees. NULL on failure (logged). */
char *x509_serial_hex(const ASN1_INTEGER *serial);

/* SHA-256 of the DER encoding of x as 64 lowercase hex digits + NUL into
 * out[65]. Returns 0 or MOAT_ETLS (logged). */
int x509_sha256_hex(X509 *x, char out[65]);

#endif
