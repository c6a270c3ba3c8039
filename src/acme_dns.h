/*
 * acme_dns.h - DNS-01 challenge records (RFC 8555 section 8.4): set, wait
 * for and clear the TXT record _acme-challenge.<name> through acme.dns's
 * provider: RFC 2136 dynamic updates signed with TSIG (RFC 8945), or
 * DuckDNS's HTTP API (duckdns.c).
 *
 * RFC 2136 adds and deletes single records, so a wildcard and its base
 * name ("*.example.org" and "example.org", both at
 * _acme-challenge.example.org) can hold their two values at once.
 * DuckDNS holds one TXT value per domain and setting it replaces the one
 * before: such a pair cannot both validate at the same time through
 * DuckDNS, so callers (acme_order.c) set, wait, have the CA validate and
 * clear each challenge before the next, for every provider.
 *
 * Every call blocks: run them on the ACME thread. stop may be NULL; when
 * it turns true, waits end early with MOAT_EIO. On failure *err is a heap
 * message for the operator (caller frees) naming the record and the
 * server; it never contains a secret.
 */
#ifndef MOAT_ACME_DNS_H
#define MOAT_ACME_DNS_H

#include <stdatomic.h>
#include <stdbool.h>

#include "conf.h"

/*
 * Publish value at _acme-challenge.<ident without "*.">. rfc2136: find the
 * zone (d->zone, else an SOA query at d->server for the name and each of
 * its parents), send an UPDATE adding the TXT record with d->ttl (other
 * values stay), and require RCODE NOERROR with a valid TSIG on the answer.
 * duckdns: set the TXT record of the DuckDNS domain (see
 * acme_dns_duckdns_domain). ca_roots: extra trusted roots for DuckDNS's
 * API, or NULL. Returns 0; MOAT_EINVAL (ident unusable), MOAT_ECONFIG (no
 * provider, no DuckDNS domain), MOAT_EIO (no answer, stopped) or
 * MOAT_EPROTO (the server refused, or its answer is not to be trusted).
 */
int acme_dns_set(const struct conf_dns *d, const char *ca_roots, const char *ident,
		 const char *value, const _Atomic bool *stop, char **err);

/* Remove what acme_dns_set published: rfc2136 deletes exactly that
 * record (class NONE), duckdns clears the domain's TXT record. Returns
 * as acme_dns_set. */
int acme_dns_clear(const struct conf_dns *d, const char *ca_roots, const char *ident,
		   const char *value, const _Atomic bool *stop, char **err);

/*
 * Wait until value is visible at _acme-challenge.<ident without "*.">:
 * ask d->resolver (else, for rfc2136, d->server) once a second until an
 * answer holds it, for up to d->propagation_ms. With nowhere to ask
 * (duckdns without a resolver) sleep d->settle_ms instead. Returns 0,
 * MOAT_EINVAL or MOAT_EIO (not visible in time, or stopped).
 */
int acme_dns_wait(const struct conf_dns *d, const char *ident, const char *value,
		  const _Atomic bool *stop, char **err);

/*
 * The DuckDNS domain that holds ident's record: d->domain when set, else
 * the label just before "duckdns.org" ("*.home.example.duckdns.org" ->
 * "example"). Returns 0 with *domain (heap, caller frees), or
 * MOAT_ECONFIG with *err asking for acme.dns.domain.
 */
int acme_dns_duckdns_domain(const struct conf_dns *d, const char *ident, char **domain,
			    char **err);

#endif
