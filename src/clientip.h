/*
 * clientip.h - who the client really is: the PROXY protocol header a
 * trusted load balancer or moat's relay puts before the first byte of a
 * connection (v1 text and v2 binary, haproxy.org's proxy-protocol.txt), and
 * the X-Forwarded-For / Forwarded (RFC 7239) chain a trusted reverse proxy
 * adds to a request.
 * Both parse untrusted bytes: every length is checked against the input
 * before it is used, and both are fuzzed (tests/fuzz/fuzz_clientip.c).
 * Thread: pure functions.
 */
#ifndef MOAT_CLIENTIP_H
#define MOAT_CLIENTIP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "h1.h"
#include "netaddr.h"

#define PROXYHDR_V1_MAX 107   /* the longest v1 line, CRLF included */
#define PROXYHDR_V2_MAX 1024  /* moat refuses longer v2 headers (TLVs) */

struct proxyhdr {
	bool has_src;        /* false: LOCAL command or UNSPEC/UNKNOWN family: keep the TCP peer */
	struct ipaddr src;   /* the client's address when has_src */
	uint16_t src_port;
	size_t len;          /* bytes the header took, to drop before TLS or HTTP */
};

/*
 * Parse a PROXY header (v1 or v2, told apart by their signatures) at the
 * start of buf[0..n). Returns 0 with *out filled once a whole valid header
 * is there; MOAT_EAGAIN when what is there is a valid beginning and more
 * bytes are needed; MOAT_EPROTO when it is not a PROXY header or is
 * malformed (bad signature, version or command, a family and length that
 * disagree, non-canonical v1 text, a header longer than the limits above).
 * Reads only buf[0..n); *out is left alone unless 0 is returned.
 * has_src is false for LOCAL, for the UNSPEC family or protocol, for
 * AF_UNIX and for v1 UNKNOWN; DGRAM (UDP) is MOAT_EPROTO. v2 TLVs are
 * counted in len and skipped unread. A v1 beginning is judged field by
 * field; an unfinished IPv6 field is only checked for its characters, so
 * at most PROXYHDR_V1_MAX bytes can be waited for before the refusal.
 */
int proxyhdr_parse(const uint8_t *buf, size_t n, struct proxyhdr *out);

enum clientip_header {
	CLIENTIP_XFF = 0,   /* X-Forwarded-For (the default) */
	CLIENTIP_FORWARDED, /* Forwarded: for= (RFC 7239) */
};

/*
 * The client's address for a request that arrived from peer: peer itself
 * unless peer is in trusted[0..ntrusted); then the chosen header's hops are
 * read right to left (every instance of the header, in order, as one list)
 * and the first hop that is not trusted is the client. When every hop is
 * trusted the left-most is. A hop that is not a plain address (a name, an
 * obfuscated "_x" or "unknown" identifier, garbage) ends the walk: the
 * client is the last address examined, which moat got from a proxy it
 * trusts. Ports ("192.0.2.1:443", "[2001:db8::1]:443") are dropped.
 * X-Forwarded-For hops: "192.0.2.1", "192.0.2.1:80", "2001:db8::1",
 * "[2001:db8::1]" or "[2001:db8::1]:80". Forwarded: an element's single
 * for= parameter, a token or quoted-string holding "192.0.2.1",
 * "192.0.2.1:80" or "[2001:db8::1]:80" (RFC 7239 6); an element without
 * for=, or with it twice, is not an address. Empty list elements are
 * skipped. At most 32 hops are examined: a walk that gets that far ends
 * there, on the last (trusted) address examined. Allocates nothing.
 * Returns the client's address.
 */
struct ipaddr clientip_resolve(const struct h1_msg *m, enum clientip_header which,
			       const struct cidr *trusted, size_t ntrusted,
			       const struct ipaddr *peer);

#endif
