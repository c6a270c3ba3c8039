/*
 * duckdns.h - one call of DuckDNS's update API
 * (https://www.duckdns.org/spec.jsp): point names at an address, or set or
 * clear their TXT record (ACME DNS-01). Used by ddns.c and acme_dns.c.
 * Thread: any; blocks the calling thread (DDNS and ACME threads).
 *
 * The token travels only in the request's query string: it is never logged,
 * never put in an error message, and the URL holding it is wiped after use.
 */
#ifndef MOAT_DUCKDNS_H
#define MOAT_DUCKDNS_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>

enum duckdns_op {
	DUCKDNS_ADDRESS = 0, /* update the A/AAAA records to the caller's address */
	DUCKDNS_TXT_SET,     /* set the TXT record to txt */
	DUCKDNS_TXT_CLEAR,   /* clear the TXT record */
};

struct duckdns_answer {
	bool updated;      /* DuckDNS said UPDATED (false: NOCHANGE) */
	char ipv4[64];     /* the addresses DuckDNS reports now ("" when none) */
	char ipv6[64];
};

/* DuckDNS's verbose answers are a few short lines; anything longer is not
 * DuckDNS (a captive portal, an error page) and is refused unread. */
#define DUCKDNS_MAX_ANSWER 1024

/* How long one call may take before it fails (DuckDNS answers in well
 * under a second when it is up). */
#define DUCKDNS_TIMEOUT_MS 15000

/*
 * Call url (e.g. https://www.duckdns.org/update) for domains (comma
 * separated DuckDNS subdomains, "example" for example.duckdns.org) with
 * token. ca_roots: extra trusted roots or NULL. stop: may be NULL; when it
 * turns true the call fails soon. txt: the value for DUCKDNS_TXT_SET
 * (ignored otherwise). For DUCKDNS_ADDRESS, ip= is sent empty, so DuckDNS
 * records the address the request came from.
 * Returns 0 with *a filled when DuckDNS answered OK; MOAT_EIO when the
 * request failed or DuckDNS answered KO (or anything else), with *err saying
 * which (heap, caller frees; never contains the token). *a is zeroed first.
 */
int duckdns_call(const char *url, const char *ca_roots, const char *token,
		 const char *domains, enum duckdns_op op, const char *txt,
		 const _Atomic bool *stop, struct duckdns_answer *a, char **err);

/*
 * The request URL: url, then "?" (or "&" when url has a query already),
 * domains=D&token=T&verbose=true and the op's parameters (&ip= ;
 * &txt=V ; &txt=removed&clear=true), every value percent-encoded (RFC 3986
 * unreserved bytes stay; the commas between domains stay, as DuckDNS
 * splits on them). Returns a heap string holding the token: the caller
 * wipes it (OPENSSL_cleanse) and frees it. Exported for tests.
 */
char *duckdns_url(const char *url, const char *token, const char *domains,
		  enum duckdns_op op, const char *txt);

/*
 * Parse the body of an HTTP 200 answer to a verbose request (len bytes, no
 * NUL needed). Lines end in "\n" or "\r\n"; blanks around a line and
 * trailing empty lines are ignored.
 *   DUCKDNS_ADDRESS: exactly "OK", address, IPv6 address, "UPDATED" or
 *   "NOCHANGE"; each address empty or a valid IPv4/IPv6 address.
 *   TXT ops: "OK", then either nothing or one or two lines of which the
 *   last is "UPDATED"/"NOCHANGE" (DuckDNS answers "OK", the TXT value,
 *   the status); the addresses stay "".
 * Returns 0 with *a filled (zeroed first); MOAT_EINVAL when DuckDNS
 * answered KO (bad token or domain); MOAT_ETOOBIG when longer than
 * DUCKDNS_MAX_ANSWER; MOAT_EPROTO for anything else. Exported for tests.
 */
int duckdns_parse(enum duckdns_op op, const char *body, size_t len,
		  struct duckdns_answer *a);

#endif
