/*
 * guard_access.h - who may enter a site: the decision for one request from
 * the site's client policy (clients, public), the client certificate the
 * connection presented, the method and the canonical path; and the 403
 * answer a denied request gets.
 * Thread: any (reads immutable configuration; client_id from its owning
 * worker).
 */
#ifndef MOAT_GUARD_ACCESS_H
#define MOAT_GUARD_ACCESS_H

#include <stdbool.h>
#include <stddef.h>

#include "clientcert.h"

struct conf_site;
struct h1_msg;

struct access {
	bool allow;
	bool identified;          /* a valid certificate: pass its identity upstream */
	enum client_status cert;  /* the certificate's standing */
	const char *name;         /* "allow:public", "deny:revoked", ...; NULL: no policy */
};

/* Decide for a request on site s (trust is the site's, id the connection's
 * certificate or NULL; path canonical, query allowed). */
struct access guard_access(const struct conf_site *s, const struct client_trust *trust,
			   struct client_id *id, const char *method, size_t mlen,
			   const char *path, size_t plen);

/* The body of the 403 for a denied request: JSON, or HTML when the client's
 * Accept asks for HTML and not JSON. *ctype is set to its media type.
 * Heap string; caller frees. */
char *guard_access_body(const struct access *a, const struct h1_msg *m, const char *host,
			const char **ctype);

#endif
