/*
 * pki.h - moat's internal server CA: the root that signs certificates for
 * local names (tls: internal), kept in the data directory.
 *   <data>/internal-ca.pem   root certificate for users to trust (0644)
 *   <data>/internal-ca.key   its ECDSA P-256 key (0600)
 *   <data>/certs/<name>.pem  leaf chain (leaf, then root) (0644)
 *   <data>/certs/<name>.key  leaf key (0600)
 * All files are written atomically (fsutil). Keys are wiped after use.
 * Thread: control thread only (blocking file I/O).
 */
#ifndef MOAT_PKI_H
#define MOAT_PKI_H

#include <time.h>

#define PKI_LEAF_DAYS 30

/* Create the CA in datadir if it does not exist yet (datadir must exist).
 * Returns 0, or MOAT_EIO/MOAT_ETLS with the reason logged. An existing but
 * unreadable or corrupt CA is an error, never silently replaced. */
int pki_ensure_ca(const char *datadir);

/*
 * Make sure a current leaf certificate for host ("app.localhost",
 * "*.home.localhost", "127.0.0.1") exists: ECDSA P-256, SAN = host (DNS or
 * IP), EKU serverAuth, random 128-bit serial, PKI_LEAF_DAYS days. It is
 * (re)issued when missing, unreadable, not signed by the current CA, or when
 * less than a third of its lifetime remains.
 * On success *cert_path and *key_path are heap strings (caller frees) and
 * *not_after is the leaf's expiry. Returns 0 or a negative MOAT_E* code.
 */
int pki_ensure_leaf(const char *datadir, const char *host, char **cert_path,
		    char **key_path, time_t *not_after);

#endif
