/*
 * guard_access.c - see guard_access.h.
 *
 * A valid certificate is named in the log even on public paths (allow:cert),
 * so the log shows who fetched what; public only speaks for requests
 * without one. Anything short of a valid certificate counts as none: the
 * client learns why in the 403 (its owner needs to know whether to renew,
 * reinstall or ask for a new one), never in a TLS alert.
 */
#include "guard_access.h"
#include "conf.h"
#include "h1.h"
#include "pathpat.h"
#include "util.h"

#include <stdio.h>
#include <string.h>
#include <strings.h>

static const char *refusal_name(enum client_status st)
{
	switch (st) {
	case CLIENT_NONE: return "deny:no-cert";
	case CLIENT_UNTRUSTED: return "deny:untrusted";
	case CLIENT_WRONG_USAGE: return "deny:wrong-usage";
	case CLIENT_NOT_YET_VALID: return "deny:not-yet-valid";
	case CLIENT_EXPIRED: return "deny:expired";
	case CLIENT_REVOKED: return "deny:revoked";
	case CLIENT_CRL_STALE: return "deny:crl-stale";
	case CLIENT_OK: break;
	}
	return "deny:untrusted";
}

static bool is_public(const struct conf_site *s, const char *method, size_t mlen,
		      const char *path, size_t plen)
{
	size_t i;

	for (i = 0; i < s->npub; i++)
		if (pathpat_match(s->pub[i], method, mlen, path, plen))
			return true;
	return false;
}

struct access guard_access(const struct conf_site *s, const struct client_trust *trust,
			   struct client_id *id, const char *method, size_t mlen,
			   const char *path, size_t plen)
{
	struct access a = { .allow = true, .cert = CLIENT_NONE, .name = NULL };

	if (s->clients == CONF_CLIENTS_OFF)
		return a;
	if (trust != NULL)
		a.cert = client_id_status(id, trust);
	if (a.cert == CLIENT_OK) {
		a.identified = true;
		a.name = "allow:cert";
	} else if (s->clients == CONF_CLIENTS_OPTIONAL) {
		a.name = "allow:no-cert";
	} else if (is_public(s, method, mlen, path, plen)) {
		a.name = "allow:public";
	} else {
		a.allow = false;
		a.name = refusal_name(a.cert);
	}
	return a;
}

static const char *explain(enum client_status st)
{
	switch (st) {
	case CLIENT_UNTRUSTED:
		return "The client certificate presented was not issued by the certificate "
		       "authority this site trusts.";
	case CLIENT_WRONG_USAGE:
		return "The client certificate presented is not meant for client authentication "
		       "(it lacks the clientAuth extended key usage).";
	case CLIENT_NOT_YET_VALID:
		return "The client certificate presented is not valid yet; check the device's clock.";
	case CLIENT_EXPIRED:
		return "The client certificate presented has expired; ask the site's owner for a "
		       "new one.";
	case CLIENT_REVOKED:
		return "The client certificate presented was revoked by the site's owner.";
	case CLIENT_CRL_STALE:
		return "The site's certificate revocation list is out of date, so no client "
		       "certificate can be accepted until its owner renews it.";
	case CLIENT_NONE:
	case CLIENT_OK:
		break;
	}
	return "This address needs a client certificate. Install the certificate the site's "
	       "owner issued to you and try again.";
}

/* Does a comma-separated Accept value mention this media type (or a
 * suffix like +json)? Case-insensitive; q-values are not weighed. */
static bool accept_has(const struct h1_msg *m, const char *what)
{
	size_t wl = strlen(what), i, k;

	for (i = 0; i < m->nheaders; i++) {
		const struct h1_header *h = &m->headers[i];

		if (!h1_slice_ieq(h->name, "accept"))
			continue;
		for (k = 0; k + wl <= h->value.n; k++)
			if (strncasecmp(h->value.p + k, what, wl) == 0)
				return true;
	}
	return false;
}

char *guard_access_body(const struct access *a, const struct h1_msg *m, const char *host,
			const char **ctype)
{
	const char *why = explain(a->cert);
	const char *reason = a->name + 5; /* after "deny:" */

	if (accept_has(m, "text/html") && !accept_has(m, "json")) {
		*ctype = "text/html; charset=utf-8";
		return xasprintf("<!doctype html>\n<html><head><meta charset=\"utf-8\">"
				 "<title>Client certificate required</title></head>\n"
				 "<body style=\"font-family:sans-serif;max-width:40em;margin:3em auto\">\n"
				 "<h1>Client certificate required</h1>\n<p>%s</p>\n"
				 "<p><small>%s &middot; %s</small></p>\n</body></html>\n",
				 why, host, reason);
	}
	*ctype = "application/json";
	return xasprintf("{\"error\":\"%s\",\"reason\":\"%s\",\"host\":\"%s\",\"message\":\"%s\"}\n",
			 a->cert == CLIENT_NONE ? "client_certificate_required" :
			 "client_certificate_rejected", reason, host, why);
}
