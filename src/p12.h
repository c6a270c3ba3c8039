/*
 * p12.h - PKCS#12 bundles of a client certificate for phones and browsers,
 * and the passwords that protect them.
 *
 * Two encodings:
 *   P12_MODERN  PBES2 (PBKDF2 with HMAC-SHA256, 20000 iterations,
 *               AES-256-CBC) for the key and the certificates, MAC SHA-256.
 *               What current Android, iOS, macOS, Windows and Firefox read.
 *   P12_LEGACY  pbeWithSHA1And3-KeyTripleDES-CBC for both, MAC SHA-1, 2048
 *               iterations: for older Android releases and other
 *               readers that predate PBES2 in PKCS#12.
 *
 * Ownership: arguments are borrowed; password buffers handed out are the
 * caller's to wipe (p12_password_free). Everything secret this module
 * copies is wiped with OPENSSL_cleanse before it is freed.
 * Thread: no shared state; blocking file I/O (CLI commands only).
 */
#ifndef MOAT_P12_H
#define MOAT_P12_H

#include <stddef.h>

#include <openssl/evp.h>
#include <openssl/x509.h>

enum p12_kind {
	P12_MODERN,
	P12_LEGACY,
};

#define P12_MODERN_ITER 20000
#define P12_LEGACY_ITER 2048
#define P12_PASSWORD_FILE_MAX 4096
/* Generated passwords: 6 groups of 4 characters joined by '-'. */
#define P12_GEN_GROUPS 6
#define P12_GEN_LEN (P12_GEN_GROUPS * 5 - 1)
/* Their alphabet, 32 characters: no 0/O or 1/I to confuse when typed on a phone. */
#define P12_ALPHABET "23456789ABCDEFGHJKLMNPQRSTUVWXYZ"

/*
 * Write a bundle of key, cert and ca (as its chain; NULL for none) to path
 * atomically with mode 0600. friendly is the name a device shows for the
 * identity (the friendlyName of the key and certificate bags). Returns 0,
 * MOAT_ETLS or MOAT_EIO (logged).
 */
int p12_write(const char *path, EVP_PKEY *key, X509 *cert, X509 *ca,
	      const char *friendly, const char *password, enum p12_kind kind);

/*
 * A fresh password from RAND_bytes: P12_GEN_GROUPS groups of 4 characters
 * of P12_ALPHABET joined by '-' ("7KQM-..."), 120 bits. buf must have
 * room for P12_GEN_LEN + 1 bytes. Returns 0 or MOAT_ETLS (logged).
 */
int p12_generate_password(char *buf, size_t size);

/*
 * The first line of path (without its "\n" or "\r\n") as a heap string
 * (caller frees with p12_password_free). Refuses an empty first line and a
 * file over P12_PASSWORD_FILE_MAX bytes. Returns 0, MOAT_EINVAL,
 * MOAT_ETOOBIG or MOAT_EIO (logged with the path).
 */
int p12_read_password_file(const char *path, char **out);

/* Wipe and free a password from p12_read_password_file. NULL is a no-op. */
void p12_password_free(char *pw);

#endif
