/*
 * ca.h - moat's client-certificate CA (`moat ca`), kept in <data>/client-ca/:
 *   ca.pem       the CA certificate, ECDSA P-256, 10 years (0644)
 *   ca.key       its key (0600)
 *   crl.pem      the current CRL, signed by ca.key (0644); the daemon polls it
 *   index.json   every certificate ever issued, and the CRL counter (0600)
 *   lock         flock'd by every modifying command for its whole run
 *   clients/     default home of issued NAME.pem / NAME.key (0700)
 * The file formats are the contract with the running daemon; they are
 * described in docs/client-ca.md.
 *
 * Every file is written atomically (fsutil). A revocation writes the CRL
 * first, then the index, so a crash in between never un-revokes anything:
 * opening the CA reconciles the two (serials the CRL revokes are marked
 * revoked in the index; a CRL that lacks an index revocation is rewritten
 * by the next modifying command).
 *
 * Ownership: struct ca is opaque; ca_open's caller frees it with ca_close,
 * which wipes and frees the key and releases the lock. Results handed out
 * (entries, issued certificates) belong to the caller, freed with the
 * matching *_free function. Nothing here prints to stdout; errors are logged
 * with the function name, the file and how to fix it.
 * Thread: blocking file I/O; call from a CLI command only.
 */
#ifndef MOAT_CA_H
#define MOAT_CA_H

#include <stdbool.h>
#include <stddef.h>
#include <time.h>

#include <openssl/evp.h>
#include <openssl/x509.h>

#define CA_DIR_NAME "client-ca"
#define CA_DAYS 3652          /* the CA itself: ten years */
#define CA_CLIENT_DAYS 825    /* default client certificate lifetime */
#define CA_CLIENT_DAYS_MAX 3650
#define CA_NAME_MAX 64        /* certificate names become file names and CNs */
#define CA_SERIAL_HEX_MAX 40  /* 20 bytes, the RFC 5280 maximum */

enum ca_status {
	CA_ACTIVE,
	CA_REVOKED,
	CA_EXPIRED, /* only ever computed (ca_list), never stored */
};

struct ca_entry {
	char name[CA_NAME_MAX + 1];
	char serial[CA_SERIAL_HEX_MAX + 1]; /* uppercase hex, whole bytes */
	char sha256[65];                    /* lowercase hex of the DER */
	time_t not_before, not_after;
	time_t revoked_at;                  /* 0 unless revoked */
	enum ca_status status;
};

struct ca;

/* Returned by ca_issue; caller frees with ca_issued_free (wipes the key). */
struct ca_issued {
	X509 *cert;
	EVP_PKEY *key;
	char *cert_path;   /* <out>/NAME.pem */
	char *key_path;    /* <out>/NAME.key */
	char serial[CA_SERIAL_HEX_MAX + 1];
	time_t not_after;
};

/* Validate a certificate name: 1-64 characters of [A-Za-z0-9._@-], not
 * starting with '.' or '-'. Returns 0 or MOAT_EINVAL (logged, saying why). */
int ca_check_name(const char *name);

/* Validate the CA's subject CN: 1-64 characters of valid UTF-8 without
 * control characters. Returns 0 or MOAT_EINVAL (logged). */
int ca_check_cn(const char *cn);

/* Validate a serial as given by a user: 1-40 hex digits, any case.
 * Returns 0 or MOAT_EINVAL (logged). */
int ca_check_serial(const char *serial);

/*
 * Create the CA in <datadir>/client-ca (made 0700, <datadir> too if needed):
 * key, empty CRL (number 1), empty index, and last the certificate, whose
 * presence marks the CA as existing. cn is the subject CN (NULL: "moat
 * client CA (<hostname>)", see ca_check_cn). Returns 0; MOAT_EEXIST when
 * ca.pem or ca.key already exists (nothing is touched); MOAT_EINVAL for a
 * bad cn; MOAT_EIO / MOAT_ETLS. Everything is logged. On success *cert
 * (when cert is not NULL) gets a reference to the new CA certificate.
 */
int ca_init(const char *datadir, const char *cn, X509 **cert);

/*
 * Open the CA of datadir. write: take the lock (blocks until other writers
 * finish), load the key, and rewrite the CRL if it does not match the
 * index. Otherwise only the certificate, the index and the CRL are read.
 * Returns 0 and *out, or a negative MOAT_E* code (logged; a missing CA
 * says to run `moat ca init`, a corrupt index says how to restore it).
 */
int ca_open(const char *datadir, bool write, struct ca **out);

/* Release the lock, wipe the key, free everything. NULL is a no-op. */
void ca_close(struct ca *ca);

/* Borrowed: the CA certificate, and the path of crl.pem. */
X509 *ca_cert(const struct ca *ca);
const char *ca_crl_path(const struct ca *ca);

/*
 * Refuse dir (0, or MOAT_EINVAL logged) when it is one of moat's own state
 * directories (the data directory, client-ca/, certs/), where issued files
 * (NAME.pem, NAME.key, a bundle) could replace a CA's certificate or key.
 * A directory that does not exist yet is fine.
 */
int ca_check_out_dir(const struct ca *ca, const char *dir);

/*
 * Issue a client certificate for name (see ca_check_name) valid for days
 * (1..CA_CLIENT_DAYS_MAX) and record it in the index, then write
 * <out_dir>/NAME.pem (0644) and NAME.key (0600); out_dir NULL means
 * <ca dir>/clients (created 0700); another out_dir is created 0700 if
 * missing, an existing one is used as it is. Refused with MOAT_EEXIST when
 * name has an active (not revoked, not expired) certificate, unless force.
 * The CA must be open for writing. On success *res is filled (caller frees
 * with ca_issued_free). Returns 0 or a negative MOAT_E* code (logged).
 */
int ca_issue(struct ca *ca, const char *name, int days, bool force,
	     const char *out_dir, struct ca_issued *res);

/* Free what ca_issue filled in and wipe the key. NULL is a no-op. */
void ca_issued_free(struct ca_issued *res);

/*
 * Every certificate in the index, oldest first, with its current status
 * (revoked wins over expired; now is the reference time). *out is a heap
 * array (caller frees with free) of *n entries; NULL when there are none.
 */
void ca_list(const struct ca *ca, time_t now, struct ca_entry **out, size_t *n);

/*
 * Revoke every not yet revoked certificate named name, or only the one
 * with serial (hex, any case, leading zeros ignored) when serial is not
 * NULL; it must belong to name. Writes the new CRL, then the index. The CA
 * must be open for writing. On success *serials is a heap array (caller
 * frees with free) of *n uppercase hex serials. Returns 0, MOAT_ENOTFOUND
 * (no such name or serial, or nothing left to revoke; logged), MOAT_EINVAL
 * for a malformed serial, or MOAT_EIO / MOAT_ETLS.
 */
int ca_revoke(struct ca *ca, const char *name, const char *serial,
	      char (**serials)[CA_SERIAL_HEX_MAX + 1], size_t *n);

/* The CRL number of the last CRL written (0 before the first). */
long ca_crl_number(const struct ca *ca);

/*
 * Read <datadir>/client-ca/ca.pem and check it is a certificate; *pem gets
 * the file's bytes (heap, NUL-terminated, caller frees) and *len their
 * count. Needs no lock and no index. Returns 0 or a negative MOAT_E* code.
 */
int ca_export(const char *datadir, char **pem, size_t *len);

#endif
