/*
 * revoke.h - revocation lists that change while moat runs.
 *
 * A struct revlist is one CRL file, checked against the CA certificates it
 * must be signed by. It is loaded when a configuration generation is built
 * (a missing, unreadable, unsigned or expired file is an error then: moat
 * refuses to start, or keeps the old configuration on reload). After that
 * the control thread calls revoke_refresh() a few times a second; a file
 * that changed is read again and, if it is valid, its revoked set replaces
 * the old one at once for every worker, and revoke_epoch() moves on so
 * workers know to re-check live connections. Nothing ever un-revokes: a
 * file that turns bad while running is reported and the last good set
 * stays in force, and an issuer whose CRL went missing or older keeps the
 * revocations in force (crlset.h), also across reloads.
 *
 * Ownership: revlist_open returns a reference (caller drops it with
 * revlist_unref); the registry of open lists holds none.
 * Thread: revlist_open and revoke_refresh on the control thread;
 * revlist_has, revlist_unref and revoke_epoch from any thread.
 */
#ifndef MOAT_REVOKE_H
#define MOAT_REVOKE_H

#include <openssl/x509.h>
#include <stdbool.h>
#include <stddef.h>

#include "crlset.h"

#define REVOKE_SERIAL_MAX CRLSET_SERIAL_MAX /* longer serials never match */

struct revlist;

/*
 * Load path (one or more full PEM CRLs, each signed by one of issuers,
 * which are borrowed and referenced for as long as the list lives; what
 * running lists hold for the same CAs that is newer is carried in) and
 * register it for refreshes. Returns the list, or NULL with *why set (heap, caller
 * frees) naming the file, what is wrong and how to fix it.
 */
struct revlist *revlist_open(const char *path, STACK_OF(X509) *issuers, char **why);

/* refcount -1; frees and unregisters at zero. NULL is a no-op. */
void revlist_unref(struct revlist *r);

/* Is the certificate with this issuer (X509_NAME_hash_ex of its issuer
 * name) and serial (the INTEGER's content octets) revoked? A CRL past its
 * nextUpdate sets *stale: it can no longer vouch for anything. */
bool revlist_has(struct revlist *r, unsigned long issuer, const unsigned char *serial,
		 size_t len, bool *stale);

/* Re-read every registered file that changed since it was last read.
 * Returns how many lists now hold a new set (0: nothing changed). */
int revoke_refresh(void);

/* Moves on whenever any list changes; a cached answer from an older epoch
 * must be asked again. */
unsigned revoke_epoch(void);

#endif
